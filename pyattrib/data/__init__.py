"""Dataset-scale tools: streaming summaries of attributions (and of any tensors)."""

from .summary import MSE, CommonStats, Count, Max, Mean, Min, Stat, StdDev, Sum, Summarizer, Var

__all__ = ["Summarizer", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "Min", "Max", "Sum", "CommonStats"]
