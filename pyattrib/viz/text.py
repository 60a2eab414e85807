"""Token attributions as self-contained HTML and as matplotlib figures.

Every row of a call shares one scale ``t`` (by default the largest ``|score|`` over all rows),
so a token's colour means the same thing in every sentence: a score ``s`` is drawn at
``v = clip(s / t, -1, 1)``, green for ``v > 0`` (lightness ``100 - 50 v``%) and red for
``v < 0`` (lightness ``100 - 40 |v|``%), white at 0. With ``scale=1`` these are Captum's
``visualize_text`` colours.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import to_numpy

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1em;color:#222}
table.pa-text{border-collapse:collapse}
table.pa-text td,table.pa-text th{padding:4px 8px;text-align:left;vertical-align:top}
table.pa-text th{border-bottom:1px solid #999}
mark.pa-tok{padding:1px 3px;margin:0 1px;border-radius:3px;color:#000;line-height:1.9}
.pa-key{margin-top:8px;font-size:0.9em}
.pa-bar{display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #999;
 background:linear-gradient(to right,hsl(0,75%,60%),hsl(0,75%,100%),hsl(120,75%,50%))}
"""


class HTML(str):
    """An HTML string that notebooks render (``_repr_html_``) and files store as is.

    Example:
        >>> page = pa.viz.text_attr(["a", "film"], torch.tensor([0.5, -0.5]))
        >>> isinstance(page, pa.viz.HTML), str(page).startswith("<!DOCTYPE html>")
        (True, True)
    """

    def _repr_html_(self) -> str:
        return str(self)

    def save(self, path: str) -> str:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self)
        return path


def token_colour(value: float) -> str:
    """CSS colour of a normalised score in [-1, 1] (see the module docstring)."""
    value = max(-1.0, min(1.0, float(value)))
    if value > 0:
        return f"hsl(120, 75%, {100 - int(50 * value)}%)"
    return f"hsl(0, 75%, {100 - int(-40 * value)}%)"


def token_rgb(value: float) -> tuple[float, float, float]:
    """The same colour as :func:`token_colour`, as an RGB triple for matplotlib."""
    value = max(-1.0, min(1.0, float(value)))
    hue, lightness = (1 / 3, 100 - int(50 * value)) if value > 0 else (0.0, 100 - int(-40 * value))
    return colorsys.hls_to_rgb(hue, lightness / 100, 0.75)


def rows_of(tokens: Sequence[Any], scores: Any) -> tuple[list[list[str]], list[np.ndarray]]:
    """One sentence or several as (token lists, score arrays), checked for matching lengths."""
    single = len(tokens) == 0 or isinstance(tokens[0], str)
    token_rows = [list(tokens)] if single else [list(row) for row in tokens]
    if single:
        score_rows = [to_numpy(scores, "scores").reshape(-1)]
    else:
        score_rows = [to_numpy(row, "scores").reshape(-1) for row in scores]
    if len(score_rows) != len(token_rows):
        raise ArgumentError(f"tokens has {len(token_rows)} rows, scores {len(score_rows)}; give one score row per row")
    for i, (toks, vals) in enumerate(zip(token_rows, score_rows)):
        if len(toks) != len(vals):
            raise ArgumentError(f"row {i}: {len(toks)} tokens but {len(vals)} scores; give one score per token")
    return token_rows, score_rows


def shared_scale(score_rows: Sequence[np.ndarray], scale: float | None) -> float:
    if scale is not None:
        if not scale > 0:
            raise ArgumentError(f"scale must be a positive number; got {scale!r}")
        return float(scale)
    peak = max((float(np.abs(row).max()) for row in score_rows if row.size), default=0.0)
    return peak if peak > 0 else 1.0


def _display(token: str) -> str:
    return "#" + token.strip("<>") if token.startswith("<") and token.endswith(">") else token


def token_marks(tokens: Sequence[str], scores: np.ndarray, scale: float) -> str:
    """``<mark>`` elements, one per token, coloured on ``scale``, the raw score in the tooltip."""
    return "".join(
        f'<mark class="pa-tok" style="background-color:{token_colour(s / scale)}" title="{s:.4g}">'
        f"{html.escape(_display(t))}</mark>"
        for t, s in zip(tokens, scores)
    )


def colour_key(scale: float) -> str:
    return (
        f'<div class="pa-key"><b>Colour key</b> (shared by all rows): '
        f'<span>{-scale:.3g}</span> <span class="pa-bar"></span> <span>{scale:.3g}</span>'
        f" &nbsp; red: against the target, white: neutral, green: for the target; score / {scale:.3g}</div>"
    )


