"""Streaming summaries of tensors: count, mean, variance, min, max, sum.

A :class:`Summarizer` takes one tensor (or a tuple of tensors) per ``update`` and keeps, per
tensor, running statistics with Welford's update (numerically stable in one pass): the mean
:math:`\\mu_n = \\mu_{n-1} + (x_n - \\mu_{n-1})/n` and the sum of squared deviations
:math:`M_n = M_{n-1} + (x_n - \\mu_{n-1})(x_n - \\mu_n)`. The statistics are Captum's
(``Mean``, ``Var``, ``StdDev``, ``Min``, ``Max``, ``Sum``, ``Count``, ``MSE``,
``CommonStats``), with Captum's names in ``summary`` and its values: ``Var(order=k)`` is
:math:`M_n / (n - k)`, zero while :math:`n \\le k`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError

Value = Tensor | int | float | None


class Stat:
    """A statistic read from the running state of one tensor."""

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.params = params
        self._name = name

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        extra = f"({self.params})" if self.params else ""
        return type(self).__name__.lower() + extra

    def get(self, state: _State) -> Value:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == other.params  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.params.items())))


class Count(Stat):
    def get(self, state: _State) -> Value:
        return state.n or None


class Mean(Stat):
    def get(self, state: _State) -> Value:
        return state.mean


class MSE(Stat):
    """The running sum of squared deviations from the mean, :math:`M_n` (Captum's name)."""

    def get(self, state: _State) -> Value:
        return state.m2


class Var(Stat):
    def __init__(self, name: str | None = None, order: int = 0) -> None:
        default = {0: "variance", 1: "sample_variance"}.get(order, f"variance({order})")
        super().__init__(name=name or default, order=order)
        self.order = order

    def get(self, state: _State) -> Value:
        if state.m2 is None:
            return None
        if state.n <= self.order:
            return torch.zeros_like(state.m2)
        return state.m2.to(torch.float64) / (state.n - self.order)


class StdDev(Stat):
    def __init__(self, name: str | None = None, order: int = 0) -> None:
        default = {0: "std_dev", 1: "sample_std_dev"}.get(order, f"std_dev({order})")
        super().__init__(name=name or default, order=order)
        self.order = order

    def get(self, state: _State) -> Value:
        var = Var(order=self.order).get(state)
        return None if var is None else var.sqrt()


class _Fold(Stat):
    """A running fold ``result = fn(result, x)`` (min, max, sum)."""

    def __init__(self, name: str | None = None, fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        super().__init__(name=name)
        self.fn = fn or self.default

    default: Callable[[Tensor, Tensor], Tensor] = staticmethod(torch.add)

    def get(self, state: _State) -> Value:
        return state.folds.get(id(self))


class Min(_Fold):
    default = staticmethod(torch.min)

    def __init__(self, name: str | None = None, min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min) -> None:
        super().__init__(name, min_fn)


class Max(_Fold):
    default = staticmethod(torch.max)

    def __init__(self, name: str | None = None, max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max) -> None:
        super().__init__(name, max_fn)


class Sum(_Fold):
    def __init__(self, name: str | None = None, add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add) -> None:
        super().__init__(name, add_fn)


def CommonStats() -> list[Stat]:  # noqa: N802 (Captum's name)
    """Mean, sample variance, sample standard deviation, min and max."""
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]


class _State:
    """Running count, mean, squared deviations and folds of one tensor."""

    def __init__(self, folds: Sequence[_Fold]) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None
        self._folds = folds
        self.folds: dict[int, Tensor] = {}

    def update(self, x: Tensor) -> None:
        self.n += 1
        if self.mean is None:
            self.mean = x.clone() if x.is_floating_point() else x.double()
            self.m2 = torch.zeros_like(self.mean)
        else:
            before = self.mean
            self.mean = before + (x - before) / self.n
            self.m2 = self.m2 + (x - before) * (x - self.mean)
        for fold in self._folds:
            held = self.folds.get(id(fold))
            self.folds[id(fold)] = x if held is None else fold.fn(held, x)


class Summarizer:
    """Summarise a stream of tensors (or of tuples of tensors) with the given statistics.

    ``update(x)`` adds one value; ``summary`` is ``{stat.name: value}`` (a list of such dicts,
    one per tensor, when the updates are tuples). Numbers are taken as float tensors.
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        unique: list[Stat] = []
        for stat in stats:
            if stat not in unique:
                unique.append(stat)
        self.stats = unique
        self._states: list[_State] = []
        self._tuple: bool | None = None

    def update(self, x: Tensor | float | tuple[Tensor | float, ...]) -> None:
        is_tuple = isinstance(x, tuple)
        if self._tuple is None:
            self._tuple = is_tuple
        elif self._tuple != is_tuple:
            raise TypeError("Summarizer.update: give every update the same structure (all tuples or all tensors)")
        values = x if is_tuple else (x,)
        while len(self._states) < len(values):
            self._states.append(_State([s for s in self.stats if isinstance(s, _Fold)]))
        for state, v in zip(self._states, values):
            state.update(v if isinstance(v, Tensor) else torch.tensor(v, dtype=torch.float))

    @property
    def summary(self) -> dict[str, Value] | list[dict[str, Value]] | None:
        if not self._states:
            return None
        out = [{s.name: s.get(state) for s in self.stats} for state in self._states]
        return out if self._tuple else out[0]


class ClassSummarizer(Summarizer):
    """A :class:`Summarizer` of every example, and one per label.

    ``update(x, labels)``: ``x`` a batch (tensor or tuple of tensors), ``labels`` one label
    for the batch or one per example (list or tensor). Each example is one update of the
    overall summary and of its label's; ``class_summaries`` is ``{label: summary}``. Without
    labels, ``x`` is one value, as in :class:`Summarizer`.
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        super().__init__(stats)
        self.summaries: dict[Any, Summarizer] = {}

    def update(self, x: Tensor | tuple[Tensor, ...], labels: Any = None) -> None:  # type: ignore[override]
        if labels is None:
            super().update(x)
            return
        xs = x if isinstance(x, tuple) else (x,)
        per_example = list(labels) if isinstance(labels, (list, Tensor)) else [labels]
        n = xs[0].shape[0]
        if len(per_example) > 1 and any(t.shape[0] != len(per_example) for t in xs):
            raise ArgumentError(
                f"labels has {len(per_example)} entries but the batch has {n}; pass one or one per example"
            )
        for i in range(n):
            label = per_example[0] if len(per_example) == 1 else per_example[i]
            key = label.item() if isinstance(label, Tensor) else label
            self.summaries.setdefault(key, Summarizer(self.stats)).update(tuple(t[i] for t in xs))
            super().update(tuple(t[i].clone() for t in xs))

    @property
    def class_summaries(self) -> dict[Any, Any]:
        return {key: s.summary for key, s in self.summaries.items()}
