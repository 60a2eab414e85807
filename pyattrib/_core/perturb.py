"""The perturbation engine: evaluate many perturbed copies of a batch, in chunks.

A method describes ``P`` perturbations; row ``r = p * N + i`` is perturbation ``p`` of
example ``i``. :func:`evaluate` builds the rows of each chunk (at most ``batch_size``)
with the method's ``build(p, i)``, runs the model under ``torch.no_grad``, selects the
target and returns all outputs as one tensor of shape ``(P, N, K)`` (``K`` outputs per
example: 1 when a target selects one). Feature masks live here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .call import Call
from .errors import ArgumentError
from .layout import feeder
from .targets import Target, model_output

Build = Callable[[Tensor, Tensor], tuple[Tensor, ...]]


def per_example_outputs(target: Target, output: Tensor, index: Tensor | None) -> Tensor:
    """``(M, K)``: the selected scalar (``K = 1``) or, with no target, every output value."""
    if not target.selects:
        output = model_output(output, len(index) if index is not None else target.n)
        if output.dim() == 0:
            target.select(output, index)  # raises the clear 0-d error
        return output.reshape(output.shape[0], -1)
    return target.select(output, index)[:, None]


def evaluate(
    forward: Callable[..., Any],
    call: Call,
    build: Build,
    n_perturbations: int,
    batch_size: int | None,
    show_progress: bool = False,
    desc: str = "perturbations",
) -> tuple[Tensor, tuple[int, ...]]:
    """Model outputs for every perturbation of every example, shape ``(P, N, K)``, and the
    per-example output shape ``K`` flattens (``()`` when a target selects one scalar)."""
    n = call.n
    total = n_perturbations * n
    step = call.chunk(batch_size, forward_only=True)
    starts = range(0, total, step)
    if show_progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, total=math.ceil(total / step))
    forward, parts = feeder(forward, call.inputs, backward=False), []
    with torch.no_grad():
        for start in starts:
            r = torch.arange(start, min(start + step, total), device=call.device)
            p, i = r // n, r % n
            out = forward(*build(p, i), *call.args.rows(i))
            parts.append(per_example_outputs(call.target, out, i))
    values = torch.cat(parts)
    return values.reshape(n_perturbations, n, values.shape[-1]), _kept_shape(call.target, out)


def reference_outputs(
    forward: Callable[..., Any], call: Call, rows: tuple[Tensor, ...]
) -> tuple[Tensor, tuple[int, ...]]:
    """``(N, K)`` outputs at one row per example (e.g. the unperturbed inputs), and the
    per-example output shape that ``K`` flattens (``()`` when a target selects a scalar)."""
    with torch.no_grad():
        out = feeder(forward, call.inputs, backward=False)(*rows, *call.args.values)
    return per_example_outputs(call.target, out, None), _kept_shape(call.target, out)


def _kept_shape(target: Target, output: Any) -> tuple[int, ...]:
    return () if target.selects else tuple(model_output(output).shape[1:])


class FeatureMask:
    """Feature ids per input element, shared across inputs (a group may span tensors).

    ``ids[j]`` has shape ``(1 or N, *inputs[j].shape[1:])`` with values ``0..F-1``.
    Without a mask every scalar of every input is its own feature.
    """

    def __init__(self, mask: Any, call: Call, name: str = "feature_mask") -> None:
        xs = call.inputs
        if mask is None:
            ids, offset = [], 0
            for x in xs:
                size = math.prod(x.shape[1:])
                ids.append((torch.arange(size, device=x.device) + offset).reshape(1, *x.shape[1:]))
                offset += size
        else:
            tup = tuple(mask) if isinstance(mask, (tuple, list)) else (mask,)
            if len(tup) != len(xs):
                raise ArgumentError(f"{name} has {len(tup)} tensors but inputs has {len(xs)}; pass one mask per input")
            ids = []
            for j, (m, x) in enumerate(zip(tup, xs)):
                where = f"{name}[{j}]" if len(xs) > 1 else name
                if not isinstance(m, Tensor) or m.is_floating_point() or m.dtype == torch.bool:
                    raise TypeError(f"{where} must be an integer tensor of feature ids")
                if m.dim() == x.dim() - 1:
                    m = m.unsqueeze(0)
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
            out, start = [], 0
            for m in ids:
                out.append(inverse[start : start + m.numel()].reshape(m.shape))
                start += m.numel()
            ids = out
        self.ids = ids
        self.n_features = int(max(int(m.max()) for m in ids)) + 1 if ids else 0

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
    """Rows ``i`` of a per-example tensor, or its single shared row repeated."""
    return t.index_select(0, i) if t.shape[0] != 1 else t.expand(len(i), *t.shape[1:])


def squeeze_outputs(attrs: tuple[Tensor, ...], out_shape: tuple[int, ...]) -> tuple[Tensor, ...]:
    """``(N, K, *shape)`` -> ``(N, *shape)`` for one output per example, else
    ``(N, *output_shape, *shape)``."""
    return tuple(a.reshape(a.shape[0], *out_shape, *a.shape[2:]) for a in attrs)


def prepare_perturbation(
    inputs: Any, baselines: Any, target: Any, additional_forward_args: Any, feature_mask: Any, method: str
) -> tuple[Call, tuple[Tensor, ...], FeatureMask]:
    """The normalised call, baselines and feature groups every perturbation method starts from."""
    from .call import prepare

    call = prepare(inputs, target, additional_forward_args, method=method, differentiable=False)
    return call, call.baselines(baselines), FeatureMask(feature_mask, call)