def text_attr(
    tokens: Sequence[Any],
    scores: Any,
    labels: Sequence[str] | None = None,
    scale: float | None = None,
    title: str | None = None,
    full_page: bool = True,
) -> HTML:
    """Tokens coloured by their scores as one self-contained HTML page (or fragment).

    ``tokens`` is a list of strings (one sentence) or a list of such lists; ``scores`` a 1-D
    tensor/array per sentence. ``labels`` puts a caption before each row (e.g. the true and
    predicted class). All rows share one colour scale (``scale``, default the largest ``|score|``);
    the key states it. The page has no scripts, fonts or links to load.

    Args:
        tokens: The tokens (strings), one list per row.
        scores: One score per token, per row.
        labels: A label per row (e.g. ``"true: pos, predicted: neg"``).
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.
        title: A title.
        full_page: Return a whole HTML page (else a fragment to embed).

    Returns:
        HTML: the page; it shows itself in a notebook and ``str()`` gives its text.

    Example:
        >>> page = pa.viz.text_attr(["a", "good", "film"], torch.tensor([0.0, 0.9, -0.1]))
        >>> "good" in str(page)
        True
    """
    token_rows, score_rows = rows_of(tokens, scores)
    if labels is not None and len(labels) != len(token_rows):
        raise ArgumentError(f"labels has {len(labels)} entries for {len(token_rows)} rows; give one per row")
    t = shared_scale(score_rows, scale)
    head = "<tr><th>example</th><th>tokens</th></tr>" if labels is not None else ""
    body = "".join(
        "<tr>"
        + (f"<td>{html.escape(str(labels[i]))}</td>" if labels is not None else "")
        + f"<td>{token_marks(toks, vals, t)}</td></tr>"
        for i, (toks, vals) in enumerate(zip(token_rows, score_rows))
    )
    fragment = f'<div class="pa-text-block"><table class="pa-text">{head}{body}</table>{colour_key(t)}</div>'
    if not full_page:
        return HTML(f"<style>{STYLE}</style>{fragment}")
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    name = html.escape(title or "pyattrib token attributions")
    return HTML(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name}</title>'
        f"<style>{STYLE}</style></head><body>{heading}{fragment}</body></html>"
    )


@needs("matplotlib", "viz")
def text_attr_figure(
    tokens: Sequence[Any],
    scores: Any,
    labels: Sequence[str] | None = None,
    scale: float | None = None,
    title: str | None = None,
    width: float = 8.0,
):
    """The :func:`text_attr` picture as a matplotlib figure with a colour bar; returns ``(figure, axes)``.

    Args:
        tokens: The tokens (strings), one list per row.
        scores: One score per token, per row.
        labels: A label per row (e.g. ``"true: pos, predicted: neg"``).
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.
        title: A title.
        width: The figure's width, in inches.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, ax = pa.viz.text_attr_figure(["a", "good", "film"], torch.tensor([0.0, 0.9, -0.1]))
        >>> type(fig).__name__
        'Figure'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    token_rows, score_rows = rows_of(tokens, scores)
    t = shared_scale(score_rows, scale)
    height = 1.3 + 0.45 * len(token_rows) + (0.4 if title else 0.1)  # inches: colour bar + label, rows, title
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes((0.02, 1.2 / height, 0.96, 0.45 * len(token_rows) / height))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(token_rows), 0)
    renderer = FigureCanvasAgg(figure).get_renderer()  # token widths need a renderer to lay out a line
    for i, (toks, vals) in enumerate(zip(token_rows, score_rows)):
        x = 0.0
        if labels is not None:
            ax.text(x, i + 0.5, f"{labels[i]}:", va="center", fontsize=9, weight="bold")
            x = 0.18
        for tok, val in zip(toks, vals):
            mark = ax.text(x, i + 0.5, _display(tok), va="center", fontsize=10,
                           bbox={"facecolor": token_rgb(val / t), "edgecolor": "none", "pad": 1.5})  # fmt: skip
            extent = mark.get_window_extent(renderer).transformed(ax.transAxes.inverted())
            x += extent.width + 0.012
    steps = np.linspace(-1, 1, 101)
    bar_axes = figure.add_axes((0.2, 0.6 / height, 0.6, 0.15 / height))
    bar = figure.colorbar(ScalarMappable(Normalize(-t, t), ListedColormap([token_rgb(v) for v in steps])),
                          cax=bar_axes, orientation="horizontal")  # fmt: skip
    bar.set_label(f"score (shared scale: ±{t:.3g}; red against, green for the target)", fontsize=8)
    if title:
        ax.set_title(title)
    return figure, ax
