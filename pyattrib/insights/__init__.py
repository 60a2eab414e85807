"""Insights: browse a dataset's predictions and attributions, as a file or a live local page.

:func:`report` writes one self-contained HTML file (data, CSS and JavaScript inlined; opens
from disk, in notebooks and as a CI artifact, with no network); :func:`serve` serves the same
page with a panel for live attribution. Needs matplotlib; :func:`serve` also bottle.
"""

from .explorer import Explorer, Method
from .report import Report, report
from .server import Server, serve

__all__ = ["Explorer", "Method", "Report", "Server", "report", "serve"]
