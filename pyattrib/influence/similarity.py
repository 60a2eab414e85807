"""Similarity influence: the training examples whose layer activations are most like a test
example's (Captum's ``SimilarityInfluence``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError, check_count
from ..layer import layer_activation
from .tracin import merge_top_k, train_chunks


def cosine_similarity(test: Tensor, train: Tensor, zero_rows: float = 0.0) -> Tensor:
    """``(N_test, N_train)`` cosine similarities of flattened rows, each row divided by its norm.

    Args:
        test: Test activations, ``(N, D)``.
        train: Training activations, ``(M, D)``.
        zero_rows: The value every entry of an all-zero row takes instead: 0 (its similarities are 0), or
            Captum's ``replace_nan`` (``pyattrib.compat.cosine_similarity``), which makes such rows findable.

    Returns:
        Tensor: ``(N, M)`` cosine similarities.

    Example:
        >>> pa.influence.cosine_similarity(torch.eye(2), torch.eye(2))
        tensor([[1., 0.],
                [0., 1.]])
    """

    def unit(rows: Tensor) -> Tensor:
        rows = rows.reshape(len(rows), -1)
        norm = rows.norm(dim=1, keepdim=True)
        fill = torch.as_tensor(zero_rows, dtype=rows.dtype, device=rows.device)
        return torch.where(norm != 0, rows / torch.where(norm != 0, norm, 1), fill)

    return unit(test) @ unit(train).T


def euclidean_distance(test: Tensor, train: Tensor) -> Tensor:
    """``(N_test, N_train)`` euclidean distances of flattened rows.

    Args:
        test: Test activations, ``(N, D)``.
        train: Training activations, ``(M, D)``.

    Returns:
        Tensor: ``(N, M)`` Euclidean distances.

    Example:
        >>> pa.influence.euclidean_distance(torch.eye(2), torch.eye(2))
        tensor([[0.0000, 1.4142],
                [1.4142, 0.0000]])
    """
    return torch.cdist(test.reshape(len(test), -1)[None], train.reshape(len(train), -1)[None])[0]


SIMILARITIES = {"cosine": (cosine_similarity, "max"), "euclidean": (euclidean_distance, "min")}


class SimilarityInfluence:
    """The ``top_k`` training examples closest to each test example at each of ``layers``
    (module names), by ``similarity`` (``"cosine"``, most similar first; ``"euclidean"``,
    nearest first; or a callable ``(test, train) -> (N_test, N_train)`` with ``direction``
    ``"max"`` or ``"min"``). Training activations are read with the capture combinator in
    chunks of ``batch_size`` and never all held at once: a running top-k is kept per layer.
    ``influence(inputs, top_k=1)`` returns ``{layer: (indices, scores)}``, each
    ``(N_test, top_k)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layers: The layers (modules, or their names in ``model.named_modules()``).
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        similarity: ``"cosine"``, ``"euclidean"`` or a function ``(test, train) -> (N, M)`` scores.
        direction: With a callable ``similarity``: ``"max"`` (larger is closer) or ``"min"``.
        batch_size: Training examples per chunk of activations.

    Example:
        >>> near = pa.influence.SimilarityInfluence(model, ["0", "2"], train, similarity="euclidean")
        >>> sorted(near.influence(x, top_k=1))
        ['0', '2']
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str], train_data: Any, *,
                 similarity: str | Callable[[Tensor, Tensor], Tensor] = "cosine", direction: str | None = None,
                 batch_size: int = 64) -> None:  # fmt: skip
        self.model, self.train_data, self.batch_size = model, train_data, check_count("batch_size", batch_size)
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        try:
            self.modules = [model.get_submodule(name) for name in self.layers]
        except AttributeError as error:
            raise ArgumentError(f"layers: {error}; use names from model.named_modules()") from None
        if isinstance(similarity, str):
            if similarity not in SIMILARITIES:
                raise ArgumentError(f"similarity must be one of {sorted(SIMILARITIES)} or a callable")
            similarity, default = SIMILARITIES[similarity]
            direction = direction or default
        if direction not in ("max", "min"):
            raise ArgumentError("direction must be 'max' (larger is more similar) or 'min' (smaller is)")
        self.similarity, self.direction = similarity, direction
        self.read = layer_activation(model, self.modules)

    def influence(self, inputs: Tensor | tuple[Tensor, ...], top_k: int = 1) -> dict[str, tuple[Tensor, Tensor]]:
        check_count("top_k", top_k)
        test = self.read(inputs)
        best: list[tuple[Tensor, Tensor] | None] = [None] * len(self.layers)
        sign = 1.0 if self.direction == "max" else -1.0
        for start, xs, _ in train_chunks(self.train_data, self.batch_size, labelled=False):
            for j, acts in enumerate(self.read(xs if len(xs) > 1 else xs[0])):
                best[j] = merge_top_k(best[j], sign * self.similarity(test[j], acts), start, top_k)
        return {name: (b[1], sign * b[0]) for name, b in zip(self.layers, best) if b is not None}


def similarity_influence(model: nn.Module, layers: str | Sequence[str], train_data: Any,
                         **options: Any) -> SimilarityInfluence:  # fmt: skip
    """A :class:`SimilarityInfluence` (see its options).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layers: The layers (modules, or their names in ``model.named_modules()``).
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        SimilarityInfluence: ``influence(inputs, top_k)``.

    Example:
        >>> near = pa.influence.similarity_influence(model, "1", train)
        >>> indices, scores = near.influence(x, top_k=2)["1"]
        >>> indices.shape
        torch.Size([4, 2])
    """
    return SimilarityInfluence(model, layers, train_data, **options)
