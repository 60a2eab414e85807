"""A residual-stream transformer seen as a graph: components that write to the residual
stream (the embeddings, each attention head, each MLP) and components that read it (each
attention head's query, key and value inputs, each MLP, the logits), found from a Hugging
Face model's own modules.

A reader's input is the input of the normalisation in front of it (pre-norm blocks), so the
derivative at a reader is taken through that reader only, not through the skip connection
beside it; a head's query, key or value input is that input seen through the head's own
slice of the projection. Head writes come from the input of the attention's output
projection, split into heads.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .._core.errors import ArgumentError
from .sites import ROLES, _attention, _query_key

# (attention norm, attention, MLP norm, MLP) child names of a pre-norm block, by family
_BLOCKS = (
    ("ln_1", "attn", "ln_2", "mlp"),  # GPT-2
    ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"),  # Llama, Mistral, Qwen
)
_FINAL = ("ln_f", "norm", "final_layernorm")


@dataclass(frozen=True)
class Read:
    """How the attention reads its normalised input for one role: the heads' slices of a
    projection's output.

    Args:
        role: ``"query"``, ``"key"`` or ``"value"``.
        module: The projection (GPT-2's fused ``c_attn`` serves all three roles).
        channels: ``(start, stop)`` of the projection's output that holds this role, or None.
        n_heads: The heads among which those channels are split.

    Example:
        >>> pa.patching.residual_stream(gpt2).blocks[0].reads[1].channels
        (32, 64)
    """

    role: str
    module: nn.Module
    channels: tuple[int, int] | None
    n_heads: int


@dataclass(frozen=True)
class Block:
    """One pre-norm transformer block: ``x + attention(attn_norm(x))``, then
    ``x + mlp(mlp_norm(x))``.

    Args:
        attn_norm: The normalisation read by the attention.
        attention: The attention module.
        projection: The attention's output projection (its input holds the heads' outputs).
        n_heads: The number of heads.
        mlp_norm: The normalisation read by the MLP.
        mlp: The MLP module.
        module: The block itself (its input is the residual stream; EAP-IG interpolates the
            first block's input).
        reads: The query, key and value projections (:class:`Read`), for edges that end at one
            head's input; empty, edges end at the attention as a whole.

    Example:
        >>> b = pa.patching.residual_stream(gpt2).blocks[0]
        >>> b.n_heads
        4
    """

    attn_norm: nn.Module
    attention: nn.Module
    projection: nn.Module
    n_heads: int
    mlp_norm: nn.Module
    mlp: nn.Module
    module: nn.Module | None = None
    reads: tuple[Read, ...] = ()


@dataclass(frozen=True)
class Residual:
    """A residual-stream transformer: its blocks in order and the final normalisation (read by
    the unembedding). Build it by hand for an architecture :func:`residual_stream` does not
    know.

    Args:
        blocks: The blocks, first to last.
        final_norm: The normalisation before the unembedding.

    Example:
        >>> len(pa.patching.residual_stream(gpt2).blocks)
        2
    """

    blocks: tuple[Block, ...]
    final_norm: nn.Module

    def writers(self) -> list[str]:
        """Names of the writing components: ``embed``, ``a{l}.h{h}``, ``m{l}``, in order.

        Returns:
            A list of names.

        Example:
            >>> pa.patching.residual_stream(gpt2).writers()[:3]
            ['embed', 'a0.h0', 'a0.h1']
        """
        out = ["embed"]
        for layer, b in enumerate(self.blocks):
            out += [f"a{layer}.h{h}" for h in range(b.n_heads)] + [f"m{layer}"]
        return out

    def readers(self, by_head: bool = True) -> list[str]:
        """Names of the reading components, in order: ``a{l}.h{h}.q`` / ``.k`` / ``.v`` (or
        ``a{l}`` for a whole attention), ``m{l}``, ``logits``.

        Args:
            by_head: One reader per head and role (where the blocks have ``reads``).

        Returns:
            A list of names.

        Example:
            >>> pa.patching.residual_stream(gpt2).readers(by_head=False)
            ['a0', 'm0', 'a1', 'm1', 'logits']
        """
        out = []
        for layer, b in enumerate(self.blocks):
            if by_head and b.reads:
                out += [f"a{layer}.h{h}.{r.role[0]}" for r in b.reads for h in range(r.n_heads)]
            else:
                out.append(f"a{layer}")
            out.append(f"m{layer}")
        return out + ["logits"]


def residual_stream(model: nn.Module) -> Residual:
    """The blocks and final normalisation of a Hugging Face GPT-2 or Llama-style model (any
    model whose blocks name their parts as those do).

    Args:
        model: The model.

    Returns:
        A :class:`Residual`.

    Example:
        >>> pa.patching.residual_stream(gpt2).final_norm is gpt2.transformer.ln_f
        True
    """
    for owner in model.modules():
        for child in owner.children():
            if not isinstance(child, nn.ModuleList) or not len(child):
                continue
            names = next((n for n in _BLOCKS if all(hasattr(child[0], a) for a in n)), None)
            final = next((getattr(owner, f) for f in _FINAL if isinstance(getattr(owner, f, None), nn.Module)), None)
            if names is None or final is None:
                continue
            blocks = []
            for b in child:
                norm1, attn, norm2, mlp = (getattr(b, a) for a in names)
                found = _attention(attn)
                if found is None:
                    break
                reads = tuple(Read(r, *hit[1:]) for r in ROLES if (hit := _query_key(attn, r)) is not None)
                blocks.append(Block(norm1, attn, found[0], found[1], norm2, mlp, b, reads if len(reads) == 3 else ()))
            else:
                return Residual(tuple(blocks), final)
    raise ArgumentError(
        f"{type(model).__name__} is not a pre-norm residual-stream transformer residual_stream() knows (Hugging "
        "Face GPT-2, Llama-style); describe it with pa.patching.Residual(blocks=[pa.patching.Block(...)], "
        "final_norm=...)"
    )
