"""Captum's ``captum.attr.visualization`` functions over :mod:`pyattrib.viz`.

Same names, arguments, defaults and normalised values. With ``use_pyplot=True`` (Captum's
default) the figure is made with pyplot and shown, as Captum does; :mod:`pyattrib.viz` itself
never shows. ``visualize_timeseries_attr`` also works with matplotlib >= 3.9, where Captum's
fails (it calls the removed ``matplotlib.cm.get_cmap``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .. import viz
from ..viz.text import HTML, STYLE, token_marks

__all__ = [
    "VisualizationDataRecord",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
    "visualize_text",
    "visualize_timeseries_attr",
]


def _figure(plt_fig_axis: Any, use_pyplot: bool, fig_size: tuple, **subplots: Any):
    if plt_fig_axis is not None:
        return plt_fig_axis
    if use_pyplot:
        import matplotlib.pyplot as plt

        return plt.subplots(figsize=fig_size, **subplots)
    from matplotlib.figure import Figure

    figure = Figure(figsize=fig_size)
    return figure, figure.subplots(**subplots)


def _show(use_pyplot: bool) -> None:
    if use_pyplot:
        import matplotlib.pyplot as plt

        plt.show()


def visualize_image_attr(
    attr: Any,
    original_image: Any = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    plt_fig_axis: Any = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[int, int] = (6, 6),
    use_pyplot: bool = True,
):
    """Captum's ``visualize_image_attr``: one (H, W[, C]) attribution; returns ``(figure, axis)``."""
    figure, axis = _figure(plt_fig_axis, use_pyplot, fig_size)
    viz.image_attr(attr, original_image, method, sign, outlier_perc, cmap, alpha_overlay, show_colorbar, title, axis)
    _show(use_pyplot)
    return figure, axis


def visualize_image_attr_multiple(
    attr: Any,
    original_image: Any,
    methods: list[str],
    signs: list[str],
    titles: list[str] | None = None,
    fig_size: tuple[int, int] = (8, 6),
    use_pyplot: bool = True,
    **kwargs: Any,
):
    """Captum's ``visualize_image_attr_multiple``: the views in a 1 x k row; returns ``(figure, axes)``."""
    figure = None
    if use_pyplot:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=fig_size)
    figure, axes = viz.image_attr_multiple(
        attr, original_image, methods, signs, titles, fig_size, figure, colorbar=kwargs.pop("show_colorbar", False),
        **kwargs,
    )  # fmt: skip
    _show(use_pyplot)
    return figure, axes[0] if len(axes) == 1 else axes


def visualize_timeseries_attr(
    attr: Any,
    data: Any,
    x_values: Any = None,
    method: str = "overlay_individual",
    sign: str = "absolute_value",
    channel_labels: list[str] | None = None,
    channels_last: bool = True,
    plt_fig_axis: Any = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.7,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[int, int] = (6, 6),
    use_pyplot: bool = True,
    **pyplot_kwargs: Any,
):
    """Captum's ``visualize_timeseries_attr``; returns ``(figure, axes)``."""
    panels = 1 if method == "overlay_combined" else (attr.shape[-1] if channels_last else attr.shape[0])
    figure, axes = _figure(plt_fig_axis, use_pyplot, fig_size, nrows=panels, sharex=True)
    viz.timeseries_attr(
        attr, data, x_values, method, sign, channel_labels, channels_last, outlier_perc, cmap, alpha_overlay,
        show_colorbar, title, axes=axes, **pyplot_kwargs,
    )  # fmt: skip
    _show(use_pyplot)
    return figure, axes


class VisualizationDataRecord:
    """One row of :func:`visualize_text`: token attributions with the prediction they explain."""

    __slots__ = ("word_attributions", "pred_prob", "pred_class", "true_class", "attr_class", "attr_score",
                 "raw_input_ids", "convergence_score")  # fmt: skip

    def __init__(self, word_attributions, pred_prob, pred_class, true_class, attr_class, attr_score, raw_input_ids,
                 convergence_score) -> None:  # fmt: skip
        self.word_attributions = word_attributions
        self.pred_prob = pred_prob
        self.pred_class = pred_class
        self.true_class = true_class
        self.attr_class = attr_class
        self.attr_score = attr_score
        self.raw_input_ids = raw_input_ids
        self.convergence_score = convergence_score


def format_word_importances(words: Sequence[str], importances: Any) -> str:
    """Captum's table cell of coloured words; scores are used as they are (clipped to [-1, 1])."""
    if importances is None or len(importances) == 0:
        return "<td></td>"
    scores = viz.scale.to_numpy(importances, "importances").reshape(-1)
    return f"<td>{token_marks(list(words), scores[: len(words)], 1.0)}</td>"


def visualize_text(datarecords: Iterable[VisualizationDataRecord], legend: bool = True):
    """Captum's ``visualize_text``: a table of records, displayed in IPython when it is present.

    Returns IPython's ``HTML`` when IPython is installed (as Captum), else pyattrib's
    :class:`pyattrib.viz.HTML` string (Captum requires IPython).
    """
    import html

    cells = "".join(
        "<tr>"
        + "".join(
            f"<td><b>{html.escape(str(v))}</b></td>"
            for v in (r.true_class, f"{r.pred_class} ({r.pred_prob:.2f})", r.attr_class, f"{r.attr_score:.2f}")
        )
        + format_word_importances(r.raw_input_ids, r.word_attributions)
        + "</tr>"
        for r in datarecords
    )
    head = ("<tr><th>True Label</th><th>Predicted Label</th><th>Attribution Label</th><th>Attribution Score</th>"
            "<th>Word Importance</th></tr>")  # fmt: skip
    key = viz.text.colour_key(1.0) if legend else ""
    page = HTML(f'<style>{STYLE}</style><table class="pa-text">{head}{cells}</table>{key}')
    try:
        from IPython.display import HTML as IPythonHTML
        from IPython.display import display
    except ImportError:
        return page
    shown = IPythonHTML(str(page))
    display(shown)
    return shown
