"""The small CNN and images the Quantus agreement tests share (tests/test_metrics_*.py)."""

from __future__ import annotations

import torch
from torch import nn

N, SIDE = 6, 8


def cnn(side: int = SIDE, padding: int = 1, seed: int = 0) -> nn.Module:
    """Conv(1->4, 3x3) -> ReLU -> Linear to 10 classes over ``side x side`` images, in eval mode."""
    torch.manual_seed(seed)
    inner = side if padding else side - 2
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=padding), nn.ReLU(), nn.Flatten(), nn.Linear(4 * inner * inner, 10)
    ).eval()


def images(side: int = SIDE, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``N`` images in [0, 1) and their classes ``0, 1, ..., N - 1``."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(N, 1, side, side, generator=g), torch.arange(N) % 10
