"""pytorch-grad-cam's projection helpers (numpy in, numpy out), over :mod:`pyattrib.cam.projection`."""

from __future__ import annotations

import numpy as np
import torch

from ....cam.projection import kernel_projection, svd_projection


def get_2d_projection(activation_batch: np.ndarray) -> np.ndarray:
    """Eigen-CAM's first-component map of ``(N, C, h, w)`` activations, numpy's SVD sign.

    Args:
        activation_batch: ``(N, C, h, w)`` activations (NaNs read as 0; the array is not changed).

    Returns:
        ``(N, h, w)`` float32 maps.
    """
    return svd_projection(torch.from_numpy(np.array(activation_batch)), sign="numpy").numpy().astype(np.float32)


def get_2d_projection_with_sign_correction(activation_batch: np.ndarray) -> np.ndarray:
    """The same map with the sign making its largest-magnitude entry positive (Seg-Eigen-CAM).

    Args:
        activation_batch: ``(N, C, h, w)`` activations.

    Returns:
        ``(N, h, w)`` float32 maps.
    """
    return svd_projection(torch.from_numpy(np.array(activation_batch)), sign="largest").numpy().astype(np.float32)


def get_2d_projection_kernel(
    activation_batch: np.ndarray, kernel: str = "sigmoid", gamma: float | None = None
) -> np.ndarray:
    """KPCA-CAM's first kernel-component map.

    Args:
        activation_batch: ``(N, C, h, w)`` activations.
        kernel: The kernel (``"sigmoid"``, ``"rbf"``, ``"poly"``, ``"linear"``, ``"cosine"``).
        gamma: The kernel's scale (None: ``1 / C``).

    Returns:
        ``(N, h, w)`` float32 maps.
    """
    x = torch.from_numpy(np.array(activation_batch))
    return kernel_projection(x, kernel, gamma).numpy().astype(np.float32)


__all__ = ["get_2d_projection", "get_2d_projection_kernel", "get_2d_projection_with_sign_correction"]
