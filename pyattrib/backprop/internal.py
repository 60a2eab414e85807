"""DeepLift and DeepLiftSHAP at a layer and at a neuron: the input methods composed with the capture and
truncate combinators."""

from __future__ import annotations

from torch import nn

from .._core.attributor import Attributor
from .._core.calls import BaselineCall, DistributionCall, NeuronBaselineCall, NeuronDistributionCall
from ..layer import LayerLike
from ..neuron import on_neuron, truncate
from .deep_lift import CustomFn, _deep_lift, deep_lift, deep_lift_shap


def layer_deep_lift(
    model: nn.Module,
    layer: LayerLike,
    *,
    multiply_by_inputs: bool = True,
    eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None,
    batch_size: int | None = None,
    return_delta: bool = False,
    attribute_to_layer_input: bool = False,
    exact_max_pool: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[BaselineCall]:
    r"""DeepLift at a layer: :math:`\phi_j = (a_j(x) - a_j(x'))\, m_j` with the DeepLift
    multipliers ``m`` at the layer's activations ``a``. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like the layer's output (or
        input), or ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685

    Example:
        >>> pa.layer_deep_lift(model, layer)(x, baselines, target=y).shape
        torch.Size([4, 16])
    """
    return _deep_lift(
        model, distribution=False, layer=layer, multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, return_delta=return_delta,
        exact_max_pool=exact_max_pool, captum_softmax=captum_softmax, captum_nonlinearities=captum_nonlinearities,
        attribute_to_layer_input=attribute_to_layer_input, name="layer_deep_lift",
    )  # fmt: skip


def layer_deep_lift_shap(
    model: nn.Module,
    layer: LayerLike,
    *,
    multiply_by_inputs: bool = True,
    eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None,
    batch_size: int | None = None,
    return_delta: bool = False,
    attribute_to_layer_input: bool = False,
    exact_max_pool: bool = False,
    delta_per_sample: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[DistributionCall]:
    """:func:`layer_deep_lift` averaged over reference samples (see :func:`deep_lift_shap`).
    Call as ``(inputs, baselines, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        delta_per_sample: Report Captum's delta per random sample instead of one per example.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines, *, target=None, additional_forward_args=None)``; it
        returns attributions shaped like the layer's output (or input), or ``(attributions, delta)``
        with ``return_delta=True``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> pa.layer_deep_lift_shap(model, layer)(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 16])
    """
    return _deep_lift(
        model, distribution=True, layer=layer, multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, return_delta=return_delta,
        exact_max_pool=exact_max_pool, delta_per_sample=delta_per_sample, captum_softmax=captum_softmax,
        captum_nonlinearities=captum_nonlinearities,
        attribute_to_layer_input=attribute_to_layer_input, name="layer_deep_lift_shap",
    )  # fmt: skip


def neuron_deep_lift(
    model: nn.Module, layer: LayerLike, *, multiply_by_inputs: bool = True, eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None, batch_size: int | None = None,
    attribute_to_neuron_input: bool = False, exact_max_pool: bool = False, captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[NeuronBaselineCall]:  # fmt: skip
    """DeepLift of the selected neuron with respect to the inputs: :func:`deep_lift` of the
    truncated model. Call as ``(inputs, baselines=None, *, neuron_selector, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, neuron_selector,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685

    Example:
        >>> pa.neuron_deep_lift(model, layer)(x, baselines, neuron_selector=3).shape
        torch.Size([4, 8])
    """
    inner = deep_lift(
        truncate(model, layer, attribute_to_neuron_input), multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, exact_max_pool=exact_max_pool,
        captum_softmax=captum_softmax, captum_nonlinearities=captum_nonlinearities,
    )  # fmt: skip
    return on_neuron(inner, model, "neuron_deep_lift")


def neuron_deep_lift_shap(
    model: nn.Module, layer: LayerLike, *, multiply_by_inputs: bool = True, eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None, batch_size: int | None = None,
    attribute_to_neuron_input: bool = False, exact_max_pool: bool = False, captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[NeuronDistributionCall]:  # fmt: skip
    """DeepLiftSHAP of the selected neuron: :func:`deep_lift_shap` of the truncated model.
    Call as ``(inputs, baselines, *, neuron_selector, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines, *, neuron_selector,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> pa.neuron_deep_lift_shap(model, layer)(x, torch.randn(5, 8), neuron_selector=3).shape
        torch.Size([4, 8])
    """
    inner = deep_lift_shap(
        truncate(model, layer, attribute_to_neuron_input), multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, exact_max_pool=exact_max_pool,
        captum_softmax=captum_softmax, captum_nonlinearities=captum_nonlinearities,
    )  # fmt: skip
    return on_neuron(inner, model, "neuron_deep_lift_shap")
