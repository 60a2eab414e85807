"""The chunked gradient kernel shared by every gradient and path method.

A method describes the rows it needs: row ``r`` is point ``k = r // N`` of example
``i = r % N`` (a path step, a noise sample, ...). :func:`accumulate` builds the rows in
chunks of at most ``batch_size``, lets the method turn each chunk into per-row
contributions, and sums them per example. Peak memory follows the chunk, not the
number of points, and the sum does not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import ArgumentError
from .inputs import ForwardArgs
from .layout import feeder
from .state import transformed
from .targets import Target


class Chunk:
    """Rows ``r`` of one evaluation: row ``r`` is point ``k = r // n`` of example ``i = r % n``."""

    def __init__(self, start: int, stop: int, n: int, device: torch.device) -> None:
        self.n, self.start, self.stop = n, start, stop
        self.r = torch.arange(start, stop, device=device)
        self.k, self.i = self.r // n, self.r % n
        self.aligned = start % n == 0 and stop % n == 0

    def take(self, t: Tensor) -> Tensor:
        """The rows of per-example tensor ``t`` (shape ``(n, ...)``) for this chunk."""
        if self.aligned:  # whole points: a contiguous tile is cheaper than a gather
            c = (self.stop - self.start) // self.n
            return t.unsqueeze(0).expand(c, *t.shape).reshape(-1, *t.shape[1:])
        return t.index_select(0, self.i)


Contribution = Callable[[Chunk], tuple[Tensor, ...]]


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """A configuration count (n_steps, n_samples, ...) must be an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        at_least = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ArgumentError(f"{name} must be {at_least}, got {value!r}")
    return value


def check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ArgumentError(f"batch_size must be None or a positive int, got {batch_size!r}")
    return batch_size


def accumulate(
    contribution: Contribution,
    n_points: int,
    n: int,
    batch_size: int | None,
    device: torch.device,
    overlap: int = 0,
    row_totals: bool = False,
) -> tuple[Tensor, ...]:
    """``acc[i] = sum_k contribution(chunk)`` over rows ``r = k * n + i``, chunk by chunk.

    ``contribution`` returns a tuple of tensors with one leading row per row of the chunk.
    With ``overlap > 0`` chunks hold whole points, consecutive chunks share ``overlap``
    points, and ``contribution`` returns rows for all but the chunk's last ``overlap``
    points (differences between neighbouring points, as in conductance). With
    ``row_totals`` one more tensor follows: each row's contribution summed over all its
    elements, shape ``(n_points * n,)`` (per-sample completeness checks need it).
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
        chunk = Chunk(start, stop, n, device)
        parts = contribution(chunk)
        if row_totals:
            totals.append(sum(p.reshape(len(p), -1).sum(1) for p in parts))
        if chunk.aligned:
            parts = [p if len(p) == n else p.reshape(-1, n, *p.shape[1:]).sum(0) for p in parts]
            acc = parts if acc is None else [a + p for a, p in zip(acc, parts)]
        else:
            if acc is None:
                acc = [p.new_zeros((n, *p.shape[1:])) for p in parts]
            acc = [a.index_add(0, chunk.i, p) for a, p in zip(acc, parts)]
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
    if transformed():

        def total(*xs: Tensor) -> Tensor:
            return outputs(forward, args, target, xs, index).sum()

        return torch.func.grad(total, argnums=tuple(range(len(rows))))(*rows)
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        rows = tuple(r if (create_graph and r.requires_grad) else r.detach().requires_grad_() for r in rows)
        total = outputs(feeder(forward, rows), args, target, rows, index).sum()
        return torch.autograd.grad(total, rows, create_graph=create_graph, allow_unused=True, materialize_grads=True)


def rows_of(t: Tensor, index: Tensor) -> Tensor:
    return t.index_select(0, index)


def along_rows(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-row vector so that it broadcasts over ``like``'s trailing dims."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


GradAt = Callable[[tuple[Tensor, ...], Chunk], Sequence[Tensor]]


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
        points = tuple(c.take(b) + along_rows(nodes.to(d)[c.k], d) * c.take(d) for b, d in zip(start, diff))
        return tuple(g * along_rows(weights.to(g)[c.k], g) for g in grad_at(points, c))

    return accumulate(contribution, len(nodes), start[0].shape[0], batch_size, start[0].device)
