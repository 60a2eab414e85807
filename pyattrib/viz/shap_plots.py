"""The plots SHAP users read, from any per-feature attribution (Shapley, Owen, IG, ...):
waterfall (one example), bar (mean |value|), beeswarm (every example) and heatmap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import to_numpy

POSITIVE, NEGATIVE = "#ff0051", "#008bfb"  # shap's red and blue


def _table(values: Any, names: Sequence[str] | None, name: str = "values") -> tuple[np.ndarray, list[str]]:
    array = to_numpy(values, name)
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2:
        raise ArgumentError(f"{name} must be (N, features) or (features,); got shape {array.shape}")
    labels = list(names) if names is not None else [f"x{j}" for j in range(array.shape[1])]
    if len(labels) != array.shape[1]:
        raise ArgumentError(
            f"feature_names has {len(labels)} names for {array.shape[1]} features; give one per feature"
        )
    return array, labels


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).subplots()


@needs("matplotlib", "viz")
def waterfall(
    values: Any,
    base_value: float,
    feature_names: Sequence[str] | None = None,
    data: Any = None,
    top: int = 10,
    ax: Any = None,
    figsize: tuple[float, float] = (7, 5),
):
    """One example's attributions as steps from ``base_value`` (e.g. ``f(x')``) to ``base_value +
    sum(values)`` (``f(x)`` for efficient methods), largest magnitude on top; features past
    ``top`` are summed into one step. Returns ``(figure, axes)``.

    Args:
        values: One example's attributions ``(F,)``.
        base_value: Where the steps start.
        feature_names: A name per feature; default ``x0, x1, ...``.
        data: The example's feature values ``(F,)``, shown beside the names.
        top: Features shown as their own step.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.waterfall(torch.tensor([0.5, -0.2, 0.1]), 1.0, ["a", "b", "c"])
        >>> len(ax.patches)
        3
    """
    array, names = _table(values, feature_names)
    if array.shape[0] != 1:
        raise ArgumentError(f"waterfall draws one example; got {array.shape[0]} rows (index one: values[i])")
    v = array[0]
    shown = np.argsort(-np.abs(v), kind="stable")[:top]
    rest = np.setdiff1d(np.arange(len(v)), shown)
    steps = [
        (names[j] + (f" = {to_numpy(data, 'data').reshape(-1)[j]:.3g}" if data is not None else ""), v[j])
        for j in shown
    ]
    if len(rest):
        steps.append((f"{len(rest)} other features", float(v[rest].sum())))
    ax = _axes(ax, figsize)
    start = base_value + sum(s for _, s in steps)  # drawn top-down from f(x) back to the base
    position = start
    for row, (_, step) in enumerate(steps):
        left = position - step
        ax.barh(len(steps) - 1 - row, step, left=left, color=POSITIVE if step >= 0 else NEGATIVE)
        ax.text(
            left + step / 2, len(steps) - 1 - row, f"{step:+.3g}", ha="center", va="center", fontsize=8, color="white"
        )
        position = left
    ax.set_yticks(range(len(steps)), [label for label, _ in reversed(steps)], fontsize=8)
    ax.axvline(base_value, color="grey", lw=0.8, ls="--")
    ax.axvline(start, color="grey", lw=0.8)
    ax.set_xlabel(f"base value {base_value:.3g}  ->  {start:.3g}")
    ax.figure.tight_layout()
    return ax.figure, ax


@needs("matplotlib", "viz")
def bar(
    values: Any,
    feature_names: Sequence[str] | None = None,
    top: int = 10,
    ax: Any = None,
    figsize: tuple[float, float] = (7, 5),
):
    """Global importance: the mean absolute attribution of each feature over the examples,
    largest first (one example: its absolute values). Returns ``(figure, axes)``.

    Args:
        values: Attributions ``(N, F)`` or ``(F,)``.
        feature_names: A name per feature.
        top: Features shown.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.bar(torch.randn(20, 4), top=3)
        >>> len(ax.patches)
        3
    """
    array, names = _table(values, feature_names)
    mean = np.abs(array).mean(0)
    order = np.argsort(-mean, kind="stable")[:top]
    ax = _axes(ax, figsize)
    ax.barh(range(len(order))[::-1], mean[order], color=POSITIVE)
    for k, j in enumerate(order):
        ax.text(mean[j], len(order) - 1 - k, f" {mean[j]:.3g}", va="center", fontsize=8)
    ax.set_yticks(range(len(order))[::-1], [names[j] for j in order], fontsize=8)
    ax.set_xlabel("mean |attribution|")
    ax.figure.tight_layout()
    return ax.figure, ax


@needs("matplotlib", "viz")
def beeswarm(
    values: Any,
    data: Any = None,
    feature_names: Sequence[str] | None = None,
    top: int = 10,
    ax: Any = None,
    figsize: tuple[float, float] = (7, 5),
):
    """Every example's attribution of each feature as a dot, features ordered by mean
    ``|value|``, dots coloured by the feature's value (low blue, high red, within each feature)
    and spread vertically where they crowd. Returns ``(figure, axes)``.

    Args:
        values: Attributions ``(N, F)``.
        data: The examples' feature values ``(N, F)`` for the colours (None: one colour).
        feature_names: A name per feature.
        top: Features shown.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.beeswarm(torch.randn(30, 4), torch.randn(30, 4))
        >>> len(ax.collections)
        4
    """
    array, names = _table(values, feature_names)
    colours = None if data is None else _table(data, feature_names, "data")[0]
    if colours is not None and colours.shape != array.shape:
        raise ArgumentError(f"data has shape {colours.shape}; it must match values' {array.shape}")
    order = np.argsort(-np.abs(array).mean(0), kind="stable")[:top]
    ax = _axes(ax, figsize)
    span = np.ptp(array) or 1.0
    for k, j in enumerate(order):
        row = len(order) - 1 - k
        x = array[:, j]
        bins = np.round((x - x.min()) / span * 50)  # dots in the same bin spread up and down
        _, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
        rank = np.zeros(len(x))
        for b in range(len(counts)):
            members = np.nonzero(inverse == b)[0]
            rank[members] = (np.arange(len(members)) - (len(members) - 1) / 2) * 0.4 / max(counts.max(), 1)
        c = POSITIVE if colours is None else colours[:, j]
        ax.scatter(x, row + rank, c=c, cmap=None if colours is None else "coolwarm", s=10)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order))[::-1], [names[j] for j in order], fontsize=8)
    ax.set_xlabel("attribution (colour: feature value, low blue to high red)")
    ax.figure.tight_layout()
    return ax.figure, ax


@needs("matplotlib", "viz")
def heatmap(
    values: Any,
    feature_names: Sequence[str] | None = None,
    top: int = 10,
    ax: Any = None,
    figsize: tuple[float, float] = (8, 4),
):
    """Examples (columns) by features (rows, by mean ``|value|``): each attribution's colour on
    one symmetric scale, ``[-m, m]`` with ``m`` the largest magnitude shown. Returns ``(figure, axes)``.

    Args:
        values: Attributions ``(N, F)``.
        feature_names: A name per feature.
        top: Features shown.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.heatmap(torch.randn(12, 5))
        >>> ax.images[0].get_array().shape
        (5, 12)
    """
    array, names = _table(values, feature_names)
    order = np.argsort(-np.abs(array).mean(0), kind="stable")[:top]
    shown = array[:, order].T
    scale = float(np.abs(shown).max()) or 1.0
    ax = _axes(ax, figsize)
    image = ax.imshow(shown, aspect="auto", cmap="coolwarm", vmin=-scale, vmax=scale, interpolation="nearest")
    ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize=8)
    ax.set_xlabel("examples")
    ax.figure.colorbar(image, ax=ax, label=f"attribution (scale +/- {scale:.3g})")
    ax.figure.tight_layout()
    return ax.figure, ax


def _force_segments(values: Any, base_value: float, names: Sequence[str] | None) -> tuple[list, float]:
    array, labels = _table(values, names)
    if array.shape[0] != 1:
        raise ArgumentError(f"force draws one example; got {array.shape[0]} rows (index one: values[i])")
    v = array[0]
    output = base_value + float(v.sum())
    # positive pushes end at f(x) from the left, negative ones start there and run right; largest nearest f(x)
    segments = []
    for sign in (1, -1):
        idx = [j for j in np.argsort(-np.abs(v), kind="stable") if np.sign(v[j]) == sign]
        edge = output
        for j in idx:
            start, end = (edge - v[j], edge) if sign > 0 else (edge, edge - v[j])
            segments.append((labels[j], float(v[j]), start, end))
            edge = start if sign > 0 else end
    return segments, output


@needs("matplotlib", "viz")
def force(
    values: Any,
    base_value: float,
    feature_names: Sequence[str] | None = None,
    ax: Any = None,
    figsize: tuple[float, float] = (10, 2.2),
):
    """One example as forces on a line: features raising the output (red) push from the left up
    to ``f(x) = base_value + sum(values)``, features lowering it (blue) push from the right back to
    it; the largest sit next to ``f(x)``. Returns ``(figure, axes)``; :func:`force_html` draws the
    same as a self-contained HTML page.

    Args:
        values: One example's attributions ``(F,)``.
        base_value: The output the forces start from (e.g. ``f(x')``).
        feature_names: A name per feature.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.force(torch.tensor([0.5, -0.2, 0.1]), 1.0, ["a", "b", "c"])
        >>> len(ax.patches)
        3
    """
    segments, output = _force_segments(values, base_value, feature_names)
    ax = _axes(ax, figsize)
    for label, value, start, end in segments:
        ax.barh(0, end - start, left=start, height=0.4, color=POSITIVE if value > 0 else NEGATIVE, edgecolor="white")
        if abs(end - start) > 0.04 * (max(e for *_, e in segments) - min(s for *_, s, _ in segments) or 1):
            ax.text((start + end) / 2, -0.35, f"{label}\n{value:+.3g}", ha="center", va="top", fontsize=7)
    ax.axvline(output, color="black", lw=1)
    ax.axvline(base_value, color="grey", lw=0.8, ls="--")
    ax.set_yticks([])
    ax.set_ylim(-1.0, 0.6)
    ax.set_title(f"f(x) = {output:.3g}   (base value {base_value:.3g})", fontsize=9)
    ax.figure.tight_layout()
    return ax.figure, ax


def force_html(values: Any, base_value: float, feature_names: Sequence[str] | None = None) -> Any:
    """:func:`force` as a self-contained HTML page (inline SVG: no scripts, fonts or links).

    Args:
        values: One example's attributions ``(F,)``.
        base_value: The output the forces start from.
        feature_names: A name per feature.

    Returns:
        HTML: the page (``.save(path)``; notebooks render it).

    Example:
        >>> page = pa.viz.force_html(torch.tensor([0.5, -0.2]), 0.0, ["a", "b"])
        >>> "<svg" in page and "<script" not in page
        True
    """
    import html as escape

    from .text import HTML

    segments, output = _force_segments(values, base_value, feature_names)
    low = min([base_value, output] + [s for *_, s, _ in segments])
    high = max([base_value, output] + [e for *_, e in segments])
    span = (high - low) or 1.0
    x = lambda t: 20 + 760 * (t - low) / span  # noqa: E731
    parts = []
    for label, value, start, end in segments:
        colour = POSITIVE if value > 0 else NEGATIVE
        name = escape.escape(f"{label} {value:+.3g}")
        parts.append(f'<rect x="{x(start):.1f}" y="30" width="{max(x(end) - x(start), 0.5):.1f}" height="24" '
                     f'fill="{colour}" stroke="white"><title>{name}</title></rect>')  # fmt: skip
        parts.append(
            f'<text x="{(x(start) + x(end)) / 2:.1f}" y="72" font-size="10" text-anchor="middle">{name}</text>'
        )
    parts.append(f'<line x1="{x(output):.1f}" x2="{x(output):.1f}" y1="20" y2="60" stroke="black"/>')
    parts.append(f'<text x="{x(output):.1f}" y="14" font-size="11" text-anchor="middle">f(x) = {output:.3g}</text>')
    parts.append(f'<line x1="{x(base_value):.1f}" x2="{x(base_value):.1f}" y1="24" y2="58" stroke="grey" '
                 'stroke-dasharray="3,2"/>')  # fmt: skip
    svg = f'<svg width="800" height="90">{"".join(parts)}</svg>'  # inline SVG in HTML5: no namespace needed
    return HTML(f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>force</title></head><body>'
                f"<p>base value {base_value:.3g}</p>{svg}</body></html>")  # fmt: skip
