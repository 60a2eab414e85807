"""Dataset-scale tools: streaming summaries of attributions (and of any tensors)."""

from .summary import MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, Stat, StdDev, Sum, Summarizer, Var

__all__ = [
    "Summarizer",
    "ClassSummarizer",
    "Stat",
    "Count",
    "Mean",
    "MSE",
    "Var",
    "StdDev",
    "Min",
    "Max",
    "Sum",
    "CommonStats",
]
