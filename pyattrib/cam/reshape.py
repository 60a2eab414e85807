"""Layer values as spatial maps ``(N, C, h, w)``: convolution maps, ViT tokens, Swin grids.

A CAM weighs the channels of a spatial map. A convolution layer gives one as it is; a vision
transformer's block gives tokens ``(N, T, C)`` (a class token, perhaps register tokens, then an
``h x w`` grid of patches) and a Swin stage gives ``(N, h, w, C)``. ``reshape_transform=None``
reads all three without help (:func:`spatial_map` says how); :func:`vit_reshape` and
:func:`swin_reshape` name the layout when the rule cannot tell, and any callable
``value -> (N, C, h, w)`` handles other layouts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor

from .._core.errors import ArgumentError

ReshapeLike = Callable[[Tensor], Tensor] | None
MAX_PREFIX_TOKENS = 8  # class token + up to 7 register tokens (DINOv2 uses 4)


def vit_reshape(
    height: int | None = None, width: int | None = None, prefix_tokens: int = 1
) -> Callable[[Tensor], Tensor]:
    """A ``reshape_transform`` for ViT tokens ``(N, prefix_tokens + height * width, C)``.

    The first ``prefix_tokens`` tokens (the class token, register tokens) are dropped and the
    rest laid out row by row as an ``height x width`` grid: ``(N, C, height, width)``. With no
    size given the grid is square.

    Args:
        height: Rows of the patch grid (None: square).
        width: Columns of the patch grid (None: square).
        prefix_tokens: Tokens before the patches (1 for a class token).

    Returns:
        A callable ``tokens -> (N, C, height, width)``.

    Example:
        >>> pa.cam.vit_reshape(2, 2)(torch.zeros(1, 5, 8)).shape
        torch.Size([1, 8, 2, 2])
    """

    def reshape(tokens: Tensor) -> Tensor:
        grid = tokens[:, prefix_tokens:]
        h, w = _grid_size(grid.shape[1], height, width)
        return grid.reshape(grid.shape[0], h, w, grid.shape[2]).permute(0, 3, 1, 2)

    return reshape


def swin_reshape(height: int | None = None, width: int | None = None) -> Callable[[Tensor], Tensor]:
    """A ``reshape_transform`` for Swin stages, channels last: ``(N, h, w, C)`` or flattened
    ``(N, h * w, C)`` (Hugging Face's layout), to ``(N, C, h, w)``.

    Args:
        height: Rows of a flattened grid (None: square).
        width: Columns of a flattened grid (None: square).

    Returns:
        A callable ``value -> (N, C, h, w)``.

    Example:
        >>> pa.cam.swin_reshape()(torch.zeros(1, 2, 2, 8)).shape
        torch.Size([1, 8, 2, 2])
    """

    def reshape(value: Tensor) -> Tensor:
        if value.dim() == 3:
            h, w = _grid_size(value.shape[1], height, width)
            value = value.reshape(value.shape[0], h, w, value.shape[2])
        return value.permute(0, 3, 1, 2)

    return reshape


def _grid_size(tokens: int, height: int | None, width: int | None) -> tuple[int, int]:
    if height is None and width is None:
        side = math.isqrt(tokens)
        height = width = side
    elif height is None:
        height = tokens // width  # type: ignore[operator]
    elif width is None:
        width = tokens // height
    if height * width != tokens:  # type: ignore[operator]
        raise ArgumentError(
            f"reshape_transform: {tokens} patch tokens do not form a {height} x {width} grid; pass the grid's "
            "height and width (and prefix_tokens for class/register tokens)"
        )
    return height, width  # type: ignore[return-value]


def spatial_map(value: Tensor, image_size: tuple[int, int], reshape_transform: ReshapeLike, layer: str) -> Tensor:
    """A layer value as ``(N, C, h, w)``.

    With ``reshape_transform=None`` the layout is read from the shape, against the input
    image's ``H x W``: a 4-D value is channels-first ``(N, C, h, w)`` unless only its middle
    dimensions have the image's aspect ratio (Swin's ``(N, h, w, C)``); a 3-D value is tokens
    ``(N, T, C)``, of which the last ``h * w`` form a grid of the image's aspect ratio and the
    first ``T - h * w`` (at most 8: class and register tokens) are dropped, fewest first.

    Args:
        value: The layer's value.
        image_size: The input image's ``(H, W)``.
        reshape_transform: A callable ``value -> (N, C, h, w)``, or None for the rule above.
        layer: The layer's name, for errors.

    Returns:
        The map ``(N, C, h, w)``.

    Example:
        >>> pa.cam.spatial_map(torch.zeros(1, 17, 8), (32, 32), None, "block").shape
        torch.Size([1, 8, 4, 4])
    """
    if reshape_transform is not None:
        value = reshape_transform(value)
        if not isinstance(value, Tensor) or value.dim() != 4:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ArgumentError(f"reshape_transform returned {shape} for layer {layer!r}; it must return (N, C, h, w)")
        return value
    H, W = image_size
    if value.dim() == 4:
        _, d1, d2, d3 = value.shape
        first, last = d2 * W == d3 * H, d1 * W == d2 * H
        return value.permute(0, 3, 1, 2) if last and not first else value
    if value.dim() == 3:
        tokens = value.shape[1]
        for prefix in range(min(MAX_PREFIX_TOKENS, tokens - 1) + 1):
            grid = _aspect_grid(tokens - prefix, H, W)
            if grid is not None:
                return vit_reshape(*grid, prefix_tokens=prefix)(value)
    raise ArgumentError(
        f"layer {layer!r} gives {tuple(value.shape)}, not a spatial map (N, C, h, w) or a grid of tokens (N, T, C) "
        f"of the image's {H} x {W} aspect ratio; pass reshape_transform=pa.cam.vit_reshape(height, width, "
        "prefix_tokens) for ViT tokens, pa.cam.swin_reshape() for Swin, or a callable value -> (N, C, h, w)"
    )


def _aspect_grid(tokens: int, H: int, W: int) -> tuple[int, int] | None:
    for h in range(1, math.isqrt(tokens * max(H, W)) + 1):
        if tokens % h == 0 and h * W == (tokens // h) * H:
            return h, tokens // h
    return None
