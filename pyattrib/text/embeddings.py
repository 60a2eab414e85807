"""A model that takes token ids, as a function of its token embeddings, without patching it.

Captum's ``configure_interpretable_embedding_layer`` swaps the embedding module for a
pass-through until ``remove_interpretable_embedding_layer`` puts it back, so that input
methods (IG, SmoothGrad, DeepLift...) can differentiate with respect to embeddings. Here the
swap lasts one forward call only (the capture/splice combinator), so the user's model is
never left changed, not even after an exception.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError


def input_embeddings(model: nn.Module, layer: nn.Module | None) -> nn.Module:
    """``layer``, or the model's ``get_input_embeddings()`` when it is None."""
    layer = layer if layer is not None else getattr(model, "get_input_embeddings", lambda: None)()
    if not isinstance(layer, nn.Module):
        raise ArgumentError("layer is None and the model has no get_input_embeddings(); pass layer=model.<embedding>")
    return layer


class EmbeddingInput:
    """``f(embeddings, *model_inputs)``: the model on ``model_inputs`` with ``layer``'s output
    replaced by ``embeddings``; ``f.embed(*model_inputs)`` gives that output.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.

    Example:
        >>> f = pa.text.EmbeddingInput(lm)
        >>> ids = tokenizer("hello", return_tensors="pt").input_ids
        >>> f.embed(ids).shape[-1]
        32
    """

    def __init__(self, model: nn.Module, layer: nn.Module | None = None) -> None:
        self.model, self.layer = model, input_embeddings(model, layer)
        self._layers = Layers(model, self.layer, to_input=False)

    def embed(self, *model_inputs: Any) -> Tensor:
        """The layer's output when the model runs on ``model_inputs`` (e.g. token ids)."""
        value = self._layers.capture(model_inputs, (), model_inputs[0].shape[0])[0]
        return value.layout(value.leaves)

    def __call__(self, embeddings: Tensor, *model_inputs: Any) -> Any:
        def replace(_: int, value: Any) -> Tensor:
            if not isinstance(value, Tensor) or value.shape != embeddings.shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ArgumentError(
                    f"embeddings has shape {tuple(embeddings.shape)} but the layer gives {got} for these inputs; "
                    "pass the model inputs the embeddings were made from (f.embed(*inputs) makes them)"
                )
            return embeddings.clone()  # an in-place op after the layer must not write on the caller's tensor

        with self._layers.hooked(replace):
            return self.model(*model_inputs)


def embedding_input(model: nn.Module, layer: nn.Module | None = None) -> EmbeddingInput:
    """The model as a function of its token embeddings: attribute with any input method.

    .. code-block:: python

        f = pa.text.embedding_input(model)                  # layer: model.get_input_embeddings()
        emb, ref = f.embed(ids), f.embed(reference_ids)
        pa.integrated_gradients(f)(emb, ref, target=1, additional_forward_args=(ids,))

    ``f(embeddings, *model_inputs)`` runs ``model(*model_inputs)`` with ``layer``'s output
    replaced by ``embeddings`` (the ids still go in, for whatever else the model reads from
    them, such as positions); nothing of the model is patched beyond that call. Equal to
    ``pa.layer_integrated_gradients(model, layer)`` on the ids, and it also opens input-only
    methods (DeepLift, noise tunnels on embeddings, perturbations) to token models.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.

    Returns:
        EmbeddingInput: ``f(embeddings, *model_inputs)``, with ``f.embed(*model_inputs)`` giving the
        embeddings.

    Example:
        >>> f = pa.text.embedding_input(lm)
        >>> ids = tokenizer("the cat sat", return_tensors="pt").input_ids
        >>> emb = f.embed(ids)
        >>> attr = pa.saliency(f)(emb, target=lambda out: out.logits[:, -1, 0], additional_forward_args=(ids,))
        >>> attr.shape == emb.shape
        True
    """
    return EmbeddingInput(model, layer)
