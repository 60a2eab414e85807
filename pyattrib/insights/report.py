"""``report``: the Insights page for a model and a dataset, as one self-contained HTML file."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from torch import nn

from .._core.errors import needs
from .explorer import Explorer
from .page import page


class Report(str):
    """The page as a string; ``save(path)`` writes it, notebooks show it (``_repr_html_``, in an iframe).

    Example:
        >>> methods = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}
        >>> report = pa.insights.report(cnn, (images, torch.tensor([0, 1])), methods)
        >>> isinstance(report, pa.insights.Report)
        True
    """

    def save(self, path: str) -> str:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self)
        return path

    def _repr_html_(self) -> str:
        # an iframe keeps the page's script and style to itself in Jupyter, JupyterLab and VS Code
        return f'<iframe srcdoc="{html.escape(self)}" style="width:100%;height:640px;border:1px solid #ccc"></iframe>'


def page_data(explorer: Explorer, live: bool) -> dict[str, Any]:
    """Everything the page shows: examples, classes, methods with their options, rendered attributions."""
    return {
        "rows": explorer.rows,
        "classes": explorer.classes,
        "methods": [{"name": name, "options": dict(m.options)} for name, m in explorer.methods.items()],
        "cells": {name: {str(i): cell for i, cell in explorer.attribute(name).items()} for name in explorer.methods},
        "kind": explorer.kind,
        "target": explorer.target,
        "live": live,
    }


@needs("matplotlib", "viz")
def report(
    model: nn.Module,
    dataset: Any,
    methods: Mapping[str, Any],
    classes: list[str] | None = None,
    path: str | None = None,
    title: str = "pyattrib Insights",
    **options: Any,
) -> Report:
    """Explain ``model`` on ``dataset`` with several methods in one self-contained HTML page.

    ``dataset`` is ``(inputs, labels)`` tensors or a Dataset of ``(input, label)`` pairs (the
    first ``limit=200`` are shown). ``methods`` maps a column name to a transform
    (``pa.saliency``), to ``(transform, options)`` (``(pa.integrated_gradients, {"n_steps": 32})``)
    or to :class:`~pyattrib.insights.Method` (with call-time arguments such as baselines).
    Per example the page shows the input, label, prediction and confidence and each method's
    attributions of the predicted class (``target="label"`` for the true one) side by side,
    filters by predicted and true class and by correct/incorrect, sorts by confidence and
    shows each method's options. Images, text (``tokens=`` turns ids into strings; layer
    attributions are summed over the embedding) and tabular rows (``feature_names=``) work.
    The page inlines its data, CSS and JavaScript: it opens from disk, in Jupyter and as a CI
    artifact, with no network. Written to ``path`` when given.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        dataset: The examples: a sequence of ``(input, label)`` pairs, or a ``(inputs, labels)`` pair of
            tensors.
        methods: The attribution methods: a mapping from a display name to a transform or a ``Method``.
        classes: The class names, by index.
        path: Where to write the HTML file.
        title: A title.
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        Report: the page; ``path`` holds the file when one was written.

    Example:
        >>> methods = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}
        >>> report = pa.insights.report(cnn, (images, torch.tensor([0, 1])), methods, classes=["a", "b", "c"])
        >>> "<html" in report
        True
    """
    explorer = Explorer(model, dataset, methods, classes, **options)
    result = Report(page(page_data(explorer, live=False), title))
    if path is not None:
        result.save(path)
    return result
