"""Occlusion (Zeiler and Fergus, 2014): a sliding window replaced by the baseline; each element's
attribution is the mean output change over the windows that cover it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.attributor import Attributor
from .._core.call import Call, prepare
from .._core.calls import BaselineCall
from .._core.errors import ArgumentError, check_batch_size
from .._core.inputs import BaselineLike
from .._core.kernel import along_rows
from .._core.perturb import (
    evaluate,
    example_rows,
    reference_outputs,
    squeeze_outputs,
)
from .._core.state import evaluating
from .._core.targets import TargetLike
from .ablation import Forward


def occlusion(
    f: Forward,
    *,
    sliding_window_shapes: Sequence[int] | Sequence[Sequence[int]],
    strides: int | Sequence[int] | Sequence[Any] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[BaselineCall]:
    r"""Occlusion (Zeiler & Fergus, 2014): slide a window over each input, replace it by the
    baseline, and give each element the mean output change over the windows covering it,

    .. math:: \phi_e = \frac{1}{|W_e|} \sum_{w \ni e} \big(f(x) - f(x_{w \leftarrow x'})\big).

    ``sliding_window_shapes`` is one window shape (per example, without the batch
    dimension) or one per input tensor; ``strides`` an int, a shape, or one per input
    (default 1). Every window of every input is one perturbation; all of them go through
    the model in batches of at most ``batch_size`` rows. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        sliding_window_shapes: The shape of the occluding window, per input tensor (without the batch
            dimension).
        strides: The window's step per dimension (an int, a tuple, or one per input tensor); default 1.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> occ = pa.occlusion(cnn, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2))
        >>> occ(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any, baselines: BaselineLike = None, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="occlusion", differentiable=False)
        base = call.baselines(baselines)
        windows = _windows(call, sliding_window_shapes, strides)  # per input: the window boxes
        offsets = [0]
        for w in windows:
            offsets.append(offsets[-1] + len(w))

        def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
            rows = []
            for j, x in enumerate(call.inputs):
                if len(windows) == 1:  # every perturbation slides over this input
                    hit = windows[j].masks(p)
                else:  # perturbations that slide over another input hit nothing here
                    local = p - offsets[j]
                    inside = (local >= 0) & (local < len(windows[j]))
                    hit = windows[j].masks(local.clamp(0, len(windows[j]) - 1)) & along_rows(inside, x)
                rows.append(torch.where(hit, example_rows(base[j], i), x.index_select(0, i)))
            return tuple(rows)

        with evaluating(f):
            reference = reference_outputs(f, call, call.inputs)
            out = evaluate(
                f, call, build, offsets[-1], batch_size, show_progress, "Occlusion attribution", whole=reference.whole
            )
        diff = (reference.values[None] - out.values).permute(1, 2, 0)  # (N, K, W); N = 1 for a whole-batch output
        n = diff.shape[0]
        attrs = []
        for j, w in enumerate(windows):
            total = diff.new_zeros(n, diff.shape[1], math.prod(w.dims))
            count = torch.zeros(math.prod(w.dims), dtype=diff.dtype, device=diff.device)
            step = max(1, _MASK_ELEMENTS // math.prod(w.dims))  # a few window masks at a time: bounded memory
            for start in range(0, len(w), step):
                ids = torch.arange(start, min(start + step, len(w)), device=diff.device)
                flat = w.masks(ids).reshape(len(ids), -1).to(diff.dtype)
                total += diff[:, :, offsets[j] + start : offsets[j] + start + len(ids)] @ flat
                count += flat.sum(0)
            attrs.append((total / count.clamp(min=1)).reshape(n, diff.shape[1], *w.dims))
        return call.restore(squeeze_outputs(tuple(attrs), out.shape, out.whole))

    return Attributor(attribute, f, per_example=("baselines", "target", "additional_forward_args"), name="occlusion")


def _windows(call: Call, shapes: Any, strides: Any) -> list[Windows]:
    """The window boxes of every input (positions of each window's corner)."""
    xs = call.inputs
    k = len(xs)
    # one input: a window shape and a stride; several: one of each per input
    nested = isinstance(shapes, (tuple, list)) and len(shapes) > 0 and isinstance(shapes[0], (tuple, list))
    per_input_shapes = list(shapes) if nested or k > 1 else [shapes]
    per_input_strides = (
        [1 if strides is None else strides]
        if k == 1
        else ([1 if strides is None else strides] * k if strides is None or isinstance(strides, int) else list(strides))
    )
    if len(per_input_shapes) != k:
        raise ArgumentError(
            f"sliding_window_shapes has {len(per_input_shapes)} entries but inputs has {k} tensors; "
            "give one window shape per input"
        )
    if len(per_input_strides) != k:
        raise ArgumentError(
            f"strides has {len(per_input_strides)} entries but inputs has {k} tensors; give one per input"
        )
    out = []
    for j, (x, shape, stride) in enumerate(zip(xs, per_input_shapes, per_input_strides)):
        dims = tuple(x.shape[1:])
        shape = tuple(shape)
        stride = (stride,) * len(dims) if isinstance(stride, int) else tuple(stride)
        where = f"[{j}]" if len(xs) > 1 else ""
        if len(shape) != len(dims) or any(s < 1 or s > d for s, d in zip(shape, dims)):
            raise ArgumentError(
                f"sliding_window_shapes{where} is {shape} but one example of the input has shape {tuple(dims)}; "
                f"give {len(dims)} window sizes, each between 1 and the input's size"
            )
        if len(stride) != len(dims) or any(s < 1 for s in stride):
            raise ArgumentError(f"strides{where} is {stride}; give {len(dims)} positive steps (or one int)")
        if any(st > s and s < d for st, s, d in zip(stride, shape, dims)):
            raise ArgumentError(
                f"strides{where} {stride} skips elements: a stride may not exceed the window size {shape} "
                "where the window does not cover the whole dimension"
            )
        if not dims:  # one number per example: the window is that number
            out.append(Windows(torch.zeros(1, 0, dtype=torch.long, device=x.device), (), ()))
            continue
        # as Captum: ceil((d - s) / stride) + 1 positions; the last window may be cut by the edge
        starts = [range(0, (-(-(d - s) // st)) * st + 1, st) for d, s, st in zip(dims, shape, stride)]
        positions = torch.cartesian_prod(*[torch.tensor(list(r)) for r in starts]).reshape(-1, len(dims))
        out.append(Windows(positions.to(x.device), shape, dims))
    return out


_MASK_ELEMENTS = 2**14  # window masks built at once for the final average: a small fixed cost


_KEPT_MASK_ELEMENTS = 2**18  # all windows' masks kept when they fit (256 KiB of bools): one lookup per chunk


class Windows:
    """The window boxes of one input: corner ``positions`` ``(W, D)`` and a box ``shape``.
    Masks are built only for the windows asked for, so memory follows the chunk; when all
    of them fit in ``_KEPT_MASK_ELEMENTS`` they are built once and looked up."""

    def __init__(self, positions: Tensor, shape: tuple[int, ...], dims: tuple[int, ...]) -> None:
        self.positions, self.shape, self.dims = positions, shape, dims
        self.kept: Tensor | None = None
        if len(self) * math.prod(dims) <= _KEPT_MASK_ELEMENTS:
            self.kept = self._build(torch.arange(len(self), device=positions.device))

    def __len__(self) -> int:
        return self.positions.shape[0]

    def masks(self, ids: Tensor) -> Tensor:
        """Boolean masks ``(len(ids), *dims)`` of windows ``ids``."""
        return self.kept.index_select(0, ids) if self.kept is not None else self._build(ids)

    def _build(self, ids: Tensor) -> Tensor:
        lo = self.positions.index_select(0, ids)
        hit = torch.ones(len(ids), *self.dims, dtype=torch.bool, device=ids.device)
        for d, (size, s) in enumerate(zip(self.dims, self.shape)):
            g = torch.arange(size, device=ids.device).reshape(1, *[1] * d, size, *[1] * (len(self.dims) - d - 1))
            start = lo[:, d].reshape(-1, *[1] * len(self.dims))
            hit = hit & (g >= start) & (g < start + s)
        return hit
