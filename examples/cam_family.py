"""The CAM family on a CNN trained on scikit-learn's digits
==========================================================

Trains a small CNN with a global-average-pooling head on the digits (upsampled to 32x32) in a
few seconds on a CPU, then draws the class activation maps of its last convolution side by side
over the test images: Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM,
Score-CAM, Ablation-CAM and FullGrad, each ``pa.<cam>(model, layer)(images, target=labels)``.
Prints, for each map, how often its hottest pixel lies on the digit's ink (the pointing game),
and writes ``examples/out/cam_family.png``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")


def make_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 10),
    )  # fmt: skip


def train(epochs: int = 15, seed: int = 0) -> tuple[Any, torch.Tensor, torch.Tensor, float]:
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed)
    model = make_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
    with torch.no_grad():  # the BatchNorm statistics of the final weights, over the whole training set
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model(x_tr)
    model.eval()
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    return model, x_te, y_te, acc


def main(n_show: int = 4, n_score: int = 64) -> dict[str, float]:
    model, x_te, y_te, acc = train()
    print(f"test accuracy: {acc:.3f}")
    layer = model[10]  # the last convolution's ReLU: an 8x8 map of 48 channels
    cams = {
        "Grad-CAM": pa.grad_cam(model, layer),
        "Grad-CAM++": pa.grad_cam_plus_plus(model, layer),
        "XGrad-CAM": pa.xgrad_cam(model, layer),
        "HiResCAM": pa.hires_cam(model, layer),
        "LayerCAM": pa.layer_cam(model, layer),
        "Eigen-CAM": pa.eigen_cam(model, layer),
        "Score-CAM": pa.score_cam(model, layer),
        "Ablation-CAM": pa.ablation_cam(model, layer),
        "FullGrad": pa.full_grad(model),
    }
    x, y = x_te[:n_score], y_te[:n_score]
    maps = {name: cam(x, target=y) for name, cam in cams.items()}
    ink = x[:, 0] > 0.3
    hits = {}
    for name, m in maps.items():
        hottest = m.flatten(1).argmax(1)
        hits[name] = ink.flatten(1).gather(1, hottest[:, None]).float().mean().item()
        print(f"{name:<13} pointing game: {hits[name]:.2f} of {n_score} images hit the ink")

    os.makedirs(OUT, exist_ok=True)
    fig = Figure(figsize=(1.9 * (1 + len(maps)), 2.2 * n_show))
    axes = fig.subplots(n_show, 1 + len(maps))
    for i in range(n_show):
        viz.image_attr(x[i], x[i], "original_image", ax=axes[i, 0], title=f"label {int(y[i])}")
        for j, (name, m) in enumerate(maps.items(), start=1):
            viz.image_attr(m[i][None], x[i], method="blended_heat_map", sign="positive", alpha_overlay=0.6,
                           colorbar=i == n_show - 1, ax=axes[i, j], title=name if i == 0 else None)  # fmt: skip
    fig.tight_layout()
    path = os.path.join(OUT, "cam_family.png")
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    return {"accuracy": acc, **{f"hits {k}": v for k, v in hits.items()}}


if __name__ == "__main__":
    main()
