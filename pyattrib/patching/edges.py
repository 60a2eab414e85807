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
from ._run import Batch, Hooks, Metric, Prompt, sites_per_chunk
from .graph import Read, Residual, residual_stream
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


class _Reader(NamedTuple):
    """A reader: ``kind`` ``"attn"`` (all heads), ``"head"``, ``"mlp"`` or ``"logits"``; its
    layer; for a head, the block's read (role) index and the head."""

    kind: str
    layer: int
    read: int = -1
    head: int = -1


class _Graph:
    """The hooks of a residual stream: a key per normalisation input (readers), per input of an
    attention's output projection (head writes), per MLP output, per query/key/value projection
    output (head readers) and the first block's input."""

    def __init__(self, model: nn.Module, graph: Residual, by_head: bool = True) -> None:
        b = graph.blocks
        self.by_head = by_head and all(x.reads for x in b)
        self.read_modules = [list({id(r.module): r.module for r in x.reads}.values()) for x in b]
        grids = [
            layers([x.attn_norm for x in b], to_input=True),
            layers([x.mlp_norm for x in b], to_input=True),
            layers(graph.final_norm, to_input=True),
            layers([x.projection for x in b], to_input=True),
            layers([x.mlp for x in b]),
        ]
        if self.by_head:
            grids.append(layers([m for ms in self.read_modules for m in ms]))
        if b[0].module is not None:
            grids.append(layers(b[0].module, to_input=True))
        self.hooks = Hooks(model, grids)
        n, k = len(b), self.hooks.key_of
        self.attn_in, self.mlp_in, self.final = k[:n], k[n : 2 * n], k[2 * n]
        self.proj, self.mlp_out = k[2 * n + 1 : 3 * n + 1], k[3 * n + 1 : 4 * n + 1]
        at = 4 * n + 1
        self.read_keys: list[list[int]] = []
        if self.by_head:
            for ms in self.read_modules:
                self.read_keys.append(k[at : at + len(ms)])
                at += len(ms)
        self.start = k[at] if b[0].module is not None else None
        self.graph = graph
        self.readers: list[_Reader] = []
        for layer, x in enumerate(b):
            if self.by_head:
                self.readers += [_Reader("head", layer, j, h) for j, r in enumerate(x.reads) for h in range(r.n_heads)]
            else:
                self.readers.append(_Reader("attn", layer))
            self.readers.append(_Reader("mlp", layer))
        self.readers.append(_Reader("logits", n))
        writers = [(-1, False)] + [(layer, h == x.n_heads) for layer, x in enumerate(b) for h in range(x.n_heads + 1)]
        self.valid = torch.tensor(
            [
                [wl < r.layer or (wl == r.layer and not wm and r.kind == "mlp") for r in self.readers]
                for wl, wm in writers
            ]
        )
        spans, first = [], 1  # writer rows of each layer's heads
        for x in b:
            spans.append((first, first + x.n_heads))
            first += x.n_heads + 1
        self.spans = spans

    def writes(self, delta: list[Tensor]) -> Tensor:
        """``(N, U, T, D)``: each writer's write to the residual stream for key values ``delta``
        (differences of two runs: a projection's bias cancels)."""
        out = [delta[self.attn_in[0]][:, None]]
        for layer, b in enumerate(self.graph.blocks):
            out += [head_writes(b.projection, delta[self.proj[layer]], b.n_heads), delta[self.mlp_out[layer]][:, None]]
        return torch.cat(out, dim=1)

    def reads(self, values: list[Tensor], grads: list[Tensor]) -> Tensor:
        """``(N, V, T, D)``: the metric's derivative at each reader's input."""
        out: list[Tensor] = []
        for layer in range(len(self.graph.blocks)):
            if self.by_head:
                out += list(self.head_reads(layer, values[self.attn_in[layer]], grads).unbind(1))
            else:
                out.append(grads[self.attn_in[layer]])
            out.append(grads[self.mlp_in[layer]])
        out.append(grads[self.final])
        return torch.stack(out, dim=1)

    def project(self, layer: int, x: Tensor) -> tuple[Tensor, ...]:
        """The layer's query/key/value projections of ``attn_norm(x)``, one output per module."""
        b = self.graph.blocks[layer]
        h = type(b.attn_norm).forward(b.attn_norm, x)  # the modules' own forwards, past any interception
        return tuple(type(m).forward(m, h) for m in self.read_modules[layer])

    def head_reads(self, layer: int, x: Tensor, grads: list[Tensor]) -> Tensor:
        """``(N, K, T, D)``: the derivative at the attention's input through each head and role
        alone: the projections' output gradients, one head's channels each, pulled back through
        the projection and the normalisation (one vjp, vmapped over the heads)."""
        b, mods = self.graph.blocks[layer], self.read_modules[layer]
        outs = [grads[q] for q in self.read_keys[layer]]
        cotangents = [[] for _ in mods]  # type: list[list[Tensor]]
        for r in b.reads:
            j = next(i for i, m in enumerate(mods) if m is r.module)
            for h in range(r.n_heads):
                for i, g in enumerate(outs):
                    cotangents[i].append(g * _head_mask(r, h, g) if i == j else torch.zeros_like(g))
        _, pull, *_ = torch.func.vjp(lambda x: self.project(layer, x), x.detach())
        with torch.no_grad():
            per_head = torch.func.vmap(pull)(tuple(torch.stack(c) for c in cotangents))[0]
        return per_head.transpose(0, 1)


