"""The Gaussian blur of Blur IG's path (scipy.ndimage's, on tensors)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TRUNCATE = 4.0  # the kernel's radius in standard deviations (scipy.ndimage.gaussian_filter's)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    r"""Gaussian blur of ``(N, C, H, W)`` images over ``H`` and ``W``, zeros beyond the border
    (``scipy.ndimage.gaussian_filter(image, [sigma, sigma, 0], mode="constant")``): a kernel
    :math:`\propto e^{-x^2 / 2\sigma^2}` of radius :math:`\lfloor 4\sigma + 1/2 \rfloor`, rows
    then columns, each pass in double precision and rounded to the images' dtype.

    Args:
        images: ``(N, C, H, W)``.
        sigma: The standard deviation in pixels (0: the images unchanged).

    Returns:
        The blurred images, same shape, dtype and device.

    Example:
        >>> pa.cam.gaussian_blur(torch.ones(1, 1, 5, 5), 1.0)[0, 0, 2, 2] < 1
        tensor(True)
    """
    if sigma == 0:
        return images
    radius = int(TRUNCATE * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=images.device)
    kernel = torch.exp(-0.5 / sigma**2 * x**2)
    kernel = kernel / kernel.sum()
    n, c, h, w = images.shape
    out = images
    for dim, size in ((2, h), (3, w)):  # rows, then columns
        lines = out.to(torch.float64).movedim(dim, -1).reshape(-1, 1, size)
        blurred = F.conv1d(lines, kernel[None, None], padding=radius)
        shape = [n, c, w if dim == 2 else h, size]
        out = blurred.reshape(shape).movedim(-1, dim).to(images.dtype)
    return out
