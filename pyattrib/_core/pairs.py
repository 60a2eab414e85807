"""What backward rules read: the paired batch (inputs, then their references), the input change
of each pair, and the scatter of pooled values back to their positions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

Ordinary = Callable[[], Tensor]
Rule = Callable[[Tensor, Tensor, Tensor, Ordinary], Tensor]


def _wide(t: Tensor) -> Tensor:
    """At least float32: rules divide small differences, which fp16/bf16 cannot hold."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _traced(t: Tensor) -> bool:
    """Under torch.compile or a torch.func transform, where branching on values is not allowed."""
    return torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(t)


def _near(dx: Tensor, eps: float) -> Tensor | None:
    """The mask ``|dx| < eps``, or None when no entry is that small. Eager mode checks with
    one reduction first: boolean masks are slow on CPU and usually all False."""
    size = dx.abs()
    if not _traced(dx) and not bool(size.amin() < eps):
        return None
    return size < eps


def _pairs(t: Tensor) -> Tensor:
    """``(2n, ...) -> (2, n, ...)``: the input and reference halves, stacked."""
    return _wide(t).unflatten(0, (2, -1))


class Difference(NamedTuple):
    """What a rule marked :func:`reads_difference` gets as ``x`` where the op's ordinary
    gradient needs only its output: ``x[:n] - x[n:]``, kept in place of ``x``."""

    value: Tensor


def reads_difference(rule: Rule) -> Rule:
    """Mark a rule that reads the op's input only as :func:`_difference` of its pairs."""
    rule.reads_input = "difference"  # type: ignore[attr-defined]
    return rule


def _difference(t: Tensor | Difference) -> Tensor:
    """``t[:n] - t[n:]``: the change from reference to input, per pair."""
    if isinstance(t, Difference):
        return t.value
    a, b = _pairs(t)
    return a - b


def unpool(values: Tensor, idx: Tensor, shape: Sequence[int], *more: tuple[Tensor, Tensor]) -> Tensor:
    """Scatter-add pooled ``values`` back to the input positions ``idx`` came from (and
    each further ``(values, idx)`` pair into the same buffer)."""
    flat = values.new_zeros(shape[0], shape[1], math.prod(shape[2:]))
    for v, i in ((values, idx), *more):
        flat.scatter_add_(2, i.flatten(2), v.flatten(2))
    return flat.view(shape)
