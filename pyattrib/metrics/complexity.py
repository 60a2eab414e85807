"""How concentrated an explanation is: sparseness (Gini), complexity (entropy) and effective
complexity (how many features matter). Each a transform returning ``(attributions) -> (N,)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .explanations import check_normalise, flat

Score = Callable[[Any], Tensor]


def sparseness(*, abs: bool = True, normalise: bool | str = True) -> Score:
    r"""Sparseness: the Gini index of the attributions' magnitudes, 1 for all mass on one feature,
    0 for all features equal:

    .. math:: G(a) = \frac{\sum_{i=1}^{D} (2i - D - 1)\, a_{(i)}}{D \sum_i a_{(i)}}

    with :math:`a_{(i)}` sorted ascending (each shifted by :math:`10^{-7}`, as Quantus does, so an
    all-zero explanation scores 0, not 0/0).

    Args:
        abs: Take magnitudes first (Quantus's default; the index assumes non-negative values).
        normalise: Divide each explanation by its largest magnitude (True), or the batch by its own
            (``"batch"``, Quantus 0.6); the index does not change with scale.

    Returns:
        ``score(attributions) -> (N,)``.

    Example:
        >>> pa.metrics.sparseness()(torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
        tensor([0.7500, 0.0000])

    References:
        - Chalasani et al., "Concise Explanations of Neural Networks using Adversarial Training",
          ICML 2020. https://arxiv.org/abs/1810.06583
    """
    check_normalise(normalise)

    def score(attributions: Any) -> Tensor:
        a = flat(attributions, abs, normalise).double() + 1e-7
        d = a.shape[1]
        a = a.sort(dim=1).values
        ranks = torch.arange(1, d + 1, dtype=a.dtype, device=a.device)
        return (((2 * ranks - d - 1) * a).sum(1) / (d * a.sum(1))).to(_dtype(attributions))

    return score


def complexity(*, abs: bool = True, normalise: bool | str = True) -> Score:
    r"""Complexity: the entropy of the attributions' shares of their total magnitude,
    :math:`-\sum_i p_i \log p_i` with :math:`p_i = |a_i| / \sum_j |a_j|` (low: few features
    matter).

    Args:
        abs: Take magnitudes first (Quantus's default).
        normalise: Divide by the largest magnitude first (True: per explanation; ``"batch"``: Quantus
            0.6's, the batch's); the entropy does not change with scale.

    Returns:
        ``score(attributions) -> (N,)``.

    Example:
        >>> pa.metrics.complexity()(torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])).round(decimals=4)
        tensor([-0.0000, 1.3863])

    References:
        - Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based Model Explanations",
          IJCAI 2020. https://arxiv.org/abs/2005.00631
    """
    check_normalise(normalise)

    def score(attributions: Any) -> Tensor:
        a = flat(attributions, abs, normalise).double()
        p = a / a.abs().sum(1, keepdim=True)
        return (-(p * torch.log(p + 1e-12)).sum(1)).to(_dtype(attributions))

    return score


def effective_complexity(*, eps: float = 1e-5, abs: bool = True, normalise: bool | str = True) -> Score:
    r"""Effective complexity: the number of features whose (normalised) attribution exceeds
    ``eps``, :math:`\#\{i : a_i > \epsilon\}`.

    Normalisation sets the scale ``eps`` is read on: each explanation by its own largest
    magnitude (True, pyattrib's default, so an example's count does not depend on the others in
    its batch), or the batch by its largest (``"batch"``, Quantus 0.6's ``normalise_by_max``
    over every axis, which couples the examples of a batch).

    Args:
        eps: The threshold.
        abs: Take magnitudes first (Quantus's default).
        normalise: True, False or ``"batch"`` (see above).

    Returns:
        ``score(attributions) -> (N,)`` (int64).

    Example:
        >>> pa.metrics.effective_complexity(eps=0.1)(torch.tensor([[0.05, 0.5, 1.0], [1.0, 2.0, 3.0]]))
        tensor([2, 3])

    References:
        - Nguyen and Martínez, "On Quantitative Aspects of Model Interpretability", 2020.
          https://arxiv.org/abs/2007.07584
    """
    check_normalise(normalise)

    def score(attributions: Any) -> Tensor:
        return (flat(attributions, abs, normalise) > eps).sum(1)

    return score


def _dtype(attributions: Any) -> torch.dtype:
    first = attributions[0] if isinstance(attributions, tuple) else attributions
    return first.dtype if first.is_floating_point() else torch.get_default_dtype()
