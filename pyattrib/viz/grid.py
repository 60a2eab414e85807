"""A labelled grid of scores: patching maps (layer x head, layer x position)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import to_numpy
from .shap_plots import _axes


@needs("matplotlib", "viz")
def grid_map(
    values: Any,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    ax: Any = None,
    figsize: tuple[float, float] = (6, 3),
):
    """A 2-D grid of scores on one symmetric colour scale ``[-m, m]`` (``m`` the largest
    magnitude), each cell's value written in it when the grid is small: the (layer x head) and
    (layer x position) maps of :mod:`pyattrib.patching`. Returns ``(figure, axes)``.

    Args:
        values: Scores ``(R, C)`` (average a batch first, e.g. ``scores.mean(0)``).
        row_labels: A label per row (default ``L0, L1, ...``).
        col_labels: A label per column (default the column index).
        title: The axes' title.
        ax: Draw into this matplotlib ``Axes``.
        figsize: The figure size, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.grid_map(torch.randn(2, 4), title="heads")
        >>> ax.images[0].get_array().shape
        (2, 4)
    """
    array = to_numpy(values, "values")
    if array.ndim != 2:
        raise ArgumentError(f"values has shape {array.shape}; grid_map draws a 2-D grid (average the batch first)")
    rows, cols = array.shape
    scale = float(np.abs(array).max()) or 1.0
    ax = _axes(ax, figsize)
    image = ax.imshow(array, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
    ax.set_yticks(range(rows), list(row_labels) if row_labels is not None else [f"L{r}" for r in range(rows)])
    if col_labels is not None:
        ax.set_xticks(range(cols), list(col_labels), fontsize=8)
    if rows * cols <= 32:
        for (r, c), v in np.ndenumerate(array):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label=f"score (scale +/- {scale:.3g})")
    ax.figure.tight_layout()
    return ax.figure, ax
