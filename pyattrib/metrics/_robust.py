"""Robustness: how much an explanation moves when its input moves a little. Average
sensitivity, the local Lipschitz estimate, continuity, consistency, and relative input,
output and representation stability (Agarwal et al.). Each metric calls the attributor
itself on the perturbed copies (any attributor, composed ones too), whole copies of the batch
in calls of at most ``batch_size`` rows (default: about ``METRIC_BUDGET`` input elements);
noise comes from the ``generator`` given at call time.

Each is a transform returning ``measure(inputs, *, target=None, generator=None,
**attributor_kwargs) -> (N,)``; the attributions of the unperturbed inputs are computed by
the same attributor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._core import random
from .._core.attributor import call_on_copies
from .._core.budget import METRIC_BUDGET, rows_per_chunk
from .._core.errors import ArgumentError, check_batch_size, check_count
from .._core.inputs import as_tuple
from .._core.state import evaluating
from .._core.targets import model_output
from ._perturbed import need_generator
from .explanations import check_normalise

Measure = Callable[..., Tensor]
# score(a, a_tilde, x, x_tilde, out, out_tilde) -> (N,): one perturbed copy of the batch
Score = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None], Tensor]
Noise = Callable[[Tensor, torch.Generator | None], Tensor]


def uniform_noise(low: float, high: float) -> Noise:
    """Add U(low, high) noise to every element (Quantus's ``batch_uniform_noise``)."""
    return lambda x, g: x + low + (high - low) * random.uniform(tuple(x.shape), x, g)


def gaussian_noise(std: float, mean: float = 0.0) -> Noise:
    """Add N(mean, std²) noise to every element (Quantus's ``batch_gaussian_noise``)."""
    return lambda x, g: x + mean + random.normal(tuple(x.shape), std, x, g)


def _explanations(attributor: Callable[..., Any], inputs: Any, kwargs: dict[str, Any], n: int, times: int) -> Tensor:
    """``(N, times, D)``: the attributions of ``times`` copies of each example (``inputs``: rows
    ``i * times + s``)."""
    xs, was_tuple = as_tuple(inputs)
    attrs, _, _ = call_on_copies(attributor, xs, was_tuple, kwargs, n, times)
    return torch.cat([a.reshape(n, times, -1) for a in attrs], 2).detach()


def robustness(
    attributor: Callable[..., Any],
    score: Callable[..., Tensor],
    noise: Callable[[Tensor, Any], Tensor],  # (x, generator), or (x, sample index) without random_noise
    n_samples: int,
    *,
    reduce: str,
    abs: bool,
    normalise: bool | str,
    model: nn.Module | Callable[..., Any] | None,
    nan_when_prediction_changes: bool,
    outputs: bool = False,
    representation: Callable[[Any], Tensor] | None = None,
    batch_size: int | None,
    name: str,
    random_noise: bool = True,
) -> Measure:
    """The robustness template: ``score`` of every perturbed copy, reduced over the copies
    (``"mean"``/``"max"``, ignoring NaN), NaN for copies whose predicted class changed when
    ``nan_when_prediction_changes``. ``outputs``: the scores also receive the model's outputs
    (or ``representation(inputs)``) of the inputs and the copies."""
    check_count("n_samples", n_samples)
    check_batch_size(batch_size)
    check_normalise(normalise)
    if not callable(attributor):
        raise TypeError(f"{name} takes an attributor, e.g. pa.metrics.{name}(pa.saliency(model))")
    if (nan_when_prediction_changes or outputs) and model is None:
        raise ArgumentError(f"{name} compares the model's predictions: pass model=")

    def read(t: Tensor) -> Tensor:
        """``(N, C, D)`` explanations of ``C`` copies, normalised as each explainer call would be
        (``"batch"``: copy ``k`` of the whole batch by its largest magnitude)."""
        t = t.double()
        if normalise:
            peak = t.abs().amax(dim=(0, 2) if normalise == "batch" else 2, keepdim=True)
            t = t / torch.where(peak > 0, peak, torch.ones_like(peak))
        return t.abs() if abs else t

    need_logits = (outputs and representation is None) or nan_when_prediction_changes

    def look(batch: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """One forward of ``batch`` where its classes or outputs are needed: (outputs, what is scored)."""
        logits = _observe(model, None, batch) if need_logits else None
        seen = None if not outputs else logits if representation is None else _observe(model, representation, batch)
        return logits, seen

    def measure(inputs: Any, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
        if args:
            raise TypeError(f"{name}: pass the attributor's arguments by keyword (target=..., baselines=...)")
        if random_noise:
            need_generator(generator, name, "random perturbations")
        if getattr(attributor, "random", False):
            kwargs["generator"] = generator
        xs, was_tuple = as_tuple(inputs)
        if was_tuple:
            raise ArgumentError(f"{name} takes one input tensor")
        x = xs[0]
        n = x.shape[0]
        with torch.no_grad():
            a = read(_explanations(attributor, x, kwargs, n, 1))
            logits, out = look(x)
            classes = logits.argmax(-1) if nan_when_prediction_changes and logits is not None else None
            per = max(1, min(n_samples, rows_per_chunk(batch_size, (x,), n, METRIC_BUDGET) // n))
            scores = []
            for start in range(0, n_samples, per):
                c = min(per, n_samples - start)
                drawn = [noise(x, generator) if random_noise else noise(x, start + k) for k in range(c)]
                copies = torch.stack(drawn, 1).reshape(n * c, *x.shape[1:])  # row i * c + k: copy k of example i
                tilde = read(_explanations(attributor, copies, kwargs, n, c)).reshape(n * c, -1)
                logits, seen = look(copies)
                s = score(_each(a[:, 0], c), tilde, _each(x.reshape(n, -1), c), copies.reshape(n * c, -1),
                          _each(out, c), seen)  # fmt: skip
                s = s.double().reshape(n, c)
                if classes is not None and logits is not None:
                    changed = logits.argmax(-1).reshape(n, c) != classes[:, None]
                    s = torch.where(changed, torch.full_like(s, float("nan")), s)
                scores.append(s)
            table = torch.cat(scores, 1)
        reduced = table.nanmean(1) if reduce == "mean" else _nanmax(table)
        return reduced.to(x.dtype if x.is_floating_point() else torch.get_default_dtype())

    return measure


def _each(t: Tensor | None, c: int) -> Tensor | None:
    """Each example's row repeated for its ``c`` copies."""
    return None if t is None else t.repeat_interleave(c, 0)


def _nanmax(t: Tensor) -> Tensor:
    filled = torch.where(torch.isnan(t), torch.full_like(t, -torch.inf), t).amax(1)
    return torch.where(torch.isnan(t).all(1), torch.full_like(filled, float("nan")), filled)


def _observe(model: Any, representation: Callable[[Any], Tensor] | None, x: Tensor) -> Tensor:
    """``(N, F)`` float64: the model's output (read by :func:`pyattrib._core.targets.model_output`) or
    ``representation(x)``, flattened per example."""
    with evaluating(model):
        out = representation(x) if representation is not None else model_output(model(x), x.shape[0])
    return out.reshape(x.shape[0], -1).double()


def _norm(t: Tensor, p: float = 2) -> Tensor:
    return torch.linalg.vector_norm(t.double(), p, dim=1)
