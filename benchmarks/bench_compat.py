"""pyattrib.compat vs the native transform vs Captum, one process, same model and data.

Run: python benchmarks/bench_compat.py
Target (issue 13): compat adds at most 5% to the native call.
"""

from __future__ import annotations

import os
import sys
import warnings

import captum.attr as ca
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402
import pyattrib.compat as pc  # noqa: E402

warnings.filterwarnings("ignore")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)).eval()


def cases():
    torch.manual_seed(0)
    m, x = mlp(), torch.randn(64, 20)
    yield (
        "IG, MLP b64, 50 steps",
        {
            "native": lambda: pa.integrated_gradients(m)(x, target=1),
            "compat": lambda: pc.IntegratedGradients(m).attribute(x, target=1),
            "captum": lambda: ca.IntegratedGradients(m).attribute(x, target=1),
        },
    )
    yield (
        "saliency, MLP b64",
        {
            "native": lambda: pa.saliency(m)(x, target=1),
            "compat": lambda: pc.Saliency(m).attribute(x, target=1),
            "captum": lambda: ca.Saliency(m).attribute(x, target=1),
        },
    )
    c, img = common.cnn(), torch.randn(8, 3, 32, 32)
    yield (
        "IG, CNN b8 3x32x32, 50 steps",
        {
            "native": lambda: pa.integrated_gradients(c)(img, target=1),
            "compat": lambda: pc.IntegratedGradients(c).attribute(img, target=1),
            "captum": lambda: ca.IntegratedGradients(c).attribute(img, target=1),
        },
    )
    mask = torch.arange(20).reshape(1, 20) // 2
    yield (
        "feature_ablation, MLP b64, 10 groups",
        {
            "native": lambda: pa.feature_ablation(m, batch_size=64)(x, target=1, feature_mask=mask),
            "compat": lambda: pc.FeatureAblation(m).attribute(x, target=1, feature_mask=mask),
            "captum": lambda: ca.FeatureAblation(m).attribute(x, target=1, feature_mask=mask),
        },
    )


def main() -> None:
    torch.set_num_threads(2)
    print(f"{'case':<38}{'native ms':>11}{'compat ms':>11}{'captum ms':>11}{'compat/native':>15}")
    for label, fns in cases():
        t = common.interleaved(fns, rounds=30)
        print(f"{label:<38}{t['native'] * 1e3:>11.2f}{t['compat'] * 1e3:>11.2f}{t['captum'] * 1e3:>11.2f}"
              f"{t['compat'] / t['native']:>14.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
