"""Edge attribution patching (EAP, EAP-IG) on a residual-stream transformer, and the
faithfulness of the circuit its top edges make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError, check_batch_size, check_count
from .._core.progress import progress
from .._core.state import in_eval
from ._run import Batch, Hooks, Metric, Prompt, check_metric, sites_per_chunk
from .graph import Residual, residual_stream
from .sites import layers

METHODS = ("eap", "eap-ig")


@dataclass(frozen=True)
class Edges:
    """Edge scores between the writers and readers of the residual stream.

    Args:
        scores: ``(N, U, V)``: the estimated change of the metric when the edge from writer ``u``
            to reader ``v`` carries its corrupted value, per example (0 where no edge exists).
        writers: The writers' names (``embed``, ``a{l}.h{h}``, ``m{l}``).
        readers: The readers' names (``a{l}``, ``m{l}``, ``logits``).
        valid: ``(U, V)``: which writer feeds which reader (the writer runs first).

    Example:
        >>> eap = pa.patching.edge_attribution_patching(gpt2, pa.patching.logit_diff(3, 5))
        >>> edges = eap(clean_ids, corrupted_ids)
        >>> edges.scores.shape == (2, len(edges.writers), len(edges.readers))
        True
    """

    scores: Tensor
    writers: list[str]
    readers: list[str]
    valid: Tensor

    def top(self, k: int) -> Tensor:
        """The ``k`` edges of largest ``|mean over examples of the score|`` as a ``(U, V)``
        boolean mask (a circuit for :func:`circuit_faithfulness`).

        Args:
            k: The number of edges kept.

        Returns:
            A ``(U, V)`` boolean tensor.

        Example:
            >>> eap = pa.patching.edge_attribution_patching(gpt2, pa.patching.logit_diff(3, 5))
            >>> int(eap(clean_ids, corrupted_ids).top(5).sum())
            5
        """
        k = check_count("k", k, 0)
        strength = self.scores.mean(0).abs().masked_fill(~self.valid, -1.0)
        keep = torch.zeros_like(self.valid)
        keep.view(-1)[strength.flatten().topk(min(k, int(self.valid.sum()))).indices] = True
        return keep


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


class _Graph:
    """The hooks of a residual stream: a key per reader (norm inputs), per head-writing
    projection input, per MLP output and the first block's input."""

    def __init__(self, model: nn.Module, graph: Residual) -> None:
        b = graph.blocks
        grids = [
            layers([x.attn_norm for x in b], to_input=True),
            layers([x.mlp_norm for x in b], to_input=True),
            layers(graph.final_norm, to_input=True),
            layers([x.projection for x in b], to_input=True),
            layers([x.mlp for x in b]),
        ]
        if b[0].module is not None:
            grids.append(layers(b[0].module, to_input=True))
        self.hooks = Hooks(model, grids)
        n = len(b)
        k = self.hooks.key_of
        self.attn_in, self.mlp_in, self.final = k[:n], k[n : 2 * n], k[2 * n]
        self.proj, self.mlp_out = k[2 * n + 1 : 3 * n + 1], k[3 * n + 1 : 4 * n + 1]
        self.start = k[4 * n + 1] if b[0].module is not None else None
        self.graph = graph
        self.readers = [q for layer in range(n) for q in (self.attn_in[layer], self.mlp_in[layer])] + [self.final]
        writer_layer = [-1] + [layer for layer, x in enumerate(b) for _ in range(x.n_heads + 1)]
        writer_is_mlp = [False] + [h == x.n_heads for x in b for h in range(x.n_heads + 1)]
        reader_layer = [layer for layer in range(n) for _ in range(2)] + [n]
        reader_is_mlp = [j % 2 == 1 for j in range(2 * n)] + [True]
        self.valid = torch.tensor(
            [
                [wl < rl or (wl == rl and not wm and rm) for rl, rm in zip(reader_layer, reader_is_mlp)]
                for wl, wm in zip(writer_layer, writer_is_mlp)
            ]
        )

    def writes(self, delta: list[Tensor]) -> Tensor:
        """``(N, U, T, D)``: each writer's write to the residual stream for key values ``delta``
        (differences of two runs: a projection's bias cancels)."""
        out = [delta[self.attn_in[0]][:, None]]
        for layer, b in enumerate(self.graph.blocks):
            out += [head_writes(b.projection, delta[self.proj[layer]], b.n_heads), delta[self.mlp_out[layer]][:, None]]
        return torch.cat(out, dim=1)


