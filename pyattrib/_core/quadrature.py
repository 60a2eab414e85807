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

:class:`DyadicGrid` holds the rules behind ``n_steps="auto"``: an adaptive trapezoid rule on
dyadic intervals of the Clenshaw-Curtis nodes ``a_k = (1 - cos(pi k / N)) / 2``, whose error is
measured per interval, and Fejer's second rule on the levels of that grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .errors import ArgumentError, check_count

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
        weights = torch.full((n,), step, dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 * step
        return torch.linspace(0, 1, n, dtype=torch.float64), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    nodes = (torch.arange(n, dtype=torch.float64) + offset) / n
    return nodes, torch.full((n,), 1.0 / n, dtype=torch.float64)


def fejer(levels: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes (increasing, in (0, 1)) and weights of Fejer's second rule with ``2^levels - 1``
    nodes: the Clenshaw-Curtis nodes without the two ends, exact for polynomials of degree
    ``2^levels - 2``.

    .. math:: a_k = \frac{1 - \cos\theta_k}{2},\ \theta_k = \frac{\pi k}{n},\quad
              w_k = \frac{2 \sin\theta_k}{n} \sum_{j=1}^{n/2} \frac{\sin((2j - 1)\theta_k)}{2j - 1},
              \quad k = 1, \dots, n - 1,\ n = 2^{levels}

    (Trefethen, "Is Gauss Quadrature Better than Clenshaw-Curtis?", SIAM Review 2008). The
    ends carry no weight, so the rule never differentiates at the baseline or the input.
    """
    n = 2**levels
    theta = np.pi * np.arange(1, n) / n
    j = np.arange(1, n // 2 + 1)
    w = 2 * np.sin(theta) / n * (np.sin(np.outer(theta, 2 * j - 1)) / (2 * j - 1)).sum(1)
    return (1 - np.cos(theta)) / 2, w


@dataclass(frozen=True)
class DyadicGrid:
    """The nodes ``n_steps="auto"`` draws from: ``a_k = (1 - cos(pi k / N)) / 2``, ``k = 0..N``,
    ``N = 2^depth``, and the two rules it can stop with on a held subset of them.

    Each example holds the ends and a subset of nodes that splits [0, 1] into dyadic intervals
    ``[a_i, a_j]`` (``j - i`` a power of two, ``i`` a multiple of it). Along the path the model
    output ``F(a)`` is known at every held node (the forward pass of the gradient), so the
    error of the trapezoid rule on each interval is measured exactly:
    ``e_ij = (a_j - a_i) (g_i + g_j) / 2 - (F(a_j) - F(a_i))`` with ``g = dF/da`` (the two
    end intervals take the value at their inner node only, so no gradient is taken at the
    baseline or the input). The errors sum to the completeness delta. Halving the intervals
    with the largest errors finds and isolates a ReLU network's jumps in ``g``. Where the held
    nodes contain a whole level ``a_{kN/2^m}``, Fejer's second rule (:func:`fejer`) on it
    converges spectrally on smooth integrands.

    ``alpha`` has shape ``(N + 1,)``; ``fejer[m]`` holds the weights of level ``m`` on the
    grid (zero off the level).
    """

    depth: int
    alpha: Tensor
    fejer: Tensor

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def build(depth: int = 8) -> DyadicGrid:
        """The grid of ``2^depth + 1`` nodes (built once per depth; its tensors are never written)."""
        n = 2**depth
        weights = np.zeros((depth + 1, n + 1))
        for m in range(1, depth + 1):
            weights[m, n >> m : n : n >> m] = fejer(m)[1]
        alpha = (1 - np.cos(np.pi * np.arange(n + 1) / n)) / 2
        return DyadicGrid(depth, torch.from_numpy(alpha), torch.from_numpy(weights))

    @property
    def size(self) -> int:
        return 2**self.depth

    def neighbours(self, held: Tensor) -> tuple[Tensor, Tensor]:
        """The held nodes left and right of each grid node (``(n, N + 1)`` each; -1 / N + 1 where none)."""
        n = self.size
        ids = torch.arange(n + 1, device=held.device).expand_as(held)
        at_or_left = torch.where(held, ids, -1).cummax(1).values
        at_or_right = torch.where(held, ids, n + 1).flip(1).cummin(1).values.flip(1)
        left = torch.cat([torch.full_like(at_or_left[:, :1], -1), at_or_left[:, :-1]], 1)
        return left, torch.cat([at_or_right[:, 1:], at_or_right[:, -1:]], 1)

    def finest_level(self, held: Tensor) -> Tensor:
        """Per example, the finest level ``m`` whose nodes ``a_{kN/2^m}`` are all held."""
        n = self.size
        ids = torch.arange(n + 1, device=held.device)
        level = self.depth - (ids & -ids).clamp(min=1).log2().long()  # node k first appears on this level
        level[[0, n]] = 0
        return torch.where(held, self.depth + 1, level).amin(1).clamp(max=self.depth + 1) - 1

    def trapezoid(self, held: Tensor, neighbours: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Trapezoid weights of the held nodes ``(n, N + 1)``; the end intervals give their whole
        width to their inner node."""
        left, right = self.neighbours(held) if neighbours is None else neighbours
        a, inner = self.alpha.to(held.device), held.clone()
        inner[:, [0, self.size]] = False
        lo, hi = a[left.clamp(0, self.size)], a[right.clamp(0, self.size)]
        w = (a - lo) * torch.where(left == 0, 1.0, 0.5) + (hi - a) * torch.where(right == self.size, 1.0, 0.5)
        return torch.where(inner, w, 0.0)

    def interval_errors(
        self, held: Tensor, values: Tensor, slopes: Tensor, neighbours: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Each held interval's trapezoid error, indexed by its left node, and its right node.

        ``values`` and ``slopes`` are ``F`` and ``g`` on the grid (read at held nodes only)."""
        n = self.size
        right = (self.neighbours(held) if neighbours is None else neighbours)[1].clamp(max=n)
        a = self.alpha.to(held.device)
        width = a[right] - a
        g_left, g_right = slopes, slopes.gather(1, right)
        estimate = torch.where(right == n, width * g_left, 0.5 * width * (g_left + g_right))
        estimate[:, 0] = width[:, 0] * g_right[:, 0]
        error = estimate - (values.gather(1, right) - values)
        open_ = held.clone()
        open_[:, n] = False
        return torch.where(open_, error, 0.0), right

    def halves(
        self, held: Tensor, values: Tensor, slopes: Tensor, neighbours: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """The nodes to add (``(n, N + 1)``, bool): the midpoints of the intervals whose error is at
        least half the largest among those wide enough to halve."""
        errors, right = self.interval_errors(held, values, slopes, neighbours)
        wide = right - torch.arange(self.size + 1, device=held.device) >= 2
        errors = torch.where(wide, errors.abs(), 0.0)
        rows, left = ((errors >= 0.5 * errors.amax(1, keepdim=True)) & (errors > 0)).nonzero(as_tuple=True)
        fresh = torch.zeros_like(held)
        fresh[rows, (left + right[rows, left]) // 2] = True
        return fresh


@dataclass(frozen=True)
class ToTolerance:
    """``n_steps="auto"``: refine each example until ``|completeness delta| <= tolerance``."""

    tolerance: float


PathRule = tuple[Tensor, Tensor] | ToTolerance
DEFAULT_TOLERANCE = 1e-3


def path_rule(n_steps: int | str, method: str, tolerance: float | None) -> PathRule:
    """The quadrature a path method asked for: fixed ``(nodes, weights)`` or :class:`ToTolerance`."""
    if n_steps == "auto":
        if method != "gausslegendre":
            raise ArgumentError(
                f"method={method!r} applies to a fixed n_steps; n_steps='auto' picks its own nodes "
                "(an adaptive trapezoid on Clenshaw-Curtis nodes). Drop method, or pass an int n_steps"
            )
        tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol > 0:
            raise ArgumentError(f"tolerance must be a positive float, got {tolerance!r}")
        return ToTolerance(float(tol))
    if isinstance(n_steps, str):
        raise ArgumentError(f"n_steps must be a positive int or 'auto', got {n_steps!r}")
    if tolerance is not None:
        raise ArgumentError("tolerance applies only to n_steps='auto'; pass n_steps='auto' or drop tolerance")
    return quadrature(method, n_steps)
