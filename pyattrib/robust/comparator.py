"""Compare a model metric on original and attacked inputs, over batches."""

from __future__ import annotations

import warnings
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_args
from ..data.summary import Max, Mean, Min, Summarizer
from .batches import forward_parts

ORIGINAL = "Original"


@dataclass(frozen=True)
class Attack:
    fn: Callable[..., Any]
    name: str
    num_attempts: int
    apply_before_preproc: bool
    kwargs: dict[str, Any]
    call_args: list[str] = field(default_factory=list)


class AttackComparator:
    """A metric of the model on original inputs and under each added attack.

    ``add_attack(attack, name, num_attempts, apply_before_preproc, attack_kwargs,
    additional_attack_arg_names)`` registers an attack: any callable ``inputs -> attacked``
    (a :func:`pyattrib.robust.fgsm`/``pgd`` attack, a random transform, ...), called with
    ``attack_kwargs`` and the named entries of the ``evaluate`` keyword arguments.
    ``evaluate(inputs, additional_forward_args=None, batch_size=None, **metric_kwargs)``
    runs the model on the original and every attempt of every attack, ``batch_size`` rows
    per forward (``None``: all versions in one forward), and returns ``{"Original":
    metric, name: {"mean": ...}}`` (with ``"min"``/``"max"`` over attempts when
    ``num_attempts > 1``); ``metric(model_out, **metric_kwargs)`` may return a tensor, a
    number or a (named) tuple of them. ``summary()`` averages the batch results over all
    ``evaluate`` calls (each batch result first averaged over its examples); ``reset()``
    clears it. ``preproc_fn`` maps inputs (e.g. text) to what the model takes; an attack runs
    before it (``apply_before_preproc=True``) or on its output. The model receives the
    (preprocessed) inputs as its first argument, as given.

    Args:
        model: The model.
        metric: ``metric(model_out, **metric_kwargs)``: a tensor, a number or a (named) tuple of them.
        preproc_fn: Applied to the inputs before the model (an attack may run before or after it).

    Example:
        >>> comparator = pa.robust.AttackComparator(model, metric=lambda out: out.softmax(1).max(1).values)
        >>> comparator.add_attack(lambda z: z * 0.5, name="halved")
        >>> sorted(comparator.evaluate(x))
        ['Original', 'halved']
    """

    def __init__(self, model: Callable[..., Any], metric: Callable[..., Any], preproc_fn: Callable | None = None):
        self.model, self.metric, self.preproc_fn = model, metric, preproc_fn
        self.attacks: dict[str, Attack] = {}
        self._totals: dict[str, Summarizer] = {}
        self._named: type | None = None

    def add_attack(
        self,
        attack: Callable[..., Any],
        name: str | None = None,
        num_attempts: int = 1,
        apply_before_preproc: bool = True,
        attack_kwargs: dict[str, Any] | None = None,
        additional_attack_arg_names: list[str] | None = None,
    ) -> None:
        name = name or type(attack).__name__
        if name in self.attacks:
            raise ArgumentError.also(RuntimeError)(f"an attack named {name!r} is already added; pass another name=")
        check_count("num_attempts", num_attempts)
        self.attacks[name] = Attack(
            attack, name, num_attempts, apply_before_preproc, dict(attack_kwargs or {}),
            list(additional_attack_arg_names or []),
        )  # fmt: skip

    def evaluate(
        self, inputs: Any, additional_forward_args: Any = None, batch_size: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        prepared = self.preproc_fn(inputs) if self.preproc_fn else inputs
        versions, keys = [prepared], [ORIGINAL]
        per_batch = {ORIGINAL: Summarizer([Mean()])}
        for attack in self.attacks.values():
            per_batch[attack.name] = Summarizer([Mean(), Min(), Max()] if attack.num_attempts > 1 else [Mean()])
            extra = {}
            for key in attack.call_args:
                if key in kwargs:
                    extra[key] = kwargs[key]
                else:
                    warnings.warn(f"argument {key!r} of attack {attack.name!r} not given to evaluate", stacklevel=2)
            for _ in range(attack.num_attempts):
                if attack.apply_before_preproc:
                    attacked = attack.fn(inputs, **extra, **attack.kwargs)
                    versions.append(self.preproc_fn(attacked) if self.preproc_fn else attacked)
                else:
                    versions.append(attack.fn(prepared, **extra, **attack.kwargs))
                keys.append(attack.name)
        per_forward = len(versions) if batch_size is None else max(1, batch_size)
        args = as_args(additional_forward_args)
        for start in range(0, len(versions), per_forward):
            group = versions[start : start + per_forward]
            for key, out in zip(keys[start : start + per_forward], forward_parts(self.model, group, args)):
                value = self.metric(out, **kwargs)
                if self._named is None and isinstance(value, tuple) and hasattr(value, "_fields"):
                    self._named = namedtuple(type(value).__name__, value._fields)  # type: ignore[misc]
                per_batch[key].update(value)
        return self._record(per_batch)

    def _record(self, per_batch: dict[str, Summarizer]) -> dict[str, Any]:
        results: dict[str, Any] = {ORIGINAL: self._format(per_batch[ORIGINAL].summary)["mean"]}
        self._add(ORIGINAL, results[ORIGINAL])
        for name in self.attacks:
            stats = self._format(per_batch[name].summary)
            results[name] = stats
            if len(stats) == 1:
                self._add(name, stats["mean"])
            else:
                for stat, value in stats.items():
                    self._add(f"{name} {stat.title()} Attempt", value)
        return results

    def _add(self, key: str, value: Any) -> None:
        self._totals.setdefault(key, Summarizer([Mean()])).update(_batch_mean(value))

    def _format(self, summary: Any) -> dict[str, Any]:
        if isinstance(summary, dict):
            return summary
        joined = {key: tuple(part[key] for part in summary) for key in summary[0]}
        return {k: self._named(*v) for k, v in joined.items()} if self._named else joined

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{key: {"mean": ...}}`` over all batches evaluated since the last ``reset``."""
        return {key: self._format(s.summary) for key, s in self._totals.items()}

    def reset(self) -> None:
        self._totals = {}


def _batch_mean(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.mean(dim=0)
    if isinstance(value, tuple):
        return tuple(_batch_mean(v) for v in value)
    return value


def attack_comparator(
    model: Callable[..., Any], metric: Callable[..., Any], preproc_fn: Callable | None = None
) -> AttackComparator:
    """An :class:`AttackComparator` of ``metric`` on ``model`` (add attacks, then evaluate).

    Args:
        model: The model.
        metric: ``metric(model_out, **metric_kwargs)``: a tensor, a number or a (named) tuple of them.
        preproc_fn: Applied to the inputs before the model (an attack may run before or after it).

    Returns:
        AttackComparator: add attacks with ``add_attack``, then ``evaluate``.

    Example:
        >>> accuracy = lambda out, target: (out.argmax(1) == target).float()
        >>> comparator = pa.robust.attack_comparator(model, metric=accuracy)
        >>> comparator.add_attack(lambda z: z + 0.1 * torch.randn_like(z), name="noise", num_attempts=2)
        >>> sorted(comparator.evaluate(x, target=y))
        ['Original', 'noise']
    """
    return AttackComparator(model, metric, preproc_fn)
