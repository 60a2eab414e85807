"""The figure of :func:`pyattrib.metrics.evaluate`: methods ranked metric by metric."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.errors import needs
from .shap_plots import _axes


@needs("matplotlib", "viz")
def evaluation(table: Any, ax: Any = None, figsize: tuple[float, float] | None = None):
    """Methods (rows) against metrics (columns), each cell coloured by the method's rank for that
    metric (dark: best) and labelled with its score; the metric names carry ↑ or ↓ for the
    direction that is better, and the rows are sorted by mean rank (best first).

    Args:
        table: The :class:`pyattrib.metrics.Evaluation` of :func:`pyattrib.metrics.evaluate`.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches (default from the table's size).

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> table = pa.metrics.evaluate(model, x, y, attributors={"saliency": pa.saliency(model)},
        ...                             metrics={"sparseness": pa.metrics.sparseness()})
        >>> fig, ax = pa.viz.evaluation(table)
    """
    ranks = table.ranks()
    methods = sorted(table.methods, key=lambda m: np.mean(list(ranks[m].values())))
    metrics = table.metrics
    grid = np.array([[ranks[m][c] for c in metrics] for m in methods], dtype=float)
    size = figsize or (1.4 + 1.3 * len(metrics), 0.8 + 0.45 * len(methods))
    ax = _axes(ax, size)
    fig = ax.figure
    if figsize is not None or fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    ax.imshow(grid, cmap="Greens_r", vmin=1, vmax=max(len(methods), 2) + 0.5, aspect="auto")
    for r, m in enumerate(methods):
        for c, metric in enumerate(metrics):
            dark = grid[r, c] <= (len(methods) + 1) / 3
            ax.text(c, r, f"{table.scores[m][metric]:.3g}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(len(metrics)), [c + (" ↑" if table.higher_is_better[c] else " ↓") for c in metrics],
                  rotation=30, ha="right")  # fmt: skip
    ax.set_yticks(range(len(methods)), methods)
    ax.set_title("methods ranked per metric (dark: best)")
    return fig, ax
