"""Gradient-free CAMs whose channel weights come from model evaluations (Score-CAM,
Ablation-CAM): every channel of every example is one perturbed row of the perturbation
engine, evaluated in batches of ``batch_size`` rows (memory bounded by it)."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._core.attributor import Attributor
from .._core.perturb import evaluate, per_example_outputs
from ._engine import Context, LayerLike, Rule, cam_transform
from .gradient import _documented
from .reshape import ReshapeLike

ABLATION_OFFSET = 1e7  # pytorch-grad-cam's: a channel is set to 0, or to min(A) - 1e7 when A has no zero minimum
MASK_EPS = 1e-8


def _score_weights(ctx: Context, j: int, a: Tensor) -> Tensor:
    """Score-CAM: ``w = softmax_c(f(x * norm(up(A_c))))`` with ``up`` bilinear (corners aligned)
    to the image and ``norm`` each upsampled map's min-max scaling."""
    call = ctx.call
    image = call.inputs[0]

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        up = F.interpolate(a[i, p][:, None], size=image.shape[-2:], mode="bilinear", align_corners=True)
        flat = up.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        mask = (up - low[:, None, None, None]) / (high - low + MASK_EPS)[:, None, None, None]
        return (image[i] * mask, *(x[i] for x in call.inputs[1:]))

    scores = evaluate(ctx.model, call, build, a.shape[1], ctx.batch_size, ctx.show_progress, "Score-CAM").values
    assert scores is not None
    return torch.softmax(scores[..., 0].T, dim=-1)


def _ablation_weights(ctx: Context, j: int, a: Tensor, stacked_batch: int | None = None) -> Tensor:
    """Ablation-CAM: ``w_c = (y - y_c) / y`` with ``y`` the target's score and ``y_c`` its score
    with channel ``c`` of the layer set to 0 (or ``min(A) - 1e7`` when ``min(A) != 0``).

    ``stacked_batch=B`` gives pytorch-grad-cam's fill instead: it writes each row's ablation into
    one shared tensor and reads the minimum after the previous rows' writes, so channel ``c`` is
    set to ``min(A) - (c mod B + 1) 1e7`` (B its batch size); the same when ``min(A) = 0``."""
    call = ctx.call
    native = ctx.values[j].leaves[0].detach()
    same = a.shape == native.shape and a.data_ptr() == native.data_ptr()
    axis = 1 if same else native.dim() - 1  # channels-first maps, or tokens / grids with channels last
    low = native.flatten(1).min(1).values
    fill = torch.where(low == 0, torch.zeros_like(low), low - ABLATION_OFFSET)
    with torch.no_grad():
        clean = per_example_outputs(call.target, ctx.model(*call.inputs, *call.args.values), None)[:, 0]

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        return (*(x[i] for x in call.inputs), i, p)

    def forward(*rows: Any) -> Any:
        k = len(call.inputs)
        xs, i, p, args = rows[:k], rows[k], rows[k + 1], rows[k + 2 :]
        value = native[i].movedim(axis, 1).clone()
        rows = fill[i] if stacked_batch is None else _stacked_fill(low, i, p, stacked_batch)
        value[torch.arange(len(i), device=value.device), p] = rows.to(value.dtype).reshape(
            -1, *([1] * (value.dim() - 2))
        )
        value = value.movedim(1, axis)
        with ctx.layers.hooked(lambda jj, v: value if jj == j else None):
            return ctx.model(*xs, *args)

    ablated = evaluate(forward, call, build, a.shape[1], ctx.batch_size, ctx.show_progress, "Ablation-CAM").values
    assert ablated is not None
    return (clean[:, None] - ablated[..., 0].T) / clean[:, None]


def _stacked_fill(low: Tensor, i: Tensor, p: Tensor, batch: int) -> Tensor:
    drift = (p.remainder(batch) + 1).to(low.dtype) * ABLATION_OFFSET
    return torch.where(low[i] == 0, torch.zeros_like(drift), low[i] - drift)


def ablation_rule(stacked_batch: int | None = None) -> Rule:
    """Ablation-CAM's rule; ``stacked_batch`` as in :func:`_ablation_weights` (for
    :mod:`pyattrib.compat.grad_cam`)."""
    return Rule(channel_weights=functools.partial(_ablation_weights, stacked_batch=stacked_batch), uses_gradients=False)


SCORE_CAM = Rule(channel_weights=_score_weights, uses_gradients=False)
ABLATION_CAM = ablation_rule()


@_documented
def score_cam(
    model: Any,
    layer: LayerLike,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    reshape_transform: ReshapeLike = None,
    resize: bool = True,
    normalize: bool = True,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
) -> Attributor:
    r"""Score-CAM: each channel weighted by the score of the image masked with that channel.

    .. math:: H_c = \frac{\operatorname{up}(A_c) - \min}{\max - \min + 10^{-8}}, \qquad
              w = \operatorname{softmax}_c\big(f(x \odot H_c)\big), \qquad
              M = \operatorname{ReLU}\Big(\sum_c w_c A_c\Big)

    ``up`` is bilinear upsampling to the image with corners aligned. One forward per channel
    and example (``N * C`` rows), in batches of ``batch_size`` rows. No gradient.

    Args:
        batch_size: Rows per model evaluation (None: pyattrib's memory budget rule).
        show_progress: Show a progress bar over the evaluations.
        {args}

    Returns:
        {returns}

    References:
        - Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks",
          CVPR Workshops 2020. https://arxiv.org/abs/1910.01279

    Example:
        >>> pa.score_cam(cnn, conv, batch_size=64)(images, target=0).shape
        torch.Size([2, 8, 8])
    """
    return cam_transform(
        model, layer, SCORE_CAM, "score_cam", reshape_transform=reshape_transform, resize=resize,
        normalize=normalize, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip


@_documented
def ablation_cam(
    model: Any,
    layer: LayerLike,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    reshape_transform: ReshapeLike = None,
    resize: bool = True,
    normalize: bool = True,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
) -> Attributor:
    r"""Ablation-CAM: each channel weighted by the relative drop of the score when it is removed,

    .. math:: w_c = \frac{y - y_c}{y}, \qquad M = \operatorname{ReLU}\Big(\sum_c w_c A_c\Big)

    where :math:`y_c` is the score with channel ``c`` of the layer set to 0 (or, when the
    layer's minimum is not 0, to ``min(A) - 1e7``, so that a ReLU after it gives 0). One
    forward per channel and example, in batches of ``batch_size`` rows. No gradient.

    Args:
        batch_size: Rows per model evaluation (None: pyattrib's memory budget rule).
        show_progress: Show a progress bar over the evaluations.
        {args}

    Returns:
        {returns}

    References:
        - Desai and Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via
          Gradient-free Localization", WACV 2020. https://doi.org/10.1109/WACV45572.2020.9093360

    Example:
        >>> pa.ablation_cam(cnn, conv, batch_size=64)(images, target=0).shape
        torch.Size([2, 8, 8])
    """
    return cam_transform(
        model, layer, ABLATION_CAM, "ablation_cam", reshape_transform=reshape_transform, resize=resize,
        normalize=normalize, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
