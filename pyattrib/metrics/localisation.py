"""Whether an explanation falls on the region that matters (a segmentation or box mask): the
pointing game, attribution localisation, top-k intersection, relevance mass and rank accuracy,
the ROC AUC, and focus on mosaics. Each a transform returning ``(attributions, masks) -> (N,)``; an example with
an empty mask scores NaN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_tuple
from .complexity import _dtype
from .explanations import check_normalise, flat, flat_masks

Score = Callable[[Any, Any], Tensor]


def _read(attributions: Any, masks: Any, abs: bool, normalise: bool | str) -> tuple[Tensor, Tensor]:
    a = flat(attributions, abs, normalise).double()
    return a, flat_masks(masks, attributions, a)


def _empty_nan(scores: Tensor, m: Tensor) -> Tensor:
    return torch.where(m.any(1), scores, torch.full_like(scores, float("nan")))


def _as(attributions: Any, scores: Tensor) -> Tensor:
    """Scores in the attributions' dtype (computed in float64)."""
    return scores.to(_dtype(attributions))


def _localised(rule: Callable[[Tensor, Tensor], Tensor], abs: bool, normalise: bool | str) -> Score:
    """The metric ``rule(a, m) -> (N,)`` on flattened attributions ``a`` (float64) and masks ``m``;
    NaN where a mask is empty, in the attributions' dtype."""
    check_normalise(normalise)

    def score(attributions: Any, masks: Any) -> Tensor:
        a, m = _read(attributions, masks, abs, normalise)
        return _as(attributions, _empty_nan(rule(a, m), m))

    return score


def pointing_game(*, weighted: bool = False, abs: bool = False, normalise: bool | str = True) -> Score:
    r"""Pointing game: 1 where the explanation's largest value lies in the mask, else 0;
    ``weighted``: a hit scores :math:`1 - |m| / D`, so hitting a large region counts less.

    Quantus 0.6's weighted game writes the weights (a column) into its boolean array of hits,
    which raises a ``TypeError`` as soon as one example hits (a test shows it); pyattrib returns
    the weighted score.

    Args:
        weighted: Score a hit by the share of the input outside the mask.
        abs: Take magnitudes first.
        normalise: True (per explanation), False or ``"batch"``; the maximum does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``.

    Example:
        >>> masks = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.pointing_game()(torch.tensor([[0.1, 0.9, 0.2, 0.0], [0.1, 0.9, 0.2, 0.0]]), masks)
        tensor([1., 0.])

    References:
        - Zhang et al., "Top-down Neural Attention by Excitation Backprop", IJCV 2018.
          https://arxiv.org/abs/1608.00507
    """

    def rule(a: Tensor, m: Tensor) -> Tensor:
        hit = (m & (a == a.amax(1, keepdim=True))).any(1).to(a.dtype)
        return hit * (1 - m.sum(1) / m.shape[1]) if weighted else hit

    return _localised(rule, abs, normalise)


def attribution_localisation(
    *, weighted: bool = False, positive: bool = False, abs: bool = True, normalise: bool | str = True
) -> Score:
    r"""Attribution localisation: the share of the attributions inside the mask,
    :math:`\sum_{i \in m} a_i / \sum_i a_i`; ``weighted`` multiplies it by the mask's share of the
    input, :math:`|m| / D`. NaN where the share exceeds 1 (attributions of both signs).

    Quantus 0.6 computes the weighted ratio's denominator from ``x_batch[2:]`` (the batch without
    its first two examples) instead of one input's size; pyattrib follows the paper (a test shows
    the difference).

    Args:
        weighted: Multiply by the mask's share of the input.
        positive: Count only positive attributions.
        abs: Take magnitudes first (Quantus's default).
        normalise: True, False or ``"batch"``; the share does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``.

    Example:
        >>> masks = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.attribution_localisation()(torch.tensor([[3.0, 1.0, 0.0, 1.0]]), masks)
        tensor([0.8000])

    References:
        - Kohlbrenner et al., "Towards Best Practice in Explaining Neural Network Decisions with LRP",
          IJCNN 2020. https://arxiv.org/abs/1910.09840
    """

    def rule(a: Tensor, m: Tensor) -> Tensor:
        a = a.clamp(min=0) if positive else a
        share = (a * m).sum(1) / (a.sum(1) + 1e-9)
        share = torch.where(share > 1, torch.full_like(share, float("nan")), share)
        return share * m.sum(1) / m.shape[1] if weighted else share

    return _localised(rule, abs, normalise)


