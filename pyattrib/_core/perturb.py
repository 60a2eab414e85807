"""The perturbation engine: evaluate many perturbed copies of a batch, in chunks.

A method describes ``P`` perturbations; row ``r = p * N + i`` is perturbation ``p`` of
example ``i``. :func:`evaluate` builds the rows of each chunk (at most ``batch_size``)
with the method's ``build(p, i)``, runs the model under ``torch.no_grad``, selects the
target and returns all outputs as one tensor of shape ``(P, N, K)`` (``K`` outputs per
example: 1 when a target selects one), or streams each chunk's outputs into a method's
running sums. Feature masks live here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .call import Call
from .errors import ArgumentError
from .inputs import BaselineLike
from .layout import feeder
from .progress import progress
from .state import transformed
from .targets import Target, TargetLike, model_output

Build = Callable[[Tensor, Tensor], tuple[Tensor, ...]]
Reduce = Callable[[int, int, Tensor], None]
STREAM_ROWS = 1024  # rows handed to a ``reduce`` at once: each hand-off costs a few dozen small ops


def per_example_outputs(target: Target, output: Tensor, index: Tensor | None) -> Tensor:
    """``(M, K)``: the selected scalar (``K = 1``) or, with no target, every output value."""
    if not target.selects:
        output = model_output(output, len(index) if index is not None else target.n)
        if output.dim() == 0:
            target.select(output, index)  # raises the clear 0-d error
        return _own(output.reshape(output.shape[0], -1))
    return _own(target.select(output, index)[:, None])


def _own(values: Tensor) -> Tensor:
    """``values`` in storage of their own: kept across evaluations, a view (``logits[:, -1]``,
    a selected class) would keep each evaluation's whole model output alive."""
    if not transformed() and values.untyped_storage().nbytes() > values.numel() * values.element_size():
        return values.clone()
    return values


class Outputs(NamedTuple):
    """Model outputs of the perturbations: ``values`` ``(P, N, K)``; ``shape``, the per-example
    output shape that ``K`` flattens (``()`` when a target selects one scalar); ``whole``: the
    model returned one value (or vector) for the whole batch, so ``N`` is 1 (the batch)."""

    values: Tensor
    shape: tuple[int, ...]
    whole: bool = False


def whole_batch(output: Any, n: int) -> bool:
    """Whether the model returned one result for its whole batch: a number, a 0-d tensor, or
    a tensor whose first dimension is not the batch (Captum's "aggregate" outputs)."""
    if isinstance(output, (int, float)) and not isinstance(output, bool):
        return True
    return isinstance(output, Tensor) and (output.dim() == 0 or output.shape[0] != n)


def _batch_values(output: Any) -> Tensor:
    """A whole-batch result as ``(1, K)``; Python numbers as int64 / float64."""
    if not isinstance(output, Tensor):
        output = torch.tensor(output, dtype=torch.float64 if isinstance(output, float) else torch.int64)
    return output.reshape(1, -1)


def _check_whole(call: Call, batch_size: int | None, output: Any = None) -> None:
    if call.target.selects:
        shape = f"shape {tuple(output.shape)}" if isinstance(output, Tensor) else "one result"
        first = call.inputs[0]
        raise ArgumentError(
            f"target: the model returns {shape} for a batch of {call.n} rows (inputs of shape {tuple(first.shape)}), "
            "not one value per example, so there is nothing per example to select. If the inputs are one "
            "example without a batch dimension, pass x.unsqueeze(0); if the model aggregates its batch, pass "
            "target=None"
        )
    if batch_size is not None and batch_size > call.n:
        raise ArgumentError(
            f"the model returns one value for the whole batch, so each perturbation needs its own evaluation of "
            f"{call.n} rows; batch_size={batch_size} would mix several: leave batch_size=None"
        )


