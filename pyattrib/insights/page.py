"""The Insights page: one HTML document with its data, CSS and JavaScript inlined.

The same page is written to a file by :func:`~pyattrib.insights.report` and served by
:func:`~pyattrib.insights.serve`; the served one adds a panel that asks the server for new
attributions. Nothing is loaded from the network: no CDN, fonts or external scripts.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).with_name("static")
CSS, SCRIPT, BODY = ((STATIC / name).read_text(encoding="utf-8") for name in ("page.css", "page.js", "body.html"))


def key_text(kind: str, target: str) -> str:
    explained = "predicted class" if target == "predicted" else "true label"
    if kind == "image":
        scale = "each map divided by its own scale t (shown under it; the top 2% of |attribution| mass saturates)"
    else:
        scale = "one scale per method, shared by all examples (its largest |attribution|)"
    return (f'<b>Key:</b> attributions for the {explained}. <span>negative</span> <span class="pa-keybar"></span> '
            f"<span>positive</span>; {scale}.")  # fmt: skip


def page(data: dict[str, Any], title: str) -> str:
    """The whole document for ``data`` (rows, classes, methods, cells, kind, target, live)."""
    payload = json.dumps(data).replace("</", "<\\/")  # a string may not close the script element
    body = BODY.format(title=html.escape(title), key=key_text(data["kind"], data["target"]))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><style>{CSS}</style></head><body>{body}'
        f'<script type="application/json" id="pa-data">{payload}</script><script>{SCRIPT}</script></body></html>'
    )
