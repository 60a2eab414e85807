"""The names the documentation's examples use (imported by every doctest, like a notebook's first cell).

A small classifier ``model`` (3 classes) with a named hidden ``layer``, a batch ``x`` of
4 examples with 8 features, labels ``y``, zero ``baselines`` and a seeded ``generator``.
"""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
layer = model[0]
x = torch.randn(4, 8)
y = torch.tensor([0, 1, 2, 0])
baselines = torch.zeros(4, 8)
generator = torch.Generator().manual_seed(0)
images = torch.rand(2, 3, 8, 8)
cnn = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
).eval()
conv = cnn[0]

__all__ = ["torch", "nn", "model", "layer", "x", "y", "baselines", "generator", "images", "cnn", "conv"]
