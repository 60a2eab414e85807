"""Main demo: train a small CNN on scikit-learn's digits, then explain its predictions
===================================================================================

Trains in a few seconds on a CPU, downloads nothing, and writes
``examples/out/digits_attributions.png``: test images with their saliency,
integrated gradients and smoothgrad(integrated gradients) maps. Prints accuracy and
the completeness delta of integrated gradients.
"""

from __future__ import annotations

import os

import torch
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
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(epochs: int = 15, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed)
    model = make_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    return model, x_te, y_te, acc


def main(n_show: int = 6) -> dict[str, float]:
    model, x_te, y_te, acc = train()
    print(f"test accuracy: {acc:.3f}")
    x, y = x_te[:n_show], y_te[:n_show]

    methods = {
        "saliency": pa.saliency(model),
        "integrated gradients": pa.integrated_gradients(model, n_steps=64),
        "smoothgrad(IG)": pa.smoothgrad(pa.integrated_gradients(model, n_steps=32), n_samples=16, stdevs=0.1),
    }
    gen = torch.Generator().manual_seed(0)
    maps = {}
    for name, attributor in methods.items():
        kwargs = {"generator": gen} if attributor.random else {}
        maps[name] = attributor(x, target=y, **kwargs)

    _, delta = pa.integrated_gradients(model, n_steps=64, return_delta=True)(x, target=y)
    print("IG completeness delta per image:", [f"{d:+.2e}" for d in delta.tolist()])

    os.makedirs(OUT, exist_ok=True)
    fig = Figure(figsize=(2.4 * (1 + len(maps)), 2.6 * n_show))
    axes = fig.subplots(n_show, 1 + len(maps))
    for i in range(n_show):
        viz.image_attr(x[i], x[i], "original_image", ax=axes[i, 0], title=f"label {int(y[i])}")
        for j, (name, m) in enumerate(maps.items(), start=1):
            # signed maps, each over its own scale t; the colour bar under each map states t
            viz.image_attr(m[i], method="heat_map", sign="all", ax=axes[i, j], title=name if i == 0 else None)
    fig.tight_layout()
    path = os.path.join(OUT, "digits_attributions.png")
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    return {"accuracy": acc, "max_abs_delta": float(delta.abs().max())}


if __name__ == "__main__":
    main()
