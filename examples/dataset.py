"""Attribute a whole dataset: integrated gradients for every digits test image, per class
======================================================================================

Trains the digits CNN of ``digits.py`` (seconds), runs ``pa.data.attribute_dataset`` over a
DataLoader of the test set, keeps every attribution in memory-mapped shards under
``examples/out/digits_ig`` and a per-class mean, and draws the ten class means with one
shared colour scale (``examples/out/dataset_class_means.png``).

The same script runs on several processes (or machines) with torchrun; each rank attributes
its share of the batches and the class means are merged::

    torchrun --standalone --nproc_per_node=2 examples/dataset.py
"""

from __future__ import annotations

import os
import shutil
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import pyattrib as pa  # noqa: E402
from pyattrib.data import ClassSummarizer, Count, Mean, attribute_dataset, load_attributions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
sys.path.insert(0, HERE)  # the digits CNN of digits.py
from digits import train  # noqa: E402

OUT = os.path.join(HERE, "out")


def main() -> dict[str, object]:
    distributed = "RANK" in os.environ
    if distributed:
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    model, x_te, y_te, acc = train()  # seeded: every rank trains the same model
    folder = os.path.join(OUT, "digits_ig")
    if rank == 0 and os.path.isdir(folder):  # a fresh run: old shards would be reused as finished
        shutil.rmtree(folder)
    if distributed:
        torch.distributed.barrier()
    loader = DataLoader(TensorDataset(x_te, y_te), batch_size=64)
    result = attribute_dataset(
        pa.integrated_gradients(model), loader, out=folder,
        summarize=ClassSummarizer([Mean(), Count()]), show_progress=rank == 0,
    )  # fmt: skip
    summary = result.summary
    assert isinstance(summary, ClassSummarizer)
    means = {label: s[0]["mean"][0] for label, s in sorted(summary.class_summaries.items())}
    counts = {label: s[0]["count"] for label, s in sorted(summary.class_summaries.items())}
    if rank == 0:
        scale = max(float(m.abs().max()) for m in means.values())
        fig, axes = plt.subplots(2, 5, figsize=(10, 4.6), constrained_layout=True)
        for ax, (label, mean) in zip(axes.flat, means.items()):
            image = ax.imshow(mean.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_title(f"class {label} (n={counts[label]})", fontsize=9)
            ax.axis("off")
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean IG attribution (shared scale; red: for the class)")
        fig.suptitle(f"digits CNN (test accuracy {acc:.1%}): mean integrated gradients per class")
        fig.savefig(os.path.join(OUT, "dataset_class_means.png"), dpi=110)
        plt.close(fig)
        stored = load_attributions(folder)
        print(f"{len(stored)} attributions stored in {stored.out} ({len(stored.batches)} shards)")
        print(f"examples per class: {counts}")
    if distributed:
        torch.distributed.destroy_process_group()
    return {"means": means, "counts": counts, "stored": len(load_attributions(folder))}


if __name__ == "__main__":
    main()
