"""Gradient-free CAMs whose channel weights come from model evaluations (Score-CAM,
Ablation-CAM): every channel of every example is one perturbed row of the perturbation
engine, evaluated in batches of ``batch_size`` rows (memory bounded by it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._core.attributor import Attributor
from .._core.calls import InputCall
from .._core.perturb import evaluate_rows, per_example_outputs
from ._engine import Context, LayerLike, Rule, cam_transform
from .gradient import _documented
from .reshape import ReshapeLike

ABLATION_OFFSET = 1e7  # pytorch-grad-cam's: a channel is set to 0, or to min(A) - 1e7 when A has no zero minimum
MASK_EPS = 1e-8


def _score_weights(ctx: Context, j: int, a: Tensor) -> Tensor:
    """Score-CAM: ``w = softmax_c(f(x * norm(up(A_c))))`` with ``up`` bilinear (corners aligned)
    to the image and ``norm`` each upsampled map's min-max scaling.

    Channels of an image whose maps scale to the same mask (all-zero channels, channels with
    one positive position) give the same masked image: each distinct one is evaluated once."""
    call = ctx.call
    image = call.inputs[0]
    n, c = a.shape[:2]
    flat = a.flatten(2)
    low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    keys = (flat - low) / (high - low + MASK_EPS)  # the low-resolution masks: equal ones upsample equally
    examples, channels, where = [], [], []
    for i in range(n):
        _, first, inverse = _unique_rows(keys[i])
        examples.append(torch.full_like(first, i))
        channels.append(first)
        where.append(inverse + sum(len(e) for e in examples[:-1]))
    examples_t, channels_t = torch.cat(examples), torch.cat(channels)

    def build(rows: Tensor) -> tuple[Tensor, ...]:
        i, k = examples_t[rows], channels_t[rows]
        up = F.interpolate(a[i, k][:, None], size=image.shape[-2:], mode="bilinear", align_corners=True)
        up_flat = up.flatten(1)
        lo, hi = up_flat.min(1).values, up_flat.max(1).values
        mask = (up - lo[:, None, None, None]) / (hi - lo + MASK_EPS)[:, None, None, None]
        return (image[i] * mask, *(x[i] for x in call.inputs[1:]))

    scores = evaluate_rows(ctx.model, call, build, examples_t, ctx.batch_size, ctx.show_progress, "Score-CAM")
    return torch.softmax(scores[torch.stack(where)], dim=-1)


def _unique_rows(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The distinct rows of ``rows`` ``(C, D)``: their values, the first index of each, and each
    row's position among them."""
    values, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((len(values),), len(rows), dtype=torch.long, device=rows.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(rows), device=rows.device), reduce="amin")
    return values, first, inverse


def _ablation_weights(ctx: Context, j: int, a: Tensor, stacked_batch: int | None = None) -> Tensor:
    """Ablation-CAM: ``w_c = (y - y_c) / y`` with ``y`` the target's score and ``y_c`` its score
    with channel ``c`` of the layer set to 0 (or ``min(A) - 1e7`` when ``min(A) != 0``).

    A channel that already holds its fill value everywhere (a dead channel after a ReLU) is not
    evaluated: removing it changes nothing, so ``y_c = y`` exactly.

    ``stacked_batch=B`` gives pytorch-grad-cam's fill instead: it writes each row's ablation into
    one shared tensor and reads the minimum after the previous rows' writes, so channel ``c`` is
    set to ``min(A) - (c mod B + 1) 1e7`` (B its batch size); the same when ``min(A) = 0``."""
    call = ctx.call
    native = ctx.values[j].leaves[0].detach()
    same = a.shape == native.shape and a.data_ptr() == native.data_ptr()
    axis = 1 if same else native.dim() - 1  # channels-first maps, or tokens / grids with channels last
    n, c = a.shape[:2]
    low = native.flatten(1).min(1).values
    clean = per_example_outputs(call.target, ctx.output, None)[:, 0]
    grid_i = torch.arange(n, device=a.device).repeat_interleave(c)
    grid_p = torch.arange(c, device=a.device).repeat(n)
    fills = _fills(low, grid_i, grid_p, stacked_batch)
    by_channel = native.movedim(axis, 1).flatten(2)  # (N, C, rest)
    dead = (by_channel[grid_i, grid_p] == fills[:, None]).all(1)
    examples, channels, values = grid_i[~dead], grid_p[~dead], fills[~dead]

    def build(rows: Tensor) -> tuple[Tensor, ...]:
        return (*(x[examples[rows]] for x in call.inputs), rows)

    def forward(*inputs: Any, prefix_rows: int | None = None) -> Any:
        k = len(call.inputs)
        xs, rows, args = inputs[:k], inputs[k], inputs[k + 1 :]
        value = native[examples[rows]].movedim(axis, 1).clone()
        fill = values[rows].to(value.dtype).reshape(-1, *([1] * (value.dim() - 2)))
        value[torch.arange(len(rows), device=value.device), channels[rows]] = fill
        value = value.movedim(1, axis)
        if prefix_rows is not None:  # the layers before run on one row: their result is replaced anyway
            xs = tuple(x[:prefix_rows] for x in xs)
        with ctx.layers.hooked(lambda jj, v: value if jj == j else None):
            return ctx.model(*xs, *args)

    run = forward
    if len(examples) and not any(call.args.batched) and _prefix_is_replaceable(forward, call, build, examples):
        run = functools.partial(forward, prefix_rows=1)
    scores = clean[grid_i].clone()
    scores[~dead] = evaluate_rows(run, call, build, examples, ctx.batch_size, ctx.show_progress, "Ablation-CAM")
    return (clean[:, None] - scores.reshape(n, c)) / clean[:, None]


