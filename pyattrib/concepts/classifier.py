"""Linear classifiers that turn concept activations into concept activation vectors (CAVs).

:class:`Classifier` is Captum's protocol (``train_and_eval(dataloader)``, ``weights()``,
``classes()``) for a custom classifier fitted one experimental set at a time.
:func:`fit_cavs` is the default: ridge regression of one-hot concept labels on the
activations (a linear classifier, one-vs-rest), fitted for many experimental sets in **one
batched solve**. Its normal equations need only per-concept sums, so each concept's
activations are reduced once, however many sets it appears in:

.. math:: \\Big(\\sum_{c \\in S} \\tilde A_c^\\top \\tilde A_c + \\lambda I'\\Big) W_S
          = \\big[\\tilde A_{c_1}^\\top 1, \\dots, \\tilde A_{c_K}^\\top 1\\big]

with :math:`\\tilde A = [A, 1]` (a bias column, not regularised), or, with more features
than rows, the equivalent dual (kernel) form. For two concepts the two
weight rows are exact negatives of each other, Captum's convention for binary CAVs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from .._core.random import base_seed

# float64 elements of the stacked systems of one batched solve (8 MiB)
FIT_BUDGET = 2**20


class Classifier(ABC):
    """Captum's classifier protocol: fit on ``(activations, concept id)`` batches, then give
    one weight row per class and the class order.

    Example:
        >>> isinstance(pa.concepts.RidgeClassifier(), pa.concepts.Classifier)
        True
    """

    @abstractmethod
    def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict | None: ...

    @abstractmethod
    def weights(self) -> Tensor: ...

    @abstractmethod
    def classes(self) -> list[int]: ...


@dataclass
class ConceptStats:
    """One concept's training rows (float64) and held-out rows; the primal statistics
    (``gram``, ``total``) are computed once, on first use.

    Args:
        train: Training activations, ``(M, D)``.
        test: Test activations, ``(N, D)``.
        _padded_gram: Internal cache; leave ``None``.

    Example:
        >>> stats = pa.concepts.ConceptStats.of(torch.randn(10, 4), 0.3, torch.Generator().manual_seed(0))
        >>> stats.train.shape[0] + stats.test.shape[0]
        10
    """

    train: Tensor  # (n_train, D)
    test: Tensor  # (n_test, D)
    _padded_gram: Tensor | None = None

    @classmethod
    def of(cls, activations: Tensor, test_split: float, generator: torch.Generator) -> ConceptStats:
        n = activations.shape[0]
        order = torch.randperm(n, generator=generator).to(activations.device)
        n_test = int(test_split * n)
        return cls(activations.index_select(0, order[n_test:]).double(), activations.index_select(0, order[:n_test]))

    @property
    def gram(self) -> Tensor:  # (D+1, D+1) of [rows, 1]
        if self._padded_gram is None:
            padded = torch.cat([self.train, torch.ones_like(self.train[:, :1])], 1)
            self._padded_gram = padded.T @ padded
        return self._padded_gram

    @property
    def total(self) -> Tensor:  # (D+1,)
        return torch.cat([self.train.sum(0), self.train.new_tensor([len(self.train)])])


def fit_cavs(sets: Sequence[Sequence[ConceptStats]], regularisation: float) -> tuple[Tensor, Tensor]:
    """Weights ``(S, K, D)`` and held-out accuracies ``(S,)`` for ``S`` sets of ``K`` concepts each.

    The ridge strength is ``regularisation`` times the mean squared activation of the set's rows
    (so it follows the layer's scale). With more features than rows the same ridge solution
    comes from the dual (kernel) form, an ``(n, n)`` system per set instead of ``(D, D)``.
    Sets are solved together in batches of about ``FIT_BUDGET`` stacked elements.

    Args:
        sets: ``S`` experimental sets, each ``K`` concepts' statistics (:class:`ConceptStats`).
        regularisation: The ridge penalty of the CAV classifier.

    Returns:
        tuple[Tensor, Tensor]: the weights ``(S, K, D)`` and the held-out accuracies ``(S,)``.

    References:
        - Kim, Wattenberg, Gilmer, Cai, Wexler, Viégas and Sayres, "Interpretability Beyond Feature
          Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML 2018.
          https://arxiv.org/abs/1711.11279

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> stats = [pa.concepts.ConceptStats.of(torch.randn(10, 4) + s, 0.3, g) for s in (0.0, 1.0)]
        >>> weights, accs = pa.concepts.fit_cavs([stats], regularisation=0.01)
        >>> weights.shape, accs.shape
        (torch.Size([1, 2, 4]), torch.Size([1]))
    """
    d = sets[0][0].train.shape[1]
    rows = max(sum(len(c.train) for c in concepts) for concepts in sets)
    solve = _dual if d + 1 > rows else _primal
    per_solve = max(1, FIT_BUDGET // (min(rows, d + 1) * (d + 1)))  # sets per batched solve
    parts = [solve(sets[i : i + per_solve], regularisation) for i in range(0, len(sets), per_solve)]
    coef, bias = torch.cat([c for c, _ in parts]), torch.cat([b for _, b in parts])  # (S, D, K), (S, K)
    accuracies = []
    for s, concepts in enumerate(sets):
        held = [c.test.double() for c in concepts]
        if sum(len(r) for r in held) == 0:
            accuracies.append(torch.tensor(float("nan")))
            continue
        x = torch.cat(held)
        labels = torch.cat([torch.full((len(r),), k, device=x.device) for k, r in enumerate(held)])
        accuracies.append(((x @ coef[s] + bias[s]).argmax(1) == labels).double().mean().cpu())
    return coef.transpose(1, 2), torch.stack(accuracies)


def _scale(concepts: Sequence[ConceptStats]) -> Tensor:
    d = concepts[0].train.shape[1]
    return (
        cast(Tensor, sum((c.train**2).sum() for c in concepts)) / (d * sum(len(c.train) for c in concepts))
    ).clamp_min(1e-12)


def _solve_spd(system: Tensor, rhs: Tensor) -> Tensor:
    # symmetric positive definite: Cholesky (batched LU solves of large systems return wrong
    # values with some MKL builds of torch)
    return torch.cholesky_solve(rhs, torch.linalg.cholesky(system))


def _primal(sets: Sequence[Sequence[ConceptStats]], regularisation: float) -> tuple[Tensor, Tensor]:
    grams = torch.stack([cast(Tensor, sum(c.gram for c in concepts)) for concepts in sets])  # (S, D+1, D+1)
    rhs = torch.stack([torch.stack([c.total for c in concepts], 1) for concepts in sets])  # (S, D+1, K)
    d = grams.shape[-1] - 1
    counts = grams[:, d, d]
    ridge = torch.ones(d + 1, dtype=grams.dtype, device=grams.device)
    ridge[-1] = 0  # the bias is not regularised
    strength = regularisation * torch.stack([_scale(c) for c in sets]) * counts
    solution = _solve_spd(grams + strength[:, None, None] * torch.diag(ridge), rhs)
    return solution[:, :d], solution[:, d]


def _dual(sets: Sequence[Sequence[ConceptStats]], regularisation: float) -> tuple[Tensor, Tensor]:
    n = max(sum(len(c.train) for c in concepts) for concepts in sets)
    xs, ys, masks = [], [], []
    for concepts in sets:
        x = torch.cat([c.train for c in concepts])
        y = torch.cat([torch.nn.functional.one_hot(torch.full((len(c.train),), k, device=x.device), len(concepts))
                       for k, c in enumerate(concepts)]).to(x.dtype)  # fmt: skip
        pad = n - len(x)
        xs.append(torch.nn.functional.pad(x, (0, 0, 0, pad)))
        ys.append(torch.nn.functional.pad(y, (0, 0, 0, pad)))
        masks.append(torch.cat([torch.ones(len(x), dtype=x.dtype), torch.zeros(pad, dtype=x.dtype)]).to(x.device))
    x, y, m = torch.stack(xs), torch.stack(ys), torch.stack(masks)[..., None]  # zero rows are inert
    count = m.sum(1, keepdim=True)
    mean_x, mean_y = (x * m).sum(1, keepdim=True) / count, (y * m).sum(1, keepdim=True) / count
    xc, yc = (x - mean_x) * m, (y - mean_y) * m  # the unregularised bias = centring
    strength = regularisation * torch.stack([_scale(c) for c in sets]) * count[:, 0, 0]
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    alpha = _solve_spd(xc @ xc.transpose(1, 2) + strength[:, None, None] * eye, yc)  # (S, n, K)
    coef = xc.transpose(1, 2) @ alpha  # (S, D, K)
    return coef, (mean_y - mean_x @ coef)[:, 0]


class RidgeClassifier(Classifier):
    """:func:`fit_cavs` behind the :class:`Classifier` protocol (one set at a time): the
    classes are the distinct labels in order of appearance; ``test_split_ratio`` of each
    class's rows is held out for ``accs``.

    Args:
        regularisation: The ridge penalty of the CAV classifier.
        seed: Seed of the generator built for the draws (a convenience: the same seed gives the same
            draws).
        generator: Draws the base seed instead (one draw at construction); ``seed`` is the convenience that names
            one.

    Example:
        >>> clf = pa.concepts.RidgeClassifier()
        >>> rows = torch.utils.data.TensorDataset(torch.randn(20, 4), torch.tensor([0, 1] * 10))
        >>> data = torch.utils.data.DataLoader(rows, batch_size=10)
        >>> accs = clf.train_and_eval(data)
        >>> clf.weights().shape, clf.classes()
        (torch.Size([2, 4]), [0, 1])
    """

    def __init__(self, regularisation: float = 1e-2, seed: int = 0, generator: torch.Generator | None = None) -> None:
        self.regularisation, self.seed = regularisation, base_seed(seed, generator)
        self._weights: Tensor | None = None
        self._classes: list[int] = []

    def train_and_eval(self, dataloader: Any, test_split_ratio: float = 0.33, **kwargs: Any) -> dict:
        xs, ys = zip(*((x, y) for x, y in dataloader))
        x, y = torch.cat(xs), torch.cat(ys)
        self._classes = list(dict.fromkeys(y.tolist()))
        generator = torch.Generator().manual_seed(self.seed)
        stats = [ConceptStats.of(x[y == c], test_split_ratio, generator) for c in self._classes]
        (weights,), accs = fit_cavs([stats], self.regularisation)
        self._weights = weights.to(x.dtype)
        return {"accs": accs[0]}

    def weights(self) -> Tensor:
        if self._weights is None:
            raise RuntimeError("RidgeClassifier: call train_and_eval before weights()")
        return self._weights

    def classes(self) -> list[int]:
        return self._classes
