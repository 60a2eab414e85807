"""Image attributions as matplotlib figures: heat maps, blends, masks, alpha scaling.

Each picture shows ``clip(s(attr) / t, -1, 1)`` (see :mod:`pyattrib.viz.scale`) summed over
channels, with a colour bar (or, for masks, a strength bar) whose label states ``t``.
Nothing is shown on screen: functions return ``(figure, axes)`` for you to save or display.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import Normalised, check_sign, colour_map, normalise, to_numpy

METHODS = ("heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling")


def as_hwc(value: Any, name: str) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4, or one of those with a batch of 1, as (H, W[, C])."""
    array = to_numpy(value, name)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4):
            return array
        if array.shape[0] in (1, 3, 4):
            return np.moveaxis(array, 0, -1)
    raise ArgumentError(
        f"{name} must be one image, (H, W), (H, W, C) or (C, H, W) with 1, 3 or 4 channels; got shape "
        f"{tuple(array.shape)}. Index one example of a batch, e.g. {name}[0]"
    )


def as_pixels(image: np.ndarray) -> np.ndarray:
    """An image in 0-1 floats as 0-255 integers (what imshow takes for RGB); 0-255 values as they are."""
    return clip_pixels(image * 255) if image.max() <= 1.0 else image


def clip_pixels(values: np.ndarray) -> np.ndarray:
    return np.clip(values.astype(int), 0, 255)


def heat_rgba(norm: Normalised, cmap: Any = None) -> np.ndarray:
    """The colours of a normalised map as an (H, W, 4) uint8 array (for PNGs without a figure)."""
    colours, vmin, vmax = colour_map(norm.sign, cmap)
    return colours((norm.values - vmin) / (vmax - vmin), bytes=True)


