"""Modified-backprop methods: pyattrib vs Captum, one process (CPU, 2 threads).

Run: python benchmarks/bench_backprop.py
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from captum.attr import DeepLift, DeepLiftShap, GuidedBackprop
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")


def cnn() -> nn.Module:
    """2-conv CNN with module nonlinearities (Captum's hooks need modules)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


def floor(model: nn.Module, rows: torch.Tensor):
    """One plain forward + backward over the stacked rows: the least any method can do."""

    def run():
        r = rows.clone().requires_grad_()
        torch.autograd.grad(model(r)[:, 3].sum(), r)

    return run


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    model, x = cnn(), torch.randn(16, 3, 32, 32)
    base, refs20 = torch.zeros_like(x), torch.randn(20, 3, 32, 32)
    dl, cdl = pa.deep_lift(model), DeepLift(model)
    dls, cdls = pa.deep_lift_shap(model), DeepLiftShap(model)
    gb, cgb = pa.guided_backprop(model), GuidedBackprop(model)
    pairs = torch.cat([x.repeat_interleave(20, 0), refs20.repeat(16, 1, 1, 1)])
    t = common.interleaved(
        {"pyattrib": lambda: dl(x, base, target=3), "captum": lambda: cdl.attribute(x, base, target=3),
         "floor": floor(model, torch.cat([x, base]))}, rounds=15)  # fmt: skip
    print(common.row("deep_lift, CNN b16 3x32x32", t["pyattrib"], t["captum"], t["floor"], "(target <= 0.5x captum)"))
    t = common.interleaved(
        {"pyattrib": lambda: dls(x, refs20, target=3), "captum": lambda: cdls.attribute(x, refs20, target=3),
         "floor": floor(model, pairs)}, rounds=5, warmup=1)  # fmt: skip
    print(common.row("deep_lift_shap, 20 baselines", t["pyattrib"], t["captum"], t["floor"], "(target <= 0.5x captum)"))
    dls256 = pa.deep_lift_shap(model, batch_size=256)
    t = common.interleaved(
        {"pyattrib": lambda: dls256(x, refs20, target=3), "captum": lambda: cdls.attribute(x, refs20, target=3),
         "floor": floor(model, pairs)}, rounds=5, warmup=1)  # fmt: skip
    print(
        common.row(
            "deep_lift_shap, 20 baselines, batch_size=256",
            t["pyattrib"],
            t["captum"],
            t["floor"],
            "(target <= 0.5x captum)",
        )
    )
    t = common.interleaved(
        {"pyattrib": lambda: gb(x, target=3), "captum": lambda: cgb.attribute(x, target=3), "floor": floor(model, x)},
        rounds=15,
    )
    print(common.row("guided_backprop, CNN b16", t["pyattrib"], t["captum"], t["floor"], "(target <= 1.0x captum)"))

    ours = common.peak_rss_growth_mb("bench_backprop", "pyattrib")
    theirs = common.peak_rss_growth_mb("bench_backprop", "captum")
    print(
        f"peak memory (RSS growth), deep_lift_shap, 200 baselines = 3200 pairs: pyattrib batch_size=400 {ours:7.1f} MB, "
        f"captum {theirs:7.1f} MB ({ours / theirs:.3f}x)"
    )


def measure(case: str) -> float:
    model, x, refs = cnn(), torch.randn(16, 3, 32, 32), torch.randn(200, 3, 32, 32)
    pa.deep_lift_shap(model)(x[:2], refs[:2], target=3)  # warm up
    DeepLiftShap(model).attribute(x[:2], refs[:2], target=3)
    base = common.reset_peak_rss()
    if case == "pyattrib":
        pa.deep_lift_shap(model, batch_size=400)(x, refs, target=3)
    else:
        DeepLiftShap(model).attribute(x, refs, target=3)
    return common.rss_mb("VmHWM") - base


if __name__ == "__main__":
    main()
