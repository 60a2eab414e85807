"""Layer methods from one gradient: activation, gradient x activation, Grad-CAM; and the helpers
``interpolate`` and ``token_reference``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.call import Call, prepare
from .._core.calls import ActivationCall, InputCall
from .._core.capture import Layers, LayerValue, split
from .._core.errors import ArgumentError
from .._core.inputs import TensorOrTuple
from .._core.paths import LayerGradients, gradient_times_value
from .._core.state import evaluating
from .._core.targets import TargetLike

LayerLike = nn.Module | Sequence[nn.Module]


PER_EXAMPLE = ("target", "additional_forward_args")


def _select(call: Call, index: Tensor | None) -> Callable[[Any], Tensor]:
    return lambda out: call.target.select(out, index)


def _leaves(values: list[LayerValue]) -> list[Tensor]:
    return [t for v in values for t in v.leaves]


def layer_activation(
    model: nn.Module, layer: LayerLike, *, attribute_to_layer_input: bool = False
) -> Attributor[ActivationCall]:
    """The layer's value itself (its output, or input). Call as ``(inputs, *, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, additional_forward_args=None)``; it returns attributions
        shaped like the layer's output (or input).

    Example:
        >>> pa.layer_activation(model, layer)(x).shape
        torch.Size([4, 16])
    """

    layers = Layers(model, layer, attribute_to_layer_input)

    def attribute(inputs: TensorOrTuple, *, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, None, additional_forward_args, method="layer_activation", differentiable=False)
        with evaluating(model):
            values = layers.capture(call.inputs, call.args.values, call.n)
        return layers.result(values, _leaves(values))

    return Attributor(attribute, model, per_example=("additional_forward_args",), name="layer_activation")


def layer_gradient_x_activation(
    model: nn.Module,
    layer: LayerLike,
    *,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
    batch_size: int | None = None,
) -> Attributor[InputCall]:
    r"""Gradient x activation at a layer: :math:`\phi_j = a_j\, \partial f / \partial a_j` for layer
    activations ``a`` (just the gradient with ``multiply_by_inputs=False``).

    Call as ``(inputs, *, target=None, additional_forward_args=None)``; integer inputs (token
    ids) are fine, gradients start at the layer.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like the layer's output (or input).

    References:
        - Shrikumar, Greenside, Shcherbina and Kundaje, "Not Just a Black Box: Learning Important
          Features Through Propagating Activation Differences", 2016. https://arxiv.org/abs/1605.01713

    Example:
        >>> pa.layer_gradient_x_activation(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """

    layers = Layers(model, layer, attribute_to_layer_input)
    attribute = gradient_times_value(model, lambda: LayerGradients(layers), "layer_gradient_x_activation",
                                     multiply=multiply_by_inputs, batch_size=batch_size)
    return Attributor(attribute, model, per_example=PER_EXAMPLE, name="layer_gradient_x_activation")


def layer_gradcam(
    model: nn.Module,
    layer: LayerLike,
    *,
    relu_attributions: bool = False,
    attr_dim_summation: bool = True,
    attribute_to_layer_input: bool = False,
) -> Attributor[InputCall]:
    r"""Grad-CAM (Selvaraju et al., 2017) at a layer with activations ``A`` of shape ``(N, C, ...)``:

    .. math:: w_c = \operatorname{mean}_{\text{spatial}} \frac{\partial f}{\partial A_c}, \qquad
              L = \operatorname{ReLU}\Big(\sum_c w_c A_c\Big)

    The ReLU is applied with ``relu_attributions=True``; ``attr_dim_summation=False`` keeps the
    channel dimension. Upsample to the input with :func:`interpolate`. Call as
    ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        relu_attributions: Apply a ReLU to the map (Grad-CAM's positive evidence).
        attr_dim_summation: Sum the map over the channel dimension.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like the layer's output (or input).

    References:
        - Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, "Grad-CAM: Visual Explanations from Deep
          Networks via Gradient-based Localization", ICCV 2017. https://arxiv.org/abs/1610.02391

    Example:
        >>> pa.layer_gradcam(cnn, conv)(images, target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    layers = Layers(model, layer, attribute_to_layer_input)

    def attribute(inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="layer_gradcam", differentiable=False)
        with evaluating(model):
            values, grads = layers.gradients(_select(call, None), call.inputs, call.args.values, call.n)
        maps = []
        for g, a in zip(grads, _leaves(values)):
            w = g.mean(dim=tuple(range(2, g.dim())), keepdim=True) if g.dim() > 2 else g
            cam = (w * a.detach()).sum(1, keepdim=True) if attr_dim_summation else w * a.detach()
            maps.append(F.relu(cam) if relu_attributions else cam)
        if attr_dim_summation:  # the channel dimension is summed away: shapes no longer match the layer
            return layers.restore([tuple(p) if len(p) > 1 else p[0] for p in split(maps, values)])
        return layers.result(values, maps)

    return Attributor(attribute, model, per_example=PER_EXAMPLE, name="layer_gradcam")


def interpolate(attributions: Tensor, size: int | Sequence[int], mode: str = "nearest") -> Tensor:
    """Upsample layer attributions (e.g. a Grad-CAM map ``(N, 1, h, w)``) to ``size``
    with :func:`torch.nn.functional.interpolate`; ``mode`` is ``nearest``, ``bilinear``, ...

    Args:
        attributions: Attributions shaped like the inputs.
        size: The target spatial size.
        mode: ``torch.nn.functional.interpolate``'s mode.

    Returns:
        Tensor: the attributions resized to ``size`` (batch and channel dimensions kept).

    Example:
        >>> cam = pa.layer_gradcam(cnn, conv)(images, target=0)
        >>> pa.interpolate(cam, (16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """
    if not isinstance(attributions, Tensor) or attributions.dim() < 3:
        raise ArgumentError("attributions must be a tensor (N, C, *spatial) with at least one spatial dimension")
    return F.interpolate(attributions, size=size, mode=mode)


def token_reference(input_ids: Tensor, reference_id: int, keep: Sequence[int] = ()) -> Tensor:
    """Reference token ids for layer IG on text: ``reference_id`` (e.g. the pad id) at every
    position, except where ``input_ids`` holds one of the ``keep`` ids (e.g. CLS, SEP),
    which stay as they are.

    Args:
        input_ids: Token ids, shape ``(N, T)``.
        reference_id: The id of the reference token (e.g. the padding token).
        keep: Token ids kept in the reference (e.g. ``[CLS]`` and ``[SEP]``).

    Returns:
        Tensor: reference ids shaped like ``input_ids``: ``reference_id`` everywhere except the kept
        tokens.

    Example:
        >>> ids = torch.tensor([[101, 7592, 2088, 102]])
        >>> pa.token_reference(ids, reference_id=0, keep=[101, 102])
        tensor([[101,   0,   0, 102]])
    """
    if input_ids.is_floating_point():
        raise TypeError("input_ids must be integer token ids")
    kept = torch.isin(input_ids, torch.tensor(list(keep), dtype=input_ids.dtype, device=input_ids.device))
    return torch.where(kept, input_ids, torch.full_like(input_ids, reference_id))
