"""Calls that exercise every input form: used by the Captum reference tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from . import models


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    inputs: Any
    baselines: Any = None
    target: Any = None
    args: Any = None
    kwargs: dict = field(default_factory=dict)

    def call_kwargs(self) -> dict:
        return {"target": self.target, "additional_forward_args": self.args}


def cases(dtype: torch.dtype = torch.float32) -> list[Case]:
    g = torch.Generator().manual_seed(7)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(dtype)

    two = models.two_inputs().to(dtype)
    return [
        Case("mlp-int-target", models.mlp().to(dtype), rand(5, 6), 0.5, target=2),
        Case("mlp-per-example", models.mlp().to(dtype), rand(5, 6), rand(5, 6), target=[0, 1, 2, 1, 0]),
        Case("mlp-tensor-target", models.mlp().to(dtype), rand(5, 6), rand(1, 6), target=torch.tensor([2, 2, 0, 1, 0])),
        Case("cnn", models.cnn().to(dtype), rand(3, 3, 8, 8), rand(3, 3, 8, 8), target=[3, 0, 1]),
        Case(
            "multi-input-mixed-baselines-args",
            two,
            (rand(4, 4), rand(4, 3)),
            (0.25, rand(1, 3)),
            target=1,
            args=(rand(4).abs() + 0.5, 0.1),
        ),
        Case("multi-input-none-baselines", two, (rand(4, 4), rand(4, 3)), None, target=[0, 2, 1, 1]),
        Case("grid-tuple-target", models.grid().to(dtype), rand(4, 5), 0.0, target=(1, 2)),
        Case(
            "grid-list-of-tuples",
            models.grid().to(dtype),
            rand(4, 5),
            rand(4, 5),
            target=[(0, 1), (1, 2), (0, 0), (1, 1)],
        ),
        Case("scalar-output", models.scalar().to(dtype), rand(4, 5), rand(4, 5), target=None),
    ]
