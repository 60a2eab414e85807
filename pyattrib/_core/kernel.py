"""The chunked gradient kernel shared by every gradient and path method.

A method describes the rows it needs: row ``r`` is point ``k = r // N`` of example
``i = r % N`` (a path step, a noise sample, ...). :func:`accumulate` builds the rows in
chunks of at most ``batch_size``, lets the method turn each chunk into per-row
contributions, and sums them per example. Peak memory follows the chunk, not the
number of points, and the sum does not depend on the chunking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor

from .errors import ArgumentError
from .inputs import ForwardArgs
from .layout import feeder
from .quadrature import DyadicGrid, PathRule, ToTolerance
from .state import transformed
from .targets import Target


class Chunk:
    """Rows ``r`` of one evaluation: row ``r`` is point ``k = r // n`` of example ``i = r % n``.

    With ``examples`` (a subset of the call's examples, as indices) the ``n`` rows of a point
    are those examples: ``local = r % n`` counts within the subset, ``i = examples[local]``.
    """

    def __init__(self, start: int, stop: int, n: int, device: torch.device, examples: Tensor | None = None) -> None:
        self.n, self.start, self.stop, self.device, self.examples = n, start, stop, device, examples
        self.aligned = examples is None and start % n == 0 and stop % n == 0
        self._r: Tensor | None = None
        self._i: Tensor | None = None
        self.outputs: Tensor | None = None  # the rows' selected outputs, when a method records them

    # row indices are made on first use (a one-point chunk, as saliency's, needs none); plain
    # properties, not functools.cached_property, which torch.compile cannot trace
    @property
    def r(self) -> Tensor:
        if self._r is None:
            self._r = torch.arange(self.start, self.stop, device=self.device)
        return self._r

    @property
    def k(self) -> Tensor:
        return self.r // self.n

    @property
    def local(self) -> Tensor:
        return self.r % self.n

    @property
    def i(self) -> Tensor:
        if self._i is None:
            self._i = self.local if self.examples is None else self.examples[self.local]
        return self._i

    @property
    def index(self) -> Tensor | None:
        """``i`` for selecting per-example targets and arguments; None when the chunk is the
        batch itself (rows ``0..n-1``), which needs no selection."""
        return None if self.examples is None and self.start == 0 and self.stop == self.n else self.i

    def take(self, t: Tensor) -> Tensor:
        """The rows of per-example tensor ``t`` (shape ``(N, ...)``) for this chunk."""
        if self.aligned:  # whole points: a contiguous tile is cheaper than a gather
            c = (self.stop - self.start) // self.n
            return t.unsqueeze(0).expand(c, *t.shape).reshape(-1, *t.shape[1:])
        return t.index_select(0, self.i)


class Pairs(Chunk):
    """Rows given as explicit pairs: row ``r`` is node ``k[r]`` of example ``i[r]`` (each example
    its own nodes, as in ``n_steps="auto"``)."""

    def __init__(self, i: Tensor, k: Tensor) -> None:
        super().__init__(0, len(i), len(i), i.device, examples=i)
        self._i, self._k = i, k

    @property
    def k(self) -> Tensor:
        return self._k


Contribution = Callable[[Chunk], tuple[Tensor, ...]]


def accumulate(
    contribution: Contribution,
    n_points: int,
    n: int,
    batch_size: int | None,
    device: torch.device,
    overlap: int = 0,
    row_totals: bool = False,
    examples: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """``acc[i] = sum_k contribution(chunk)`` over rows ``r = k * n + i``, chunk by chunk.

    ``contribution`` returns a tuple of tensors with one leading row per row of the chunk.
    With ``overlap > 0`` chunks hold whole points, consecutive chunks share ``overlap``
    points, and ``contribution`` returns rows for all but the chunk's last ``overlap``
    points (differences between neighbouring points, as in conductance). With
    ``row_totals`` one more tensor follows: each row's contribution summed over all its
    elements, shape ``(n_points * n,)`` (per-sample completeness checks need it).
    With ``examples`` the rows cover only those ``n`` examples (see :class:`Chunk`).
    """
    if overlap:
        per_chunk = n_points if batch_size is None else max(overlap + 1, batch_size // n)
        bounds, start = [], 0
        while True:
            stop = min(start + per_chunk, n_points)
            bounds.append((start * n, stop * n))
            if stop == n_points:
                break
            start = stop - overlap
    else:
        total = n_points * n
        step = total if batch_size is None else min(batch_size, total)
        bounds = [(s, min(s + step, total)) for s in range(0, total, step)]
    acc: list[Tensor] | None = None
    totals: list[Tensor] = []
    for start, stop in bounds:
        chunk = Chunk(start, stop, n, device, examples)
        parts = contribution(chunk)
        if row_totals:
            totals.append(cast(Tensor, sum(p.reshape(len(p), -1).sum(1) for p in parts)))
        if chunk.aligned:
            summed = [p if len(p) == n else p.reshape(-1, n, *p.shape[1:]).sum(0) for p in parts]
            acc = summed if acc is None else [a + p for a, p in zip(acc, summed)]
        else:
            if acc is None:
                acc = [p.new_zeros((n, *p.shape[1:])) for p in parts]
            acc = [a.index_add(0, chunk.local, p) for a, p in zip(acc, parts)]
    assert acc is not None
    return (*acc, torch.cat(totals)) if row_totals else tuple(acc)


def example_major(per_row: Tensor, n: int) -> Tensor:
    """Reorder per-row values from ``k * n + i`` (point-major) to ``i * n_points + k``
    (example-major, Captum's layout for per-sample deltas)."""
    return per_row.reshape(-1, n).T.reshape(-1)


def outputs(
    forward: Callable[..., Any], args: ForwardArgs, target: Target, rows: tuple[Tensor, ...], index: Tensor | None
) -> Tensor:
    """Selected model outputs, one scalar per row; ``index`` maps rows to examples."""
    return target.select(forward(*rows, *args.rows(index)), index)


def gradients(
    forward: Callable[..., Any],
    args: ForwardArgs,
    target: Target,
    rows: tuple[Tensor, ...],
    index: Tensor | None,
    record: Chunk | None = None,
) -> tuple[Tensor, ...]:
    """``d/d rows  sum_r selected_output_r`` in one backward pass.

    Rows are independent examples, so the gradient of the sum is the per-row gradient.
    In eager mode this is one ``torch.autograd.grad`` call (the cheapest backward; with
    ``create_graph`` when grad mode is on, so attributions stay differentiable in the
    parameters). Under torch.compile or inside a torch.func transform (vmap, grad) of
    the attributor, it is ``torch.func.grad``, which composes with both. Neither
    touches ``.grad``. With ``record`` the selected outputs (detached) are kept on that chunk.
    """
    fwd = forward if transformed() else feeder(forward, rows, backward=True)

    def total(*xs: Tensor) -> Tensor:
        selected = outputs(fwd, args, target, xs, index)
        if record is not None:
            record.outputs = selected.detach()
        return selected.sum()

    return gradient_of_sum(total, rows)


def gradient_of_sum(total: Callable[..., Tensor], rows: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``d total(*rows) / d rows`` for a scalar ``total``: ``torch.autograd.grad`` eagerly (with
    ``create_graph`` when grad mode is on), ``torch.func.grad`` under compile or a transform."""
    if transformed():
        return torch.func.grad(total, argnums=tuple(range(len(rows))))(*rows)
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        rows = tuple(r if (create_graph and r.requires_grad) else r.detach().requires_grad_() for r in rows)
        value = total(*rows)
        return torch.autograd.grad(value, rows, create_graph=create_graph, allow_unused=True, materialize_grads=True)


def rows_of(t: Tensor, index: Tensor) -> Tensor:
    return t.index_select(0, index)


def along_rows(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-row vector so that it broadcasts over ``like``'s trailing dims."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


GradAt = Callable[[tuple[Tensor, ...], Chunk], Sequence[Tensor]]


def path_points(c: Chunk, start: tuple[Tensor, ...], diff: tuple[Tensor, ...], nodes: Tensor) -> tuple[Tensor, ...]:
    """The chunk's rows of the path ``start + a_k * diff`` (row ``r`` at node ``k = c.k[r]``)."""
    return tuple(c.take(b) + along_rows(nodes.to(d)[c.k], d) * c.take(d) for b, d in zip(start, diff))


def path_integral(
    grad_at: GradAt,
    start: tuple[Tensor, ...],
    diff: tuple[Tensor, ...],
    nodes: Tensor,
    weights: Tensor,
    batch_size: int | None,
) -> tuple[Tensor, ...]:
    """``sum_k w_k * grad_at(start + a_k * diff)`` per example, in chunks.

    ``grad_at(points, chunk)`` returns any per-row gradients (input or layer ones).
    """

    def contribution(c: Chunk) -> tuple[Tensor, ...]:
        return tuple(g * along_rows(weights.to(g)[c.k], g) for g in grad_at(path_points(c, start, diff, nodes), c))

    return accumulate(contribution, len(nodes), start[0].shape[0], batch_size, start[0].device)


Curve = Callable[[Chunk], tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]


def curve_integral(
    grad_at: GradAt, curve: Curve, n_points: int, n: int, batch_size: int | None, device: torch.device
) -> tuple[Tensor, ...]:
    """``sum_k grad_at(gamma_k) * dgamma_k`` per example, in chunks, for a path given as data:
    ``curve(chunk)`` returns the chunk's rows of the points ``gamma_k`` and of the steps
    ``dgamma_k`` (e.g. Blur IG's blurred images and their sigma-derivatives)."""

    def contribution(c: Chunk) -> tuple[Tensor, ...]:
        points, steps = curve(c)
        return tuple(g * d for g, d in zip(grad_at(points, c), steps))

    return accumulate(contribution, n_points, n, batch_size, device)


def adaptive_path_integral(
    grad_at: GradAt,
    start: tuple[Tensor, ...],
    diff: tuple[Tensor, ...],
    ends: tuple[Tensor, Tensor],
    tolerance: float,
    batch_size: int | None,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """:func:`path_integral` to a tolerance, each example on its own nodes of a
    :class:`DyadicGrid`.

    ``ends`` are the exact ``F(0), F(1)`` per example (model outputs at the start and end of
    the path). Every example starts with Fejer's rule of 3 nodes. Each round evaluates the new
    nodes of the examples not yet converged (one batch of ``(example, node)`` rows, in chunks
    of ``batch_size``); ``grad_at`` records the outputs ``F`` there, which measure each
    interval's error exactly. An example stops at the first round where Fejer's rule on its
    finest whole level, or else its adaptive trapezoid, has ``|sum_j diff_j * I_j - rise|``
    at most ``tolerance``; otherwise the intervals with at least half the largest error are
    halved (:meth:`DyadicGrid.halves`), and where Fejer's rule is the closer of the two (a
    smooth integrand) its next level is filled in as well. Gradients of every evaluated node
    are kept until the end, when each example's nodes are summed with the weights of the rule
    it stopped with. Returns the integrals and
    the number of nodes each example used.
    """
    grid = DyadicGrid.build()
    n, device, size = start[0].shape[0], start[0].device, grid.size
    values = torch.zeros(n, size + 1, dtype=torch.float64, device=device)
    slopes = torch.zeros_like(values)
    values[:, 0], values[:, size] = ends[0], ends[1]
    held = torch.zeros(n, size + 1, dtype=torch.bool, device=device)
    held[:, [0, size]] = True
    fresh = torch.zeros_like(held)
    fresh[:, size // 4 : size : size // 4] = True  # Fejer's rule of 3 nodes
    chosen = torch.zeros_like(values)  # per example, the weights of the rule it stopped with
    kept: list[tuple[Pairs, Sequence[Tensor]]] = []
    rise = (ends[1] - ends[0]).to(torch.float64)
    fejer = grid.fejer.to(device)
    active = torch.arange(n, device=device)
    while len(active):
        rows, nodes = fresh[active].nonzero(as_tuple=True)
        examples = active[rows]
        step = len(examples) if batch_size is None else batch_size
        for s in range(0, len(examples), step):
            c = Pairs(examples[s : s + step], nodes[s : s + step])
            grads = grad_at(path_points(c, start, diff, grid.alpha), c)
            assert c.outputs is not None, "grad_at must record the outputs on its chunk"
            slope = cast(Tensor, sum((g.detach() * c.take(d)).reshape(len(g), -1).sum(1) for g, d in zip(grads, diff)))
            values[c.i, c.k], slopes[c.i, c.k] = c.outputs.to(values), slope.to(values)
            kept.append((c, grads))
        held[examples, nodes] = True
        mine = held[active]
        top, neighbours = grid.finest_level(mine), grid.neighbours(mine)
        by_level, by_trapezoid = fejer[top], grid.trapezoid(mine, neighbours)
        level_error = ((by_level * slopes[active]).sum(1) - rise[active]).abs()
        trapezoid_error = ((by_trapezoid * slopes[active]).sum(1) - rise[active]).abs()
        use_level = level_error <= tolerance
        done = use_level | (trapezoid_error <= tolerance)
        chosen[active] = torch.where(use_level[:, None], by_level, by_trapezoid)
        # where Fejer's rule beats the trapezoid (a smooth integrand), fill in its next level too
        fresh = torch.zeros_like(held)
        fresh[active] = grid.halves(mine, values[active], slopes[active], neighbours)
        smooth = (level_error < trapezoid_error) & (top < grid.depth)
        fresh[active[smooth]] |= fejer[top[smooth] + 1] != 0
        fresh &= ~held
        stuck = ~done & ~fresh[active].any(1)
        if stuck.any():
            warnings.warn(
                f"n_steps='auto': {int(stuck.sum())} of {n} examples did not reach tolerance={tolerance:g} on "
                f"the finest grid ({size + 1} nodes; largest |delta| {float(trapezoid_error[stuck].max()):.3g}); "
                "raise tolerance, or check the path (a discontinuous model output along it never converges)",
                RuntimeWarning,
                stacklevel=3,
            )
        active = active[~(done | stuck)]
    integral = [torch.zeros_like(d) for d in diff]
    for c, grads in kept:
        w = chosen[c.i, c.k]
        integral = [acc.index_add(0, c.i, g * along_rows(w.to(g), g)) for acc, g in zip(integral, grads)]
    return tuple(integral), held.sum(1) - 2


def integrate_path(
    grad_at: GradAt,
    start: tuple[Tensor, ...],
    diff: tuple[Tensor, ...],
    rule: PathRule,
    batch_size: int | None,
    ends: Callable[[], tuple[Tensor, Tensor]],
) -> tuple[Tensor, ...]:
    """The path integral with a fixed rule, or to a tolerance (``ends()`` gives the exact
    ``f(start), f(end)`` per example; only the adaptive rule calls it)."""
    if not isinstance(rule, ToTolerance):
        return path_integral(grad_at, start, diff, *rule, batch_size)
    if transformed():
        raise ArgumentError(
            "n_steps='auto' picks the steps of each example from its data, which torch.compile and "
            "torch.func transforms cannot trace; pass an int n_steps"
        )
    with torch.no_grad():
        exact = ends()
    integral, _ = adaptive_path_integral(grad_at, start, diff, exact, rule.tolerance, batch_size)
    return integral
