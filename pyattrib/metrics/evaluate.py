"""One call that scores several explanation methods with several metrics: a table with a row
per method and a column per metric, and a figure that ranks the methods."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError
from .._core.progress import progress
from .curves import Curve
from .randomisation import Randomisation

# the metrics whose larger scores are better; every other pyattrib metric is better smaller
HIGHER_IS_BETTER = {
    "region_perturbation", "faithfulness_correlation", "faithfulness_estimate", "monotonicity",
    "monotonicity_correlation", "sensitivity_n", "irof", "sufficiency", "consistency", "sparseness", "pointing_game",
    "attribution_localisation", "top_k_intersection", "relevance_mass_accuracy", "relevance_rank_accuracy", "auc",
    "focus", "completeness", "input_invariance", "insertion", "_localised", "efficient_mprt",
}  # fmt: skip


@dataclass
class Evaluation:
    """Scores of methods (rows) by metrics (columns).

    Args:
        scores: ``{method: {metric: mean score}}`` (NaN examples left out of the mean).
        per_example: ``{method: {metric: (N,) scores}}``.
        higher_is_better: ``{metric: bool}``: which way each metric ranks.

    Example:
        >>> table = pa.metrics.evaluate(model, x, y, attributors={"saliency": pa.saliency(model)},
        ...                             metrics={"sparseness": pa.metrics.sparseness()})
        >>> table.methods, table.metrics
        (['saliency'], ['sparseness'])
    """

    scores: dict[str, dict[str, float]]
    per_example: dict[str, dict[str, Tensor]] = field(repr=False)
    higher_is_better: dict[str, bool]

    @property
    def methods(self) -> list[str]:
        return list(self.scores)

    @property
    def metrics(self) -> list[str]:
        return list(self.higher_is_better)

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per method: ``{"method": name, metric: score, ...}``."""
        return [{"method": m, **row} for m, row in self.scores.items()]

    def ranks(self) -> dict[str, dict[str, int]]:
        """``{method: {metric: rank}}``: 1 plus the number of methods strictly better (ties share a
        rank; NaN ranks last)."""
        out: dict[str, dict[str, int]] = {m: {} for m in self.scores}
        for metric, higher in self.higher_is_better.items():
            values = torch.tensor([self.scores[m][metric] for m in self.scores], dtype=torch.float64)
            key = torch.where(torch.isnan(values), torch.full_like(values, -torch.inf), values if higher else -values)
            for i, method in enumerate(self.methods):
                out[method][metric] = 1 + int((key > key[i]).sum())
        return out

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` indexed by method (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows()).set_index("method")

    def __str__(self) -> str:
        width = max(len("method"), *(len(m) for m in self.methods))
        cols = [max(len(c), 9) for c in self.metrics]
        arrows = [c + (" ↑" if self.higher_is_better[c] else " ↓") for c in self.metrics]
        lines = ["  ".join(["method".ljust(width), *(a.rjust(w + 2) for a, w in zip(arrows, cols))])]
        for m, row in self.scores.items():
            cells = (f"{row[c]:.4g}".rjust(w + 2) for c, w in zip(self.metrics, cols))
            lines.append("  ".join([m.ljust(width), *cells]))
        return "\n".join(lines)


def _per_example(value: Any) -> Tensor:
    """A metric's result as one score per example: a curve's AUC, the last randomisation's
    correlation, the mean over a step axis."""
    if isinstance(value, Curve):
        return value.auc
    if isinstance(value, Randomisation):
        return value.correlation[-1]
    value = torch.as_tensor(value).detach()
    if value.dim() == 0:
        return value.reshape(1)
    return value.double().reshape(value.shape[0], -1).mean(1)


def _call(metric: Callable[..., Any], attributor: Callable[..., Any], a: Any, inputs: Any, targets: Any, masks: Any,
          generator: torch.Generator | None, kwargs: dict[str, Any]) -> tuple[Any, Callable[..., Any]]:  # fmt: skip
    """The metric's result for one method, and the function that computed it (a factory's product)."""
    names = list(inspect.signature(metric).parameters)
    if names[:2] == ["attributions", "masks"]:
        if masks is None:
            raise ArgumentError("a localisation metric needs masks=: one segmentation mask per input")
        return metric(a, masks), metric
    if names[:1] == ["attributions"]:
        return metric(a), metric
    if names[:2] == ["inputs", "attributions"]:
        extra = {"generator": generator} if "generator" in names else {}
        target = {"target": targets} if "target" in names else {}
        return metric(inputs, a, **target, **extra), metric
    if len(names) == 1:  # a factory of the attributor: robustness or randomisation metrics built per method
        built = metric(attributor)
        extra = {"generator": generator} if "generator" in inspect.signature(built).parameters else {}
        return built(inputs, target=targets, **{**kwargs, **extra}), built
    raise ArgumentError(
        f"metric {getattr(metric, '__qualname__', metric)!r} has parameters {names}; pass a pyattrib metric "
        "(e.g. pa.metrics.pixel_flipping(model)) or a function of the attributor "
        "(e.g. lambda attributor: pa.metrics.avg_sensitivity(attributor))"
    )


def evaluate(
    model: Callable[..., Any],
    inputs: Any,
    targets: Any,
    *,
    attributors: Mapping[str, Callable[..., Any]],
    metrics: Mapping[str, Callable[..., Any]],
    masks: Any = None,
    generator: torch.Generator | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    show_progress: bool = False,
    **attributor_kwargs: Any,
) -> Evaluation:
    """Score every method with every metric on the same inputs.

    Each attributor explains ``inputs`` for ``targets`` once; each metric then scores the
    attributions. A metric is any pyattrib metric: one of the attributions alone
    (complexity), of attributions and ``masks`` (localisation), of inputs and attributions
    (faithfulness, axiomatic), or, for metrics that re-explain (robustness, randomisation), a
    function of the attributor, e.g. ``lambda attributor: pa.metrics.avg_sensitivity(attributor,
    n_samples=10)``. Random metrics share ``generator``. A metric's per-example result is
    reduced to one number per method: the mean over examples (NaN left out); a curve counts
    by its AUC, a result with a step axis by its mean over the steps.

    Args:
        model: The model the attributors explain (the metrics hold it already; kept so the call reads
            as what is evaluated).
        inputs: The inputs explained.
        targets: The classes explained.
        attributors: ``{name: attributor}``.
        metrics: ``{name: metric}``.
        masks: Segmentation masks for localisation metrics.
        generator: The generator of every random draw.
        higher_is_better: ``{metric name: bool}`` overriding pyattrib's direction of a metric.
        show_progress: Show a progress bar over (method, metric) pairs.
        **attributor_kwargs: Passed to every attributor call (e.g. ``baselines``).

    Returns:
        Evaluation: the table (``str()`` prints it, ``.to_pandas()`` converts it), its
        per-example scores and ranks; :func:`pyattrib.viz.evaluation` draws it.

    Example:
        >>> table = pa.metrics.evaluate(
        ...     model, x, y, attributors={"saliency": pa.saliency(model), "x*grad": pa.input_x_gradient(model)},
        ...     metrics={"sparseness": pa.metrics.sparseness(), "estimate": pa.metrics.faithfulness_estimate(model)})
        >>> sorted(table.ranks()["saliency"].values()) in ([1, 1], [1, 2], [2, 2])
        True

    References:
        - Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible Evaluation of Neural
          Network Explanations and Beyond", JMLR 2023. https://arxiv.org/abs/2202.06861
    """
    if not attributors or not metrics:
        raise ArgumentError("evaluate needs at least one attributor and one metric: attributors={...}, metrics={...}")
    directions: dict[str, bool] = {}
    scores: dict[str, dict[str, float]] = {}
    per_example: dict[str, dict[str, Tensor]] = {}
    bar = progress(None, show_progress, "evaluate", len(attributors) * len(metrics))
    for method, attributor in attributors.items():
        kwargs = dict(attributor_kwargs)
        if getattr(attributor, "random", False):
            kwargs["generator"] = generator
        with torch.no_grad():
            a = attributor(inputs, target=targets, **kwargs)
        if getattr(attributor, "returns_delta", False):
            a = a[0]
        scores[method], per_example[method] = {}, {}
        for name, metric in metrics.items():
            result, computed = _call(metric, attributor, a, inputs, targets, masks, generator, kwargs)
            base = getattr(computed, "__qualname__", "").split(".")[0]
            directions[name] = (higher_is_better or {}).get(name, base in HIGHER_IS_BETTER)
            values = _per_example(result)
            per_example[method][name] = values
            finite = values[~torch.isnan(values.double())]
            scores[method][name] = float(finite.double().mean()) if len(finite) else float("nan")
            bar.update(1)
    bar.close()
    return Evaluation(scores, per_example, directions)
