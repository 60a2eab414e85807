"""Linear classifiers that turn concept activations into concept activation vectors (CAVs).

:class:`Classifier` is Captum's protocol (``train_and_eval(dataloader)``, ``weights()``,
``classes()``) for a custom classifier fitted one experimental set at a time.
:func:`fit_cavs` is the default: ridge regression of one-hot concept labels on the
activations (a linear classifier, one-vs-rest), fitted for many experimental sets in **one
batched solve**. Its normal equations need only per-concept sums, so each concept's
activations are reduced once, however many sets it appears in:

.. math:: \\Big(\\sum_{c \\in S} \\tilde A_c^\\top \\tilde A_c + \\lambda I'\\Big) W_S
          = \\big[\\tilde A_{c_1}^\\top 1, \\dots, \\tilde A_{c_K}^\\top 1\\big]

with :math:`\\tilde A = [A, 1]` (a bias column, not regularised). For two concepts the two
weight rows are exact negatives of each other, Captum's convention for binary CAVs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


class Classifier(ABC):
    """Captum's classifier protocol: fit on ``(activations, concept id)`` batches, then give
    one weight row per class and the class order."""

    @abstractmethod
    def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict | None: ...

    @abstractmethod
    def weights(self) -> Tensor: ...

    @abstractmethod
    def classes(self) -> list[int]: ...


@dataclass
class ConceptStats:
    """Sufficient statistics of one concept's training rows, and its held-out rows."""

    gram: Tensor  # (D+1, D+1)
    total: Tensor  # (D+1,)
    test: Tensor  # (n_test, D)

    @classmethod
    def of(cls, activations: Tensor, test_split: float, generator: torch.Generator) -> ConceptStats:
        n = activations.shape[0]
        order = torch.randperm(n, generator=generator).to(activations.device)
        n_test = int(test_split * n)
        train = activations.index_select(0, order[n_test:]).double()
        padded = torch.cat([train, torch.ones(len(train), 1, dtype=train.dtype, device=train.device)], 1)
        return cls(padded.T @ padded, padded.sum(0), activations.index_select(0, order[:n_test]))


def fit_cavs(sets: Sequence[Sequence[ConceptStats]], regularisation: float) -> tuple[Tensor, Tensor]:
    """Weights ``(S, K, D)`` and held-out accuracies ``(S,)`` for ``S`` sets of ``K`` concepts each."""
    grams = torch.stack([sum(c.gram for c in concepts) for concepts in sets])  # (S, D+1, D+1)
    rhs = torch.stack([torch.stack([c.total for c in concepts], 1) for concepts in sets])  # (S, D+1, K)
    d = grams.shape[-1] - 1
    scale = grams.diagonal(dim1=1, dim2=2)[:, :d].mean(1).clamp_min(1e-12)
    ridge = torch.ones(d + 1, dtype=grams.dtype, device=grams.device)
    ridge[-1] = 0
    system = grams + regularisation * scale[:, None, None] * torch.diag_embed(ridge).expand_as(grams)
    solution = torch.linalg.solve(system, rhs)  # (S, D+1, K)
    weights = solution[:, :d].transpose(1, 2)  # (S, K, D)
    accuracies = []
    for s, concepts in enumerate(sets):
        rows = [c.test.double() for c in concepts]
        if sum(len(r) for r in rows) == 0:
            accuracies.append(torch.tensor(float("nan")))
            continue
        x = torch.cat(rows)
        labels = torch.cat([torch.full((len(r),), k, device=x.device) for k, r in enumerate(rows)])
        predicted = (x @ solution[s, :d] + solution[s, d]).argmax(1)
        accuracies.append((predicted == labels).double().mean().cpu())
    return weights, torch.stack(accuracies)


class RidgeClassifier(Classifier):
    """:func:`fit_cavs` behind the :class:`Classifier` protocol (one set at a time): the
    classes are the distinct labels in order of appearance; ``test_split_ratio`` of each
    class's rows is held out for ``accs``."""

    def __init__(self, regularisation: float = 1e-2, seed: int = 0) -> None:
        self.regularisation, self.seed = regularisation, seed
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
