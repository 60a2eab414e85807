"""The faithfulness of a circuit: the clean run with every edge outside it carrying its
corrupted value."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError
from .._core.state import in_eval
from ._run import Batch, Metric, Prompt, check_metric
from .edges import _Graph, _head_mask, head_writes
from .graph import Residual, residual_stream


class CircuitScore(NamedTuple):
    """The metric of a circuit, from :func:`circuit_faithfulness`.

    Args:
        circuit: ``(N,)``: the metric with only the circuit's edges carrying clean values.
        clean: ``(N,)``: the metric of the clean run.
        corrupted: ``(N,)``: the metric of the corrupted run.
        recovered: ``(mean circuit - mean corrupted) / (mean clean - mean corrupted)``, a 0-d tensor.

    Example:
        >>> s = pa.patching.CircuitScore(torch.ones(2), torch.ones(2), torch.zeros(2), torch.tensor(1.0))
        >>> float(s.recovered)
        1.0
    """

    circuit: Tensor
    clean: Tensor
    corrupted: Tensor
    recovered: Tensor


def circuit_faithfulness(
    model: nn.Module, metric: Metric, keep: Tensor, *, by_head: bool = True, graph: Residual | None = None
) -> Callable[[Prompt, Prompt], CircuitScore]:
    """The metric of a circuit: the clean run with every edge outside ``keep`` carrying its
    corrupted value. Each reader's input becomes ``r_v + sum_{u -> v not kept} (w_u(corrupted) -
    w_u)``, ``w_u`` the writer's value in this run; a head's query, key or value input is
    changed for that head alone (its channels of the projection recomputed from its own input).
    ``recovered`` is the share of the clean-corrupted gap the circuit keeps (1: all of it).

    Args:
        model: The model :func:`edge_attribution_patching` scored.
        metric: ``model output -> (N,)``.
        keep: ``(U, V)`` booleans, e.g. ``edges.top(k)``.
        by_head: Readers per head and role, as the edges were scored.
        graph: The model's :class:`Residual` (found by :func:`residual_stream` when None).

    Returns:
        ``score(clean, corrupted) -> CircuitScore``.

    Example:
        >>> metric = pa.patching.logit_diff(3, 5)
        >>> keep = pa.patching.edge_attribution_patching(gpt2, metric)(clean_ids, corrupted_ids).top(20)
        >>> score = pa.patching.circuit_faithfulness(gpt2, metric, keep)(clean_ids, corrupted_ids)
        >>> score.circuit.shape
        torch.Size([2])

    References:
        - Hanna, Pezzelle & Belinkov, `Have Faith in Faithfulness: Going Beyond Circuit Overlap
          When Finding Model Mechanisms <https://arxiv.org/abs/2403.17806>`_, COLM 2024.
    """
    g = _Graph(model, graph if graph is not None else residual_stream(model), by_head)
    if not isinstance(keep, Tensor) or keep.shape != g.valid.shape:
        rows, cols = g.valid.shape
        raise ArgumentError(
            f"keep must be a ({rows}, {cols}) boolean tensor, e.g. edges.top(k), scored with by_head={by_head}"
        )
    cut = (~keep.bool().cpu()) & g.valid
    blocks = g.graph.blocks
    reader_at = {(r.kind, r.layer, r.read, r.head): v for v, r in enumerate(g.readers)}

    def patcher(clean: Prompt, corrupted: Prompt) -> CircuitScore:
        c, x = Batch.of(clean, "clean"), Batch.of(corrupted, "corrupted")
        c.check_aligned(x, ("clean", "corrupted"))
        with in_eval(model), torch.no_grad():
            corr, out = g.hooks.read(x, x.n)
            m_corr = check_metric(metric(out), x.n)
            m_clean = check_metric(metric(c.run(model)), c.n)
            now: dict[int, Tensor] = {}

            def add(col: Tensor, like: Tensor) -> Tensor:
                """The change at a reader whose incoming edges ``col`` are cut."""
                total = corr[g.attn_in[0]] - now[g.attn_in[0]] if col[0] else torch.zeros_like(like)
                for layer, b in enumerate(blocks):
                    lo, hi = g.spans[layer]
                    if col[lo:hi].any() and g.proj[layer] in now:
                        dz = corr[g.proj[layer]] - now[g.proj[layer]]
                        total = total + head_writes(b.projection, dz, b.n_heads, col[lo:hi].to(like.device))
                    if col[hi] and g.mlp_out[layer] in now:
                        total = total + corr[g.mlp_out[layer]] - now[g.mlp_out[layer]]
                return total

            def edit(q: int, v: Tensor) -> Tensor | None:
                if q not in now:
                    now[q] = v  # a writer's value, or a reader's input as it arrives (before any change)
                for layer in range(len(blocks)):
                    if q in (g.read_keys[layer] if g.by_head else ()):
                        return _edit_heads(g, layer, q, v, now[g.attn_in[layer]], add, cut, reader_at)
                spot = _plain_reader(g, q)
                if spot is None:
                    return None
                col = cut[:, reader_at[spot]]
                return v + add(col, v) if col.any() else None

            with g.hooks.on(edit, c.n):
                m = check_metric(metric(c.run(model)), c.n)
        recovered = (m.mean() - m_corr.mean()) / (m_clean.mean() - m_corr.mean())
        return CircuitScore(m, m_clean, m_corr, recovered)

    return patcher


def _plain_reader(g: _Graph, q: int) -> tuple[str, int, int, int] | None:
    """The reader whose input key ``q`` is, where the whole input is changed: an MLP, the logits,
    or a whole attention layer (readers not split by head)."""
    if q == g.final:
        return ("logits", len(g.graph.blocks), -1, -1)
    if q in g.mlp_in:
        return ("mlp", g.mlp_in.index(q), -1, -1)
    if not g.by_head and q in g.attn_in:
        return ("attn", g.attn_in.index(q), -1, -1)
    return None


def _edit_heads(
    g: _Graph, layer: int, q: int, v: Tensor, x: Tensor, add, cut: Tensor, reader_at: dict
) -> Tensor | None:
    """A query/key/value projection's output with the channels of each head whose incoming
    edges are cut recomputed from that head's own input ``x + add(cut edges)``."""
    module = g.read_modules[layer][g.read_keys[layer].index(q)]
    changed = v
    for j, read in enumerate(g.graph.blocks[layer].reads):
        if read.module is not module:
            continue
        for h in range(read.n_heads):
            col = cut[:, reader_at[("head", layer, j, h)]]
            if not col.any():
                continue
            own = g.project(layer, x + add(col, x))[g.read_modules[layer].index(module)]
            mask = _head_mask(read, h, v).bool()
            changed = torch.where(mask, own, changed)
    return None if changed is v else changed
