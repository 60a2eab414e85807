"""Baselines for images as shap's Image masker makes them."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .._core.errors import ArgumentError


def blur(images: Tensor, kernel: int | tuple[int, int]) -> Tensor:
    """A box blur of ``images`` ``(N, C, H, W)``: shap's ``"blur(kh,kw)"`` masker value (OpenCV's
    ``cv2.blur``: the mean over a ``kh x kw`` window, anchored at its centre, the image mirrored
    at its borders without repeating the edge). Pass it as ``baselines=``: a removed feature
    takes its blurred value. shap's ``"blur(a,b)"`` hands ``(a, b)`` to OpenCV, which reads it as
    (width, height): it is ``blur(images, (b, a))``.

    Args:
        images: ``(N, C, H, W)`` images.
        kernel: The window, ``k`` or ``(kh, kw)``; each at most the image's side.

    Returns:
        The blurred images, same shape, dtype and device.

    Example:
        >>> pa.owen.blur(torch.rand(2, 3, 8, 8), 3).shape
        torch.Size([2, 3, 8, 8])

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if images.dim() != 4:
        raise ArgumentError(f"blur takes images (N, C, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if not (1 <= kh <= h and 1 <= kw <= w):
        raise ArgumentError(f"kernel {(kh, kw)} must be between 1 and the image's size {(h, w)}")
    padded = F.pad(images, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="reflect")
    return F.avg_pool2d(padded, (kh, kw), stride=1)
