"""pytorch-grad-cam's image helpers, without OpenCV or torchvision."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...._core.errors import ArgumentError


def preprocess_image(
    img: np.ndarray, mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)
) -> torch.Tensor:
    """An ``(H, W, C)`` image as a normalised ``(1, C, H, W)`` tensor (uint8 images scaled to
    ``[0, 1]`` first, as torchvision's ``ToTensor``).

    Args:
        img: The image, ``(H, W, C)`` (or ``(H, W)``) uint8 or float.
        mean: Per-channel mean subtracted.
        std: Per-channel standard deviation divided by.

    Returns:
        The ``(1, C, H, W)`` float tensor.
    """
    arr = np.array(img, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    x = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    m = torch.tensor(list(mean), dtype=x.dtype)[:, None, None]
    s = torch.tensor(list(std), dtype=x.dtype)[:, None, None]
    return ((x - m) / s).unsqueeze(0)


def show_cam_on_image(
    img: np.ndarray, mask: np.ndarray, use_rgb: bool = False, image_weight: float = 0.5
) -> np.ndarray:
    """The map ``mask`` over ``img`` as a heat map: ``image_weight * img + (1 - image_weight) *
    jet(mask)``, rescaled to a maximum of 255 (uint8). The jet colours are matplotlib's (close to,
    not byte-identical with, OpenCV's ``COLORMAP_JET`` that pytorch-grad-cam uses).

    Args:
        img: The image, float in ``[0, 1]``, ``(H, W, 3)``.
        mask: The map, ``(H, W)`` in ``[0, 1]``.
        use_rgb: The heat map in RGB order (else BGR, OpenCV's).
        image_weight: The image's share of the blend, in ``[0, 1]``.

    Returns:
        The blended ``(H, W, 3)`` uint8 image.
    """
    from matplotlib import colormaps

    if np.max(img) > 1:
        raise ArgumentError("img should be float32 in the range [0, 1]")
    if not 0 <= image_weight <= 1:
        raise ArgumentError(f"image_weight should be in the range [0, 1], got {image_weight}")
    levels = np.uint8(255 * np.asarray(mask))
    heat = colormaps["jet"](np.arange(256))[levels, :3].astype(np.float32)
    heat = np.float32(np.round(heat * 255)) / 255
    if not use_rgb:
        heat = heat[..., ::-1]
    cam = (1 - image_weight) * heat + image_weight * img
    return np.uint8(255 * cam / np.max(cam))


def scale_cam_image(cam: np.ndarray, target_size: tuple[int, int] | None = None) -> np.ndarray:
    """Each map shifted to minimum 0, divided by ``max + 1e-7``, and resized (bilinear) to
    ``target_size`` ``(W, H)``.

    Args:
        cam: Maps ``(N, h, w)``.
        target_size: ``(width, height)``, or None to keep the size.

    Returns:
        float32 maps ``(N, H, W)``.
    """
    from ....cam._engine import scale

    maps = scale(torch.from_numpy(np.float32(cam)))
    if target_size is not None:
        maps = torch.nn.functional.interpolate(
            maps[:, None], size=(target_size[1], target_size[0]), mode="bilinear", align_corners=False
        )[:, 0]
    return maps.numpy().astype(np.float32)


__all__ = ["preprocess_image", "scale_cam_image", "show_cam_on_image"]
