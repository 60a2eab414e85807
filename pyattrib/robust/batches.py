"""Evaluate a model on several versions of one batch (attacked copies) in few forwards.

A version is whatever the model takes as its first argument (a tensor, or a tuple/list of
tensors). ``k`` versions are concatenated along the batch dimension, sent through the model
in one call with the additional arguments repeated ``k`` times, and the output is split
back into ``k`` parts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.inputs import batch_rows


def concat(versions: Sequence[Any]) -> Any:
    """Tensors concatenated along dim 0; tuples/lists element by element."""
    first = versions[0]
    if isinstance(first, Tensor):
        return torch.cat([v.to(first.device) for v in versions])
    if isinstance(first, (tuple, list)):
        return tuple(concat([v[j] for v in versions]) for j in range(len(first)))
    raise TypeError(f"versions of the inputs must be tensors or tuples of tensors to be batched, got {type(first)}")


def repeat_args(args: tuple, k: int) -> tuple:
    """Additional forward arguments for ``k`` concatenated versions (tensors repeated ``k`` times)."""
    return tuple(torch.cat([a] * k) if isinstance(a, Tensor) and a.dim() > 0 else a for a in args)


def forward_parts(model: Callable[..., Any], versions: Sequence[Any], args: tuple) -> Iterator[Tensor]:
    """The model's output for each version, from one forward over all of them."""
    if len(versions) == 1:
        yield model(versions[0], *args)
        return
    out = model(concat(versions), *repeat_args(args, len(versions)))
    start = 0
    for v in versions:
        n = batch_rows(v)
        yield out[start : start + n]
        start += n
