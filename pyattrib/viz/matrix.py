"""An answer's attribution matrix (prompt features x answer tokens) with its step scores as extra
rows, as matplotlib and as one self-contained HTML page (inseq's view)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .text import HTML, STYLE, token_colour


def _matrix(result: Any) -> tuple[np.ndarray, list[str], list[str], dict[str, np.ndarray]]:
    """``(features, answer tokens)`` values, names, and the step scores. With ``target_attr``
    (``attribute_target=True``) the answer's tokens follow the prompt's as rows, NaN where a token
    comes at or after the one it would explain (drawn blank)."""
    if getattr(result, "token_attr", None) is None:
        raise ArgumentError("result has no token_attr (LIME and KernelSHAP fit the whole answer): nothing to draw")
    data = result.token_attr.detach().cpu().float().numpy().T
    sources = list(result.input_tokens)
    prefix = getattr(result, "target_attr", None)
    if prefix is not None:
        below = prefix.detach().cpu().float().numpy().T  # (answer token j, answer token t)
        below[np.tril_indices(len(below))] = np.nan
        data = np.concatenate([data, below])
        sources += [f"{t} (answer)" for t in result.output_tokens]
    steps = {k: v.detach().cpu().float().numpy().reshape(-1) for k, v in (result.step_scores or {}).items()}
    return data, sources, list(result.output_tokens), steps


def token_matrix_html(result: Any, title: str | None = None) -> HTML:
    """The attribution matrix as an HTML table: one row per prompt feature, one column per answer
    token, cells coloured on one symmetric scale (the largest magnitude), then one row per step
    score (each on its own scale). No scripts, fonts or links to load.

    Args:
        result: An ``LLMAttributionResult`` with ``token_attr`` (and optionally ``step_scores``, and
            ``target_attr``: the answer's tokens as more rows).
        title: A title (default "answer attribution").

    Returns:
        HTML: the page; it shows itself in a notebook and ``str()`` gives its text.

    Example:
        >>> llm = pa.text.llm_attribution(lm, tokenizer)
        >>> result = llm(pa.text.TextTemplateInput("{} is {}", ["sky", "blue"]), "today", step_scores=["probability"])
        >>> "probability" in str(pa.viz.token_matrix_html(result))
        True
    """
    data, sources, targets, steps = _matrix(result)
    scale = float(np.nanmax(np.abs(data))) or 1.0
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(t)}</th>" for t in targets) + "</tr>"
    rows = []
    for name, values in zip(sources, data):
        cells = "".join("<td></td>" if np.isnan(v) else
                        f'<td style="background:{token_colour(v / scale)}" title="{v:.4g}">{v:.3f}</td>'
                        for v in values)  # fmt: skip
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    for name, values in steps.items():
        own = float(np.abs(values).max()) or 1.0
        cells = "".join(f'<td class="pa-step" style="background:{token_colour(v / own)}">{v:.3f}</td>' for v in values)
        rows.append(f'<tr class="pa-step-row"><th>{html.escape(name)}</th>{cells}</tr>')
    table = f'<table class="pa-matrix">{head}{"".join(rows)}</table>'
    key = f'<p class="pa-key">attributions: colour scale ±{scale:.3g}; step scores: each row on its own scale</p>'
    name = html.escape(title or "answer attribution")
    extra = ".pa-matrix td{padding:2px 6px;text-align:right;font-family:monospace}.pa-step-row th{font-style:italic}"
    return HTML(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name}</title>'
                f"<style>{STYLE}{extra}</style></head><body><h3>{name}</h3>{table}{key}</body></html>")  # fmt: skip


@needs("matplotlib", "viz")
def token_matrix(result: Any, title: str | None = None) -> Any:
    """The attribution matrix as a matplotlib figure: prompt features down, answer tokens across, on
    a symmetric colour scale, and below it one row per step score (each on its own scale).

    Args:
        result: An ``LLMAttributionResult`` with ``token_attr`` (and optionally ``step_scores``, and
            ``target_attr``: the answer's tokens as more rows).
        title: A title.

    Returns:
        Figure: the figure (not shown).

    Example:
        >>> llm = pa.text.llm_attribution(lm, tokenizer)
        >>> result = llm(pa.text.TextTemplateInput("{} is {}", ["sky", "blue"]), "today", step_scores=["entropy"])
        >>> len(pa.viz.token_matrix(result).axes)
        3
    """
    from matplotlib.figure import Figure

    from .scale import colour_map

    data, sources, targets, steps = _matrix(result)
    scale = float(np.nanmax(np.abs(data))) or 1.0
    heights = [len(sources)] + [1] * len(steps)
    figure = Figure(figsize=(max(len(targets) * 1.1, 5.0), 1.0 + 0.45 * sum(heights)), constrained_layout=True)
    axes = figure.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    cmap, _, _ = colour_map("all")
    image = axes[0].imshow(data, vmin=-scale, vmax=scale, cmap=cmap, aspect="auto")
    axes[0].set_yticks(np.arange(len(sources)), labels=sources)
    axes[0].set_xticks(np.arange(len(targets)), labels=targets, rotation=-30, ha="right")
    axes[0].tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    figure.colorbar(image, ax=axes[0], label=f"attribution (±{scale:.3g})")
    for ax, (name, values) in zip(axes[1:], steps.items()):
        ax.imshow(values[None], cmap="Greens", aspect="auto")
        ax.set_yticks([0], labels=[name])
        ax.set_xticks([])
        for j, v in enumerate(values):
            ax.text(j, 0, f"{v:.3g}", ha="center", va="center", fontsize=7)
    if title:
        figure.suptitle(title)
    return figure