def _head_mask(read: Read, head: int, like: Tensor) -> Tensor:
    """``(D_out,)``: ones on head ``head``'s channels of ``read`` in its projection's output."""
    start, stop = read.channels if read.channels is not None else (0, like.shape[-1])
    width = (stop - start) // read.n_heads
    mask = torch.zeros(like.shape[-1], dtype=like.dtype, device=like.device)
    mask[start + head * width : start + (head + 1) * width] = 1
    return mask


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
    by_head: bool = True,
    graph: Residual | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Callable[[Prompt, Prompt], Edges]:
    """Edge attribution patching: a score for every edge of the residual stream's graph, from
    writers (embeddings, each attention head, each MLP) to readers (each attention head's
    query, key and value inputs, each MLP, the logits)::

        EAP:     s(u -> v) = (w_u(corrupted) - w_u(clean)) . d metric / d r_v |_clean
        EAP-IG:  s(u -> v) = (w_u(corrupted) - w_u(clean)) . 1/m sum_k d metric / d r_v |_(e' + k/m (e - e'))

    ``w_u`` is what writer ``u`` adds to the residual stream, ``r_v`` the input of reader ``v``'s
    normalisation (so the derivative is through ``v`` only; for a head's query, key or value,
    through that head's slice of the projection only), ``e`` and ``e'`` the clean and corrupted
    embeddings (the first block's input), ``m = n_steps``. EAP costs one forward of each prompt
    and one backward; EAP-IG ``n_steps`` forward and backward passes more, batched in chunks of
    ``batch_size`` rows. The head readers' derivatives come from one vjp per layer.

    Args:
        model: A pre-norm residual-stream transformer (Hugging Face GPT-2 or Llama-style, or
            any model described by ``graph``).
        metric: ``model output -> (N,)``, differentiable.
        method: ``"eap"`` or ``"eap-ig"``.
        n_steps: Interpolation steps of EAP-IG.
        by_head: Readers per head and role (``a{l}.h{h}.q/k/v``); False: one per attention layer.
        graph: The model's :class:`Residual` (found by :func:`residual_stream` when None).
        batch_size: Most rows per forward pass of EAP-IG; None lets pyattrib choose.
        show_progress: A progress bar over EAP-IG's chunks.

    Returns:
        ``patcher(clean, corrupted) -> Edges``.

    Example:
        >>> eap = pa.patching.edge_attribution_patching(gpt2, pa.patching.logit_diff(3, 5))
        >>> edges = eap(clean_ids, corrupted_ids)
        >>> edges.readers[:3], int(edges.top(10).sum())
        (['a0.h0.q', 'a0.h1.q', 'a0.h2.q'], 10)

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
    g = _Graph(model, graph if graph is not None else residual_stream(model), by_head)
    if method == "eap-ig" and g.start is None:
        raise ArgumentError("EAP-IG interpolates the first block's input: give the Block its module= (the block)")

    def patcher(clean: Prompt, corrupted: Prompt) -> Edges:
        c, x = Batch.of(clean, "clean"), Batch.of(corrupted, "corrupted")
        c.check_aligned(x, ("clean", "corrupted"))
        with in_eval(model):
            with torch.no_grad():
                corr, _ = g.hooks.read(x, x.n)
            at, grads, _, _ = g.hooks.gradients(c, metric, c.n)
            if method == "eap-ig" and g.start is not None:  # checked when the patcher was made
                reads = _path_reads(g, c, metric, at[g.start], corr[g.start], n_steps, batch_size, show_progress)
            else:
                reads = g.reads(at, grads)
            with torch.no_grad():
                writes = g.writes([a - b for a, b in zip(corr, at)])
                scores = torch.einsum("nup,nvp->nuv", writes.flatten(2), reads.flatten(2))
        valid = g.valid.to(scores.device)
        return Edges(scores * valid, g.graph.writers(), g.graph.readers(g.by_head), valid)

    return patcher


def _path_reads(
    g: _Graph, clean: Batch, metric: Metric, e: Tensor, e0: Tensor, n_steps: int, batch_size: int | None, show: bool
) -> Tensor:
    """``(N, V, T, D)``: each reader's derivative averaged over the inputs ``e0 + k/m (e - e0)``,
    ``k = 1..m`` (the head readers' pulled back at each point's own normalisation input)."""
    n, step = clean.n, sites_per_chunk(batch_size, clean)
    alphas = torch.arange(1, n_steps + 1, dtype=e.dtype, device=e.device) / n_steps
    total: Tensor | None = None
    for first in progress(range(0, n_steps, step), show, "EAP-IG", -(-n_steps // step)):
        a = alphas[first : first + step]
        rows = torch.arange(n, device=e.device).repeat(len(a))
        point = e0[rows] + a.repeat_interleave(n).reshape(-1, *([1] * (e.dim() - 1))) * (e - e0)[rows]

        def replace(q: int, v: Tensor, point: Tensor = point) -> Tensor | None:
            return point if q == g.start else None

        run = g.hooks.gradients(clean.rows(rows), metric, len(rows), replace=replace)
        summed = g.reads(run.values, run.grads).unflatten(0, (len(a), n)).sum(0)
        total = summed if total is None else total + summed
    assert total is not None  # n_steps >= 1
    return total / n_steps
