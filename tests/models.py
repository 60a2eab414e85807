"""Small models shared by the tests (importable as ``tests.models``)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int = 6, hidden: int = 8, d_out: int = 3, seed: int = 0, act: type[nn.Module] = nn.Tanh) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, d_out)
    ).eval()


class CNN(nn.Module):
    def __init__(self, n_out: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.tanh(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CNN().eval()


class TwoInputs(nn.Module):
    """f(x1, x2, scale) with an additional per-example tensor argument."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(3, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, scale: torch.Tensor | None = None, shift: float = 0.0):
        h = torch.tanh(self.a(x1) + self.b(x2)) + shift
        if scale is not None:
            h = h * scale[:, None]
        return self.head(h)


def two_inputs(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoInputs().eval()


class Grid(nn.Module):
    """An output with two dimensions after the batch: (N, 2, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(x)).reshape(-1, 2, 3)


def grid(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Grid().eval()


class Scalar(nn.Module):
    """One output per example, shape (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)).pow(2).sum(1)


def scalar(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Scalar().eval()
