"""Gradient and path methods: saliency, input x gradient, integrated gradients, GradientSHAP.

All four are one kernel (:func:`pyattrib._core.kernel.accumulate`) with a different
choice of evaluation points and weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.call import completeness_delta, prepare
from ._core.calls import BaselineCall, InputCall, SampledDistributionCall
from ._core.errors import ArgumentError
from ._core.inputs import BaselineLike, TensorOrTuple, as_tuple
from ._core.paths import InputGradients, Stdevs, gradient_times_value, path_of_gradients, shap_of_gradients
from ._core.quadrature import path_rule
from ._core.state import evaluating
from ._core.targets import TargetLike

Forward = Callable[..., Any]


def saliency(
    f: Forward, *, abs: bool = True, batch_size: int | None = None, create_graph: bool = False
) -> Attributor[InputCall]:
    r"""Saliency (Simonyan et al., 2013): the input gradient of the target output.

    .. math:: \phi_i(x) = \partial f(x) / \partial x_i \quad (\text{or } |\cdot| \text{ with } abs=True)

    Call as ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        abs: Return the absolute value of the gradient.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        create_graph: Keep the graph so that attributions can be differentiated again (for attributions
            in a training loss).

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``.

    References:
        - Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
          Classification Models and Saliency Maps", 2013. https://arxiv.org/abs/1312.6034

    Example:
        >>> pa.saliency(model)(x, target=y).shape
        torch.Size([4, 8])
    """
    attribute = gradient_times_value(f, lambda: InputGradients(f), "saliency", multiply=False, batch_size=batch_size,
                                     create_graph=create_graph, then=torch.abs if abs else None)
    return Attributor(attribute, f, per_example=("target", "additional_forward_args"), name="saliency")


def input_x_gradient(f: Forward, *, batch_size: int | None = None, create_graph: bool = False) -> Attributor[InputCall]:
    r"""Input x Gradient (Shrikumar et al., 2016): :math:`\phi_i(x) = x_i\,\partial f(x)/\partial x_i`.

    Call as ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        create_graph: Keep the graph so that attributions can be differentiated again (for attributions
            in a training loss).

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``.

    References:
        - Shrikumar, Greenside, Shcherbina and Kundaje, "Not Just a Black Box: Learning Important
          Features Through Propagating Activation Differences", 2016. https://arxiv.org/abs/1605.01713

    Example:
        >>> pa.input_x_gradient(model)(x, target=y).shape
        torch.Size([4, 8])
    """
    attribute = gradient_times_value(f, lambda: InputGradients(f), "input_x_gradient", multiply=True,
                                     batch_size=batch_size, create_graph=create_graph)
    return Attributor(attribute, f, per_example=("target", "additional_forward_args"), name="input_x_gradient")


def integrated_gradients(
    f: Forward,
    *,
    n_steps: int | str = 50,
    method: str = "gausslegendre",
    tolerance: float | None = None,
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    return_delta: bool = False,
    create_graph: bool = False,
) -> Attributor[BaselineCall]:
    r"""Integrated Gradients (Sundararajan et al., 2017, "Axiomatic Attribution for Deep Networks").

    .. math:: \phi_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial f(x' + \alpha (x - x'))}{\partial x_i}\, d\alpha
              \approx (x_i - x'_i) \sum_k w_k\, \partial_i f(x' + \alpha_k (x - x'))

    with quadrature nodes/weights ``(alpha_k, w_k)`` from ``method`` (see
    ``pyattrib/_core/quadrature.py``). ``multiply_by_inputs=False`` drops the
    ``(x - x')`` factor ("local" attribution). Completeness: ``sum_i phi_i = f(x) - f(x')``
    up to the quadrature error, which ``return_delta=True`` reports per example.

    ``n_steps="auto"`` integrates each example to ``|delta| <= tolerance`` (default 1e-3,
    in units of the model output). ``f(x) - f(x')`` is known exactly, and so is ``f`` at every
    node (the forward pass of its gradient), so the error of each interval between nodes is
    measured, not estimated: intervals with the largest errors are halved (isolating the
    jumps of ReLU networks), and on smooth integrands Fejer's second rule is refined level by
    level (see ``DyadicGrid`` in ``pyattrib/_core/quadrature.py``). Only examples not yet converged
    are refined, and no node is evaluated twice.

    ``batch_size`` bounds the rows (path points x examples) per model evaluation.
    Call as ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
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
        create_graph: Keep the graph so that attributions can be differentiated again (for attributions
            in a training loss).

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``, or
        ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> ig = pa.integrated_gradients(model, n_steps="auto", tolerance=1e-4, return_delta=True)
        >>> attr, delta = ig(x, baselines=0.0, target=y)
        >>> attr.shape, bool(delta.abs().max() <= 1e-4)
        (torch.Size([4, 8]), True)
    """
    return path_of_gradients(
        f, lambda: InputGradients(f, record=True), "integrated_gradients", rule=path_rule(n_steps, method, tolerance),
        multiply_by_inputs=multiply_by_inputs, batch_size=batch_size, return_delta=return_delta,
        create_graph=create_graph,
    )  # fmt: skip


def gradient_shap(
    f: Forward,
    *,
    n_samples: int = 5,
    stdevs: Stdevs = 0.0,
    multiply_by_inputs: bool = True,
    batch_size: int | None = None,
    return_delta: bool = False,
    delta_per_sample: bool = False,
    captum_rng: bool = False,
    create_graph: bool = False,
) -> Attributor[SampledDistributionCall]:
    r"""GradientSHAP (Lundberg & Lee, 2017): expected gradients over random references.

    For each of ``n_samples`` draws, pick a reference ``x'`` from ``baselines``, add
    Gaussian noise ``eps ~ N(0, stdevs^2)`` to the input and a point
    ``alpha ~ U(0, 1)`` on the path, then average

    .. math:: \phi_i(x) = \mathbb{E}\big[(x_i + \epsilon_i - x'_i)\,
              \partial_i f(x' + \alpha (x + \epsilon - x'))\big]

    which approximates SHAP values; completeness holds in expectation. Call as
    ``(inputs, baselines, *, target=None, additional_forward_args=None, generator=None)``
    where ``baselines`` has reference samples along its first dimension. All draws come
    from ``generator`` before any evaluation, so the result does not depend on
    ``batch_size``, which bounds the rows per evaluation (Captum evaluates all
    ``N * n_samples`` rows at once). The noise itself (``n_samples`` copies of the
    inputs) is held in memory. ``return_delta`` gives per example
    ``sum(phi) - mean_s (f(x + eps_s) - f(x'_s))``, the mean of Captum's per-sample deltas;
    with ``delta_per_sample=True`` it gives those ``N * n_samples`` deltas themselves
    (row ``i * n_samples + s``), as Captum does. ``captum_rng=True`` draws as Captum does (torch's
    and NumPy's global generators, in Captum's order; ``generator`` is then ignored), so a
    seeded run gives Captum's numbers.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
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
        create_graph: Keep the graph so that attributions can be differentiated again (for attributions
            in a training loss).

    Returns:
        Attributor: call it as ``(inputs, baselines, *, target=None, additional_forward_args=None,
        generator=None)``; it returns attributions shaped like ``inputs``, or ``(attributions, delta)``
        with ``return_delta=True``.

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> gs = pa.gradient_shap(model, n_samples=8, stdevs=0.1)
        >>> gs(x, torch.randn(10, 8), target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    return shap_of_gradients(
        f, lambda: InputGradients(f), "gradient_shap", n_samples=n_samples, stdevs=stdevs,
        multiply_by_inputs=multiply_by_inputs, batch_size=batch_size, return_delta=return_delta,
        delta_per_sample=delta_per_sample, captum_rng=captum_rng, create_graph=create_graph,
    )  # fmt: skip


def convergence_delta(
    f: Forward,
    inputs: TensorOrTuple,
    baselines: BaselineLike,
    attributions: TensorOrTuple,
    *,
    target: TargetLike = None,
    additional_forward_args: Any = None,
) -> Tensor:
    """Completeness error per example: ``sum(attributions) - (f(inputs) - f(baselines))``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        inputs: The inputs: a tensor or a tuple of tensors sharing the batch dimension.
        baselines: The reference inputs (see :data:`pyattrib.BaselineLike`).
        attributions: Attributions shaped like the inputs.
        target: The output to explain (see :data:`pyattrib.TargetLike`).
        additional_forward_args: Further arguments of the model, passed after the inputs.

    Returns:
        Tensor: ``sum(attributions) - (f(x) - f(x'))`` per example, shape ``(N,)``.

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> attr = pa.integrated_gradients(model)(x, target=y)
        >>> pa.convergence_delta(model, x, None, attr, target=y).shape
        torch.Size([4])
    """
    call = prepare(inputs, target, additional_forward_args, method="convergence_delta", differentiable=False)
    attrs, _ = as_tuple(attributions, "attributions")
    if len(attrs) != len(call.inputs):
        raise ArgumentError(f"attributions has {len(attrs)} tensors but inputs has {len(call.inputs)}")
    with evaluating(f):
        return completeness_delta(f, call, call.baselines(baselines), attrs)