def top_k_intersection(
    *, k: int = 1000, concept_influence: bool = False, abs: bool = False, normalise: bool | str = True
) -> Score:
    r"""Top-k intersection: the share of the ``k`` largest attributions that lie in the mask;
    ``concept_influence`` divides it by the mask's share of the input, :math:`|m| / D`.

    Args:
        k: The number of top features (at most the input's size).
        concept_influence: Divide by the mask's share of the input.
        abs: Take magnitudes first.
        normalise: True, False or ``"batch"``; the order does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``.

    Example:
        >>> masks = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.top_k_intersection(k=2)(torch.tensor([[3.0, 0.0, 2.0, 1.0]]), masks)
        tensor([0.5000])

    References:
        - Theiner, Müller-Budack and Ewerth, "Interpretable Semantic Photo Geolocation", WACV 2022.
          https://arxiv.org/abs/2104.14995
    """
    check_count("k", k)

    def rule(a: Tensor, m: Tensor) -> Tensor:
        if k > a.shape[1]:
            raise ArgumentError(f"k={k} is larger than the {a.shape[1]} features of an input; pass a smaller k")
        share = m.gather(1, a.argsort(dim=1, descending=True, stable=True)[:, :k]).to(a.dtype).mean(1)
        return share * m.shape[1] / m.sum(1) if concept_influence else share

    return _localised(rule, abs, normalise)


def relevance_mass_accuracy(*, abs: bool = False, normalise: bool | str = True) -> Score:
    r"""Relevance mass accuracy: the attributions' sum inside the mask over their total,
    :math:`\sum_{i \in m} a_i / \sum_i a_i`.

    Args:
        abs: Take magnitudes first.
        normalise: True, False or ``"batch"``; the ratio does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``.

    Example:
        >>> masks = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.relevance_mass_accuracy()(torch.tensor([[3.0, 1.0, 0.0, 1.0]]), masks)
        tensor([0.8000])

    References:
        - Arras, Osman and Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
          neural network explanations", Information Fusion 2022. https://arxiv.org/abs/2003.07258
    """
    return _localised(lambda a, m: (a * m).sum(1) / a.sum(1), abs, normalise)


def relevance_rank_accuracy(*, abs: bool = False, normalise: bool | str = True) -> Score:
    r"""Relevance rank accuracy: of the :math:`|m|` largest attributions, the share inside the
    mask of :math:`|m|` features.

    Args:
        abs: Take magnitudes first.
        normalise: True, False or ``"batch"``; the order does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``.

    Example:
        >>> masks = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.relevance_rank_accuracy()(torch.tensor([[3.0, 0.0, 2.0, 1.0]]), masks)
        tensor([0.5000])

    References:
        - Arras, Osman and Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
          neural network explanations", Information Fusion 2022. https://arxiv.org/abs/2003.07258
    """

    def rule(a: Tensor, m: Tensor) -> Tensor:
        order = a.argsort(dim=1, descending=True, stable=True)
        size = m.sum(1, keepdim=True)
        within = torch.arange(m.shape[1], device=a.device)[None] < size  # the first |m| places
        return (m.gather(1, order) & within).sum(1).to(a.dtype) / size[:, 0].clamp(min=1)

    return _localised(rule, abs, normalise)


