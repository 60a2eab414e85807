"""Deletion and insertion curves (pixel flipping): remove or add features in attribution order.

Samek et al., 2017 (https://arxiv.org/abs/1509.06321) and Petsiuk et al., 2018 (RISE,
https://arxiv.org/abs/1806.07421). Every step of every example is one row of the
perturbation engine, so the whole curve of a batch runs in a few batched forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError, check_batch_size, check_count
from .._core.inputs import BaselineLike, TensorOrTuple, matching_attributions
from .._core.perturb import FeatureMask, evaluate, example_rows, prepare_perturbation
from .._core.state import evaluating
from .._core.targets import TargetLike
from ._perturbed import ascending


@dataclass(frozen=True)
class Curve:
    """A perturbation curve per example.

    ``fractions`` (shape ``(S + 1,)``): the share of features removed (deletion) or inserted
    (insertion) at each step; ``scores`` (``(N, S + 1)``): the selected model output there;
    ``auc`` (``(N,)``): the area under ``scores`` over ``fractions`` (trapezoid rule).

    Args:
        fractions: ``(S + 1,)``: the share of features removed (deletion) or inserted (insertion) at
            each step.
        scores: ``(N, S + 1)``: the selected model output at each step.
        auc: ``(N,)``: the area under ``scores`` over ``fractions`` (trapezoid rule).

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> curve = pa.metrics.deletion(model, n_steps=4)(x, attr, target=y)
        >>> curve.fractions
        tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """

    fractions: Tensor
    scores: Tensor
    auc: Tensor


def deletion(
    f: Callable[..., Any], *, n_steps: int = 50, batch_size: int | None = None, show_progress: bool = False
) -> Callable[..., Curve]:
    """Deletion curve: replace the most important features by the baseline, a growing share
    at a time, and record the output. A faithful explanation makes it fall fast (low AUC).

    Features are ranked by the sum of their attributions (``feature_mask`` groups elements,
    as in :func:`pyattrib.feature_ablation`; e.g. a ``(1, 1, H, W)`` mask ranks pixels across
    channels); step ``k`` of ``n_steps`` replaces the top ``round(k F / n_steps)`` of ``F``
    features. Call as ``(inputs, attributions, baselines=None, *, target=None,
    additional_forward_args=None, feature_mask=None)``; pass a forward that ends in softmax
    to score probabilities. Rows are evaluated without autograd in chunks of at most
    ``batch_size``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        n_steps: The number of steps of the curve; step ``k`` changes the top ``round(k F / n_steps)``
            of ``F`` features.
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        A function ``(inputs, attributions, baselines=None, *, target=None,
        additional_forward_args=None, feature_mask=None) -> Curve``.

    References:
        - Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
          Models", BMVC 2018. https://arxiv.org/abs/1806.07421

    Example:
        >>> attr = pa.integrated_gradients(model)(x, target=y)
        >>> pa.metrics.deletion(model, n_steps=4)(x, attr, target=y).scores.shape
        torch.Size([4, 5])
    """
    return _curve(f, n_steps, batch_size, show_progress, insert=False)


def insertion(
    f: Callable[..., Any], *, n_steps: int = 50, batch_size: int | None = None, show_progress: bool = False
) -> Callable[..., Curve]:
    """Insertion curve: start from the baseline and put back the most important features
    first. A faithful explanation makes it rise fast (high AUC). Arguments as :func:`deletion`.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        n_steps: The number of steps of the curve; step ``k`` changes the top ``round(k F / n_steps)``
            of ``F`` features.
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        A function ``(inputs, attributions, baselines=None, *, target=None,
        additional_forward_args=None, feature_mask=None) -> Curve``.

    References:
        - Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
          Models", BMVC 2018. https://arxiv.org/abs/1806.07421

    Example:
        >>> attr = pa.integrated_gradients(model)(x, target=y)
        >>> pa.metrics.insertion(model, n_steps=4)(x, attr, target=y).auc.shape
        torch.Size([4])
    """
    return _curve(f, n_steps, batch_size, show_progress, insert=True)


def _curve(f: Callable[..., Any], n_steps: int, batch_size: int | None, show_progress: bool, insert: bool):
    check_count("n_steps", n_steps)
    check_batch_size(batch_size)
    name = "insertion" if insert else "deletion"

    def measure(
        inputs: TensorOrTuple,
        attributions: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Curve:
        call, base, mask = prepare_perturbation(inputs, baselines, target, additional_forward_args, feature_mask, name)
        ranks = feature_ranks(matching_attributions(attributions, call.inputs), mask)
        counts = torch.round(torch.linspace(0, mask.n_features, n_steps + 1, device=call.device, dtype=torch.float64))
        counts = counts.long()

        def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
            rows = []
            for j, x in enumerate(call.inputs):
                picked = mask_rows_rank(ranks, mask, j, i) < counts[p].reshape(-1, *[1] * (x.dim() - 1))
                xr, br = x.index_select(0, i), example_rows(base[j], i)
                rows.append(torch.where(picked, xr, br) if insert else torch.where(picked, br, xr))
            return tuple(rows)

        with evaluating(f):
            out, shape, _ = evaluate(f, call, build, n_steps + 1, batch_size, show_progress, f"{name} curve")
        if out.shape[-1] != 1:
            raise ArgumentError(
                f"{name} scores one output per example, but the model gives {tuple(shape) or out.shape[-1]} values; "
                "pass target=<class index>"
            )
        scores = out[..., 0].T  # (N, S + 1)
        fractions = (counts.to(scores.dtype) / max(mask.n_features, 1)).to(scores.device)
        return Curve(fractions, scores, torch.trapezoid(scores, fractions, dim=1))

    measure.__qualname__ = f"{name}.<locals>.measure"  # its metric's name (evaluate ranks by it)
    return measure


def feature_ranks(attrs: tuple[Tensor, ...], mask: FeatureMask) -> Tensor:
    """``(N, F)``: each feature's place in descending order of its summed attribution (0 = top)."""
    n = attrs[0].shape[0]
    totals = torch.zeros(n, mask.n_features, device=attrs[0].device, dtype=torch.float64)
    for j, a in enumerate(attrs):
        ids = mask.rows(j, torch.arange(n, device=a.device)).reshape(n, -1)
        totals.scatter_add_(1, ids, a.reshape(n, -1).double())
    return ascending(totals, descending=True)


def mask_rows_rank(ranks: Tensor, mask: FeatureMask, j: int, i: Tensor) -> Tensor:
    """The rank of each element's feature, for input ``j`` and examples ``i``."""
    ids = mask.rows(j, i)
    return ranks.index_select(0, i).gather(1, ids.reshape(len(i), -1)).reshape(ids.shape)
