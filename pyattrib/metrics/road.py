"""ROAD: RemOve And Debias (Rong et al., 2022, https://arxiv.org/abs/2202.00449).

Pixel-removal curves whose removed pixels are filled by noisy linear imputation: each removed
pixel takes the weighted mean of its eight neighbours (weight 1/6 for edge neighbours, 1/12
for corners), all removed pixels of an image at once, plus small Gaussian noise. The
imputation hides the shape of the removal mask, which otherwise tells the model (and so the
score) where the removed pixels were. The linear systems of all images, channels and removal
levels of a chunk are solved together by conjugate gradients on the inputs' device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._core import random
from .._core.call import prepare
from .._core.errors import ArgumentError, check_batch_size
from .._core.inputs import matching_attributions
from .._core.perturb import evaluate
from .._core.state import evaluating
from .._core.targets import TargetLike
from ._perturbed import ascending
from .curves import Curve

ORDERS = ("morf", "lerf")
_NEIGHBOURS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def impute(images: Tensor, removed: Tensor, max_iter: int = 1000, tol: float = 1e-6) -> Tensor:
    r"""Linear imputation of the ``removed`` pixels (bool, ``(B, 1 or C, H, W)``) of ``images``
    (``(B, C, H, W)``): the solution of :math:`d_p x_p - \sum_{q \in R} w_{pq} x_q =
    \sum_{q \notin R} w_{pq} x_q` for every removed pixel ``p`` (``d_p``: the weights of its
    neighbours inside the image), by conjugate gradients on all planes at once.

    Args:
        images: ``(B, C, H, W)`` images.
        removed: Bool ``(B, 1 or C, H, W)``: the pixels to impute.
        max_iter: The most conjugate-gradient iterations.
        tol: Stop when the residual's norm falls below this.

    Returns:
        Tensor: ``images`` with the removed pixels imputed.

    References:
        - Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient Evaluation Strategy
          for Attribution Methods", ICML 2022. https://arxiv.org/abs/2202.00449

    Example:
        >>> removed = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
        >>> removed[:, :, 3:5, 3:5] = True
        >>> pa.metrics.impute(images, removed).shape
        torch.Size([2, 3, 8, 8])
    """
    b, c, h, w = images.shape
    planes = images.reshape(b * c, 1, h, w)
    unknown = removed.expand(b, c, h, w).reshape(b * c, 1, h, w).to(images.dtype)
    kernel = _NEIGHBOURS.to(images)[None, None]
    degree = F.conv2d(torch.ones_like(planes[:1]), kernel, padding=1)

    def apply(x: Tensor) -> Tensor:
        return unknown * (degree * x - F.conv2d(x * unknown, kernel, padding=1))

    rhs = unknown * F.conv2d(planes * (1 - unknown), kernel, padding=1)
    x = torch.zeros_like(planes)
    r = rhs.clone()
    p = r.clone()
    rr = (r * r).sum((1, 2, 3), keepdim=True)
    scale = (rhs * rhs).sum((1, 2, 3), keepdim=True).clamp_min(torch.finfo(images.dtype).tiny)
    for step in range(max_iter):
        ap = apply(p)
        alpha = rr / (p * ap).sum((1, 2, 3), keepdim=True).clamp_min(torch.finfo(images.dtype).tiny)
        x = x + alpha * p
        r = r - alpha * ap
        rr_next = (r * r).sum((1, 2, 3), keepdim=True)
        if step % 10 == 9 and bool((rr_next <= tol * tol * scale).all()):
            break
        p = r + rr_next / rr.clamp_min(torch.finfo(images.dtype).tiny) * p
        rr = rr_next
    return torch.where(unknown.bool(), x, planes).reshape(b, c, h, w)


def road(
    f: Callable[..., Any],
    *,
    percentages: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    order: str = "morf",
    noise: float = 0.01,
    batch_size: int | None = None,
) -> Callable[..., Curve]:
    """ROAD curve of image attributions: remove the top (``order="morf"``, most relevant first)
    or bottom (``"lerf"``) share of pixels at each of ``percentages``, impute them (noisy
    linear imputation, Gaussian noise of std ``noise``), and record the selected output.

    Pixels are ranked by their attributions summed over channels; a pixel is removed in
    all channels. A faithful explanation gives a low MoRF curve and a high LeRF curve.
    Call as ``(inputs, attributions, *, target=None, additional_forward_args=None,
    generator=None)`` with ``inputs`` of shape ``(N, C, H, W)``; returns a :class:`Curve`
    (``fractions``: the percentages). Imputation and evaluation run in chunks of at most
    ``batch_size`` images.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        percentages: The shares of pixels removed, one curve point each.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        noise: Standard deviation of the Gaussian noise added to imputed pixels.
        batch_size: The most images per imputation and evaluation.

    Returns:
        A function ``(inputs, attributions, *, target=None, additional_forward_args=None,
        generator=None) -> Curve``.

    References:
        - Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient Evaluation Strategy
          for Attribution Methods", ICML 2022. https://arxiv.org/abs/2202.00449

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> pa.metrics.road(cnn, percentages=(0.2, 0.5))(images, attr, target=0).scores.shape
        torch.Size([2, 2])
    """
    if order not in ORDERS:
        raise ArgumentError(f"order must be 'morf' or 'lerf', got {order!r}")
    shares = [float(p) for p in percentages]
    if not shares or any(not 0.0 <= p <= 1.0 for p in shares):
        raise ArgumentError(f"percentages must be shares in [0, 1], got {list(percentages)!r}")
    check_batch_size(batch_size)

    def measure(
        inputs: Tensor, attributions: Tensor, *, target: TargetLike = None, additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Curve:  # fmt: skip
        call = prepare(inputs, target, additional_forward_args, method="road")
        if len(call.inputs) != 1 or call.inputs[0].dim() != 4:
            raise ArgumentError("road takes one image tensor of shape (N, C, H, W) as inputs")
        (x,) = call.inputs
        (attr,) = matching_attributions(attributions, call.inputs)
        n, _, h, w = x.shape
        score = attr.sum(1).reshape(n, -1).double()
        ranks = ascending(score, descending=order == "morf")
        counts = torch.tensor([round(p * h * w) for p in shares], device=x.device)

        def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
            removed = (ranks.index_select(0, i) < counts[p][:, None]).reshape(len(i), 1, h, w)
            filled = impute(x.index_select(0, i), removed)
            if noise:
                filled = filled + removed * random.normal(filled.shape, noise, x, generator)
            return (filled,)

        with evaluating(f):
            out, shape, _ = evaluate(f, call, build, len(shares), batch_size)
        if out.shape[-1] != 1:
            raise ArgumentError(f"road scores one output per example, but the model gives {shape}; pass target=")
        scores = out[..., 0].T
        fractions = torch.tensor(shares, dtype=scores.dtype, device=scores.device)
        auc = torch.trapezoid(scores, fractions, dim=1) if len(shares) > 1 else scores[:, 0] * 0
        return Curve(fractions, scores, auc)

    return measure
