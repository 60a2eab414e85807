"""Attributions as the metrics read them: flattened per example, optionally rectified and
normalised by their largest magnitude (Quantus's ``abs`` and ``normalise``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError
from .._core.inputs import as_tuple

NORMALISE = (True, False, "batch")


def check_normalise(normalise: Any) -> None:
    if normalise not in NORMALISE:
        raise ArgumentError(
            f"normalise={normalise!r}; choose True (each explanation by its own largest magnitude), False, or "
            "'batch' (by the batch's largest magnitude, as Quantus 0.6 does)"
        )


def flat(attributions: Any, abs: bool, normalise: bool | str, name: str = "attributions") -> Tensor:
    """``(N, D)``: every input's attributions of an example side by side, ``|a|`` with ``abs``,
    divided by the largest magnitude (the example's, or with ``"batch"`` the whole batch's;
    all-zero explanations stay zero)."""
    parts, _ = as_tuple(attributions, name)
    if not parts or any(p.dim() < 1 for p in parts) or len({p.shape[0] for p in parts}) != 1:
        raise ArgumentError(f"{name} must hold batched tensors (a first dimension per example, the same for all)")
    a = torch.cat([p.detach().reshape(p.shape[0], -1) for p in parts], dim=1)
    if not a.is_floating_point():
        a = a.float()
    if normalise:
        peak = a.abs().amax() if normalise == "batch" else a.abs().amax(1, keepdim=True)
        a = a / torch.where(peak > 0, peak, torch.ones_like(peak))
    return a.abs() if abs else a


def flat_masks(masks: Any, attributions: Any, like: Tensor) -> Tensor:
    """``(N, D)`` booleans: segmentation masks of the attributions' shape (a mask with one
    channel serves every channel), flattened as :func:`flat` flattens the attributions."""
    parts, _ = as_tuple(masks, "masks")
    attrs, _ = as_tuple(attributions, "attributions")
    if len(parts) != len(attrs):
        raise ArgumentError(f"masks has {len(parts)} tensors for {len(attrs)} attribution tensors; give one each")
    out = []
    for m, a in zip(parts, attrs):
        try:
            m = torch.as_tensor(m, device=like.device).bool().expand_as(a)
        except RuntimeError:
            raise ArgumentError(
                f"masks of shape {tuple(m.shape)} do not fit attributions of shape {tuple(a.shape)}: give one boolean "
                "mask per example with the attributions' shape (a channel dimension of 1 serves all channels)"
            ) from None
        out.append(m.reshape(m.shape[0], -1))
    return torch.cat(out, dim=1)
