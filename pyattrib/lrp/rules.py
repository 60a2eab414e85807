"""LRP rules: each a few declarative fields over one template (Zennit's split: rules here,
the propagation that applies them in :mod:`.propagation`, the transforms in the package)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Rule:
    """An LRP rule: ``weight``/``bias`` map the layer's parameters to the ones relevance is
    distributed with; ``eps`` stabilises the denominator; ``identity`` passes relevance."""

    name: str
    eps: float = 1e-9
    weight: Callable[[Tensor], Tensor] | None = None
    bias: Callable[[Tensor], Tensor] | None = None
    identity: bool = False


def epsilon(eps: float = 1e-9) -> Rule:
    """LRP-epsilon: ``R_i = sum_j x_i w_ij R_j / (z_j + eps sign z_j)``. Conserves relevance
    as ``eps -> 0`` on bias-free layers; larger ``eps`` absorbs weak, noisy contributions."""
    return Rule("epsilon", eps=eps)


def gamma(gamma: float = 0.25, zero_bias: bool = False) -> Rule:
    """LRP-gamma: distribute with ``w + gamma * max(w, 0)``, favouring positive contributions."""
    return Rule(
        "gamma",
        weight=lambda w: w + gamma * w.clamp(min=0),
        bias=(lambda b: torch.zeros_like(b)) if zero_bias else None,
    )


def alpha1_beta0(zero_bias: bool = False) -> Rule:
    """LRP-alpha1-beta0 (deep Taylor): distribute with the positive weights ``max(w, 0)`` only."""
    return Rule(
        "alpha1_beta0", weight=lambda w: w.clamp(min=0), bias=(lambda b: torch.zeros_like(b)) if zero_bias else None
    )


def z_plus() -> Rule:
    """LRP-z+: positive weights, no bias (alpha1-beta0 with the bias removed)."""
    return alpha1_beta0(zero_bias=True)


def identity() -> Rule:
    """Pass relevance through unchanged (layers whose input and output have one shape)."""
    return Rule("identity", identity=True)


#: Rules by module type or by module instance (an instance overrides its type).
RuleMap = Mapping[type | nn.Module, Rule]
#: The rule of each module type when ``rules=`` names none (Captum's defaults): epsilon for layers
#: with weights, pooling and batch norm.
DEFAULT_RULES: dict[type, Rule] = {
    nn.Linear: epsilon(),
    nn.Conv1d: epsilon(),
    nn.Conv2d: epsilon(),
    nn.Conv3d: epsilon(),
    nn.MaxPool1d: epsilon(),
    nn.MaxPool2d: epsilon(),
    nn.MaxPool3d: epsilon(),
    nn.AvgPool1d: epsilon(),
    nn.AvgPool2d: epsilon(),
    nn.AdaptiveAvgPool2d: epsilon(),
    nn.BatchNorm1d: epsilon(),
    nn.BatchNorm2d: epsilon(),
}

# modules that pass relevance as is: ReLU and tanh (relevance is distributed at the
# layers around them), and modules that do nothing in eval mode or only reshape
#: Module types whose relevance passes through unchanged (activations, dropout, reshaping).
PASSED = (
    nn.ReLU, nn.Tanh, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.ParameterDict, nn.ParameterList,
)  # fmt: skip
