"""Gradient and path methods: saliency, input x gradient, integrated gradients, GradientSHAP.

All four are one kernel (:func:`pyattrib._core.kernel.accumulate`) with a different
choice of evaluation points and weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._core import random
from ._core.attributor import Attributor
from ._core.call import Call, completeness_delta, output_ends, prepare
from ._core.calls import BaselineCall, InputCall, SampledDistributionCall
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike, TensorOrTuple, as_tuple
from ._core.kernel import (
    Chunk,
    accumulate,
    along_rows,
    example_major,
    gradients,
    integrate_path,
    outputs,
    rows_of,
)
from ._core.layered import InputGradients
from ._core.quadrature import path_rule
from ._core.state import evaluating
from ._core.targets import TargetLike

Forward = Callable[..., Any]
Stdevs = float | tuple[float, ...]


def _grad_at_inputs(f: Forward, call: Call, batch_size: int | None) -> tuple[Tensor, ...]:
    def contribution(c: Chunk) -> tuple[Tensor, ...]:
        return gradients(f, call.args, call.target, tuple(c.take(x) for x in call.inputs), c.index)

    return accumulate(contribution, 1, call.n, call.chunk(batch_size), call.device)


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
    check_batch_size(batch_size)

    def attribute(
        inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> TensorOrTuple:
        call = prepare(inputs, target, additional_forward_args, method="saliency")
        with evaluating(f, create_graph):
            grads = _grad_at_inputs(f, call, batch_size)
        return call.restore([g.abs() if abs else g for g in grads])

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
    check_batch_size(batch_size)

    def attribute(
        inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> TensorOrTuple:
        call = prepare(inputs, target, additional_forward_args, method="input_x_gradient")
        with evaluating(f, create_graph):
            grads = _grad_at_inputs(f, call, batch_size)
        return call.restore([g * x for g, x in zip(grads, call.inputs)])

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


def path_of_gradients(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    rule: Any,
    multiply_by_inputs: bool,
    batch_size: int | None,
    return_delta: bool = False,
    create_graph: bool = False,
) -> Attributor:
    """Gradients integrated along the straight input path from the baselines, read where
    ``reader()`` reads them: at the inputs (integrated gradients) or at a layer's value (internal
    influence); ``multiply_by_inputs`` multiplies by the inputs' ``x - x'``."""
    check_batch_size(batch_size)

    def attribute(
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method=name)
        base = call.baselines(baselines)
        diff = tuple(x - b for x, b in zip(call.inputs, base))
        at = reader()

        def grad_at(points: tuple[Tensor, ...], c: Chunk) -> tuple[Tensor, ...]:
            return at.gradients(call, c, points)

        with evaluating(f, create_graph):
            ends = lambda: output_ends(f, call, base)  # noqa: E731
            total = integrate_path(grad_at, base, diff, rule, call.chunk(batch_size), ends)
            attrs = tuple(t * d for t, d in zip(total, diff)) if multiply_by_inputs else total
            result = at.result(call, attrs)
            if return_delta:
                return result, completeness_delta(f, call, base, attrs)
        return result

    return Attributor(attribute, f, returns_delta=return_delta, name=name)


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


def shap_of_gradients(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    n_samples: int,
    stdevs: Stdevs,
    multiply_by_inputs: bool,
    batch_size: int | None,
    return_delta: bool,
    delta_per_sample: bool,
    captum_rng: bool,
    create_graph: bool = False,
) -> Attributor:
    """GradientSHAP with its gradients read where ``reader()`` reads them: at the inputs
    (:class:`InputGradients`) or at a layer's value (:class:`LayerGradients`), the draws, the
    input path and the delta being the same."""
    check_batch_size(batch_size)
    check_count("n_samples", n_samples)

    def attribute(
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method=name)
        draws = ShapDraws(call, call.references(baselines), n_samples, stdevs, generator, captum_rng)
        at, s = reader(), n_samples

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            xs, bs = draws.ends(c)
            grads = at.gradients(call, c, draws.points(c, xs, bs))
            if multiply_by_inputs:
                return tuple(g * d / s for g, d in zip(grads, at.difference(call, c, xs, bs)))
            return tuple(g / s for g in grads)

        with evaluating(f, create_graph):
            out = accumulate(contribution, s, call.n, call.chunk(batch_size), call.device, row_totals=delta_per_sample)
            attrs, totals = (out[:-1], out[-1] * s) if delta_per_sample else (out, None)
            result = at.result(call, attrs)
            if return_delta:
                return result, draws.delta(f, call, attrs, batch_size, totals)
        return result

    return Attributor(
        attribute,
        f,
        per_example=("target", "additional_forward_args"),
        random=True,
        returns_delta=return_delta,
        name=name,
    )


class ShapDraws:
    """GradientSHAP's random draws for ``n_samples`` rows per example, made up front.

    Row ``r`` (sample ``r // N`` of example ``r % N``) gets a reference ``x'`` drawn from
    ``refs``, Gaussian input noise ``eps`` and a path point ``alpha ~ U(0, 1)``.
    """

    def __init__(
        self,
        call: Call,
        refs: tuple[Tensor, ...],
        n_samples: int,
        stdevs: Stdevs,
        generator: torch.Generator | None,
        captum_rng: bool = False,
    ) -> None:
        rows, x0 = n_samples * call.n, call.inputs[0]
        stds = per_input_stdevs(stdevs, len(call.inputs))
        self.inputs, self.refs = call.inputs, refs
        if captum_rng:
            self.noise, self.choices, self.alpha = random.captum_order(
                call.n, n_samples, x0, stds, call.inputs, refs[0].shape[0]
            )
            return
        self.choices = (random.integers(refs[0].shape[0], (rows,), x0, generator),) * len(refs)
        self.alpha = random.uniform((rows,), x0, generator)
        self.noise = tuple(
            random.normal((rows, *x.shape[1:]), sd, x, generator) if sd else None for x, sd in zip(call.inputs, stds)
        )

    def ends(self, c: Chunk) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Noisy inputs ``x + eps`` and drawn references ``x'`` for the rows of a chunk."""
        xs = tuple(c.take(x) if e is None else c.take(x) + rows_of(e, c.r) for x, e in zip(self.inputs, self.noise))
        return xs, tuple(rows_of(b, rows_of(choice, c.r)) for b, choice in zip(self.refs, self.choices))

    def points(self, c: Chunk, xs: tuple[Tensor, ...], bs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """``x' + alpha (x + eps - x')``."""
        a = rows_of(self.alpha, c.r)
        return tuple(b + along_rows(a, b) * (x - b) for x, b in zip(xs, bs))

    def delta(
        self, f: Forward, call: Call, attrs: Sequence[Tensor], batch_size: int | None, sample_totals: Tensor | None
    ) -> Tensor:
        """Per example ``sum(attrs) - mean_s (f(x + eps_s) - f(x'_s))``: the mean per-sample
        completeness error. Given each sample's attribution sum (``sample_totals``, rows in
        kernel order), the per-sample errors instead, example-major."""
        s = self.alpha.shape[0] // call.n

        def gap(c: Chunk) -> tuple[Tensor, ...]:
            xs, bs = self.ends(c)
            return (outputs(f, call.args, call.target, xs, c.i) - outputs(f, call.args, call.target, bs, c.i),)

        *_, gaps = accumulate(gap, s, call.n, call.chunk(batch_size), call.device, row_totals=True)
        if sample_totals is not None:
            return example_major(sample_totals - gaps, call.n)
        return sum(a.reshape(call.n, -1).sum(1) for a in attrs) - gaps.reshape(s, call.n).mean(0)


def per_input_stdevs(stdevs: Stdevs, n_inputs: int) -> tuple[float, ...]:
    """One standard deviation per input tensor, validated."""
    if isinstance(stdevs, (tuple, list)):
        if len(stdevs) != n_inputs:
            raise ArgumentError(
                f"stdevs has {len(stdevs)} entries but inputs has {n_inputs} tensors; pass "
                "one float for all inputs or a tuple with one float per input"
            )
        values = tuple(stdevs)
    else:
        values = (stdevs,) * n_inputs
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ArgumentError(f"stdevs must be non-negative floats, got {stdevs!r}")
    return tuple(float(v) for v in values)


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
