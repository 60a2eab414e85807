"""Dataset-scale tools: attribute a whole DataLoader (on disk, summarised, over many
processes) and streaming summaries of attributions (and of any tensors)."""

from .dataloader import dataloader_attribution
from .dataset import DatasetAttribution, StoredAttributions, attribute_dataset, load_attributions, split_batch
from .summary import MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, Stat, StdDev, Sum, Summarizer, Var

__all__ = [
    "attribute_dataset", "load_attributions", "dataloader_attribution", "split_batch", "DatasetAttribution",
    "StoredAttributions",
    "Summarizer", "ClassSummarizer", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "Min", "Max", "Sum",
    "CommonStats",
]  # fmt: skip