def evaluate(
    forward: Callable[..., Any],
    call: Call,
    build: Build,
    n_perturbations: int,
    batch_size: int | None,
    show_progress: bool = False,
    desc: str = "perturbations",
    whole: bool | None = False,
    reduce: Reduce | None = None,
) -> Outputs:
    """Model outputs for every perturbation of every example.

    ``whole=True``: the model returns one result per batch (see :func:`whole_batch`), so
    every perturbation of the whole batch is one evaluation and ``N`` is 1. ``None``: decide
    from perturbation 0, evaluated alone first.

    ``reduce(first_row, n, values)``: outputs go to the method in runs of consecutive rows
    (``first_row`` is the first run's row ``p * n + i``; ``n`` is 1 for a whole-batch
    output) of about ``STREAM_ROWS`` rows, and are not kept: ``values`` comes back empty and
    memory does not grow with the number of perturbations.
    """
    n = call.n
    fed, parts = feeder(forward, call.inputs, backward=False), list[Tensor]()
    everyone = torch.arange(n, device=call.device)
    width, handed = [0], [0]  # K; rows handed to reduce so far

    def flush(per_perturbation: int) -> None:
        if reduce is not None and parts:
            run = torch.cat(parts)
            parts.clear()
            reduce(handed[0], per_perturbation, run)
            handed[0] += len(run)

    def keep(values: Tensor, per_perturbation: int) -> None:
        width[0] = values.shape[-1]
        parts.append(values)
        if reduce is not None and sum(map(len, parts)) >= STREAM_ROWS:
            flush(per_perturbation)

    def block(p: int) -> Any:
        return fed(*build(torch.full((n,), p, device=call.device), everyone), *call.args.values)

    start = 0
    with torch.no_grad():
        if whole is None:
            first = block(0)
            whole = whole_batch(first, n)
            if whole:
                keep(_batch_values(first), 1)
            else:
                keep(per_example_outputs(call.target, first, everyone), n)
            start = 1
        if whole:
            _check_whole(call, batch_size, first if start else None)
            blocks = range(start, n_perturbations)
            blocks = progress(blocks, show_progress, desc)
            for p in blocks:
                keep(_batch_values(block(p)), 1)
            flush(1)
            values = torch.cat(parts).reshape(n_perturbations, 1, -1) if reduce is None else call.inputs[0].new_zeros(0)
            return Outputs(values, (width[0],), True)
        total = n_perturbations * n
        step = call.chunk(batch_size, forward_only=True)
        starts = range(start * n, total, step)
        starts = progress(starts, show_progress, desc, math.ceil((total - start * n) / step))
        out = None
        aligned = step % n == 0  # chunks of whole perturbations (the budget rule's): one index pattern for all
        if aligned:
            per_chunk = torch.arange(step // n, device=call.device)
            block_p, block_i = per_chunk.repeat_interleave(n), everyone.repeat(step // n)
        for first_row in starts:
            if aligned:
                m = min(step, total - first_row)
                p, i = (block_p, block_i) if m == step else (block_p[:m], block_i[:m])
                p = p + first_row // n
            else:
                r = torch.arange(first_row, min(first_row + step, total), device=call.device)
                p, i = r // n, r % n
            out = fed(*build(p, i), *call.args.rows(i))
            keep(per_example_outputs(call.target, out, i), n)
        flush(n)
    shape = () if call.target.selects else _kept_shape(call.target, out if out is not None else first)
    if reduce is not None:
        return Outputs(call.inputs[0].new_zeros(0), shape)  # streamed: nothing kept
    values = torch.cat(parts)
    return Outputs(values.reshape(n_perturbations, n, values.shape[-1]), shape)


def evaluate_rows(
    forward: Callable[..., Any],
    call: Call,
    build: Callable[[Tensor], tuple[Tensor, ...]],
    examples: Tensor,
    batch_size: int | None,
    show_progress: bool = False,
    desc: str = "perturbations",
    every_output: bool = False,
    fed: Callable[..., Any] | None = None,
) -> Tensor:
    """The selected outputs ``(R,)`` of ``R`` rows given one by one: row ``r`` belongs to example
    ``examples[r]``, and ``build(rows)`` makes the inputs of the rows ``rows`` (an index tensor).
    For methods whose rows are not ``P`` perturbations of every example (a CAM evaluates only
    the distinct masks of each image). Chunks of at most ``batch_size`` rows, under no_grad.
    ``every_output``: ``(R, K)``, the selected output (``K = 1``) or, with no target, all of them.
    ``fed``: the forward as :func:`feeder` makes it, for callers that evaluate round after round."""
    total = len(examples)
    step = max(1, batch_size if batch_size is not None else call.chunk(None))
    fed = feeder(forward, call.inputs, backward=False) if fed is None else fed

    def chunk(rows: Tensor, i: Tensor) -> Tensor:
        out = fed(*build(rows), *call.args.rows(i))
        return per_example_outputs(call.target, out, i) if every_output else _own(call.target.select(out, i))

    with torch.no_grad():
        if (
            0 < total <= step and not show_progress
        ):  # one evaluation: no chunk bookkeeping (methods call this per round)
            return chunk(torch.arange(total, device=examples.device), examples)
        starts = progress(range(0, total, step), show_progress, desc, math.ceil(total / step))
        parts = [chunk(r, examples[r]) for first in starts
                 for r in [torch.arange(first, min(first + step, total), device=examples.device)]]  # fmt: skip
    return torch.cat(parts) if parts else examples.new_zeros(0, dtype=call.inputs[0].dtype)


def forward_versions(
    forward: Callable[..., Any], versions: Sequence[tuple[Tensor, ...]], n: int, args: Any = None
) -> tuple[Any, Tensor]:
    """One forward of several versions of a batch of ``n`` rows, joined along the batch (for
    callers whose versions are not the engine's perturbations: a DataLoader's ablated batches,
    Captum's LIME samples). ``args`` (:class:`~pyattrib._core.inputs.ForwardArgs`) are repeated
    with the versions. Returns the raw output and each joined row's example ``(V n,)``."""
    joined = tuple(torch.cat(parts) for parts in zip(*versions))
    index = torch.arange(len(versions) * n, device=joined[0].device) % n
    extra = args.rows(index) if args is not None else ()
    return feeder(forward, joined, backward=False)(*joined, *extra), index


def reference_outputs(forward: Callable[..., Any], call: Call, rows: tuple[Tensor, ...]) -> Outputs:
    """Outputs at one row per example (e.g. the unperturbed inputs): ``(N, K)`` values, or
    ``(1, K)`` when the model returns one result for the whole batch."""
    with torch.no_grad():
        out = feeder(forward, call.inputs, backward=False)(*rows, *call.args.values)
    if whole_batch(out, call.n):
        values = _batch_values(out)
        return Outputs(values, (values.shape[-1],), True)
    return Outputs(per_example_outputs(call.target, out, None), _kept_shape(call.target, out))


def _kept_shape(target: Target, output: Any) -> tuple[int, ...]:
    return () if target.selects else tuple(model_output(output).shape[1:])


def element_ids(xs: Sequence[Tensor]) -> list[Tensor]:
    """Every scalar its own feature: ids ``(1, *x.shape[1:])`` numbered across the inputs."""
    ids, offset = [], 0
    for x in xs:
        size = math.prod(x.shape[1:])
        ids.append((torch.arange(size, device=x.device) + offset).reshape(1, *x.shape[1:]))
        offset += size
    return ids


class FeatureMask:
    """Feature ids per input element, shared across inputs (a group may span tensors).

    ``ids[j]`` has shape ``(1 or N, *inputs[j].shape[1:])`` with values ``0..F-1``.
    Without a mask every scalar of every input is its own feature. Given ids are renumbered
    ``0..F-1`` in order (``ids="compact"``), or shifted so the smallest is 0 and ``F`` is the
    largest plus one (``ids="shift"``: Captum's LIME and KernelSHAP, where an id no element
    carries is still a feature of the interpretable space), or kept as given, ``F`` the largest
    plus one (``ids="given"``: Captum's DataLoaderAttribution).
    """

    def __init__(
        self, mask: Any, call: Call | tuple[Tensor, ...], name: str = "feature_mask", ids_rule: str = "compact"
    ) -> None:
        xs = call if isinstance(call, tuple) else call.inputs  # a call, or just the inputs
        if mask is None:
            ids = element_ids(xs)
        else:
            tup = tuple(mask) if isinstance(mask, (tuple, list)) else (mask,)
            if len(tup) != len(xs):
                raise ArgumentError(f"{name} has {len(tup)} tensors but inputs has {len(xs)}; pass one mask per input")
            ids = []
            for j, (m, x) in enumerate(zip(tup, xs)):
                where = f"{name}[{j}]" if len(xs) > 1 else name
                if isinstance(m, Tensor) and m.is_floating_point() and torch.equal(m, m.round()):
                    m = m.long()  # whole numbers stored as floats (e.g. zeros_like(x)) are ids too
                if not isinstance(m, Tensor) or m.is_floating_point() or m.dtype == torch.bool:
                    raise TypeError(f"{where} must be an integer tensor of feature ids")
                if m.dim() < x.dim():  # a lower-rank mask lines up with the trailing dimensions
                    m = m.reshape(*[1] * (x.dim() - m.dim()), *m.shape)
                if (
                    m.dim() != x.dim()
                    or m.shape[0] not in (1, x.shape[0])
                    or any(a not in (1, b) for a, b in zip(m.shape[1:], x.shape[1:]))
                ):
                    raise ArgumentError(
                        f"{where} has shape {tuple(m.shape)}, which does not broadcast to input shape "
                        f"{tuple(x.shape)}; use shape {(1, *x.shape[1:])} (shared) or {tuple(x.shape)} (per example)"
                    )
                ids.append(m.to(x.device).expand(m.shape[0], *x.shape[1:]))
            # ids may be any integers: renumber them 0..F-1 across all inputs
            flat = torch.cat([m.reshape(-1) for m in ids])
            values, inverse = torch.unique(flat, return_inverse=True)
            if values.numel() and int(values.min()) < 0:
                raise ArgumentError(f"{name} holds negative ids; use ids >= 0")
            if ids_rule == "shift":
                inverse = flat - values[0] if values.numel() else flat
            elif ids_rule == "given":
                inverse = flat
            out, start = [], 0
            for m in ids:
                out.append(inverse[start : start + m.numel()].reshape(m.shape))
                start += m.numel()
            ids = out
        self.ids = ids
        self.n_features = max((int(m.max()) + 1 for m in ids if m.numel()), default=0)  # an empty input: none
        self._in_order = [
            len(ids) == 1
            and m.shape[0] == 1
            and bool((m.reshape(-1) == torch.arange(m.numel(), device=m.device)).all())
            for m in ids
        ]

    def present(self, j: int, i: Tensor, coalitions: Tensor) -> Tensor:
        """``(M, *shape)`` booleans: which elements of input ``j`` are present for rows of examples
        ``i`` whose features ``coalitions`` ``(M, F)`` holds. A mask that numbers one shared
        example's elements 0, 1, ... in order (no mask) is a reshape, not a gather."""
        if self._in_order[j]:
            return coalitions.reshape(len(i), *self.ids[j].shape[1:])
        ids = self.rows(j, i)
        return coalitions.gather(1, ids.reshape(len(i), -1)).reshape(ids.shape)

    def rows(self, j: int, i: Tensor) -> Tensor:
        """Feature ids of input ``j`` for examples ``i`` (shape ``(M, *shape)``)."""
        m = self.ids[j]
        return m.expand(len(i), *m.shape[1:]) if m.shape[0] == 1 else m.index_select(0, i)

    def spread(self, per_feature: Tensor) -> tuple[Tensor, ...]:
        """``(N, K, F)`` values per feature -> per input ``(N, K, *shape)``, each element
        taking its feature's value."""
        n, k, _ = per_feature.shape
        out = []
        for m in self.ids:
            idx = m.reshape(m.shape[0], 1, -1).expand(n, k, -1)
            out.append(per_feature.gather(2, idx).reshape(n, k, *m.shape[1:]))
        return tuple(out)


def example_rows(t: Tensor, i: Tensor) -> Tensor:
    """Rows ``i`` of a per-example tensor, or its single shared row as it is (it broadcasts
    against the rows: one op fewer per evaluation)."""
    return t.index_select(0, i) if t.shape[0] != 1 else t


def squeeze_outputs(attrs: tuple[Tensor, ...], out_shape: tuple[int, ...], whole: bool = False) -> tuple[Tensor, ...]:
    """``(N, K, *shape)`` -> ``(N, *shape)`` for one output per example, else
    ``(N, *output_shape, *shape)``; for a whole-batch output ``(1, K, *shape)`` -> ``(K, *shape)``."""
    if whole:
        return tuple(a.reshape(*out_shape, *a.shape[2:]) for a in attrs)
    return tuple(a.reshape(a.shape[0], *out_shape, *a.shape[2:]) for a in attrs)


def shared_mask(mask: FeatureMask, whole: bool) -> None:
    """A whole-batch output needs one feature mask for all examples."""
    if whole and any(m.shape[0] != 1 for m in mask.ids):
        raise ArgumentError(
            "the model returns one value for the whole batch, so features are removed from all examples at "
            "once: pass a feature_mask shared by the examples (first dimension 1)"
        )


def prepare_perturbation(
    inputs: Any,
    baselines: BaselineLike,
    target: TargetLike,
    additional_forward_args: Any,
    feature_mask: Any,
    method: str,
    ids_rule: str = "compact",
) -> tuple[Call, tuple[Tensor, ...], FeatureMask]:
    """The normalised call, baselines and feature groups every perturbation method starts from."""
    from .call import prepare

    call = prepare(inputs, target, additional_forward_args, method=method, differentiable=False)
    return call, call.baselines(baselines), FeatureMask(feature_mask, call, ids_rule=ids_rule)
