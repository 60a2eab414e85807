"""Tabular attributions: per-feature importance of one or several methods as grouped bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import to_numpy


@needs("matplotlib", "viz")
def feature_attr(
    attributions: Mapping[str, Any],
    feature_names: Sequence[str] | None = None,
    top: int | None = 12,
    title: str | None = None,
    figsize: tuple[float, float] = (10, 5),
    ax: Any = None,
):
    """Grouped bars: each method's share of mean ``|attribution|`` per feature; returns ``(figure, axes)``.

    ``attributions`` maps a method name to (N, F) attributions (or one (F,) row). For each
    method the bar of feature ``j`` is ``mean_n |a_nj| / sum_k mean_n |a_nk|`` (stated on the
    y axis), so methods with different units compare. Features are ordered by the first
    method; ``top`` keeps the largest.

    Args:
        attributions: Attributions shaped like the inputs.
        feature_names: A name per feature; default ``f0, f1, ...``.
        top: Show this many features, largest share first (``None``: all).
        title: A title.
        figsize: The figure size, in inches.
        ax: Draw into this matplotlib ``Axes`` instead of a new figure.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> methods = {"IG": torch.randn(5, 4), "saliency": torch.randn(5, 4)}
        >>> fig, ax = pa.viz.feature_attr(methods, ["a", "b", "c", "d"])
        >>> type(fig).__name__
        'Figure'
    """
    if not attributions:
        raise ArgumentError("attributions is empty; map at least one method name to its (N, F) attributions")
    shares = {}
    for name, values in attributions.items():
        array = to_numpy(values, f"attributions[{name!r}]")
        array = array.reshape(1, -1) if array.ndim == 1 else array
        if array.ndim != 2:
            raise ArgumentError(f"attributions[{name!r}] must be (N, features) or (features,); got {array.shape}")
        mean = np.abs(array).mean(axis=0)
        shares[name] = mean / mean.sum() if mean.sum() > 0 else mean
    widths = {len(s) for s in shares.values()}
    if len(widths) != 1:
        raise ArgumentError(f"every method must attribute the same features; got widths {sorted(widths)}")
    count = widths.pop()
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(count)]
    if len(names) != count:
        raise ArgumentError(f"feature_names has {len(names)} names for {count} features; give one per feature")
    order = np.argsort(-next(iter(shares.values())), kind="stable")[: top or count]
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=figsize).subplots()
    width = 0.8 / len(shares)
    for k, (name, share) in enumerate(shares.items()):
        ax.bar(np.arange(len(order)) + k * width, share[order], width, label=name)
    ticks = np.arange(len(order)) + 0.4 - width / 2
    ax.set_xticks(ticks, [names[j] for j in order], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of mean |attribution| (each method sums to 1)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure, ax
