"""pytorch-grad-cam's reshape transforms, over :mod:`pyattrib.cam.reshape`."""

from __future__ import annotations

from torch import Tensor

from ....cam.reshape import swin_reshape, vit_reshape


def vit_reshape_transform(tensor: Tensor, height: int = 14, width: int = 14) -> Tensor:
    """ViT tokens ``(N, 1 + height * width, C)`` (a class token first) to ``(N, C, height, width)``.

    Args:
        tensor: The tokens.
        height: Rows of the patch grid.
        width: Columns of the patch grid.

    Returns:
        The map ``(N, C, height, width)``.
    """
    return vit_reshape(height, width, prefix_tokens=1)(tensor)


def swinT_reshape_transform(tensor: Tensor, height: int = 7, width: int = 7) -> Tensor:  # noqa: N802
    """Swin tokens ``(N, height * width, C)`` to ``(N, C, height, width)``.

    Args:
        tensor: The tokens.
        height: Rows of the grid.
        width: Columns of the grid.

    Returns:
        The map ``(N, C, height, width)``.
    """
    return swin_reshape(height, width)(tensor.reshape(tensor.shape[0], height * width, tensor.shape[-1]))


__all__ = ["swinT_reshape_transform", "vit_reshape_transform"]
