"""Captum's text helpers: token references and interpretable embedding layers."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError


class TokenReferenceBase:
    """Reference token ids: ``reference_token_idx`` (e.g. the pad id) at every position.

    :func:`pyattrib.token_reference` is the native form, which can keep special tokens.

    Args:
        reference_token_idx: The reference token's id (e.g. the padding id).

    Example:
        >>> from pyattrib.compat import TokenReferenceBase
        >>> TokenReferenceBase(reference_token_idx=0).generate_reference(4, device="cpu")
        tensor([0, 0, 0, 0])
    """

    def __init__(self, reference_token_idx: int = 0) -> None:
        self.reference_token_idx = reference_token_idx

    def generate_reference(self, sequence_length: int, device: torch.device) -> Tensor:
        return torch.full((sequence_length,), self.reference_token_idx, dtype=torch.long, device=device)


class InterpretableEmbeddingBase(nn.Module):
    """Stands in for an embedding layer and passes precomputed embeddings through, so a
    model that takes token ids can be attributed with respect to its embeddings.
    ``indices_to_embeddings`` runs the original layer. The native API needs no patching:
    attribute at the embedding with a layer method (e.g. :func:`pyattrib.layer_integrated_gradients`).

    Args:
        embedding: The embedding layer stood in for.
        full_name: Its name in the model (``model.<full_name>``).

    Example:
        >>> from pyattrib.compat import InterpretableEmbeddingBase
        >>> stand_in = InterpretableEmbeddingBase(nn.Embedding(20, 4), "embedding")
        >>> emb = stand_in.indices_to_embeddings(torch.tensor([[1, 2, 3]]))
        >>> torch.equal(stand_in(emb), emb)  # embeddings pass through
        True
    """

    def __init__(self, embedding: nn.Module, full_name: str) -> None:
        super().__init__()
        self.num_embeddings = getattr(embedding, "num_embeddings", None)
        self.embedding_dim = getattr(embedding, "embedding_dim", None)
        self.embedding = embedding
        self.full_name = full_name

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Return the embeddings given as the first input (positional or keyword) unchanged."""
        if inputs:
            return inputs[0]
        if not kwargs:
            raise ArgumentError("no embeddings were passed to the interpretable embedding layer")  # Captum asserts
        return next(iter(kwargs.values()))

    def indices_to_embeddings(self, *input: Any, **kwargs: Any) -> Tensor:
        """Embeddings of the given indices, from the original layer."""
        return self.embedding(*input, **kwargs)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, last = name.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    return parent, last


def configure_interpretable_embedding_layer(
    model: nn.Module, embedding_layer_name: str = "embedding"
) -> InterpretableEmbeddingBase:
    """Replace ``model.<embedding_layer_name>`` by an :class:`InterpretableEmbeddingBase`
    (undo with :func:`remove_interpretable_embedding_layer`).

    Args:
        model: The model (an ``nn.Module``).
        embedding_layer_name: The embedding layer's name in the model.

    Returns:
        InterpretableEmbeddingBase: the stand-in now in the model.

    Example:
        >>> class Bag(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embedding, self.out = nn.Embedding(20, 4), nn.Linear(4, 2)
        ...     def forward(self, ids): return self.out(self.embedding(ids).mean(1))
        ...
        >>> from pyattrib.compat import configure_interpretable_embedding_layer, remove_interpretable_embedding_layer
        >>> bag = Bag()
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> stand_in = configure_interpretable_embedding_layer(bag, "embedding")
        >>> emb = stand_in.indices_to_embeddings(ids)
        >>> out = bag(emb)
        >>> remove_interpretable_embedding_layer(bag, stand_in)
        >>> torch.allclose(out, bag(ids))
        True
    """
    parent, last = _parent(model, embedding_layer_name)
    embedding = getattr(parent, last)
    assert not isinstance(embedding, InterpretableEmbeddingBase), (
        f"{embedding_layer_name} is already an interpretable embedding layer; remove it first"
    )
    warnings.warn(
        "The embedding layer is replaced until remove_interpretable_embedding_layer is called; "
        "pass embeddings (interpretable_emb.indices_to_embeddings(ids)) to the model meanwhile.",
        stacklevel=2,
    )
    interpretable = InterpretableEmbeddingBase(embedding, embedding_layer_name)
    setattr(parent, last, interpretable)
    return interpretable


def remove_interpretable_embedding_layer(model: nn.Module, interpretable_emb: InterpretableEmbeddingBase) -> None:
    """Put the original embedding layer back.

    Args:
        model: The model (an ``nn.Module``).
        interpretable_emb: The :class:`InterpretableEmbeddingBase` that
            :func:`configure_interpretable_embedding_layer` returned.

    Returns:
        None.

    Example:
        >>> from pyattrib.compat import configure_interpretable_embedding_layer, remove_interpretable_embedding_layer
        >>> holder = nn.Module()
        >>> holder.embedding = original = nn.Embedding(20, 4)
        >>> stand_in = configure_interpretable_embedding_layer(holder, "embedding")
        >>> remove_interpretable_embedding_layer(holder, stand_in)
        >>> holder.embedding is original
        True
    """
    parent, last = _parent(model, interpretable_emb.full_name)
    setattr(parent, last, interpretable_emb.embedding)
