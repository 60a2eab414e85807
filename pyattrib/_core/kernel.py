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
from typing import Any

import torch
from torch import Tensor

from .errors import ArgumentError
from .inputs import ForwardArgs
from .layout import feeder
from .quadrature import NestedRule, PathRule, ToTolerance
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
            totals.append(sum(p.reshape(len(p), -1).sum(1) for p in parts))
        if chunk.aligned:
            parts = [p if len(p) == n else p.reshape(-1, n, *p.shape[1:]).sum(0) for p in parts]
            acc = parts if acc is None else [a + p for a, p in zip(acc, parts)]
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
    forward: Callable[..., Any], args: ForwardArgs, target: Target, rows: tuple[Tensor, ...], index: Tensor | None
) -> tuple[Tensor, ...]:
    """``d/d rows  sum_r selected_output_r`` in one backward pass.

    Rows are independent examples, so the gradient of the sum is the per-row gradient.
    In eager mode this is one ``torch.autograd.grad`` call (the cheapest backward; with
    ``create_graph`` when grad mode is on, so attributions stay differentiable in the
    parameters). Under torch.compile or inside a torch.func transform (vmap, grad) of
    the attributor, it is ``torch.func.grad``, which composes with both. Neither
    touches ``.grad``.
    """
    fwd = forward if transformed() else feeder(forward, rows, backward=True)
    return gradient_of_sum(lambda *xs: outputs(fwd, args, target, xs, index).sum(), rows)


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


def adaptive_path_integral(
    grad_at: GradAt,
    start: tuple[Tensor, ...],
    diff: tuple[Tensor, ...],
    rise: Tensor,
    tolerance: float,
    batch_size: int | None,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """:func:`path_integral` to a tolerance: per example, the first stopping point of the
    nested rule (:class:`NestedRule`: Clenshaw-Curtis levels and the half levels between
    them) whose completeness error ``|sum_j diff_j * I_j - rise|`` is at most ``tolerance``,
    where ``I`` is that rule's estimate of the integral and ``rise`` the exact
    ``f(end) - f(start)``.

    Every level adds only its new nodes, and only for the examples not yet converged.
    Each new node's gradient is added to the running sums of every level that holds it,
    so choosing an example's level needs no second pass. Returns the integrals and the
    number of nodes each example used.
    """
    rule = NestedRule.build()
    n, device = start[0].shape[0], start[0].device
    levels = len(rule.groups)
    sums = [d.new_zeros((n, levels, *d.shape[1:])) for d in diff]
    level_of = torch.full((n,), levels - 1, device=device)
    active = torch.arange(n, device=device)
    error = rise.abs()
    for g, group in enumerate(rule.groups):
        nodes, weights = rule.nodes[group], rule.weights[:, group].T.contiguous()

        def contribution(c: Chunk, nodes: Tensor = nodes, weights: Tensor = weights) -> tuple[Tensor, ...]:
            return tuple(
                g_.unsqueeze(1) * weights.to(g_)[c.k].reshape(len(g_), levels, *([1] * (g_.dim() - 1)))
                for g_ in grad_at(path_points(c, start, diff, nodes), c)
            )

        parts = accumulate(contribution, len(nodes), len(active), batch_size, device, examples=active)
        sums = [s.index_add(0, active, p) for s, p in zip(sums, parts)]
        total = sum((s[active, g] * d[active]).reshape(len(active), -1).sum(1) for s, d in zip(sums, diff))
        error = (total - rise[active]).abs()
        done = error <= tolerance
        level_of[active[done]] = g
        active, error = active[~done], error[~done]
        if len(active) == 0:
            break
    if len(active):
        warnings.warn(
            f"n_steps='auto': {len(active)} of {n} examples did not reach tolerance={tolerance:g} in "
            f"{int(rule.steps[-1])} steps (largest |delta| {float(error.max()):.3g}); raise tolerance, "
            "or check the path (a discontinuous model output along it never converges)",
            RuntimeWarning,
            stacklevel=2,
        )
    rows = torch.arange(n, device=device)
    return tuple(s[rows, level_of] for s in sums), rule.steps.to(device)[level_of]


def integrate_path(
    grad_at: GradAt,
    start: tuple[Tensor, ...],
    diff: tuple[Tensor, ...],
    rule: PathRule,
    batch_size: int | None,
    rise: Callable[[], Tensor],
) -> tuple[Tensor, ...]:
    """The path integral with a fixed rule, or to a tolerance (``rise()`` gives the exact
    ``f(end) - f(start)`` per example; only the adaptive rule calls it)."""
    if not isinstance(rule, ToTolerance):
        return path_integral(grad_at, start, diff, *rule, batch_size)
    if transformed():
        raise ArgumentError(
            "n_steps='auto' picks the steps of each example from its data, which torch.compile and "
            "torch.func transforms cannot trace; pass an int n_steps"
        )
    with torch.no_grad():
        exact = rise()
    integral, _ = adaptive_path_integral(grad_at, start, diff, exact, rule.tolerance, batch_size)
    return integral