def head_writes(projection: nn.Module, z: Tensor, n_heads: int, keep: Tensor | None = None) -> Tensor:
    """``(N, H, T, D)``: head ``h``'s part of ``projection(z) - projection(0)`` (``keep``: ``(H,)``
    booleans, the sum over the heads it keeps instead, ``(N, T, D)``)."""
    heads = z.unflatten(-1, (n_heads, -1))
    forward = type(projection).forward  # the module's own forward: an interception may sit on the instance
    if keep is not None:
        kept = (heads * keep[:, None].to(z.dtype)).flatten(-2)
        return forward(projection, kept) - forward(projection, torch.zeros_like(kept[:1]))
    eye = torch.eye(n_heads, dtype=z.dtype, device=z.device)[:, None, None, :, None]  # (H, 1, 1, H, 1)
    each = (heads[None] * eye).flatten(-2)  # (H, N, T, H * d)
    return (forward(projection, each) - forward(projection, torch.zeros_like(each[:1, :1]))).transpose(0, 1)


def edge_attribution_patching(
    model: nn.Module,
    metric: Metric,
    *,
    method: str = "eap",
    n_steps: int = 5,
    graph: Residual | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Callable[[Prompt, Prompt], Edges]:
    """Edge attribution patching: a score for every edge of the residual stream's graph, from
    writers (embeddings, each attention head, each MLP) to readers (each layer's attention,
    each MLP, the logits)::

        EAP:     s(u -> v) = (w_u(corrupted) - w_u(clean)) . d metric / d r_v |_clean
        EAP-IG:  s(u -> v) = (w_u(corrupted) - w_u(clean)) . 1/m sum_k d metric / d r_v |_(e' + k/m (e - e'))

    ``w_u`` is what writer ``u`` adds to the residual stream, ``r_v`` the input of reader ``v``'s
    normalisation (so the derivative is through ``v`` only), ``e`` and ``e'`` the clean and
    corrupted embeddings (the first block's input), ``m = n_steps``. EAP costs one forward of
    each prompt and one backward; EAP-IG ``n_steps`` forward and backward passes more, batched
    in chunks of ``batch_size`` rows. A reader's heads share one input here: edges end at a
    layer's attention as a whole.

    Args:
        model: A pre-norm residual-stream transformer (Hugging Face GPT-2 or Llama-style, or
            any model described by ``graph``).
        metric: ``model output -> (N,)``, differentiable.
        method: ``"eap"`` or ``"eap-ig"``.
        n_steps: Interpolation steps of EAP-IG.
        graph: The model's :class:`Residual` (found by :func:`residual_stream` when None).
        batch_size: Most rows per forward pass of EAP-IG; None lets pyattrib choose.
        show_progress: A progress bar over EAP-IG's chunks.

    Returns:
        ``patcher(clean, corrupted) -> Edges``.

    Example:
        >>> eap = pa.patching.edge_attribution_patching(gpt2, pa.patching.logit_diff(3, 5))
        >>> eap(clean_ids, corrupted_ids).top(10).sum()
        tensor(10)

    References:
        - Syed, Rager & Conmy, `Attribution Patching Outperforms Automated Circuit Discovery
          <https://arxiv.org/abs/2310.10348>`_, 2023.
        - Hanna, Pezzelle & Belinkov, `Have Faith in Faithfulness: Going Beyond Circuit Overlap
          When Finding Model Mechanisms <https://arxiv.org/abs/2403.17806>`_, COLM 2024.
    """
    if method not in METHODS:
        raise ArgumentError(f"method={method!r}; choose 'eap' or 'eap-ig'")
    n_steps = check_count("n_steps", n_steps)
    check_batch_size(batch_size)
    g = _Graph(model, graph if graph is not None else residual_stream(model))
    if method == "eap-ig" and g.start is None:
        raise ArgumentError("EAP-IG interpolates the first block's input: give the Block its module= (the block)")

    def patcher(clean: Prompt, corrupted: Prompt) -> Edges:
        c, x = Batch.of(clean, "clean"), Batch.of(corrupted, "corrupted")
        c.check_aligned(x, ("clean", "corrupted"))
        with in_eval(model):
            with torch.no_grad():
                corr, _ = g.hooks.read(x, x.n)
            at, grads, _, _ = g.hooks.gradients(c, metric, c.n)
            if method == "eap-ig":
                grads = _path_gradients(g, c, metric, at[g.start], corr[g.start], n_steps, batch_size, show_progress)
            with torch.no_grad():
                writes = g.writes([a - b for a, b in zip(corr, at)])
                reads = torch.stack([grads[q] for q in g.readers], dim=1)
                scores = torch.einsum("nup,nvp->nuv", writes.flatten(2), reads.flatten(2))
        valid = g.valid.to(scores.device)
        return Edges(scores * valid, g.graph.writers(), g.graph.readers(), valid)

    return patcher


def _path_gradients(
    g: _Graph, clean: Batch, metric: Metric, e: Tensor, e0: Tensor, n_steps: int, batch_size: int | None, show: bool
) -> list[Tensor]:
    """Each key's gradient averaged over the inputs ``e0 + k/m (e - e0)``, ``k = 1..m``."""
    n, step = clean.n, sites_per_chunk(batch_size, clean)
    alphas = torch.arange(1, n_steps + 1, dtype=e.dtype, device=e.device) / n_steps
    total: list[Tensor] | None = None
    for first in progress(range(0, n_steps, step), show, "EAP-IG", -(-n_steps // step)):
        a = alphas[first : first + step]
        rows = torch.arange(n, device=e.device).repeat(len(a))
        point = e0[rows] + a.repeat_interleave(n).reshape(-1, *([1] * (e.dim() - 1))) * (e - e0)[rows]

        def replace(q: int, v: Tensor, point: Tensor = point) -> Tensor | None:
            return point if q == g.start else None

        grads = g.hooks.gradients(clean.rows(rows), metric, len(rows), replace=replace).grads
        summed = [t.unflatten(0, (len(a), n)).sum(0) for t in grads]
        total = summed if total is None else [s + t for s, t in zip(total, summed)]
    return [t / n_steps for t in total]  # type: ignore[union-attr]


def circuit_faithfulness(
    model: nn.Module, metric: Metric, keep: Tensor, *, graph: Residual | None = None
) -> Callable[[Prompt, Prompt], CircuitScore]:
    """The metric of a circuit: the clean run with every edge outside ``keep`` carrying its
    corrupted value, each reader's input ``r_v + sum_{u -> v not kept} (w_u(corrupted) - w_u)``
    with ``w_u`` the writer's value in this run. ``recovered`` is the fraction of the
    clean-corrupted gap the circuit keeps (1: all of it).

    Args:
        model: The model :func:`edge_attribution_patching` scored.
        metric: ``model output -> (N,)``.
        keep: ``(U, V)`` booleans, e.g. ``edges.top(k)``.
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
    g = _Graph(model, graph if graph is not None else residual_stream(model))
    if not isinstance(keep, Tensor) or keep.shape != g.valid.shape:
        raise ArgumentError(
            f"keep must be a ({g.valid.shape[0]}, {g.valid.shape[1]}) boolean tensor, e.g. edges.top(k)"
        )
    cut = (~keep.bool().cpu()) & g.valid
    blocks = g.graph.blocks
    spans, at = [], 1  # writer rows of each layer's heads
    for b in blocks:
        spans.append((at, at + b.n_heads))
        at += b.n_heads + 1

    def patcher(clean: Prompt, corrupted: Prompt) -> CircuitScore:
        c, x = Batch.of(clean, "clean"), Batch.of(corrupted, "corrupted")
        c.check_aligned(x, ("clean", "corrupted"))
        with in_eval(model), torch.no_grad():
            corr, out = g.hooks.read(x, x.n)
            m_corr = check_metric(metric(out), x.n)
            m_clean = check_metric(metric(c.run(model)), c.n)
            now: dict[int, Tensor] = {}

            def edit(q: int, v: Tensor) -> Tensor | None:
                if q == g.attn_in[0]:
                    now[-1] = v  # the embeddings
                if q not in g.readers:
                    now[q] = v
                    return None
                col = cut[:, g.readers.index(q)].to(v.device)
                if not col.any():
                    return None
                add = (corr[g.attn_in[0]] - now[-1]) if col[0] else torch.zeros_like(v)
                for layer, b in enumerate(blocks):
                    lo, hi = spans[layer]
                    if col[lo:hi].any() and g.proj[layer] in now:
                        dz = corr[g.proj[layer]] - now[g.proj[layer]]
                        add = add + head_writes(b.projection, dz, b.n_heads, col[lo:hi])
                    if col[hi] and g.mlp_out[layer] in now:
                        add = add + corr[g.mlp_out[layer]] - now[g.mlp_out[layer]]
                return v + add

            with g.hooks.on(edit, c.n):
                m = check_metric(metric(c.run(model)), c.n)
        recovered = (m.mean() - m_corr.mean()) / (m_clean.mean() - m_corr.mean())
        return CircuitScore(m, m_clean, m_corr, recovered)

    return patcher
