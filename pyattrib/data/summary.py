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

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError

Value = Tensor | int | float | None


class Stat(ABC):
    """A statistic read from the running state of one tensor.

    Args:
        name: The statistic's name (its key in the summary).
        **params: The parameters of the parameterised statistic.

    Example:
        >>> isinstance(pa.data.Mean(), pa.data.Stat)
        True
    """

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.params = params
        self._name = name

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        extra = f"({self.params})" if self.params else ""
        return type(self).__name__.lower() + extra

    @abstractmethod
    def get(self, state: _State) -> Value:
        """The statistic's value from the running state."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stat) and type(self) is type(other) and self.params == other.params

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.params.items())))


class Count(Stat):
    """The number of values seen, :math:`n`.

    Args:
        name: The statistic's name (its key in the summary).
        **params: The parameters of the parameterised statistic.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Count()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'count': 3}
    """

    def get(self, state: _State) -> Value:
        return state.n or None


class Mean(Stat):
    """The running mean, :math:`\\bar x_n` (Welford's update).

    Args:
        name: The statistic's name (its key in the summary).
        **params: The parameters of the parameterised statistic.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Mean()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'mean': tensor(3.)}
    """

    def get(self, state: _State) -> Value:
        return state.mean


class MSE(Stat):
    """The running sum of squared deviations from the mean, :math:`M_n` (Captum's name).

    Args:
        name: The statistic's name (its key in the summary).
        **params: The parameters of the parameterised statistic.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.MSE()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'mse': tensor(14.)}
    """

    def get(self, state: _State) -> Value:
        return state.m2


class Var(Stat):
    """The running variance, :math:`M_n / (n - \\text{order})`.

    Args:
        name: The statistic's name (its key in the summary).
        order: Degrees of freedom removed from the count (0: population variance, 1: sample variance).

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Var()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'variance': tensor(4.6667, dtype=torch.float64)}
    """

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
    """The running standard deviation, :math:`\\sqrt{M_n / (n - \\text{order})}`.

    Args:
        name: The statistic's name (its key in the summary).
        order: Degrees of freedom removed from the count (0: population, 1: sample).

    Example:
        >>> summary = pa.data.Summarizer([pa.data.StdDev()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'std_dev': tensor(2.1602, dtype=torch.float64)}
    """

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        default = {0: "std_dev", 1: "sample_std_dev"}.get(order, f"std_dev({order})")
        super().__init__(name=name or default, order=order)
        self.order = order

    def get(self, state: _State) -> Value:
        var = Var(order=self.order).get(state)
        return None if var is None else torch.as_tensor(var).sqrt()


class _Fold(Stat):
    """A running fold ``result = fn(result, x)`` (min, max, sum)."""

    def __init__(self, name: str | None = None, fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        super().__init__(name=name)
        self.fn = fn or self.default

    default: Callable[[Tensor, Tensor], Tensor] = staticmethod(torch.add)

    def get(self, state: _State) -> Value:
        return state.folds.get(id(self))


class Min(_Fold):
    """The running element-wise minimum: ``result = min_fn(result, x)``.

    Args:
        name: The statistic's name (its key in the summary).
        min_fn: The fold, ``(running, x) -> running``.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Min()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'min': tensor(1.)}
    """

    default = staticmethod(torch.min)  # type: ignore[assignment]  # torch.min(a, b) is an overload

    def __init__(self, name: str | None = None, min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min) -> None:
        super().__init__(name, min_fn)


class Max(_Fold):
    """The running element-wise maximum: ``result = max_fn(result, x)``.

    Args:
        name: The statistic's name (its key in the summary).
        max_fn: The fold, ``(running, x) -> running``.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Max()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'max': tensor(6.)}
    """

    default = staticmethod(torch.max)  # type: ignore[assignment]  # torch.max(a, b) is an overload

    def __init__(self, name: str | None = None, max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max) -> None:
        super().__init__(name, max_fn)


class Sum(_Fold):
    """The running sum: ``result = add_fn(result, x)``.

    Args:
        name: The statistic's name (its key in the summary).
        add_fn: The fold, ``(running, x) -> running``.

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Sum()])
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> summary.summary
        {'sum': tensor(9.)}
    """

    def __init__(self, name: str | None = None, add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add) -> None:
        super().__init__(name, add_fn)


def CommonStats() -> list[Stat]:  # noqa: N802 (Captum's name)
    """Mean, sample variance, sample standard deviation, min and max.

    Returns:
        list[Stat]: ``[Mean(), Var(order=1), StdDev(order=1), Min(), Max()]``.

    Example:
        >>> summary = pa.data.Summarizer(pa.data.CommonStats())
        >>> for value in (1.0, 2.0, 6.0): summary.update(torch.tensor(value))
        >>> sorted(summary.summary)
        ['max', 'mean', 'min', 'sample_std_dev', 'sample_variance']
    """
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]


class _State:
    """Running count, mean, squared deviations and folds of one tensor.

    Rows are merged with Chan et al.'s parallel update (``n = n_a + n_b``,
    :math:`\\delta = \\mu_b - \\mu_a`, :math:`\\mu = \\mu_a + \\delta n_b / n`,
    :math:`M = M_a + M_b + \\delta^2 n_a n_b / n`), which is Welford's update for one row and
    also merges whole batches and the states of other processes.
    """

    def __init__(self, folds: Sequence[_Fold]) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None
        self._folds = list(folds)
        self.fold_values: list[Tensor | None] = [None] * len(self._folds)

    @property
    def folds(self) -> dict[int, Tensor]:
        return {id(f): v for f, v in zip(self._folds, self.fold_values) if v is not None}

    def update(self, x: Tensor) -> None:
        self.update_rows(x.unsqueeze(0))

    def update_rows(self, rows: Tensor) -> None:
        """Add every row (``rows[k]``) as one value."""
        if len(rows) == 0:
            return
        real = rows if rows.is_floating_point() else rows.double()
        mean = real.mean(0)
        m2 = ((real - mean) ** 2).sum(0) if len(rows) > 1 else torch.zeros_like(mean)
        self._merge(len(rows), mean, m2, [_fold_rows(f, rows) for f in self._folds])

    def merge(self, other: _State) -> None:
        if other.n and other.mean is not None and other.m2 is not None:
            self._merge(other.n, other.mean, other.m2, other.fold_values)

    def _merge(self, n: int, mean: Tensor, m2: Tensor, folds: Sequence[Tensor | None]) -> None:
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n, mean.clone(), m2.clone()
        else:
            total = self.n + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta**2 * (self.n * n / total)
            self.n = total
        self.fold_values = [
            b if a is None else a if b is None else f.fn(a, b) for f, a, b in zip(self._folds, self.fold_values, folds)
        ]


def _fold_rows(fold: _Fold, rows: Tensor) -> Tensor:
    if fold.fn is torch.min:
        return rows.amin(0)
    if fold.fn is torch.max:
        return rows.amax(0)
    if fold.fn is torch.add:
        return rows.sum(0)
    value = rows[0]
    for row in rows[1:]:
        value = fold.fn(value, row)
    return value


class Summarizer:
    """Summarise a stream of tensors (or of tuples of tensors) with the given statistics.

    ``update(x)`` adds one value; ``summary`` is ``{stat.name: value}`` (a list of such dicts,
    one per tensor, when the updates are tuples). Numbers are taken as float tensors.

    Args:
        stats: The statistics to keep (e.g. ``[Mean(), Var()]`` or :func:`CommonStats`).

    Example:
        >>> summary = pa.data.Summarizer([pa.data.Mean(), pa.data.Max()])
        >>> summary.update(torch.tensor([1.0, 3.0]))
        >>> summary.update(torch.tensor([3.0, 5.0]))
        >>> summary.summary
        {'mean': tensor([2., 4.]), 'max': tensor([3., 5.])}
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
        """Add one value (a tensor or number, or a tuple of them)."""
        for state, v in zip(self._states, self._values(x)):
            state.update(v)

    def update_rows(self, x: Tensor | tuple[Tensor, ...]) -> None:
        """Add every row of a batch (a tensor, or a tuple of tensors with a common first
        dimension) as one value: the same as ``update`` row by row, in one step."""
        values = self._values(x)
        for state, v in zip(self._states, values):
            state.update_rows(v)

    def merge(self, other: Summarizer) -> None:
        """Add everything ``other`` (same statistics) has seen, e.g. another process's summary."""
        if other._tuple is None:
            return
        self._values(tuple(s.mean for s in other._states) if other._tuple else other._states[0].mean)
        for state, theirs in zip(self._states, other._states):
            state.merge(theirs)

    def _values(self, x: Any) -> tuple[Tensor, ...]:
        is_tuple = isinstance(x, tuple)
        if self._tuple is None:
            self._tuple = is_tuple
        elif self._tuple != is_tuple:
            raise TypeError("Summarizer: give every update the same structure (all tuples or all tensors)")
        values = x if is_tuple else (x,)
        while len(self._states) < len(values):
            self._states.append(_State([s for s in self.stats if isinstance(s, _Fold)]))
        return tuple(v if isinstance(v, Tensor) else torch.tensor(v, dtype=torch.float) for v in values)

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

    Args:
        stats: The statistics to keep (e.g. ``[Mean(), Var()]`` or :func:`CommonStats`).

    Example:
        >>> summary = pa.data.ClassSummarizer([pa.data.Mean()])
        >>> summary.update(torch.tensor([[1.0], [3.0], [5.0]]), labels=[0, 1, 1])
        >>> sorted(summary.class_summaries)
        [0, 1]
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        super().__init__(stats)
        self.summaries: dict[Any, Summarizer] = {}

    def update(self, x: Tensor | tuple[Tensor, ...], labels: Any = None) -> None:  # type: ignore[override]
        if labels is None:
            super().update(x)
            return
        xs = x if isinstance(x, tuple) else (x,)
        n = xs[0].shape[0]
        if isinstance(labels, Tensor):
            labels = labels.reshape(-1).tolist()
        per_example = list(labels) if isinstance(labels, list) else [labels] * n
        if len(per_example) == 1:
            per_example = per_example * n
        if len(per_example) != n or any(t.shape[0] != n for t in xs):
            raise ArgumentError(f"labels has {len(labels) if isinstance(labels, list) else 1} entries but the "
                                f"batch has {n}; pass one label or one per example")  # fmt: skip
        for key in dict.fromkeys(per_example):  # each label's rows at once, labels in order of appearance
            rows = torch.tensor([k for k, lab in enumerate(per_example) if lab == key], device=xs[0].device)
            part = tuple(t.index_select(0, rows) for t in xs)
            self.summaries.setdefault(key, Summarizer(self.stats)).update_rows(part)
        super().update_rows(tuple(xs))

    def merge(self, other: Summarizer) -> None:
        super().merge(other)
        for key, summary in getattr(other, "summaries", {}).items():
            self.summaries.setdefault(key, Summarizer(self.stats)).merge(summary)

    @property
    def class_summaries(self) -> dict[Any, Any]:
        return {key: s.summary for key, s in self.summaries.items()}
