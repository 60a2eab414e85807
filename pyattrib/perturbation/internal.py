"""Perturbation methods at a layer and at a neuron: the input methods on the spliced or truncated model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from .._core.attributor import Attributor
from .._core.calls import FeatureCall, NeuronFeatureCall, PermutationCall
from .._core.errors import check_batch_size
from .._core.layered import on_layer
from .ablation import feature_ablation, feature_permutation

LAYER_NAMES = {"layer_baselines": "baselines", "layer_mask": "feature_mask"}  # the old names, for one release


def layer_feature_ablation(
    model: Any,
    layer: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor[FeatureCall]:
    """Feature ablation of a layer's units: each group of ``feature_mask`` (default: every
    unit) is replaced by ``baselines`` (default 0) in the layer's value and the output
    change recorded. Call as ``(inputs, baselines=None, *, target=None,
    additional_forward_args=None, feature_mask=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None, feature_mask=None)``; it returns attributions shaped like the
        layer's output (or input).

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.layer_feature_ablation(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    check_batch_size(batch_size)
    return on_layer(
        lambda g: feature_ablation(g, batch_size=batch_size, show_progress=show_progress),
        model, layer, attribute_to_layer_input, "layer_feature_ablation", renames=LAYER_NAMES,
    )  # fmt: skip


def layer_feature_permutation(
    model: Any,
    layer: Any,
    *,
    perm_func: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor[PermutationCall]:
    """Permutation importance of a layer's unit groups (see :func:`feature_permutation`).
    Call as ``(inputs, *, target=None, additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation from the call's generator.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None, feature_mask=None,
        generator=None)``; it returns attributions shaped like the layer's output (or input).

    References:
        - Fisher, Rudin and Dominici, "All Models are Wrong, but Many are Useful: Learning a Variable's
          Importance by Studying an Entire Class of Prediction Models Simultaneously", JMLR 2019.
          https://arxiv.org/abs/1801.01489

    Example:
        >>> pa.layer_feature_permutation(model, layer)(x, target=y, generator=generator).shape
        torch.Size([4, 16])
    """
    check_batch_size(batch_size)
    return on_layer(
        lambda g: feature_permutation(g, perm_func=perm_func, batch_size=batch_size, show_progress=show_progress),
        model, layer, attribute_to_layer_input, "layer_feature_permutation", renames=LAYER_NAMES,
    )  # fmt: skip


def neuron_feature_ablation(
    model: Any,
    layer: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_neuron_input: bool = False,
) -> Attributor[NeuronFeatureCall]:
    """Feature ablation of the inputs, measured on the selected neuron. Call as
    ``(inputs, baselines=None, *, neuron_selector, additional_forward_args=None, feature_mask=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, neuron_selector,
        additional_forward_args=None, feature_mask=None)``; it returns attributions shaped like
        ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.neuron_feature_ablation(model, layer)(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """
    from ..neuron import on_neuron, truncate

    inner = feature_ablation(
        truncate(model, layer, attribute_to_neuron_input), batch_size=batch_size, show_progress=show_progress
    )
    return on_neuron(inner, model, "neuron_feature_ablation")
