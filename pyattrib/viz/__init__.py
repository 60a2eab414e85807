"""Pictures of attributions: images, tokens, tabular features and time series (matplotlib and self-contained HTML).

Every function returns a figure (or an HTML string) and never calls ``show()``. All share
one normalisation, :func:`normalise` (Captum's: sign selection, the top ``outlier_perc``
percent of attribution mass clipped, values in [-1, 1]); colour bars and keys state it.
Needs matplotlib (``pip install pyattrib[viz]``).
"""

from .evaluation import evaluation
from .grid import grid_map
from .image import image_attr, image_attr_multiple
from .matrix import token_matrix, token_matrix_html
from .scale import Normalised, normalise
from .shap_plots import bar, beeswarm, force, force_html, heatmap, waterfall
from .tabular import feature_attr
from .text import HTML, text_attr, text_attr_figure
from .timeseries import timeseries_attr

__all__ = [
    "HTML",
    "Normalised",
    "bar",
    "beeswarm",
    "evaluation",
    "feature_attr",
    "force",
    "force_html",
    "grid_map",
    "heatmap",
    "image_attr",
    "image_attr_multiple",
    "normalise",
    "text_attr",
    "text_attr_figure",
    "timeseries_attr",
    "token_matrix",
    "token_matrix_html",
    "waterfall",
]
