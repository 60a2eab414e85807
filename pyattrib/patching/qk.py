"""AtP*'s QK fix: the effect of a query or key site through its head's attention pattern,
with the softmax recomputed exactly instead of linearised (the linear estimate misses sites
whose pattern saturates), and linear from the pattern on::

    c_s = sum_{h, q, k} (A_s - A)[h, q, k] * d metric / d A[h, q, k]

``A`` is the base run's pattern and ``A_s`` the pattern with the site patched in, from the
attention module alone run again on its recorded call (copies of the batch, one site each).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

from .._core.capture import Layers
from .._core.overrides import observed
from ._run import Batch, Hooks, Watched, sites_per_chunk
from .sites import Sites


def qk_effects(hooks: Hooks, sites: Sites, row: int, base: Batch, src: list[Tensor], watched: list[Watched]) -> Tensor:
    """``(N, L, *grid)``: the QK-fixed estimate of every site of a query or key grid whose first
    module is grid row ``row`` of ``hooks``; ``watched[l]`` is layer ``l``'s attention at the base run."""
    n = base.n
    per_layer = []
    for layer, seen in enumerate(watched):
        q = hooks.key_of[row + layer]
        value = src[q]
        masks = sites.masks(layer, value.shape[1:], value.device)
        sub = sites.sub_grid(layer, value.shape[1:])
        step = sites_per_chunk(None, base)
        out = []
        for first in range(0, len(masks), step):
            chunk = masks[first : first + step]
            example = torch.arange(n, device=value.device).repeat(len(chunk))
            mask = chunk.repeat_interleave(n, dim=0)
            pattern = _pattern(
                hooks, sites, layer, seen, example, lambda v, m=mask, e=example, s=value: torch.where(m, s[e], v)
            )
            change = (pattern - seen.pattern[example]) * seen.grad[example]
            out.append(change.flatten(1).sum(1).reshape(len(chunk), n))
        per_layer.append(torch.cat(out).T.reshape(n, *sub))
    return torch.stack(per_layer, dim=1)


def _pattern(hooks: Hooks, sites: Sites, layer: int, seen: Watched, example: Tensor, patch) -> Tensor:
    """The attention module of ``layer`` on its recorded call, rows ``example``, with its
    query or key projection's value patched by ``patch``; its softmax output."""
    n = seen.pattern.shape[0]
    args, kwargs = pytree.tree_map(lambda t: _rows(t, n, example), seen.call)
    attention = sites.attention[layer]  # type: ignore[index]
    held: list[Tensor] = []
    projection = Layers(hooks.model, [sites.modules[layer]], False)
    with torch.no_grad(), projection.hooked(lambda j, v: patch(v)), observed(("softmax",), lambda k, p: held.append(p)):
        type(attention).forward(attention, *args, **kwargs)
    return held[0]


def _rows(t: object, n: int, example: Tensor) -> object:
    """A recorded argument for the rows ``example``: batched tensors indexed; a key/value cache
    (transformers' ``Cache``) dropped, as running the module again must not append to it."""
    if isinstance(t, Tensor):
        return t.index_select(0, example) if t.dim() > 0 and t.shape[0] == n else t
    return None if type(t).__name__.endswith("Cache") else t
