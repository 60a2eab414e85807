"""Patching sites: where in a model a value is swapped, as a grid of masks over layer values.

A :class:`Sites` grid holds one row per module (a layer of the model) and, within each, the
parts of that module's value that are patched one at a time: the whole value, one position
of a sequence, one attention head (a slice of the input of the attention's output
projection), or one head at one position. Every site is a boolean mask over the value of one
example, so one mechanism patches them all: ``value <- where(mask, source, value)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError

KINDS = ("layer", "position", "head", "head_position")


@dataclass(frozen=True)
class Sites:
    """A grid of patching sites: ``modules[l]`` and, per module, the parts patched one by one.

    Build one with :func:`layers`, :func:`positions` or :func:`heads`. The grid's shape is
    ``(L,)`` for whole layers, ``(L, T)`` for positions, ``(L, H)`` for heads and ``(L, T, H)``
    for heads by position (TransformerLens's axis order), ``T`` read from the value at call time.

    Args:
        modules: The modules whose value is patched, one grid row each.
        kind: ``"layer"``, ``"position"``, ``"head"`` or ``"head_position"``.
        to_input: Patch each module's input instead of its output.
        n_heads: Heads per module (head kinds): the last dimension of the value is split into
            ``n_heads`` equal slices.
        position_dim: The sequence dimension of the value, counted without the batch dimension.
        channels: ``(start, stop)``: the part of the value's last dimension that holds the heads
            (GPT-2's fused ``c_attn`` output holds queries, keys and values side by side).
        attention: For query and key sites, the attention module each row's heads belong to
            (where their softmax runs: AtP*'s ``qk_fix`` recomputes it).
        role: ``"query"``, ``"key"`` or None.

    Example:
        >>> s = pa.patching.Sites((nn.Linear(2, 2),), "layer")
        >>> s.kind
        'layer'
    """

    modules: tuple[nn.Module, ...]
    kind: str = "layer"
    to_input: bool = False
    n_heads: tuple[int, ...] | None = None
    position_dim: int = 0
    channels: tuple[int, int] | None = None
    attention: tuple[nn.Module, ...] | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ArgumentError(f"kind={self.kind!r}; choose one of {KINDS}")
        if not self.modules or not all(isinstance(m, nn.Module) for m in self.modules):
            raise ArgumentError("sites need at least one nn.Module of the model (e.g. model.transformer.h)")
        if self.kind.startswith("head") and (self.n_heads is None or len(self.n_heads) != len(self.modules)):
            raise ArgumentError("head sites need n_heads, one count per module; use pa.patching.heads(...)")

    def _inner(self, shape: torch.Size) -> torch.Size:
        """The part of the value the sites live in (``channels`` of the last dimension)."""
        if self.channels is None:
            return shape
        start, stop = self.channels
        if stop > shape[-1]:
            raise ArgumentError(f"channels {self.channels} exceed the value's last dimension {shape[-1]}")
        return torch.Size((*shape[:-1], stop - start))

    def sub_grid(self, j: int, shape: torch.Size) -> tuple[int, ...]:
        """The grid of module ``j``'s sites for a value of per-example ``shape``."""
        return self._grid(j, self._inner(shape))

    def _grid(self, j: int, shape: torch.Size) -> tuple[int, ...]:
        if self.kind == "layer":
            return ()
        if len(shape) <= self.position_dim and self.kind in ("position", "head_position"):
            raise ArgumentError(
                f"position sites need a sequence dimension {self.position_dim} (without the batch) in the value "
                f"of shape {tuple(shape)}; pass position_dim="
            )
        t = shape[self.position_dim] if self.kind in ("position", "head_position") else 0
        if self.kind == "position":
            return (t,)
        h = self.n_heads[j]  # type: ignore[index]
        if shape[-1] % h:
            raise ArgumentError(
                f"the value's last dimension {shape[-1]} does not split into {h} heads; check n_heads or the module"
            )
        return (h,) if self.kind == "head" else (t, h)

    def masks(self, j: int, shape: torch.Size, device: torch.device) -> Tensor:
        """``(K, *shape)`` booleans: module ``j``'s sites, in the grid's row-major order."""
        inner = self._masks(j, self._inner(shape), device)
        if self.channels is None:
            return inner
        masks = inner.new_zeros((len(inner), *shape))
        masks[..., self.channels[0] : self.channels[1]] = inner
        return masks

    def _masks(self, j: int, shape: torch.Size, device: torch.device) -> Tensor:
        grid = self._grid(j, shape)
        if self.kind == "layer":
            return torch.ones((1, *shape), dtype=torch.bool, device=device)
        k = 1
        for g in grid:
            k *= g
        masks = torch.zeros((k, *shape), dtype=torch.bool, device=device)
        sites = torch.arange(k, device=device)
        if self.kind == "position":
            view = masks.movedim(1 + self.position_dim, 1)
            view[sites, sites] = True
            return masks
        h = self.n_heads[j]  # type: ignore[index]
        per_head = masks.unflatten(-1, (h, shape[-1] // h))  # (K, ..., H, Dh)
        head = sites % h
        if self.kind == "head":
            per_head.movedim(-2, 1)[sites, head] = True
            return masks
        pos = sites // h
        view = per_head.movedim(-2, 1).movedim(2 + self.position_dim, 2)  # (K, H, T, ...)
        view[sites, head, pos] = True
        return masks


def layers(modules: nn.Module | Sequence[nn.Module], *, to_input: bool = False) -> Sites:
    """One site per module: its whole output (or input) patched at once; grid ``(L,)``.

    Args:
        modules: A module or a list of them (e.g. ``[b.mlp for b in model.transformer.h]``).
        to_input: Patch each module's input (the residual stream entering a block) instead.

    Returns:
        A :class:`Sites` grid of kind ``"layer"``.

    Example:
        >>> pa.patching.layers([model[0], model[2]]).kind
        'layer'
    """
    return Sites(_module_list(modules), "layer", to_input)


def positions(modules: nn.Module | Sequence[nn.Module], *, to_input: bool = False, position_dim: int = 0) -> Sites:
    """One site per (module, position): the value at one sequence position; grid ``(L, T)``.

    ``positions(model.transformer.h, to_input=True)`` is TransformerLens's ``resid_pre`` by
    position; ``positions([b.mlp for b in blocks])`` its ``mlp_out``.

    Args:
        modules: A module or a list of them whose value is ``(batch, T, ...)``.
        to_input: Patch each module's input instead of its output.
        position_dim: The sequence dimension, counted without the batch dimension.

    Returns:
        A :class:`Sites` grid of kind ``"position"``.

    Example:
        >>> pa.patching.positions([model[0]]).kind
        'position'
    """
    return Sites(_module_list(modules), "position", to_input, position_dim=position_dim)


def heads(
    model: nn.Module | None = None,
    *,
    projections: Sequence[nn.Module] | None = None,
    n_heads: int | Sequence[int] | None = None,
    by_position: bool = False,
    position_dim: int = 0,
) -> Sites:
    """One site per attention head: the head's slice of the input of the attention's output
    projection (TransformerLens's ``z``); grid ``(L, H)``, or ``(L, T, H)`` with ``by_position``.

    With ``model``, the heads are found from the model itself: Hugging Face GPT-2 (``c_proj``
    of each ``GPT2Attention``), Llama-style models (``o_proj``) and BERT-style encoders
    (``attention.output.dense``). Any other architecture: pass the output projections (the
    modules whose input is the heads' outputs concatenated, ``(batch, T, H * d_head)``) and
    ``n_heads``.

    Args:
        model: A model whose attention layers are found by the rules above.
        projections: The attention output projections, one per layer (instead of ``model``).
        n_heads: Heads per projection (an int for all), with ``projections``.
        by_position: One site per (head, position) instead of per head over all positions.
        position_dim: The sequence dimension of the projection's input, without the batch.

    Returns:
        A :class:`Sites` grid of kind ``"head"`` or ``"head_position"``.

    Example:
        >>> pa.patching.heads(gpt2).modules[0] is gpt2.transformer.h[0].attn.c_proj
        True
    """
    kind = "head_position" if by_position else "head"
    if projections is not None:
        mods = _module_list(projections)
        if n_heads is None:
            raise ArgumentError("heads(projections=...) needs n_heads=, the number of heads of each projection")
        counts = (n_heads,) * len(mods) if isinstance(n_heads, int) else tuple(n_heads)
        return Sites(mods, kind, True, counts, position_dim)
    if model is None:
        raise ArgumentError("heads() needs the model (for GPT-2, Llama or BERT), or projections= and n_heads=")
    found = find_heads(model)
    return Sites(tuple(p for p, _ in found), kind, True, tuple(h for _, h in found), position_dim)


_ROLE_DOC = """One site per (layer, position, head) of the attention's {plural}: the head's slice of the
{role} projection's output; grid ``(L, T, H)`` (``(L, H)`` with ``by_position=False``).
Patched, a {role} changes only {changes} of the head's attention pattern, which
:func:`attribution_patching`'s ``qk_fix`` recomputes exactly (AtP*).{extra}

With ``model``: Hugging Face GPT-2 ({gpt2} of ``c_attn``), Llama-style (``{llama}``) and
BERT-style (``{role}``) attention. Otherwise pass the projections, ``n_heads``, the attention
modules (where each softmax runs) and, for a fused projection, the ``channels`` that hold the
{plural}.

Args:
    model: A model whose attention layers are found by the rules above.
    projections: The {role} projections, one per layer (instead of ``model``).
    n_heads: Heads per projection (an int for all), with ``projections``.
    attention: The attention module of each projection, with ``projections``.
    channels: ``(start, stop)`` of the projection's output that holds the {plural}.
    by_position: One site per (position, head), else per head over all positions.
    position_dim: The sequence dimension of the projection's output, without the batch.

Returns:
    A :class:`Sites` grid with ``role="{role}"``.

Example:
    >>> pa.patching.{name}(gpt2).channels
    {channels}

References:
    - Kramár et al., `AtP*: An efficient and scalable method for localizing LLM behaviour
      to components <https://arxiv.org/abs/2403.00745>`_, 2024.
"""


def _role_sites(role: str, name: str, **doc: str) -> Callable[..., Sites]:
    def sites(
        model: nn.Module | None = None,
        *,
        projections: Sequence[nn.Module] | None = None,
        n_heads: int | Sequence[int] | None = None,
        attention: Sequence[nn.Module] | None = None,
        channels: tuple[int, int] | None = None,
        by_position: bool = True,
        position_dim: int = 0,
    ) -> Sites:
        return _qk_sites(role, model, projections, n_heads, attention, channels, by_position, position_dim)

    sites.__name__ = sites.__qualname__ = name
    sites.__doc__ = _ROLE_DOC.format(role=role, name=name, **doc)
    return sites


queries = _role_sites("query", "queries", plural="queries", changes="its own row", extra="", gpt2="the first third",
                      llama="q_proj", channels="(0, 32)")  # fmt: skip
keys = _role_sites("key", "keys", plural="keys", changes="one column", gpt2="the second third", llama="k_proj",
                   extra=" Where a model shares key/value heads, the key heads.", channels="(32, 64)")  # fmt: skip


def _qk_sites(
    role: str,
    model: nn.Module | None,
    projections: Sequence[nn.Module] | None,
    n_heads: int | Sequence[int] | None,
    attention: Sequence[nn.Module] | None,
    channels: tuple[int, int] | None,
    by_position: bool,
    position_dim: int,
) -> Sites:
    kind = "head_position" if by_position else "head"
    if projections is not None:
        mods = _module_list(projections)
        if n_heads is None or attention is None:
            raise ArgumentError(f"{role} sites from projections= need n_heads= and attention= (one module per layer)")
        counts = (n_heads,) * len(mods) if isinstance(n_heads, int) else tuple(n_heads)
        return Sites(mods, kind, False, counts, position_dim, channels, _module_list(attention), role)
    if model is None:
        raise ArgumentError(f"{role} sites need the model, or projections=, n_heads= and attention=")
    found = [hit for m in model.modules() if (hit := _query_key(m, role)) is not None]
    if not found:
        raise ArgumentError(
            f"no attention {role} projections found in {type(model).__name__} (GPT-2, Llama-style, BERT-style are "
            "known); pass projections=, n_heads= and attention="
        )
    spans = {f[2] for f in found}
    if len(spans) > 1:
        raise ArgumentError(f"the layers' {role} channels differ ({sorted(spans, key=str)}); build the Sites by hand")
    return Sites(
        tuple(f[1] for f in found), kind, False, tuple(f[3] for f in found), position_dim, found[0][2],
        tuple(f[0] for f in found), role,
    )  # fmt: skip


ROLES = ("query", "key", "value")


def _query_key(m: Any, role: str) -> tuple[nn.Module, nn.Module, tuple[int, int] | None, int] | None:
    """``(attention, projection, channels, heads)`` of the query, key or value projection of ``m``."""
    config = getattr(m, "config", None)
    at = ROLES.index(role)
    if isinstance(getattr(m, "c_attn", None), nn.Module) and hasattr(m, "num_heads") and hasattr(m, "split_size"):
        d = int(m.split_size)  # GPT-2: queries, keys, values side by side
        return m, m.c_attn, (at * d, (at + 1) * d), int(m.num_heads)
    proj = getattr(m, ("q_proj", "k_proj", "v_proj")[at], None)
    if isinstance(proj, nn.Module) and config is not None:  # Llama, Mistral, Qwen
        heads = config.num_attention_heads if role == "query" else config.num_key_value_heads
        return m, proj, None, int(heads or config.num_attention_heads)
    proj = getattr(m, role, None)
    if isinstance(proj, nn.Module) and hasattr(m, "num_attention_heads"):  # BERT
        return m, proj, None, int(m.num_attention_heads)
    return None


def find_heads(model: nn.Module) -> list[tuple[nn.Module, int]]:
    """``(output projection, number of heads)`` of every attention layer of ``model``, in order."""
    found = []
    for m in model.modules():
        hit = _attention(m)
        if hit is not None:
            found.append(hit)
    if not found:
        raise ArgumentError(
            f"no attention layers found in {type(model).__name__}: heads(model) knows Hugging Face GPT-2, "
            "Llama-style and BERT-style attention. For another architecture pass "
            "heads(projections=[...], n_heads=H), the modules whose input is the heads' concatenated outputs"
        )
    return found


def _attention(m: Any) -> tuple[nn.Module, int] | None:
    config = getattr(m, "config", None)
    if isinstance(getattr(m, "c_proj", None), nn.Module) and hasattr(m, "num_heads") and hasattr(m, "c_attn"):
        return m.c_proj, int(m.num_heads)  # GPT-2
    if isinstance(getattr(m, "o_proj", None), nn.Module):  # Llama, Mistral, Qwen
        heads = getattr(m, "num_heads", None) or getattr(config, "num_attention_heads", None)
        if heads:
            return m.o_proj, int(heads)
    own: Any = getattr(m, "self", None)
    out: Any = getattr(m, "output", None)
    bert = own is not None and out is not None and hasattr(own, "num_attention_heads")
    if bert and isinstance(getattr(out, "dense", None), nn.Module):
        return out.dense, int(own.num_attention_heads)  # BERT
    return None


def _module_list(modules: nn.Module | Sequence[nn.Module]) -> tuple[nn.Module, ...]:
    if isinstance(modules, nn.Module) and not isinstance(modules, nn.ModuleList):
        return (modules,)  # an nn.Sequential is one module: pass list(seq) for its children
    out = tuple(modules)
    if not all(isinstance(m, nn.Module) for m in out):
        raise ArgumentError("sites take nn.Modules of the model (a module, a list, or an nn.ModuleList)")
    return out