def _prefix_is_replaceable(forward: Callable[..., Any], call: Any, build: Callable[..., Any], examples: Tensor) -> bool:
    """Whether the model's output, once the layer's value is replaced, no longer depends on what
    ran before the layer: then the layers before it need to run on one row only, not on every
    ablated row (the cost of Ablation-CAM becomes the layers after the target layer).

    Checked on two rows of different examples (an image's own row otherwise): their outputs
    with the layers before run on one row must equal the full evaluation. A model that reads a
    tensor from before the layer after it (a skip connection over the layer, a batch size taken
    from the input) fails the check, or raises, and is evaluated in full."""
    picks = [0]
    other = (examples != examples[0]).nonzero()
    if len(other):
        picks.append(int(other[0, 0]))
    rows = torch.tensor(picks, device=examples.device)
    i = examples[rows]
    with torch.no_grad():
        full = call.target.select(forward(*build(rows)), i)
        try:
            short = call.target.select(forward(*build(rows), prefix_rows=1), i)
        except Exception:  # noqa: BLE001  the model cannot run that way: evaluate in full
            return False
    return short.shape == full.shape and bool(
        torch.allclose(short, full, rtol=1e-5, atol=1e-6 * float(full.abs().max()) + 1e-30)
    )


def _fills(low: Tensor, i: Tensor, p: Tensor, stacked_batch: int | None) -> Tensor:
    """The value channel ``p`` of example ``i`` is set to (see :func:`_ablation_weights`)."""
    if stacked_batch is None:
        return torch.where(low[i] == 0, torch.zeros_like(low[i]), low[i] - ABLATION_OFFSET)
    return _stacked_fill(low, i, p, stacked_batch)


def _stacked_fill(low: Tensor, i: Tensor, p: Tensor, batch: int) -> Tensor:
    drift = (p.remainder(batch) + 1).to(low.dtype) * ABLATION_OFFSET
    return torch.where(low[i] == 0, torch.zeros_like(drift), low[i] - drift)


def ablation_rule(stacked_batch: int | None = None) -> Rule:
    """Ablation-CAM's rule; ``stacked_batch`` as in :func:`_ablation_weights` (for
    :mod:`pyattrib.compat.grad_cam`)."""
    return Rule(channel_weights=functools.partial(_ablation_weights, stacked_batch=stacked_batch), uses_gradients=False)


SCORE_CAM = Rule(channel_weights=_score_weights, uses_gradients=False)
ABLATION_CAM = ablation_rule()


def method(name: str, rule: Rule, doc: str) -> Callable[..., Attributor[InputCall]]:
    """A perturbation CAM transform: ``rule`` with the common options and the engine's ``batch_size``."""

    def transform(
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
    ) -> Attributor[InputCall]:
        return cam_transform(
            model, layer, rule, name, reshape_transform=reshape_transform, resize=resize, normalize=normalize,
            aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, batch_size=batch_size, show_progress=show_progress,
        )  # fmt: skip

    return _documented(transform, name, doc)


score_cam = method(
    "score_cam",
    SCORE_CAM,
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
    """,
)


ablation_cam = method(
    "ablation_cam",
    ABLATION_CAM,
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
    """,
)
