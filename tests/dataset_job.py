"""A dataset attribution job, run in-process by the tests and under torchrun (gloo) by them."""

from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from pyattrib.data import ClassSummarizer, Count, Mean, attribute_dataset


def job(out: str) -> ClassSummarizer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    x, y = torch.randn(45, 5), torch.arange(45) % 3
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # 12 batches, the last one short
    sg = pa.smoothgrad(pa.saliency(model), stdevs=0.2, n_samples=3)  # random: seeded per batch
    result = attribute_dataset(sg, loader, out=out, summarize=ClassSummarizer([Mean(), Count()]), show_progress=False)
    return result.summary


if __name__ == "__main__":
    torch.distributed.init_process_group("gloo")
    summary = job(sys.argv[1])
    if torch.distributed.get_rank() == 0:
        torch.save({k: s.summary for k, s in summary.summaries.items()}, sys.argv[2])
    torch.distributed.destroy_process_group()
