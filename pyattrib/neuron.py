"""Neuron attribution: explain one hidden unit (or a reduction of a layer) by the inputs.

A neuron method is an input method applied to the *truncated* model ``x -> layer value``
(:func:`truncate`), with ``neuron_selector`` playing the role of ``target``: an int or a
tuple of indices into the layer value after the batch dimension (slices are summed
over), a list with one of those per example, or a callable ``layer value -> (N,)``.
``pa.multi_target(attributor, neurons, argname="neuron_selector")`` explains many
neurons in one batched call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ._core.attributor import Attributor, bind_baselines
from ._core.call import prepare
from ._core.calls import NeuronBaselineCall, NeuronCall, NeuronSampledDistributionCall
from ._core.capture import Layers
from ._core.errors import check_batch_size
from ._core.inputs import BaselineLike, as_tuple
from ._core.kernel import Chunk, path_integral
from ._core.paths import Stdevs
from ._core.quadrature import quadrature
from ._core.state import evaluating
from ._core.targets import TargetLike, as_target
from .gradient import gradient_shap, integrated_gradients, saliency
from .layer import LayerLike

PER_EXAMPLE = ("neuron_selector", "additional_forward_args")


def truncate(model: nn.Module, layer: LayerLike, attribute_to_neuron_input: bool = False) -> Callable[..., Any]:
    """``x -> layer value``: the model cut at ``layer`` (its input with ``attribute_to_neuron_input``).

    The forward pass stops as soon as the layer has run (eager mode), so the rest of the
    network costs nothing.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        A function ``inputs -> the layer's output (or input)``, for neuron methods and your own
        transforms.

    Example:
        >>> pa.truncate(model, layer)(x).shape
        torch.Size([4, 16])
    """
    layers = Layers(model, layer, attribute_to_neuron_input)

    def truncated(*inputs: Any) -> Any:
        rows = inputs[0].shape[0]
        values = layers.capture(inputs, (), rows)
        return layers.result(values, [t for v in values for t in v.leaves])

    truncated.__wrapped_module__ = model  # type: ignore[attr-defined]
    return truncated


def on_neuron(inner: Attributor, model: nn.Module, name: str) -> Attributor:
    """Expose ``inner`` (built on the truncated model) with ``neuron_selector`` as its target."""

    def attribute(inputs: Any, *args: Any, neuron_selector: Any, **kwargs: Any) -> Any:
        kwargs = bind_baselines(args, kwargs)
        xs, _ = as_tuple(inputs)
        selector = as_target(neuron_selector, xs[0].shape[0], xs[0].device, name="neuron_selector")
        return inner(inputs, target=selector, **kwargs)

    per_example = tuple(a if a != "target" else "neuron_selector" for a in inner.per_example)
    selector = inspect.Parameter("neuron_selector", inspect.Parameter.KEYWORD_ONLY)
    return inner.with_fn(attribute, {"target": selector}, forward=model, per_example=per_example, name=name)


def neuron_gradient(
    model: nn.Module, layer: LayerLike, *, attribute_to_neuron_input: bool = False
) -> Attributor[NeuronCall]:
    r""":math:`\partial a_j(x) / \partial x`: the input gradient of the selected neuron.

    Call as ``(inputs, *, neuron_selector, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, neuron_selector, additional_forward_args=None)``; it
        returns attributions shaped like ``inputs``.

    References:
        - Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
          Classification Models and Saliency Maps", 2013. https://arxiv.org/abs/1312.6034

    Example:
        >>> pa.neuron_gradient(model, layer)(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """
    inner = saliency(truncate(model, layer, attribute_to_neuron_input), abs=False)
    return on_neuron(inner, model, "neuron_gradient")


def neuron_integrated_gradients(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_steps: int = 50,
    method: str = "gausslegendre",
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    attribute_to_neuron_input: bool = False,
) -> Attributor[NeuronBaselineCall]:
    r"""Integrated gradients of the selected neuron ``a_j`` with respect to the inputs,

    .. math:: \phi_i = (x_i - x'_i) \int_0^1 \partial_i a_j(x' + \alpha (x - x'))\, d\alpha .

    Call as ``(inputs, baselines=None, *, neuron_selector, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_steps: Quadrature nodes along the path, or ``"auto"`` to integrate each example to
            ``tolerance``.
        method: The quadrature rule: ``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, neuron_selector,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> pa.neuron_integrated_gradients(model, layer)(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """
    inner = integrated_gradients(
        truncate(model, layer, attribute_to_neuron_input),
        n_steps=n_steps,
        method=method,
        multiply_by_inputs=multiply_by_inputs,
        batch_size=batch_size,
    )
    return on_neuron(inner, model, "neuron_integrated_gradients")


def neuron_gradient_shap(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_samples: int = 5,
    stdevs: Stdevs = 0.0,
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    attribute_to_neuron_input: bool = False,
    captum_rng: bool = False,
) -> Attributor[NeuronSampledDistributionCall]:
    """GradientSHAP of the selected neuron (see :func:`pyattrib.gradient_shap`).

    Call as ``(inputs, baselines, *, neuron_selector, additional_forward_args=None, generator=None)``.

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
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.
        captum_rng: Draw the random samples in Captum's order from the global generator (compat sets
            it).

    Returns:
        Attributor: call it as ``(inputs, baselines, *, neuron_selector, additional_forward_args=None,
        generator=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> pa.neuron_gradient_shap(model, layer)(x, torch.randn(5, 8), neuron_selector=3, generator=generator).shape
        torch.Size([4, 8])
    """
    inner = gradient_shap(
        truncate(model, layer, attribute_to_neuron_input),
        n_samples=n_samples,
        stdevs=stdevs,
        multiply_by_inputs=multiply_by_inputs,
        batch_size=batch_size,
        captum_rng=captum_rng,
    )
    return on_neuron(inner, model, "neuron_gradient_shap")


def neuron_conductance(
    model: nn.Module,
    layer: LayerLike,
    *,
    n_steps: int = 50,
    method: str = "riemann_trapezoid",
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    attribute_to_neuron_input: bool = False,
) -> Attributor:
    r"""Conductance of the inputs through one neuron (Dhamdhere et al., 2018):

    .. math:: \mathrm{Cond}^j_i = (x_i - x'_i) \int_0^1 \frac{\partial f}{\partial a_j}(x_\alpha)\,
              \frac{\partial a_j}{\partial x_i}(x_\alpha)\, d\alpha, \qquad x_\alpha = x' + \alpha (x - x')

    where ``f`` is the ``target`` output and ``a_j`` the selected neuron (a callable
    selector is applied to the layer gradient, as in Captum). The default quadrature is
    the trapezoid rule, whose weights here sum to 1 (Captum's sum to ``(n-1)/n``). Call as
    ``(inputs, baselines=None, *, neuron_selector, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        n_steps: Quadrature nodes along the path, or ``"auto"`` to integrate each example to
            ``tolerance``.
        method: The quadrature rule: ``"gausslegendre"``, ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, neuron_selector, target=None,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Dhamdhere, Sundararajan and Yan, "How Important Is a Neuron?", ICLR 2019.
          https://arxiv.org/abs/1805.12233
        - Shrikumar, Su and Kundaje, "Computationally Efficient Measures of Internal Neuron Importance",
          2018. https://arxiv.org/abs/1807.09946

    Example:
        >>> pa.neuron_conductance(model, layer)(x, neuron_selector=3, target=y).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)
    nodes, weights = quadrature(method, n_steps)
    layers = Layers(model, layer, attribute_to_neuron_input)

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        neuron_selector: Any,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="neuron_conductance")
        neuron = as_target(neuron_selector, call.n, call.device, name="neuron_selector")
        base = call.baselines(baselines)
        diff = tuple(x - b for x, b in zip(call.inputs, base))

        def grad_at(points: tuple[Tensor, ...], c: Chunk) -> tuple[Tensor, ...]:
            through, input_grads = layers.through_neuron(  # df/da_j and da_j/dx at each point
                lambda out: call.target.select(out, c.i),
                lambda value: neuron.select(value, c.i),
                points,
                call.args.rows(c.i),
                len(c.i),
            )
            return tuple(g * through.reshape(-1, *[1] * (g.dim() - 1)) for g in input_grads)

        with evaluating(model):
            total = path_integral(grad_at, base, diff, nodes, weights, call.chunk(batch_size))
        attrs = [t * d for t, d in zip(total, diff)] if multiply_by_inputs else total
        return call.restore(attrs)

    return Attributor(
        attribute,
        model,
        per_example=("neuron_selector", "target", "additional_forward_args"),
        name="neuron_conductance",
    )
