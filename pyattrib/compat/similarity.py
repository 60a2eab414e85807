"""Captum's ``SimilarityInfluence`` and its two similarity functions over ``pyattrib.influence.SimilarityInfluence``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .. import influence as native
from .._core.errors import ArgumentError


def euclidean_distance(test: Tensor, train: Tensor) -> Tensor:
    """``(N_test, N_train)`` euclidean distances of the flattened rows.

    Args:
        test: Test activations.
        train: Training activations.

    Returns:
        Tensor: ``(N_test, N_train)`` distances.

    Example:
        >>> from pyattrib.compat import euclidean_distance
        >>> euclidean_distance(torch.eye(2), torch.eye(2))
        tensor([[0.0000, 1.4142],
                [1.4142, 0.0000]])
    """
    return native.euclidean_distance(test, train)


def cosine_similarity(test: Tensor, train: Tensor, replace_nan: int = 0) -> Tensor:
    """``(N_test, N_train)`` cosine similarities of the flattened rows; every entry of an all-zero
    row is set to ``replace_nan`` before the product (Captum's rule, which makes them findable).

    Args:
        test: Test activations.
        train: Training activations.
        replace_nan: The value of entries with an all-zero row.

    Returns:
        Tensor: ``(N_test, N_train)`` similarities.

    Example:
        >>> from pyattrib.compat import cosine_similarity
        >>> cosine_similarity(torch.eye(2), torch.eye(2))
        tensor([[1., 0.],
                [0., 1.]])
    """
    return native.cosine_similarity(test, train, zero_rows=float(replace_nan))


class SimilarityInfluence:
    """Captum's ``SimilarityInfluence`` over :class:`pyattrib.influence.SimilarityInfluence`.
    Activations are recomputed chunk by chunk and never written: ``activation_dir``, ``model_id``
    and ``load_src_from_disk`` are accepted for Captum's signature only.

    Args:
        module: The model.
        layers: The layers (module names).
        influence_src_dataset: The training examples.
        activation_dir: Captum's activation folder; accepted and unused (activations stay in memory).
        model_id: Names the model in saved files.
        similarity_metric: ``cosine_similarity``, ``euclidean_distance`` or a function ``(test, train)
            -> scores``.
        similarity_direction: ``"max"`` (larger is closer) or ``"min"``.
        batch_size: Examples per batch.
        **kwargs: Passed on to the explanation function (or the native class).

    Example:
        >>> import tempfile
        >>> from pyattrib.compat import SimilarityInfluence
        >>> near = SimilarityInfluence(model, "1", train, tempfile.mkdtemp(), batch_size=8)
        >>> indices, scores = near.influence(x, top_k=2)["1"]
        >>> indices.shape
        torch.Size([4, 2])
    """

    def __init__(
        self, module: nn.Module, layers: str | list[str], influence_src_dataset: Any, activation_dir: str,
        model_id: str = "", similarity_metric: Callable[..., Tensor] = cosine_similarity,
        similarity_direction: str = "max", batch_size: int = 1, **kwargs: Any,
    ) -> None:  # fmt: skip
        if similarity_direction not in ("max", "min"):
            raise ValueError(f"{similarity_direction} is not a valid value. Must be either 'max' or 'min'")
        self.module, self.layers = module, [layers] if isinstance(layers, str) else list(layers)
        self.influence_src_dataset, self.activation_dir, self.model_id = influence_src_dataset, activation_dir, model_id
        self.similarity_direction, self.batch_size = similarity_direction, batch_size
        self.replace_nan: float | None = None
        if similarity_metric is cosine_similarity:
            self.replace_nan = kwargs.get("replace_nan", -2 if similarity_direction == "max" else 2)
            metric = similarity_metric

            def similarity_metric(test: Tensor, train: Tensor) -> Tensor:
                return metric(test, train, replace_nan=self.replace_nan)

        self.similarity_metric = similarity_metric

    def influence(
        self, inputs: Tensor | tuple[Tensor, ...], top_k: int = 1, additional_forward_args: Any = None,
        load_src_from_disk: bool = True, **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """``{layer: (indices, scores)}`` of the ``top_k`` most similar training examples per input;
        with the cosine metric, ``"zero_acts-<layer>"`` lists the (input, training example) pairs
        whose similarity came from an all-zero activation (and a RuntimeWarning says so)."""
        if additional_forward_args is not None:
            raise ArgumentError("additional_forward_args is not supported here; wrap the model to take them")
        matches: dict[int, list[Tensor]] = {j: [] for j in range(len(self.layers))}
        seen = [0] * len(self.layers)
        calls = [0]

        def metric(test: Tensor, train: Tensor) -> Tensor:
            j = calls[0] % len(self.layers)  # the native loop: every layer per training chunk, in order
            calls[0] += 1
            scores = self.similarity_metric(test, train)
            if scores.shape != (len(test), len(train)):
                raise AssertionError(
                    "Output of custom similarity does not meet required dimensions. "
                    f"Your output has shape {tuple(scores.shape)}; expected {(len(test), len(train))}"
                )
            if self.replace_nan is not None:
                found = (scores == self.replace_nan).nonzero()
                matches[j].append(found + torch.tensor([0, seen[j]]))
            seen[j] += len(train)
            return scores

        finder = native.similarity_influence(
            self.module, self.layers, self.influence_src_dataset, similarity=metric,
            direction=self.similarity_direction, batch_size=self.batch_size,
        )  # fmt: skip
        out: dict[str, Any] = dict(finder.influence(inputs, top_k=top_k))
        for j, layer in enumerate(self.layers):
            zero = torch.cat(matches[j]) if matches[j] else torch.zeros(0, 2, dtype=torch.long)
            if len(zero):
                warnings.warn(
                    f"Layer {layer} has zero-vector activations for some inputs, which makes cosine similarity "
                    f"undefined there; the (input, training example) pairs are under 'zero_acts-{layer}'",
                    RuntimeWarning,
                    stacklevel=2,
                )
                out[f"zero_acts-{layer}"] = zero
        return out
