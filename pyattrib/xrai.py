"""XRAI: attributions summed into regions, the regions ranked greedily by attribution density."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.call import prepare
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import TensorOrTuple
from ._core.kernel import Chunk, gradients, path_integral
from ._core.state import evaluating
from ._core.targets import TargetLike
from .cam.segments import grid_segments


def xrai(
    f: Callable[..., Any],
    *,
    n_steps: int = 100,
    area_threshold: float = 1.0,
    min_pixel_diff: int = 50,
    batch_size: int | None = None,
) -> Attributor:
    r"""XRAI: a pixel attribution turned into a ranking of regions.

    1. The base attribution :math:`a` is integrated gradients from two constant baselines, the
       image's minimum and its maximum, averaged (``n_steps`` evenly spaced points from the baseline
       to the image, both ends included, as PAIR ``saliency``), then its maximum over channels.
       Pass ``base_attribution`` to use another.
    2. Regions (boolean masks, from ``segments`` or :func:`pyattrib.cam.grid_segments`) are added greedily: at
       each step the region with the largest gain :math:`\operatorname{mean}(a[R \setminus S])`
       over the pixels it adds to the selection :math:`S`, among regions adding at least
       ``min_pixel_diff`` pixels; its new pixels get that gain. This stops once the selection
       covers more than ``area_threshold`` of the image; pixels left get the mean of :math:`a`
       over them.

    Args:
        f: The model, or a function ``inputs -> outputs``.
        n_steps: Integrated-gradients points per baseline.
        area_threshold: The share of the image to cover with ranked regions.
        min_pixel_diff: The least number of new pixels a region must add to be considered.
        batch_size: Rows per gradient evaluation (None: pyattrib's memory budget rule).

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None, segments=None,
        base_attribution=None)`` with images ``(N, C, H, W)``; ``segments`` is a boolean ``(M, H, W)``
        tensor for every image or a list of one per image; ``base_attribution`` has the inputs' shape.
        It returns the region map ``(N, H, W)``.

    References:
        - Kapishnikov, Bolukbasi, Viégas and Terry, "XRAI: Better Attributions Through Regions", ICCV
          2019. https://arxiv.org/abs/1906.02825

    Example:
        >>> pa.xrai(cnn, n_steps=8, min_pixel_diff=4)(images, target=0).shape
        torch.Size([2, 8, 8])
    """
    check_count("n_steps", n_steps)
    check_batch_size(batch_size)
    if min_pixel_diff < 0:
        raise ArgumentError(f"min_pixel_diff must be >= 0, got {min_pixel_diff}")

    def attribute(
        inputs: TensorOrTuple,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        segments: Tensor | Sequence[Tensor] | None = None,
        base_attribution: Tensor | None = None,
    ) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method="xrai")
        x = call.inputs[0]
        if call.was_tuple or x.dim() != 4:
            raise ArgumentError("xrai: inputs must be one tensor of images (N, C, H, W)")
        if base_attribution is None:
            with evaluating(f):
                base_attribution = _two_baseline_ig(f, call, n_steps, call.chunk(batch_size))
        elif base_attribution.shape != x.shape:
            raise ArgumentError(
                f"base_attribution has shape {tuple(base_attribution.shape)}; it must match the inputs', "
                f"{tuple(x.shape)}"
            )
        pixels = base_attribution.detach().to(torch.float64).amax(1)
        masks = _segments(segments, x)
        maps = [_ranked_regions(pixels[i], masks[i], area_threshold, min_pixel_diff) for i in range(call.n)]
        return torch.stack(maps).to(x.dtype)

    return Attributor(attribute, f, name="xrai")


def _two_baseline_ig(f: Callable[..., Any], call: Any, n_steps: int, rows: int) -> Tensor:
    """IG from the constant baselines min(x) and max(x), averaged: both paths in one path
    integral over ``2N`` rows (row ``r`` explains example ``r mod N``)."""
    x = call.inputs[0]
    n = call.n
    flat = x.flatten(1)
    levels = torch.cat([flat.amin(1), flat.amax(1)]).reshape(-1, 1, 1, 1)
    start = levels.expand(2 * n, *x.shape[1:])
    diff = x.repeat(2, 1, 1, 1) - start
    nodes = torch.linspace(0, 1, n_steps, dtype=torch.float64, device=x.device).to(x.dtype)
    weights = torch.full_like(nodes, 1.0 / n_steps)

    def grad_at(points: tuple[Tensor, ...], c: Chunk) -> tuple[Tensor, ...]:
        return gradients(f, call.args, call.target, points, c.i % n)

    (g,) = path_integral(grad_at, (start,), (diff,), nodes, weights, rows)
    return (g * diff).reshape(2, n, *x.shape[1:]).mean(0)


def _segments(segments: Any, x: Tensor) -> list[Tensor]:
    n, _, h, w = x.shape
    if segments is None:
        return [grid_segments(h, w, device=x.device)] * n
    if isinstance(segments, Tensor):
        segments = [segments] * n
    if len(segments) != n:
        raise ArgumentError(
            f"segments: {len(segments)} lists of masks for {n} images; pass one per image, or one tensor"
        )
    out = []
    for s in segments:
        s = torch.as_tensor(s, device=x.device)
        if s.dtype != torch.bool or s.dim() != 3 or tuple(s.shape[1:]) != (h, w):
            raise ArgumentError(f"segments must be boolean masks (M, {h}, {w}), got {s.dtype} {tuple(s.shape)}")
        out.append(s)
    return out


def _ranked_regions(attr: Tensor, masks: Tensor, area_threshold: float, min_pixel_diff: int) -> Tensor:
    """XRAI's greedy ranking of one image's regions (see :func:`xrai`)."""
    out = torch.full_like(attr, -torch.inf)
    chosen = torch.zeros_like(attr, dtype=torch.bool)
    remaining = torch.ones(len(masks), dtype=torch.bool, device=attr.device)
    flat = masks.flatten(1).to(attr.dtype)
    values = attr.flatten()
    while float(chosen.float().mean()) <= area_threshold:
        new = flat * (~chosen).flatten().to(attr.dtype)
        count = new.sum(1)
        remaining &= count >= min_pixel_diff
        if not bool(remaining.any()):
            break
        gain = torch.where(count > 0, (new @ values) / count.clamp_min(1), -torch.inf)
        best = int(torch.where(remaining, gain, -torch.inf).argmax())
        added = masks[best] & ~chosen
        out[added] = gain[best]
        chosen |= masks[best]
        remaining[best] = False
    left = out == -torch.inf
    if bool(left.any()):
        out[left] = attr[left].mean()
    return out
