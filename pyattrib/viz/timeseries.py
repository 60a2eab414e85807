"""Time-series attributions: the signal drawn with its normalised attribution per time step."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.errors import ArgumentError, needs
from .scale import check_sign, colour_map, normalise, to_numpy

METHODS = ("overlay_individual", "overlay_combined", "colored_graph")


@needs("matplotlib", "viz")
def timeseries_attr(
    attr: Any,
    data: Any,
    x_values: Any = None,
    method: str = "overlay_individual",
    sign: str = "absolute_value",
    channel_labels: list[str] | None = None,
    channels_last: bool = True,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.7,
    colorbar: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] = (6, 6),
    scale: float | None = None,
    axes: Any = None,
    **plot_kwargs: Any,
):
    """Draw a (T, C) series (or (C, T) with ``channels_last=False``) with its attributions.

    ``overlay_individual``: one panel per channel, each time step shaded by its normalised
    attribution; ``overlay_combined``: all channels in one panel, shaded by the attribution
    summed over channels; ``colored_graph``: one panel per channel, the line itself coloured.
    Normalisation as :func:`pyattrib.viz.image_attr` (the colour bar states it). Returns
    ``(figure, axes list)``; draws into ``axes`` (one per panel) when given; ``plot_kwargs`` go
    to ``Axes.plot``.

    Args:
        attr: Its attributions, same shape.
        data: The series, ``(T, C)`` or ``(C, T)``.
        x_values: The time axis; default ``0, 1, ...``.
        method: ``"overlay_individual"``, ``"overlay_combined"`` or ``"colored_graph"``.
        sign: Which attributions to show: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``.
        channel_labels: A label per channel.
        channels_last: ``data`` is ``(T, C)`` (else ``(C, T)``).
        outlier_perc: The share (in %) of the largest magnitudes clipped before scaling.
        cmap: A matplotlib colour map; default chosen by ``sign``.
        alpha_overlay: Opacity of the attribution over the image.
        colorbar: Draw a colour bar.
        title: A title.
        figsize: The figure size, in inches.
        scale: The colour scale: attributions of this magnitude get the strongest colour; default the
            largest magnitude.
        axes: Draw into these axes, one per panel.
        **plot_kwargs: Passed to ``Axes.plot``.

    Returns:
        tuple: ``(figure, axes)``.

    Example:
        >>> fig, axes = pa.viz.timeseries_attr(torch.randn(20, 2), torch.randn(20, 2))
        >>> type(fig).__name__
        'Figure'
    """
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    check_sign(sign)
    values, series = to_numpy(attr, "attr"), to_numpy(data, "data")
    for name, array in (("attr", values), ("data", series)):
        if array.ndim != 2:
            raise ArgumentError(f"{name} must be 2-D, (time, channels); got shape {tuple(array.shape)}")
    if values.shape != series.shape:
        raise ArgumentError(f"attr {tuple(values.shape)} and data {tuple(series.shape)} must have the same shape")
    if channels_last:
        values, series = values.T, series.T
    channels, length = values.shape
    x = np.arange(length) if x_values is None else to_numpy(x_values, "x_values")
    if x.shape != (length,):
        raise ArgumentError(f"x_values must hold {length} values, one per time step; got shape {tuple(x.shape)}")
    combined = method == "overlay_combined"
    norm = normalise(values.sum(axis=0) if combined else values, sign, outlier_perc, scale)
    colours, vmin, vmax = colour_map(sign, cmap)
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    panels = 1 if combined else channels
    if axes is None:
        figure = Figure(figsize=figsize)
        axes = list(figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0])
    else:
        axes = list(np.atleast_1d(axes))
        if len(axes) != panels:
            raise ArgumentError(f"axes holds {len(axes)} axes; method={method!r} draws {panels} panels, pass that many")
        figure = axes[0].figure
    colour_norm = Normalize(vmin, vmax)
    half = (x[1] - x[0]) / 2.0 if length > 1 else 0.5

    def shade(ax, strengths):
        for centre, strength in zip(x, strengths):
            ax.axvspan(centre - half, centre + half, facecolor=colours(colour_norm(strength)), edgecolor=None,
                       alpha=alpha_overlay)  # fmt: skip

    if combined:
        from matplotlib import colormaps

        axes[0].set_prop_cycle(color=colormaps["Dark2"].colors)  # type: ignore[attr-defined]  # a ListedColormap
        for c in range(channels):
            axes[0].plot(x, series[c], label=channel_labels[c] if channel_labels else None, **plot_kwargs)
        shade(axes[0], norm.values)
        if channel_labels:
            axes[0].legend(loc="best")
    for c in range(0 if combined else channels):
        ax = axes[c]
        if method == "overlay_individual":
            ax.plot(x, series[c], **plot_kwargs)
            shade(ax, norm.values[c])
        else:
            points = np.stack([x, series[c]], axis=1).reshape(-1, 1, 2)
            segments = list(np.concatenate([points[:-1], points[1:]], axis=1))
            line = LineCollection(segments, cmap=colours, norm=colour_norm, **plot_kwargs)
            line.set_array(norm.values[c])
            ax.add_collection(line)
            ax.set_ylim(1.2 * series[c].min(), 1.2 * series[c].max())
        if channel_labels:
            ax.set_ylabel(channel_labels[c])
    axes[0].set_xlim(x[0], x[-1])
    figure.subplots_adjust(hspace=0)
    if colorbar:
        from matplotlib.cm import ScalarMappable

        bar = figure.colorbar(ScalarMappable(colour_norm, colours), ax=axes, orientation="horizontal",
                              alpha=1.0 if method == "colored_graph" else alpha_overlay, fraction=0.05)  # fmt: skip
        bar.set_label(f"attribution: {norm.describe()}", fontsize=8)
    if title:
        axes[0].set_title(title)
    return figure, axes