def _axes(ax: Any, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots()


@needs("matplotlib", "viz")
def image_attr(
    attr: Any,
    image: Any = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.5,
    colorbar: bool = True,
    title: str | None = None,
    ax: Any = None,
    figsize: tuple[float, float] = (6, 6),
    scale: float | None = None,
):
    """Draw one image attribution; returns ``(figure, axes)``.

    ``attr`` and ``image`` are tensors or arrays, CHW or HWC (a batch of one is accepted);
    channels of ``attr`` are summed. ``method``: ``heat_map`` (the normalised map alone),
    ``blended_heat_map`` (over the grey image, at ``alpha_overlay``), ``original_image``,
    ``masked_image`` (image x normalised map) or ``alpha_scaling`` (map as alpha channel); the
    last two need a one-signed ``sign``. ``scale`` fixes the normaliser ``t`` (share it across
    figures to compare them); by default it is computed from ``outlier_perc``. Draws into
    ``ax`` when given, else into a new :class:`matplotlib.figure.Figure`; never calls ``show``.

    Args:
        attr: The attributions, one example: ``(C, H, W)`` or ``(H, W, C)``.
        image: The image, one example, same layout as ``attr``.
        method: ``"heat_map"``, ``"blended_heat_map"``, ``"original_image"``, ``"masked_image"`` or
            ``"alpha_scaling"``.
        sign: Which attributions to show: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``.
        outlier_perc: The share (in %) of the largest magnitudes clipped before scaling.
        cmap: A matplotlib colour map; default chosen by ``sign``.
        alpha_overlay: Opacity of the attribution over the image.
        colorbar: Draw a colour bar.
        title: A title.
        ax: Draw into this matplotlib ``Axes`` instead of a new figure.
        figsize: The figure size, in inches.
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> fig, ax = pa.viz.image_attr(attr[0], images[0], method="blended_heat_map", sign="all")
        >>> type(fig).__name__
        'Figure'
    """
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    check_sign(sign)
    values = as_hwc(attr, "attr")
    if values.ndim == 3:
        values = values.sum(axis=2)
    pixels = None if image is None else as_pixels(as_hwc(image, "image"))
    if pixels is None and method != "heat_map":
        raise ArgumentError(f"method={method!r} draws the image; pass image=, or use method='heat_map'")
    if pixels is not None and pixels.shape[:2] != values.shape:
        raise ArgumentError(f"attr is {values.shape} pixels but image is {pixels.shape[:2]}; pass the image attributed")
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise ArgumentError(
            f"method={method!r} shows strengths, not signs; pass sign='positive', 'negative' or 'absolute_value'"
        )
    norm = normalise(values, sign, outlier_perc, scale)
    colours, vmin, vmax = colour_map(sign, cmap)
    figure, ax = _axes(ax, figsize)
    ax.set_xticks([])
    ax.set_yticks([])
    if method == "heat_map" or pixels is None:  # the image is needed by every other method (checked above)
        ax.imshow(norm.values, cmap=colours, vmin=vmin, vmax=vmax)
    elif method == "blended_heat_map":
        ax.imshow(pixels.mean(axis=2) if pixels.ndim == 3 else pixels, cmap="gray")
        ax.imshow(norm.values, cmap=colours, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    elif method == "original_image":
        grey = pixels.ndim == 2 or pixels.shape[2] == 1  # one channel: grey, not matplotlib's default colour map
        ax.imshow(pixels.reshape(pixels.shape[:2]) if grey else pixels, cmap="gray" if grey else None)
    elif method == "masked_image":
        ax.imshow(clip_pixels(_rgb(pixels) * norm.values[..., None]))
    else:
        alpha = clip_pixels(norm.values[..., None] * 255)
        ax.imshow(np.concatenate([_rgb(pixels), alpha], axis=2))
    if colorbar and method != "original_image":
        _colour_key(figure, ax, norm, colours, vmin, vmax, masked=method in ("masked_image", "alpha_scaling"))
    if title:
        ax.set_title(title)
    return figure, ax


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _colour_key(figure, ax, norm: Normalised, colours, vmin: float, vmax: float, masked: bool) -> None:
    """A horizontal colour bar under ``ax`` whose label states the normalisation."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if masked:
        colours, vmin, vmax = colormaps["gray"], 0.0, 1.0
    mappable = ScalarMappable(Normalize(vmin, vmax), colours)
    bar = figure.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.046, pad=0.04)
    what = "pixel kept" if masked else "attribution"
    bar.set_label(f"{what}: {norm.describe()}", fontsize=7)
    bar.ax.tick_params(labelsize=7)


@needs("matplotlib", "viz")
def image_attr_multiple(
    attr: Any,
    image: Any,
    methods: Sequence[str],
    signs: Sequence[str],
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] = (8, 6),
    figure: Any = None,
    **kwargs: Any,
):
    """Several :func:`image_attr` views of one attribution in a row; returns ``(figure, axes list)``.

    Draws into ``figure`` when given (e.g. one made by pyplot), else into a new one.

    Args:
        attr: The attributions, one example: ``(C, H, W)`` or ``(H, W, C)``.
        image: The image, one example, same layout as ``attr``.
        methods: A ``method`` of :func:`image_attr` per panel.
        signs: A ``sign`` per panel.
        titles: A title per panel.
        figsize: The figure size, in inches.
        figure: Draw into this figure (else a new one).
        **kwargs: Passed to :func:`image_attr`.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> panels, signs = ["original_image", "heat_map"], ["all", "absolute_value"]
        >>> fig, axes = pa.viz.image_attr_multiple(attr[0], images[0], panels, signs)
        >>> len(axes)
        2
    """
    if len(methods) != len(signs):
        raise ArgumentError(f"methods has {len(methods)} entries and signs {len(signs)}; give one sign per method")
    if titles is not None and len(titles) != len(methods):
        raise ArgumentError(f"titles has {len(titles)} entries for {len(methods)} methods; give one per method")
    if "ax" in kwargs:
        raise ArgumentError("image_attr_multiple makes its own axes; draw single views with image_attr(ax=...)")
    if figure is None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=figsize)
    axes = list(np.atleast_1d(figure.subplots(1, len(methods))))
    for i, (method, sign) in enumerate(zip(methods, signs)):
        image_attr(attr, image, method, sign, ax=axes[i], title=titles[i] if titles else None, **kwargs)
    figure.tight_layout()
    return figure, axes
