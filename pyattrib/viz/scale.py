"""One normalisation for every picture: sign selection, outlier clipping, a shared scale.

An attribution map ``a`` is shown as ``clip(s(a) / t, -1, 1)``, where ``s`` keeps the chosen
sign (``positive``: max(a, 0); ``negative``: min(a, 0); ``absolute_value``: |a|; ``all``: a)
and ``t`` is the smallest |s(a)| value at which the sorted cumulative sum of |s(a)| reaches
``100 - outlier_perc`` percent of its total. The top ``outlier_perc`` percent of attribution
mass therefore saturates, so one extreme pixel does not wash the rest of the map out. This is
Captum's rule, so the normalised values are Captum's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.errors import ArgumentError

SIGNS = ("absolute_value", "positive", "negative", "all")
# colour map and value range per sign: signed maps diverge red-white-green around zero
SIGN_COLOURS = {"all": ("RdWhGn", -1.0, 1.0), "positive": ("Greens", 0.0, 1.0),
                "negative": ("Reds", 0.0, 1.0), "absolute_value": ("Blues", 0.0, 1.0)}  # fmt: skip


@dataclass(frozen=True)
class Normalised:
    """Values in [-1, 1] and how they were obtained (for colour bar labels).

    Args:
        values: The attributions scaled to ``[-1, 1]`` (or ``[0, 1]``).
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.
        sign: Which attributions to show: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``.
        outlier_perc: The share (in %) of the largest magnitudes clipped before scaling.

    Example:
        >>> norm = pa.viz.normalise(torch.tensor([[0.5, -2.0]]).numpy(), sign="all", outlier_perc=0)
        >>> float(norm.scale)
        2.0
    """

    values: np.ndarray
    scale: float
    sign: str
    outlier_perc: float

    def describe(self) -> str:
        if self.scale == 0:
            return f"sign={self.sign}: every attribution is 0"
        shown = {"all": "attr", "positive": "max(attr, 0)", "negative": "-min(attr, 0)", "absolute_value": "|attr|"}
        return f"{shown[self.sign]} / {self.scale:.3g}\n(top {self.outlier_perc:g}% of mass clipped)"


def check_sign(sign: str) -> str:
    if sign not in SIGNS:
        raise ArgumentError(f"sign must be one of {', '.join(SIGNS)}; got {sign!r}")
    return sign


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a float numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = (value.double() if value.is_floating_point() else value).numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"{name} must be a tensor or numpy array of numbers; got {type(value).__name__}") from error


def cumulative_threshold(magnitudes: np.ndarray, percentile: float) -> float:
    """The smallest value whose sorted cumulative sum reaches ``percentile``% of the total."""
    if not 0 <= percentile <= 100:
        raise ArgumentError(f"outlier_perc must be between 0 and 100; got {100 - percentile:g}")
    ordered = np.sort(magnitudes.ravel())
    if ordered.size == 0:
        raise ArgumentError("attr is empty; pass attributions with at least one value")
    running = np.cumsum(ordered)
    return float(ordered[np.searchsorted(running, running[-1] * 0.01 * percentile)])


def normalise(attr: np.ndarray, sign: str = "absolute_value", outlier_perc: float = 2, scale: float | None = None):
    """``clip(s(attr) / t, -1, 1)`` as a :class:`Normalised` (see the module docstring).

    ``scale`` fixes ``t`` (e.g. one shared scale across several maps); ``None`` computes it.

    Args:
        attr: The attributions, one example: ``(C, H, W)`` or ``(H, W, C)``.
        sign: Which attributions to show: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``.
        outlier_perc: The share (in %) of the largest magnitudes clipped before scaling.
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.

    Returns:
        Normalised: the scaled values, the scale used and the sign.

    Example:
        >>> pa.viz.normalise(torch.tensor([[0.5, -2.0]]).numpy(), sign="all", outlier_perc=0).values
        array([[ 0.25, -1.  ]], dtype=float32)
    """
    check_sign(sign)
    kept = {"all": attr, "positive": np.maximum(attr, 0), "negative": np.minimum(attr, 0),
            "absolute_value": np.abs(attr)}[sign]  # fmt: skip
    if scale is None:
        scale = cumulative_threshold(np.abs(kept), 100.0 - outlier_perc)
    if scale == 0:
        return Normalised(np.zeros_like(kept), 0.0, sign, float(outlier_perc))
    signed_scale = -scale if sign == "negative" else scale  # negative maps are shown as positive strengths
    return Normalised(np.clip(kept / signed_scale, -1, 1), float(scale), sign, float(outlier_perc))


def colour_map(sign: str, cmap: Any = None):
    """The matplotlib colour map and (vmin, vmax) for a sign; ``cmap`` overrides the map."""
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    name, vmin, vmax = SIGN_COLOURS[check_sign(sign)]
    if cmap is None:
        cmap = LinearSegmentedColormap.from_list(name, ["red", "white", "green"]) if name == "RdWhGn" else name
    return (colormaps[cmap] if isinstance(cmap, str) else cmap), vmin, vmax
