"""The linear datamodeling score: how well data-attribution scores predict what models trained on
random subsets of the training data do.

For ``M`` random subsets ``S_j`` of the training set, a model ``theta(S_j)`` is trained on each
and its output ``f(z; theta(S_j))`` measured on every test example ``z``. Scores ``tau(z)_i``
predict that output, for a subset, as the sum of its members' scores,
``g(z, S_j) = sum_{i in S_j} tau(z)_i``; the score of the attribution method on ``z`` is the
Spearman correlation of ``f`` and ``g`` over the subsets, and the LDS is its mean over ``z``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._core import random
from .._core.errors import ArgumentError, check_count
from ..metrics.randomisation import spearman_or_nan


class Datamodels(NamedTuple):
    """Models trained on random subsets, as :func:`train_on_subsets` returns them.

    Args:
        masks: ``(M, N_train)`` booleans, which training examples each model saw.
        outputs: ``(M, N_test)`` each model's measured output per test example.
        seeds: The seed each training run's generator was given, so that any run can be repeated.

    Example:
        >>> runs = pa.influence.Datamodels(torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 4), [0, 1])
        >>> runs.outputs.shape
        torch.Size([2, 4])
    """

    masks: Tensor
    outputs: Tensor
    seeds: list[int]


def subsets(n_train: int, n_models: int, fraction: float = 0.5, *, generator: torch.Generator | None = None) -> Tensor:
    """``(n_models, n_train)`` boolean masks, each a uniformly random subset of
    ``round(fraction * n_train)`` training examples.

    Args:
        n_train: The number of training examples.
        n_models: The number of subsets (models to train).
        fraction: The share of the training set in each subset, in ``(0, 1)``.
        generator: The random draws' generator.

    Returns:
        Tensor: ``(n_models, n_train)`` booleans.

    References:
        - Park, Georgiev, Ilyas, Leclerc and Madry, "TRAK: Attributing Model Behavior at Scale",
          ICML 2023. https://arxiv.org/abs/2303.14186

    Example:
        >>> pa.influence.subsets(10, 3, 0.5, generator=generator).sum(1)
        tensor([5, 5, 5])
    """
    check_count("n_train", n_train)
    check_count("n_models", n_models)
    if not 0 < fraction < 1:
        raise ArgumentError(f"fraction must be in (0, 1), the share of the training set per subset; got {fraction}")
    size = max(1, round(fraction * n_train))
    keys = random.uniform((n_models, n_train), torch.zeros((), dtype=torch.float64), generator)
    chosen = keys.argsort(1)[:, :size]
    return torch.zeros(n_models, n_train, dtype=torch.bool).scatter_(1, chosen, True)


def train_on_subsets(
    train: Callable[[Tensor, torch.Generator], Any],
    measure: Callable[[Any], Tensor],
    masks: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Datamodels:
    """Train one model per subset and measure it: ``train(indices, generator)`` returns a model
    trained on the training examples ``indices`` with its random draws from ``generator`` (seeded
    per model and recorded), ``measure(model)`` its output per test example, ``(N_test,)`` (e.g.
    the loss or the correct-class margin).

    Args:
        train: ``(indices, generator) -> model``.
        measure: ``model -> (N_test,)`` outputs.
        masks: ``(M, N_train)`` subsets, e.g. from :func:`subsets`.
        generator: Draws the base seed of the per-model seeds (None: 0).

    Returns:
        Datamodels: the masks, the ``(M, N_test)`` outputs and the seeds.

    References:
        - Ilyas, Park, Engstrom, Leclerc and Madry, "Datamodels: Predicting Predictions from Training
          Data", ICML 2022. https://arxiv.org/abs/2202.00622

    Example:
        >>> xs, ys = torch.randn(20, 3), torch.randn(20)
        >>> fit = lambda idx, g: torch.linalg.lstsq(xs[idx], ys[idx, None]).solution
        >>> runs = pa.influence.train_on_subsets(fit, lambda w: (xs[:4] @ w)[:, 0], pa.influence.subsets(20, 6))
        >>> runs.outputs.shape, len(runs.seeds)
        (torch.Size([6, 4]), 6)
    """
    if masks.dim() != 2 or masks.dtype != torch.bool:
        raise ArgumentError(f"masks must be (n_models, n_train) booleans, got {tuple(masks.shape)} {masks.dtype}")
    base = random.base_seed(0, generator)
    outputs, seeds = [], []
    for j, mask in enumerate(masks):
        seeds.append(random.item_seed(base, j))
        model = train(mask.nonzero()[:, 0], random.item_generator(base, j))
        with torch.no_grad():
            outputs.append(measure(model).detach().reshape(-1).double().cpu())
    return Datamodels(masks, torch.stack(outputs), seeds)


def lds(scores: Tensor, masks: Tensor, outputs: Tensor) -> Tensor:
    r"""Linear datamodeling score per test example: the Spearman correlation, over the subsets
    ``j``, of the measured outputs and the attribution's prediction of them,

    .. math:: \mathrm{LDS}(z) = \rho_j\big(f(z;\theta(S_j)),\ \textstyle\sum_{i \in S_j} \tau(z)_i\big)

    (the mean over test examples is the score of the method; NaN where either is constant).
    ``scores`` must rise with the measured output: for a loss measurement, the scores of
    training examples that raise the test loss when included.

    Args:
        scores: ``(N_test, N_train)`` attribution scores ``tau(z)_i``.
        masks: ``(M, N_train)`` booleans, the training subsets.
        outputs: ``(M, N_test)`` measured outputs of the model trained on each subset.

    Returns:
        Tensor: ``(N_test,)`` correlations (float64).

    References:
        - Park, Georgiev, Ilyas, Leclerc and Madry, "TRAK: Attributing Model Behavior at Scale",
          ICML 2023. https://arxiv.org/abs/2303.14186

    Example:
        >>> tau = torch.randn(4, 10)
        >>> masks = pa.influence.subsets(10, 8, generator=generator)
        >>> outputs = masks.double() @ tau.double().T  # a linear datamodel: predicted exactly
        >>> round(pa.influence.lds(tau, masks, outputs).mean().item(), 6)
        1.0
    """
    if scores.dim() != 2 or masks.dim() != 2 or outputs.dim() != 2:
        raise ArgumentError("lds takes scores (N_test, N_train), masks (M, N_train) and outputs (M, N_test)")
    if masks.shape[1] != scores.shape[1] or outputs.shape != (masks.shape[0], scores.shape[0]):
        raise ArgumentError(
            f"shapes do not agree: scores {tuple(scores.shape)} (N_test, N_train), masks {tuple(masks.shape)} "
            f"(M, N_train), outputs {tuple(outputs.shape)} (M, N_test)"
        )
    predicted = masks.double().to(scores.device) @ scores.double().T  # (M, N_test)
    return spearman_or_nan(outputs.double().to(scores.device).T, predicted.T)
