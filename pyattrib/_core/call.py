"""One call's data, normalised once: inputs, target, extra forward args."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .budget import FORWARD_BUDGET, GRADIENT_BUDGET, rows_per_chunk
from .inputs import (
    BaselineLike,
    ForwardArgs,
    TensorOrTuple,
    as_tuple,
    distribution_baselines,
    per_example_baselines,
    require_float,
    restore,
)
from .targets import Target, TargetLike, as_target


@dataclass
class Call:
    inputs: tuple[Tensor, ...]
    was_tuple: bool
    target: Target
    args: ForwardArgs

    @property
    def n(self) -> int:
        return self.inputs[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.inputs[0].device

    def chunk(self, batch_size: int | None, forward_only: bool = False) -> int:
        """Rows per model evaluation: ``batch_size``, or the budget rule of :mod:`.budget`."""
        budget = FORWARD_BUDGET if forward_only else GRADIENT_BUDGET
        return rows_per_chunk(batch_size, self.inputs, self.n, budget)

    def restore(self, values: tuple[Tensor, ...] | list[Tensor]) -> TensorOrTuple:
        return restore(values, self.was_tuple)

    def baselines(self, baselines: BaselineLike) -> tuple[Tensor, ...]:
        return per_example_baselines(baselines, self.inputs, self.was_tuple)

    def references(self, baselines: BaselineLike) -> tuple[Tensor, ...]:
        return distribution_baselines(baselines, self.inputs, self.was_tuple)


def prepare(
    inputs: TensorOrTuple,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    *,
    method: str,
    differentiable: bool = True,
    target_name: str = "target",
) -> Call:
    """Normalise a call; ``differentiable`` methods reject integer/bool inputs."""
    xs, was_tuple = as_tuple(inputs)
    if differentiable:
        require_float(xs, was_tuple, method)
    n = xs[0].shape[0]
    return Call(xs, was_tuple, as_target(target, n, xs[0].device, target_name), ForwardArgs(additional_forward_args, n))


def output_ends(forward: Callable[..., Any], call: Call, baselines: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """``f(baseline), f(x)`` of the selected output, per example (shape ``(N,)`` each)."""
    from .kernel import outputs

    start = outputs(forward, call.args, call.target, tuple(b.contiguous() for b in baselines), None)
    return start, outputs(forward, call.args, call.target, call.inputs, None)


def output_rise(forward: Callable[..., Any], call: Call, baselines: tuple[Tensor, ...]) -> Tensor:
    """``f(x) - f(baseline)`` of the selected output, per example (shape ``(N,)``)."""
    start, end = output_ends(forward, call, baselines)
    return end - start


def completeness_delta(
    forward: Callable[..., Any],
    call: Call,
    baselines: tuple[Tensor, ...],
    attributions: tuple[Tensor, ...],
) -> Tensor:
    """``sum(attributions) - (f(x) - f(baseline))`` per example (shape ``(N,)``)."""
    total = sum(a.reshape(call.n, -1).sum(1) for a in attributions)
    return total - output_rise(forward, call, baselines)
