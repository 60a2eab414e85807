"""Guided backpropagation, deconvolution and Guided Grad-CAM: saliency on the model with the ReLU's
backward replaced (``pyattrib/_core/overrides.py``), at the input or at a neuron."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.calls import InputCall
from .._core.errors import ArgumentError
from .._core.overrides import deconvolution as deconv_rule
from .._core.overrides import (
    guided,
    overridden,
)
from .._core.targets import TargetLike
from ..gradient import saliency
from ..layer import LayerLike, interpolate, layer_gradcam
from ..neuron import on_neuron, truncate


def guided_backprop(model: Callable[..., Any], *, batch_size: int | None = None) -> Attributor[InputCall]:
    r"""Guided backpropagation (Springenberg et al., 2015): the input gradient where every
    ReLU passes only positive gradients, and only where it was active:
    :math:`g_{in} = \mathrm{ReLU}(g_{out}) \cdot 1[x > 0]`. Call as
    ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``.

    References:
        - Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
          Convolutional Net", 2014. https://arxiv.org/abs/1412.6806

    Example:
        >>> pa.guided_backprop(cnn)(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    inner = saliency(overridden(model, {"relu": guided}), abs=False, batch_size=batch_size)
    return inner.with_fn(inner.fn, forward=model, name="guided_backprop")


def deconvolution(model: Callable[..., Any], *, batch_size: int | None = None) -> Attributor[InputCall]:
    r"""Deconvolution (Zeiler & Fergus, 2014): the input "gradient" where every ReLU passes
    :math:`\mathrm{ReLU}(g_{out})` regardless of its input. Call as
    ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.deconvolution(cnn)(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    inner = saliency(overridden(model, {"relu": deconv_rule}), abs=False, batch_size=batch_size)
    return inner.with_fn(inner.fn, forward=model, name="deconvolution")


def neuron_guided_backprop(
    model: nn.Module, layer: LayerLike, *, attribute_to_neuron_input: bool = False
) -> Attributor:
    """Guided backpropagation of the selected neuron. Call as ``(inputs, *, neuron_selector, ...)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, neuron_selector, ...)``; it returns attributions shaped
        like ``inputs``.

    References:
        - Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
          Convolutional Net", 2014. https://arxiv.org/abs/1412.6806

    Example:
        >>> pa.neuron_guided_backprop(cnn, conv)(images, neuron_selector=(0, 4, 4)).shape
        torch.Size([2, 3, 8, 8])
    """
    return on_neuron(
        guided_backprop(truncate(model, layer, attribute_to_neuron_input)), model, "neuron_guided_backprop"
    )


def neuron_deconvolution(model: nn.Module, layer: LayerLike, *, attribute_to_neuron_input: bool = False) -> Attributor:
    """Deconvolution of the selected neuron. Call as ``(inputs, *, neuron_selector, ...)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, neuron_selector, ...)``; it returns attributions shaped
        like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.neuron_deconvolution(cnn, conv)(images, neuron_selector=(0, 4, 4)).shape
        torch.Size([2, 3, 8, 8])
    """
    return on_neuron(deconvolution(truncate(model, layer, attribute_to_neuron_input)), model, "neuron_deconvolution")


def guided_gradcam(
    model: nn.Module, layer: nn.Module, *, interpolate_mode: str = "nearest", attribute_to_layer_input: bool = False
) -> Attributor[InputCall]:
    r"""Guided Grad-CAM (Selvaraju et al., 2017): guided backpropagation times the Grad-CAM
    map of ``layer`` (with ReLU) upsampled to each input's spatial size,
    :math:`\phi = \mathrm{GB}(x) \odot \mathrm{up}(L_{\text{Grad-CAM}})`. Call as
    ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        interpolate_mode: How the Grad-CAM map is upsampled to the input
            (``torch.nn.functional.interpolate``'s mode).
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``.

    References:
        - Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, "Grad-CAM: Visual Explanations from Deep
          Networks via Gradient-based Localization", ICCV 2017. https://arxiv.org/abs/1610.02391
        - Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
          Convolutional Net", 2014. https://arxiv.org/abs/1412.6806

    Example:
        >>> pa.guided_gradcam(cnn, conv)(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    gb = guided_backprop(model)
    cam = layer_gradcam(model, layer, relu_attributions=True, attribute_to_layer_input=attribute_to_layer_input)

    def attribute(inputs: Any, *, target: TargetLike = None, additional_forward_args: Any = None) -> Any:
        kw = {"target": target, "additional_forward_args": additional_forward_args}
        grads, heat = gb(inputs, **kw), cam(inputs, **kw)
        if not isinstance(heat, Tensor):
            raise ArgumentError("guided_gradcam needs a layer whose value is a single tensor")
        tup = grads if isinstance(grads, tuple) else (grads,)
        out = []
        for j, g in enumerate(tup):
            if g.dim() != heat.dim():
                raise ArgumentError(
                    f"inputs[{j}] has shape {tuple(g.shape)}, which the Grad-CAM map of shape {tuple(heat.shape)} "
                    "cannot be upsampled to; guided_gradcam needs inputs with the layer's spatial dimensions"
                )
            out.append(g * interpolate(heat, g.shape[2:], interpolate_mode))
        return tuple(out) if isinstance(grads, tuple) else out[0]

    return Attributor(attribute, model, per_example=("target", "additional_forward_args"), name="guided_gradcam")
