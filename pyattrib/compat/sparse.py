"""Captum's sparse features, as an adapter: a tuple input whose tensors do not share a first
dimension (a sparse index list beside a dense batch), for a model that returns one value for the
whole batch. Each tensor is handed to the core as a batch of one (its rows one example), its
feature ids broadcast over its own rows, as Captum's shared mask does; the attributions come back
in Captum's layout, ``(n_outputs, *x.shape[1:])`` per tensor (zeros for an empty one)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError


def is_sparse(inputs: Any) -> bool:
    """A tuple of tensors whose first dimensions differ."""
    return (
        isinstance(inputs, tuple)
        and all(isinstance(x, Tensor) and x.dim() > 0 for x in inputs)
        and len({x.shape[0] for x in inputs}) > 1
    )


def rows_permuted(x: Tensor, group: Tensor) -> Tensor:
    """Captum's permutation of one feature, over each tensor's own rows (dimension 1 here)."""
    m = x.shape[1]
    if m < 2 or not bool(group.any()):  # no draw for a feature this tensor does not hold, as Captum
        return x
    perm = torch.randperm(m, device=x.device)
    while bool((perm == torch.arange(m, device=x.device)).all()):
        perm = torch.randperm(m, device=x.device)
    return torch.where(group, x[:, perm], x)


def sparse_attribute(
    transform: Callable[..., Any], forward: Callable[..., Any], config: dict[str, Any], inputs: tuple[Tensor, ...],
    baselines: Any = None, feature_mask: Any = None, **data: Any,
) -> tuple[Tensor, ...]:  # fmt: skip
    """``transform`` on ``inputs`` with sparse features (see the module doc)."""
    if data.get("target") is not None:
        raise ArgumentError("target: with sparse features the model returns one value for the whole batch; pass None")
    k = len(inputs)
    config = {**config, "batch_size": None}  # a whole-batch output: one perturbation per evaluation

    def whole(*args: Any) -> Any:
        return forward(*(a.squeeze(0) for a in args[:k]), *args[k:])

    masks, offset = [], 0
    for j, x in enumerate(inputs):
        shape = x.shape[1:]
        if feature_mask is None:
            ids = torch.arange(offset, offset + math.prod(shape), device=x.device).reshape(shape)
            offset += math.prod(shape)
        else:
            given = feature_mask[j] if isinstance(feature_mask, tuple) else feature_mask
            ids = given.reshape(given.shape[1:]) if given.dim() == x.dim() and given.shape[0] == 1 else given
        masks.append(ids.expand(x.shape).unsqueeze(0).long())
    if baselines is not None:
        baselines = tuple(
            b.reshape(1, 1, *x.shape[1:]) if isinstance(b, Tensor) and b.numel() == math.prod(x.shape[1:]) else
            (b.unsqueeze(0) if isinstance(b, Tensor) else b)
            for b, x in zip(baselines if isinstance(baselines, tuple) else (baselines,) * k, inputs)
        )  # fmt: skip
    attrs = transform(whole, **config)(
        tuple(x.unsqueeze(0) for x in inputs), **({"baselines": baselines} if baselines is not None else {}),
        feature_mask=tuple(masks), **data,
    )  # fmt: skip
    return tuple(a[:, 0] if x.shape[0] else a.new_zeros(a.shape[0], *x.shape[1:]) for a, x in zip(attrs, inputs))
