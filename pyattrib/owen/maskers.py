"""Baselines for images as shap's Image masker makes them: a blur, or inpainting."""

from __future__ import annotations

import numpy as np
import torch
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


class Inpaint:
    """Removed pixels painted in from the pixels kept, per masked image (shap's
    ``"inpaint_telea"`` / ``"inpaint_ns"`` Image masker): pass it as ``owen_values``'s
    ``baselines``. Build it with :func:`inpaint`.

    Args:
        method: ``"telea"`` or ``"ns"``.
        radius: The inpainting radius in pixels.

    Example:
        >>> pa.owen.Inpaint("telea").method
        'telea'
    """

    def __init__(self, method: str = "telea", radius: int = 3) -> None:
        if method not in ("telea", "ns"):
            raise ArgumentError(f"method={method!r}; choose 'telea' or 'ns'")
        self.method, self.radius = method, radius

    def __call__(self, images: Tensor, present: Tensor) -> Tensor:
        """``images`` ``(R, C, H, W)`` with every pixel that has a removed channel painted in
        (OpenCV's inpainting, on the image as 8-bit values, as shap does); all removed: each
        channel's mean."""
        cv2 = _cv2()
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        out = []
        for image, keep in zip(images.detach().cpu().numpy(), present.cpu().numpy()):
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
            hole = (~keep).any(0).astype(np.uint8)
            if hole.all():
                filled = np.broadcast_to(hwc.mean((0, 1)), hwc.shape)
            else:
                filled = cv2.inpaint(hwc.astype(np.uint8), hole, self.radius, flag).reshape(hwc.shape)
            out.append(np.asarray(filled, dtype=hwc.dtype).transpose(2, 0, 1))
        return torch.as_tensor(np.stack(out), device=images.device, dtype=images.dtype)


def inpaint(method: str = "telea", radius: int = 3) -> Inpaint:
    """Inpainting baselines for images (shap's Image masker's ``"inpaint_telea"`` and
    ``"inpaint_ns"``): each masked image's removed pixels painted in from the ones kept, by
    OpenCV's Telea or Navier-Stokes method. Images hold 0-255 values (OpenCV paints 8-bit
    images). Needs ``opencv-python``.

    Args:
        method: ``"telea"`` or ``"ns"``.
        radius: The inpainting radius in pixels (shap's: 3).

    Returns:
        An :class:`Inpaint`, passed as ``baselines=`` to :func:`owen_values`.

    Example:
        >>> images = torch.randint(0, 256, (1, 3, 8, 8)).float()
        >>> tree = pa.owen.image_hierarchy((3, 8, 8))
        >>> pa.owen_values(cnn, hierarchy=tree, max_evals=50)(images, pa.owen.inpaint(), target=0).shape
        torch.Size([1, 3, 8, 8])

    References:
        - Telea, "An Image Inpainting Technique Based on the Fast Marching Method", Journal of
          Graphics Tools 2004. https://doi.org/10.1080/10867651.2004.10487596
        - Bertalmio, Bertozzi and Sapiro, "Navier-Stokes, Fluid Dynamics, and Image and Video
          Inpainting", CVPR 2001. https://doi.org/10.1109/CVPR.2001.990497
    """
    return Inpaint(method, radius)


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - the dev environment has it
        raise ImportError("inpainting needs OpenCV: pip install opencv-python-headless") from e
    return cv2


class Background:
    """Rows of a background dataset, passed as ``owen_values``'s ``baselines``: each coalition's
    value is the mean model output over the rows, each completing the coalition with its own
    values (shap's maskers with a background of many rows). Build it with :func:`background`.

    Args:
        rows: ``(B, ...)`` rows per input (a tensor, or a tuple for tuple inputs).

    Example:
        >>> len(pa.owen.Background(torch.zeros(5, 8)).rows[0])
        5
    """

    def __init__(self, rows: Tensor | tuple[Tensor, ...]) -> None:
        self.rows = rows if isinstance(rows, tuple) else (rows,)
        counts = {len(r) for r in self.rows}
        if len(counts) != 1 or not all(isinstance(r, Tensor) and r.dim() >= 1 for r in self.rows):
            raise ArgumentError("background takes tensors with the same number of rows, one per input")

    def check(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The rows on the inputs' device and dtype, checked against the inputs' shapes."""
        if len(self.rows) != len(inputs):
            raise ArgumentError(f"background has {len(self.rows)} tensors for {len(inputs)} inputs; give one each")
        out = []
        for r, x in zip(self.rows, inputs):
            if r.shape[1:] != x.shape[1:]:
                raise ArgumentError(
                    f"background rows have shape {tuple(r.shape[1:])}, the inputs' examples {tuple(x.shape[1:])}; "
                    "give rows of the examples' shape"
                )
            out.append(r.to(device=x.device, dtype=x.dtype))
        return tuple(out)


def background(rows: Tensor | tuple[Tensor, ...]) -> Background:
    """A background dataset for :func:`owen_values` (``baselines=pa.owen.background(data)``):
    ``v(S) = mean_b f(x_S, b_rest)`` over its ``B`` rows, every coalition evaluated ``B`` times
    (shap's Partition masker with a background of ``B`` rows).

    Args:
        rows: ``(B, ...)`` background rows (a tuple of tensors for tuple inputs).

    Returns:
        A :class:`Background`.

    Example:
        >>> tree = pa.owen.tree_hierarchy(((0, 1), ((2, 3), ((4, 5), (6, 7)))))
        >>> pa.owen_values(model, hierarchy=tree)(x, pa.owen.background(torch.randn(5, 8)), target=y).shape
        torch.Size([4, 8])

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874
    """
    return Background(rows)
