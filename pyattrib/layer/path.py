"""Layer methods along a path: integrated gradients, conductance, internal influence and GradientSHAP
at a layer (the model spliced at the layer's value)."""

from __future__ import annotations

import functools

from torch import nn

from .._core.attributor import Attributor
from .._core.calls import BaselineCall, SampledDistributionCall
from .._core.capture import Layers
from .._core.errors import check_batch_size
from .._core.layered import on_layer
from .._core.paths import LayerGradients, Stdevs, path_of_gradients, path_of_increments, shap_of_gradients
from .._core.quadrature import path_rule, quadrature
from ..gradient import integrated_gradients
from .activation import LayerLike


def layer_integrated_gradients(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_steps: int | str = 50,
    method: str = "gausslegendre",
    tolerance: float | None = None,
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    return_delta: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor[BaselineCall]:
    r"""Integrated gradients at a layer: IG of the spliced model ``g(a)`` (the model with the
    layer's value replaced by ``a``) from the layer value at the baselines to the one at the inputs.

    .. math:: \phi_j = (a_j(x) - a_j(x')) \int_0^1 \partial_j g(a(x') + \alpha (a(x) - a(x')))\, d\alpha

    The standard way to explain text models: pass integer token ids as ``inputs`` and
    reference ids as ``baselines`` (see :func:`token_reference`) with ``layer`` the
    embedding. A list of layers splices them all at once (they must not feed each
    other) and returns a list. ``return_delta`` gives ``sum(phi) - (f(x) - f(x'))``.
    ``n_steps="auto"`` with ``tolerance`` integrates each example to ``|delta| <= tolerance``
    (see :func:`pyattrib.integrated_gradients`).
    Call as ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_steps: Quadrature nodes along the path, or ``"auto"`` to integrate each example to
            ``tolerance``.
        method: The quadrature rule: ``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``.
        tolerance: With ``n_steps="auto"``: the largest completeness error allowed per example (default
            1e-3).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like the layer's output (or
        input), or ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> pa.layer_integrated_gradients(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    check_batch_size(batch_size)
    path_rule(n_steps, method, tolerance)  # checked now, when the transform is made
    ig = functools.partial(integrated_gradients, n_steps=n_steps, method=method, tolerance=tolerance,
                           multiply_by_inputs=multiply_by_inputs, batch_size=batch_size)  # fmt: skip
    return on_layer(ig, model, layer, attribute_to_layer_input, "layer_integrated_gradients", references=True,
                    return_delta=return_delta)  # fmt: skip


def layer_conductance(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    return_delta: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor[BaselineCall]:
    r"""Conductance of hidden units (Dhamdhere et al., 2018, "How Important Is a Neuron?").

    Along the input path ``x_k = x' + alpha_k (x - x')`` (``n_steps + 1`` nodes of ``method``):

    .. math:: \mathrm{Cond}_j = \sum_{k=0}^{n-1} \frac{\partial f}{\partial a_j}(x_k)\,\big(a_j(x_{k+1}) - a_j(x_k)\big)

    Completeness: ``sum_j Cond_j ~= f(x) - f(x')``, reported by ``return_delta``. Chunks
    of ``batch_size`` rows share one path point with their neighbour; a chunk's last point
    is only read up to the layer, never run through the rest of the model. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_steps: Quadrature nodes along the path, or ``"auto"`` to integrate each example to
            ``tolerance``.
        method: The quadrature rule: ``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like the layer's output (or
        input), or ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Dhamdhere, Sundararajan and Yan, "How Important Is a Neuron?", ICLR 2019.
          https://arxiv.org/abs/1805.12233

    Example:
        >>> pa.layer_conductance(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    layers = Layers(model, layer, attribute_to_layer_input)
    return path_of_increments(model, lambda: LayerGradients(layers), "layer_conductance", n_steps=n_steps,
                              method=method, batch_size=batch_size, return_delta=return_delta)  # fmt: skip


def internal_influence(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    attribute_to_layer_input: bool = False,
) -> Attributor[BaselineCall]:
    r"""Internal influence (Leino et al., 2018): the layer gradient integrated along the input path,

    .. math:: \mathrm{II}_j = \int_0^1 \frac{\partial f}{\partial a_j}(x' + \alpha (x - x'))\, d\alpha .

    Call as ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_steps: Quadrature nodes along the path, or ``"auto"`` to integrate each example to
            ``tolerance``.
        method: The quadrature rule: ``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like the layer's output (or
        input).

    References:
        - Leino, Sen, Datta, Fredrikson and Li, "Influence-Directed Explanations for Deep Convolutional
          Networks", ITC 2018. https://arxiv.org/abs/1802.03788

    Example:
        >>> pa.internal_influence(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    layers = Layers(model, layer, attribute_to_layer_input)  # checked now, when the transform is made
    return path_of_gradients(
        model, lambda: LayerGradients(layers), "internal_influence", rule=quadrature(method, n_steps),
        multiply_by_inputs=False, batch_size=batch_size,
    )  # fmt: skip


def layer_gradient_shap(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_samples: int = 5,
    stdevs: Stdevs = 0.0,
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    return_delta: bool = False,
    delta_per_sample: bool = False,
    captum_rng: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor[SampledDistributionCall]:
    r"""GradientSHAP at a layer: with the draws of :func:`pyattrib.gradient_shap`,

    .. math:: \phi_j = \mathbb{E}\Big[\big(a_j(x + \epsilon) - a_j(x')\big)\,
              \frac{\partial f}{\partial a_j}\big(x' + \alpha (x + \epsilon - x')\big)\Big]

    Call as ``(inputs, baselines, *, target=None, additional_forward_args=None, generator=None)``.
    ``return_delta`` gives per example ``sum(phi) - mean_s (f(x + eps_s) - f(x'_s))``, or with
    ``delta_per_sample=True`` one delta per sample (row ``i * n_samples + s``), as Captum.
    ``captum_rng=True`` draws as Captum does (see :func:`pyattrib.gradient_shap`).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_samples: The number of random samples per example.
        stdevs: Standard deviation of the Gaussian noise added to the inputs (one per input tensor, or
            one for all).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        delta_per_sample: Report Captum's delta per random sample instead of one per example.
        captum_rng: Draw the random samples in Captum's order from the global generator (compat sets
            it).
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines, *, target=None, additional_forward_args=None,
        generator=None)``; it returns attributions shaped like the layer's output (or input), or
        ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> pa.layer_gradient_shap(model, layer)(x, torch.randn(5, 8), target=y, generator=generator).shape
        torch.Size([4, 16])
    """
    layers = Layers(model, layer, attribute_to_layer_input)  # checked now, when the transform is made
    return shap_of_gradients(
        model, lambda: LayerGradients(layers), "layer_gradient_shap",
        n_samples=n_samples, stdevs=stdevs, multiply_by_inputs=multiply_by_inputs, batch_size=batch_size,
        return_delta=return_delta, delta_per_sample=delta_per_sample, captum_rng=captum_rng,
    )  # fmt: skip
