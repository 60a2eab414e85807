"""Quadrature rules for path integrals over ``alpha`` in [0, 1].

Each rule gives nodes ``a_k`` and weights ``w_k`` with
``integral_0^1 g(a) da  ~=  sum_k w_k g(a_k)``.

- ``riemann_left/right/middle``: ``w_k = 1/n`` at the left ends, right ends or
  midpoints of ``n`` equal intervals.
- ``riemann_trapezoid``: nodes ``linspace(0, 1, n)``, ``w = (1/2, 1, ..., 1, 1/2) / (n-1)``.
  Captum uses ``1/n`` here, so its weights sum to ``(n-1)/n``; ours sum to 1 and the
  rule is exact for linear integrands. This is a deliberate difference.
- ``riemann_trapezoid_captum``: Captum's trapezoid, ``w = (1/2, 1, ..., 1, 1/2) / n`` (what
  :mod:`pyattrib.compat` uses for Captum's ``riemann_trapezoid``).
- ``gausslegendre``: Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1]
  (exact for polynomials of degree ``2n - 1``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .errors import ArgumentError
from .kernel import check_count

METHODS = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
    "riemann_trapezoid_captum",
)


def quadrature(method: str, n_steps: int) -> tuple[Tensor, Tensor]:
    """Return ``(nodes, weights)`` as float64 CPU tensors of length ``n_steps``."""
    check_count("n_steps", n_steps)
    if method not in METHODS:
        raise ArgumentError(f"unknown quadrature method {method!r}; choose one of {', '.join(METHODS)}")
    n = n_steps
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return torch.from_numpy(0.5 * (1 + x)), torch.from_numpy(0.5 * w)
    if method.startswith("riemann_trapezoid"):
        if n < 2:
            raise ArgumentError(f"n_steps must be at least 2 for method={method!r}")
        step = 1.0 / n if method == "riemann_trapezoid_captum" else 1.0 / (n - 1)
        w = torch.full((n,), step, dtype=torch.float64)
        w[0] = w[-1] = 0.5 * step
        return torch.linspace(0, 1, n, dtype=torch.float64), w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    nodes = (torch.arange(n, dtype=torch.float64) + offset) / n
    return nodes, torch.full((n,), 1.0 / n, dtype=torch.float64)
