"""Path methods whose path is not the straight line: Blur IG (a path of blurred images, given as
data to the path kernel) and Guided IG (a path chosen by the gradients as it goes)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.call import prepare
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike
from ._core.kernel import Chunk, curve_integral, gradients
from ._core.state import evaluating
from ._core.targets import TargetLike
from .cam.blur import gaussian_blur


def blur_ig(
    f: Callable[..., Any],
    *,
    max_sigma: float = 50.0,
    n_steps: int = 100,
    grad_step: float = 0.01,
    sqrt: bool = False,
    batch_size: int | None = None,
) -> Attributor:
    r"""Blur IG: integrated gradients along a path of increasingly blurred images, from the
    image (:math:`\sigma = 0`) to its blur at ``max_sigma``; no baseline is needed.

    .. math:: \phi(x) = -\sum_{k=0}^{K-1} \nabla f\big(b_{\sigma_k}(x)\big) \odot
              \frac{b_{\sigma_k + \epsilon}(x) - b_{\sigma_k}(x)}{\epsilon}\,(\sigma_{k+1} - \sigma_k)

    with :math:`b_\sigma` the Gaussian blur (:func:`pyattrib.cam.gaussian_blur`), :math:`\sigma_k = k\,
    \sigma_{max} / K` (``sqrt``: :math:`\sqrt{k \sigma_{max} / K}`), :math:`K` = ``n_steps`` and
    :math:`\epsilon` = ``grad_step``. The path is data for the path kernel: all ``N * K`` points are
    differentiated in batches of ``batch_size`` rows. PAIR ``saliency``'s ``BlurIG`` computes the
    same sum (with ``sqrt=True`` and ``batch_size > 1`` it multiplies each batch by the last step's
    width; pyattrib uses each step's own).

    Args:
        f: The model, or a function ``inputs -> outputs``.
        max_sigma: The blur at the path's end, in pixels.
        n_steps: The number of points :math:`K`.
        grad_step: The finite-difference step :math:`\epsilon` of the blur's derivative in sigma.
        sqrt: Space the sigmas as square roots.
        batch_size: Rows per gradient evaluation (None: pyattrib's memory budget rule).

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)`` with images
        ``(N, C, H, W)``; it returns attributions of the inputs' shape.

    References:
        - Xu, Venugopalan and Sundararajan, "Attribution in Scale and Space", CVPR 2020.
          https://arxiv.org/abs/2004.03383

    Example:
        >>> pa.blur_ig(cnn, max_sigma=4.0, n_steps=8)(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    check_count("n_steps", n_steps)
    check_batch_size(batch_size)
    if max_sigma <= 0 or grad_step <= 0:
        raise ArgumentError(f"max_sigma and grad_step must be positive, got {max_sigma} and {grad_step}")
    ks = range(n_steps + 1)
    sigmas = [math.sqrt(k * max_sigma / n_steps) if sqrt else k * max_sigma / n_steps for k in ks]

    def attribute(inputs: Tensor, *, target: TargetLike = None, additional_forward_args: Any = None) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method="blur_ig")
        if call.was_tuple or call.inputs[0].dim() != 4:
            raise ArgumentError("blur_ig: inputs must be one tensor of images (N, C, H, W)")
        x = call.inputs[0]

        def curve(c: Chunk) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            points = torch.empty((len(c.i), *x.shape[1:]), dtype=x.dtype, device=x.device)
            steps = torch.empty_like(points)
            for k in c.k.unique().tolist():
                rows = (c.k == k).nonzero()[:, 0]
                images = x.index_select(0, c.i[rows])
                here = gaussian_blur(images, sigmas[k])
                points[rows] = here
                steps[rows] = (
                    (gaussian_blur(images, sigmas[k] + grad_step) - here) / grad_step * (sigmas[k + 1] - sigmas[k])
                )
            return (points,), (steps,)

        def grad_at(points: tuple[Tensor, ...], c: Chunk) -> tuple[Tensor, ...]:
            return gradients(f, call.args, call.target, points, c.i)

        with evaluating(f):
            (total,) = curve_integral(grad_at, curve, n_steps, call.n, call.chunk(batch_size), x.device)
        return -total

    return Attributor(attribute, f, name="blur_ig")


def guided_ig(
    f: Callable[..., Any], *, n_steps: int = 200, fraction: float = 0.25, max_dist: float = 0.02
) -> Attributor:
    r"""Guided IG: integrated gradients along a path that, at each step, moves the features
    whose gradient is smallest in magnitude, staying within ``max_dist`` of the straight line.

    With :math:`x^{(0)}` the baseline, step :math:`t = 1..T` targets the L1 distance
    :math:`\|x - x^{in}\|_1 = (1 - t/T)\,\|x^{in} - x^{b}\|_1`: features lagging behind
    :math:`\alpha_{min} = t/T - d` are first brought up to it; then, repeatedly, the ``fraction``
    of features with the smallest :math:`|\partial f/\partial x|` (features already at
    :math:`\alpha_{max} = t/T + d` excluded) move toward :math:`\alpha_{max}`, all the way or by the
    share :math:`\gamma` that reaches the target distance. The attribution sums
    :math:`(x_{new} - x_{old}) \odot \nabla f(x^{(t-1)})` over every move, so it adds up to
    :math:`f(x^{in}) - f(x^{b})` as the steps grow (:math:`d` = ``max_dist``; :math:`d = 0` is IG,
    :math:`d = 1` unbounded Guided IG).

    The steps are sequential (each depends on the last gradient); the examples of a batch go
    through them together, one gradient evaluation of ``N`` rows per step. The path is kept in
    double precision, as PAIR ``saliency``'s ``GuidedIG``, whose numbers this reproduces.

    Args:
        f: The model, or a function ``inputs -> outputs``.
        n_steps: The number of steps :math:`T` (gradient evaluations).
        fraction: The share of features moved at once, in ``(0, 1]``.
        max_dist: How far (as a fraction of the path) a feature may run ahead of or lag behind the
            straight line, in ``[0, 1]``.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``
        (baselines default to zeros); it returns attributions of the inputs' shape.

    References:
        - Kapishnikov, Venugopalan, Avci, Wedin, Terry and Bolukbasi, "Guided Integrated Gradients: an
          Adaptive Path Method for Removing Noise", CVPR 2021. https://arxiv.org/abs/2106.09788

    Example:
        >>> pa.guided_ig(model, n_steps=16)(x, target=y).shape
        torch.Size([4, 8])
    """
    check_count("n_steps", n_steps)
    if not 0 < fraction <= 1 or not 0 <= max_dist <= 1:
        raise ArgumentError(f"fraction must be in (0, 1] and max_dist in [0, 1], got {fraction} and {max_dist}")

    def attribute(
        inputs: Tensor,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method="guided_ig")
        if call.was_tuple:
            raise ArgumentError("guided_ig: inputs must be one tensor; concatenate several inputs into one")
        x_in = call.inputs[0]
        shape, dtype = x_in.shape, x_in.dtype
        xin = x_in.reshape(call.n, -1).to(torch.float64)
        xb = call.baselines(baselines)[0].reshape(call.n, -1).to(torch.float64)

        def grad(x: Tensor) -> Tensor:
            rows = (x.reshape(shape).to(dtype),)
            return gradients(f, call.args, call.target, rows, None)[0].reshape(call.n, -1).to(torch.float64)

        with evaluating(f):
            attr = _guided_path(grad, xin, xb, n_steps, fraction, max_dist)
        return attr.reshape(shape).to(dtype)

    return Attributor(attribute, f, name="guided_ig")


def _guided_path(
    grad: Callable[[Tensor], Tensor], xin: Tensor, xb: Tensor, n_steps: int, fraction: float, max_dist: float
) -> Tensor:
    """Guided IG's path for ``(N, F)`` double-precision inputs and baselines, all rows at once."""
    x = xb.clone()
    total = xin - xb
    l1_total = total.abs().sum(1)
    attr = torch.zeros_like(xin)
    moving = l1_total != 0
    inf = torch.tensor(math.inf, dtype=xin.dtype, device=xin.device)
    for step in range(n_steps):
        grad_actual = grad(x)
        g = grad_actual.clone()
        alpha = (step + 1.0) / n_steps
        alpha_min, alpha_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = xb + total * alpha_min, xb + total * alpha_max
        l1_target = l1_total * (1 - (step + 1) / n_steps)
        active = moving.clone()
        for _ in range(xin.shape[1] + 2):  # each pass moves at least one feature of every active row
            if not bool(active.any()):
                break
            x_old = x
            x_alpha = torch.where(total != 0, (x - xb) / torch.where(total != 0, total, 1.0), alpha_max)
            x = torch.where(active[:, None] & (x_alpha < alpha_min), x_min, x)
            l1_current = (x - xin).abs().sum(1)
            gap = (l1_target - l1_current).abs()
            done = active & (
                gap
                <= torch.maximum(1e-9 * torch.maximum(l1_target.abs(), l1_current.abs()), torch.full_like(gap, 1e-9))
            )
            attr = attr + torch.where(done[:, None], (x - x_old) * grad_actual, 0.0)
            active = active & ~done
            g = torch.where(x == x_max, inf, g)
            threshold = torch.quantile(g.abs(), fraction, dim=1, keepdim=True, interpolation="lower")
            s = (g.abs() <= threshold) & (g != inf)
            l1_s = ((x - x_max).abs() * s).sum(1)
            gamma = torch.where(l1_s > 0, (l1_current - l1_target) / torch.where(l1_s > 0, l1_s, 1.0), inf)
            whole = active[:, None] & s & (gamma > 1)[:, None]
            part = active[:, None] & s & (gamma <= 1)[:, None]
            x = torch.where(whole, x_max, torch.where(part, x + (x_max - x) * gamma[:, None], x))
            attr = attr + torch.where(active[:, None], (x - x_old) * grad_actual, 0.0)
            active = active & (gamma > 1)
    return attr