def auc(*, abs: bool = False, normalise: bool | str = True) -> Score:
    r"""Area under the ROC curve of the attributions as scores for the mask: the chance that a
    feature in the mask outranks one outside it (ties count half), the Mann-Whitney statistic
    :math:`(R_m - |m|(|m| + 1)/2) / (|m|\,(D - |m|))` with :math:`R_m` the mask's rank sum.

    Args:
        abs: Take magnitudes first.
        normalise: True, False or ``"batch"``; the order does not depend on it.

    Returns:
        ``score(attributions, masks) -> (N,)``; NaN where the mask is empty or full.

    Example:
        >>> masks = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
        >>> pa.metrics.auc()(torch.tensor([[3.0, 0.0, 2.0, 1.0]]), masks)
        tensor([0.5000])

    References:
        - Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 2006.
          https://doi.org/10.1016/j.patrec.2005.10.010
    """

    def rule(a: Tensor, m: Tensor) -> Tensor:
        pos = m.sum(1).to(a.dtype)
        neg = m.shape[1] - pos
        value = ((_average_ranks(a) * m).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
        return torch.where(neg > 0, value, torch.full_like(value, float("nan")))

    return _localised(rule, abs, normalise)


def _average_ranks(a: Tensor) -> Tensor:
    """Ranks 1..D of each row's values, ties sharing their average rank."""
    order = a.argsort(dim=1, stable=True)
    sorted_a = a.gather(1, order)
    d = a.shape[1]
    position = torch.arange(1, d + 1, dtype=a.dtype, device=a.device).expand_as(a)
    new = torch.ones_like(sorted_a, dtype=torch.bool)
    new[:, 1:] = sorted_a[:, 1:] != sorted_a[:, :-1]
    group = new.cumsum(1) - 1  # the tie group of each sorted value
    total = torch.zeros_like(a).scatter_add_(1, group, position)
    count = torch.zeros_like(a).scatter_add_(1, group, torch.ones_like(a))
    average = (total / count.clamp(min=1)).gather(1, group)
    return torch.empty_like(a).scatter_(1, order, average)


def focus(*, abs: bool = False) -> Score:
    r"""Focus: on a 2x2 mosaic of images, the share of the positive relevance that falls on the
    quadrants holding the target class, :math:`\sum_{q \in T} R^+_q / \sum_q R^+_q` (plus
    :math:`10^{-9}` below). ``quadrants`` is ``(N, 4)`` booleans in the order top-left,
    top-right, bottom-left, bottom-right (Quantus's ``custom_batch``); :func:`mosaics` builds
    mosaics and their quadrants.

    Args:
        abs: Take magnitudes first.

    Returns:
        ``score(attributions, quadrants) -> (N,)``.

    Example:
        >>> a = torch.zeros(1, 1, 4, 4)
        >>> a[0, 0, :2, :2] = 3.0
        >>> a[0, 0, 2:, 2:] = 1.0
        >>> pa.metrics.focus()(a, torch.tensor([[True, False, False, False]]))
        tensor([0.7500])

    References:
        - Arias-Duart, Parés, Garcia-Gasulla and Giménez-Ábalos, "Focus! Rating XAI Methods and
          Finding Biases", FUZZ-IEEE 2022. https://arxiv.org/abs/2109.15035
    """

    def score(attributions: Any, quadrants: Any) -> Tensor:
        (a,), _ = as_tuple(attributions, "attributions")
        if a.dim() != 4:
            raise ArgumentError(f"focus reads mosaics (N, C, H, W); got attributions of shape {tuple(a.shape)}")
        q = torch.as_tensor(quadrants, device=a.device)
        if q.shape != (a.shape[0], 4):
            raise ArgumentError(
                f"quadrants must be (N, 4) booleans (top-left, top-right, bottom-left, bottom-right), got "
                f"{tuple(q.shape)} for {a.shape[0]} mosaics"
            )
        r = (a.detach().abs() if abs else a.detach()).double().clamp_min(0)
        h, w = a.shape[2] // 2, a.shape[3] // 2
        parts = [r[:, :, :h, :w], r[:, :, :h, w:], r[:, :, h:, :w], r[:, :, h:, w:]]
        per = torch.stack([p.sum(dim=(1, 2, 3)) for p in parts], 1)
        return _as(a, (per * q.double()).sum(1) / (r.sum(dim=(1, 2, 3)) + 1e-9))

    return score


def mosaics(
    images: Tensor, labels: Tensor, target: int, n: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``n`` 2x2 mosaics of ``images`` (``(M, C, H, W)``), each with two images of class ``target``
    and two of other classes in random quadrants, and their ``(n, 4)`` quadrant flags for
    :func:`focus`.

    Args:
        images: ``(M, C, H, W)`` images.
        labels: ``(M,)`` their classes.
        target: The class the mosaics are explained for.
        n: The number of mosaics.
        generator: The generator of the draws.

    Returns:
        tuple: ``(mosaics (n, C, 2H, 2W), quadrants (n, 4) bool)``.

    Example:
        >>> tiles, flags = pa.metrics.mosaics(images, torch.tensor([0, 1]), target=0, n=3, generator=generator)
        >>> tiles.shape, flags.sum(1)
        (torch.Size([3, 3, 16, 16]), tensor([2, 2, 2]))

    References:
        - Arias-Duart, Parés, Garcia-Gasulla and Giménez-Ábalos, "Focus! Rating XAI Methods and
          Finding Biases", FUZZ-IEEE 2022. https://arxiv.org/abs/2109.15035
    """
    if generator is None:
        raise ArgumentError("mosaics draws images and quadrants; pass generator=torch.Generator().manual_seed(<seed>)")
    inside = torch.nonzero(torch.as_tensor(labels) == target).flatten()
    outside = torch.nonzero(torch.as_tensor(labels) != target).flatten()
    if len(inside) == 0 or len(outside) == 0:
        raise ArgumentError(f"mosaics need images of class {target} and of other classes")
    pick = lambda pool, k: pool[torch.randint(len(pool), (n, k), generator=generator)]  # noqa: E731
    chosen = torch.cat([pick(inside, 2), pick(outside, 2)], 1)  # (n, 4): two of the class, two others
    order = torch.argsort(torch.rand(n, 4, generator=generator), 1)
    placed = chosen.gather(1, order).to(images.device)
    tiles = images[placed]  # (n, 4, C, H, W)
    top, bottom = torch.cat([tiles[:, 0], tiles[:, 1]], -1), torch.cat([tiles[:, 2], tiles[:, 3]], -1)
    return torch.cat([top, bottom], -2), (order < 2).to(images.device)
