"""Principal-component maps of weighted activations (Eigen-CAM's SVD, KPCA-CAM's kernel PCA).

Both treat one example's ``(C, h, w)`` activations as ``h * w`` points in ``C`` dimensions,
centre them, and return each point's coordinate on the first principal component, as an
``(h, w)`` map. Batched over examples with ``torch.linalg``; on the input's device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._core.errors import ArgumentError

KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")


def _points(weighted: Tensor) -> Tensor:
    """``(N, C, h, w)`` -> centred ``(N, h*w, C)``; NaNs read as 0."""
    x = torch.nan_to_num(weighted, nan=0.0, posinf=torch.inf, neginf=-torch.inf).flatten(2).transpose(1, 2)
    return x - x.mean(1, keepdim=True)


def svd_projection(weighted: Tensor, sign: str = "largest") -> Tensor:
    r"""Eigen-CAM's map: with :math:`X` the centred ``(h*w, C)`` points and :math:`v_1` the first
    right singular vector of :math:`X`, the map is :math:`X v_1` (``(N, h, w)``).

    A singular vector's sign is arbitrary (LAPACK builds differ). ``sign="largest"`` fixes it:
    the map's entry of largest magnitude is positive (Seg-Eigen-CAM's sign correction), so the
    salient region survives the ReLU that follows. ``sign="numpy"`` keeps the sign that
    ``numpy.linalg.svd`` returns on the CPU (pytorch-grad-cam's maps, for
    :mod:`pyattrib.compat.grad_cam`).

    Args:
        weighted: Weighted activations ``(N, C, h, w)``.
        sign: ``"largest"`` or ``"numpy"``.

    Returns:
        The maps ``(N, h, w)``, on the input's device.

    References:
        - Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020.
          https://arxiv.org/abs/2008.00299
        - Chung and Ying, "Seg-Eigen-CAM", Applied Sciences 15(13), 2025. https://doi.org/10.3390/app15137562

    Example:
        >>> pa.cam.svd_projection(torch.randn(2, 4, 3, 3)).shape
        torch.Size([2, 3, 3])
    """
    x = _points(weighted)
    if sign == "numpy":
        import numpy as np

        vh = torch.from_numpy(np.linalg.svd(x.detach().cpu().numpy(), full_matrices=True)[2]).to(x.device)
        projection = x @ vh[:, 0, :, None]
    elif sign == "largest":
        vh = torch.linalg.svd(x, full_matrices=False).Vh
        projection = x @ vh[:, 0, :, None]
        projection = projection * torch.sign(projection.gather(1, projection.abs().argmax(1, keepdim=True)))
    else:
        raise ArgumentError(f"sign must be 'largest' or 'numpy', got {sign!r}")
    return projection.reshape(weighted.shape[0], *weighted.shape[2:])


def kernel_projection(weighted: Tensor, kernel: str = "sigmoid", gamma: float | None = None) -> Tensor:
    r"""KPCA-CAM's map: the first kernel principal component of the centred points.

    With :math:`K` the kernel matrix of the ``h*w`` points (``gamma`` defaults to ``1 / C``;
    ``coef0 = 1``, polynomial degree 3, as scikit-learn), :math:`\tilde K` its double-centred
    form, and :math:`(\lambda_1, u_1)` its top eigenpair, the map is
    :math:`\sqrt{\max(\lambda_1, 0)}\, u_1`, the sign of :math:`u_1` chosen so its entry of
    largest magnitude is positive (scikit-learn's ``KernelPCA(n_components=1)``).

    Args:
        weighted: Weighted activations ``(N, C, h, w)``.
        kernel: ``"sigmoid"``, ``"rbf"``, ``"poly"``, ``"linear"`` or ``"cosine"``.
        gamma: The kernel's scale (None: ``1 / C``).

    Returns:
        The maps ``(N, h, w)``, on the input's device.

    References:
        - Karmani, Chaabane and Ben Amar, "KPCA-CAM: Visual Explainability of Deep Computer Vision Models
          using Kernel PCA", MMSP 2024. https://arxiv.org/abs/2410.00267

    Example:
        >>> pa.cam.kernel_projection(torch.randn(2, 4, 3, 3)).shape
        torch.Size([2, 3, 3])
    """
    if kernel not in KERNELS:
        raise ArgumentError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    x = _points(weighted)
    g = 1.0 / x.shape[-1] if gamma is None else gamma
    dots = x @ x.transpose(1, 2)
    if kernel == "linear":
        k = dots
    elif kernel == "poly":
        k = (g * dots + 1.0) ** 3
    elif kernel == "sigmoid":
        k = torch.tanh(g * dots + 1.0)
    elif kernel == "rbf":
        sq = dots.diagonal(dim1=1, dim2=2)
        k = torch.exp(-g * (sq[:, :, None] + sq[:, None, :] - 2 * dots).clamp_min(0))
    else:
        norms = x.norm(dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
        k = dots / (norms[:, :, None] * norms[:, None, :])
    k = k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)
    values, vectors = torch.linalg.eigh(k)
    u, lam = vectors[..., -1], values[..., -1].clamp_min(0)
    sign = torch.sign(u.gather(1, u.abs().argmax(1, keepdim=True)))
    return (u * sign * lam.sqrt()[:, None]).reshape(weighted.shape[0], *weighted.shape[2:])
