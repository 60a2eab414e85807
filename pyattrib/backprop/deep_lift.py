"""DeepLift and DeepLiftSHAP (Shrikumar et al., 2017): a gradient method run on the model with the
rescale rule as the backward of its nonlinearities (``pyattrib/_core/overrides.py``). The rules work at the
function level, so ``F.relu``, ``nn.ReLU(inplace=True)`` and a ReLU module used twice all get the rule."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.call import Call, prepare
from .._core.calls import BaselineCall, DistributionCall
from .._core.capture import Layers
from .._core.errors import check_batch_size
from .._core.inputs import BaselineLike
from .._core.kernel import Chunk, accumulate, example_major, gradients, outputs, rows_of
from .._core.overrides import (
    active,
    only_in_modules,
    overridden,
    rescale,
    rescale_max_pool,
    rescale_softmax,
)
from .._core.state import evaluating
from .._core.targets import TargetLike
from ..layer import LayerLike

CustomFn = Callable[..., tuple[Tensor, ...]]


ELEMENTWISE = (
    "relu", "elu", "leaky_relu", "sigmoid", "tanh", "softplus", "gelu", "silu", "hardtanh", "hardswish",
    "hardsigmoid", "mish",
)  # fmt: skip


# the modules Captum's DeepLift hooks, by op kind (exact types: nn.ReLU6, a Hardtanh, is not one)
CAPTUM_NONLINEAR: dict[str, tuple[type, ...]] = {
    "relu": (nn.ReLU,), "elu": (nn.ELU,), "leaky_relu": (nn.LeakyReLU,), "sigmoid": (nn.Sigmoid,),
    "tanh": (nn.Tanh,), "softplus": (nn.Softplus,), "softmax": (nn.Softmax,),
    "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
}  # fmt: skip


def deep_lift_rules(
    eps: float, captum_softmax: bool = False, captum_nonlinearities: bool = False, unhooked: tuple[nn.Module, ...] = ()
) -> dict[str, Callable[..., Any]]:
    """The DeepLift rescale rule for every elementwise nonlinearity, plus softmax (per
    example, or centred over the whole tensor as Captum with ``captum_softmax``) and max pooling.

    ``captum_nonlinearities``: Captum's rule set instead, the rule only where the call comes
    from one of the modules Captum hooks (:data:`CAPTUM_NONLINEAR`); every other nonlinearity
    (ReLU6, Hardswish, SiLU, GELU, and functional calls such as GPT-2's ``torch.tanh``) is
    differentiated plainly, as if linear in the multipliers; so are the ``unhooked`` modules
    (Captum's LayerDeepLift at a nonlinearity's input does not apply that layer's own rule)."""
    rules: dict[str, Callable[..., Any]] = {op: rescale(eps) for op in ELEMENTWISE}
    rules["softmax"] = rescale_softmax(eps, whole_tensor=captum_softmax)
    rules["max_pool"] = rescale_max_pool(eps)
    if captum_nonlinearities:
        rules = {op: only_in_modules(rules[op], *types, excluded=unhooked) for op, types in CAPTUM_NONLINEAR.items()}
    return rules


def deep_lift_handoff(exact_max_pool: bool) -> frozenset[str]:
    """Ops whose chains follow Captum's module hooks (see :class:`~pyattrib._core.overrides.Links`):
    a nonlinearity next to a max pool reads the pool's ordinary gradient, unless ``exact_max_pool``."""
    return frozenset() if exact_max_pool else frozenset({"max_pool"})


def _custom(fn: CustomFn, multipliers: tuple, xs: tuple, bs: tuple) -> tuple[Tensor, ...]:
    n_params = len(inspect.signature(fn).parameters)
    out = fn(*(multipliers, xs, bs)[: min(n_params, 3)])
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _paired(
    model: Callable[..., Any],
    call: Call,
    references: Callable[[Chunk], tuple[Tensor, ...]],
    n_refs: int,
    eps: float,
    multiply_by_inputs: bool,
    custom_attribution_func: CustomFn | None,
    batch_size: int | None,
    exact_max_pool: bool,
    layers: Layers | None = None,
    row_totals: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> tuple[tuple[Tensor, ...], list[Any]]:
    """Mean over references of DeepLift attributions, pairs in chunks.

    Row ``r`` pairs example ``r % N`` with reference ``r // N``. Each evaluation runs the
    overridden model on ``[inputs; references]`` (the rules read the two halves) and
    differentiates the sum of the selected outputs of both halves, as Captum does.
    """
    unhooked = tuple(layers.modules) if layers is not None and layers.to_input else ()
    rules = deep_lift_rules(eps, captum_softmax, captum_nonlinearities, unhooked)
    handoff = deep_lift_handoff(exact_max_pool)
    f = overridden(model, rules, handoff)
    templates: list[Any] = []

    def contribution(c: Chunk) -> tuple[Tensor, ...]:
        xs, bs = tuple(c.take(x) for x in call.inputs), references(c)
        m = len(c.i)
        rows = tuple(torch.cat([x, b]) for x, b in zip(xs, bs))
        index = torch.cat([c.i, c.i])
        if layers is None:
            mults = tuple(g[:m] for g in gradients(f, call.args, call.target, rows, index))
            ends = (xs, bs)
        else:
            with active(rules, handoff):
                values, grads = layers.gradients(
                    lambda o: call.target.select(o, index), rows, call.args.rows(index), 2 * m
                )
            templates[:] = values
            leaves = [t for v in values for t in v.leaves]
            mults = tuple(g[:m] for g in grads)
            ends = (tuple(v[:m].detach() for v in leaves), tuple(v[m:].detach() for v in leaves))
        if custom_attribution_func is not None:
            attrs = _custom(custom_attribution_func, mults, *ends)
        elif multiply_by_inputs:
            attrs = tuple(g * (a - b) for g, a, b in zip(mults, *ends))
        else:
            attrs = mults
        return tuple(a / n_refs for a in attrs)

    pair_rows = call.chunk(None) if batch_size is None else max(1, batch_size // 2)
    return accumulate(contribution, n_refs, call.n, pair_rows, call.device, row_totals=row_totals), templates


def _pair_delta(
    model: Callable[..., Any],
    call: Call,
    references: Callable[[Chunk], tuple[Tensor, ...]],
    n_refs: int,
    attrs: Sequence[Tensor],
    batch_size: int | None,
    pair_totals: Tensor | None = None,
) -> Tensor:
    """``sum(attrs) - (f(x) - mean_j f(x'_j))`` per example: the mean completeness error over
    pairs. ``f(x)`` is evaluated once; the references in chunks. Given each pair's attribution
    sum (``pair_totals``, kernel row order), one error per pair instead, example-major."""

    def at_reference(c: Chunk) -> tuple[Tensor, ...]:
        return (outputs(model, call.args, call.target, references(c), c.i),)

    *_, at_refs = accumulate(at_reference, n_refs, call.n, call.chunk(batch_size), call.device, row_totals=True)
    at_x = outputs(model, call.args, call.target, call.inputs, None)
    if pair_totals is not None:
        return example_major(pair_totals - (at_x.repeat(n_refs) - at_refs), call.n)
    gap = at_x - at_refs.reshape(n_refs, call.n).mean(0)
    return sum(a.reshape(call.n, -1).sum(1) for a in attrs) - gap


def _deep_lift(
    model: Callable[..., Any],
    *,
    distribution: bool,
    layer: LayerLike | None,
    multiply_by_inputs: bool,
    eps: float,
    custom_attribution_func: CustomFn | None,
    batch_size: int | None,
    return_delta: bool,
    exact_max_pool: bool,
    attribute_to_layer_input: bool = False,
    delta_per_sample: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
    name: str,
) -> Attributor:
    check_batch_size(batch_size)
    layers = Layers(model, layer, attribute_to_layer_input) if layer is not None else None

    def attribute(
        inputs: Any, baselines: BaselineLike = None, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method=name, differentiable=layers is None)
        if distribution:
            refs = call.references(baselines)
            n_refs = refs[0].shape[0]

            def references(c: Chunk) -> tuple[Tensor, ...]:
                return tuple(rows_of(b, c.k) for b in refs)
        else:
            base = call.baselines(baselines)
            n_refs = 1

            def references(c: Chunk) -> tuple[Tensor, ...]:
                return tuple(c.take(b) for b in base)

        with evaluating(model):
            out, templates = _paired(
                model, call, references, n_refs, eps, multiply_by_inputs, custom_attribution_func, batch_size,
                exact_max_pool, layers, row_totals=delta_per_sample, captum_softmax=captum_softmax,
                captum_nonlinearities=captum_nonlinearities,
            )  # fmt: skip
            attrs, totals = (out[:-1], out[-1] * n_refs) if delta_per_sample else (out, None)
            result = call.restore(attrs) if layers is None else layers.result(templates, attrs)
            if return_delta:
                return result, _pair_delta(model, call, references, n_refs, attrs, batch_size, totals)
        return result

    return Attributor(attribute, model, returns_delta=return_delta, name=name)


def deep_lift(
    model: Callable[..., Any],
    *,
    multiply_by_inputs: bool = True,
    eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None,
    batch_size: int | None = None,
    return_delta: bool = False,
    exact_max_pool: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[BaselineCall]:
    r"""DeepLift with the rescale rule (Shrikumar et al., 2017, "Learning Important Features
    Through Propagating Activation Differences").

    Backpropagates multipliers in which each nonlinearity's derivative is replaced by
    :math:`m = \frac{\sigma(x) - \sigma(x')}{x - x'}` (the gradient where ``|x - x'| < eps``),
    then :math:`\phi_i = (x_i - x'_i)\, m_i`. Summation-to-delta: ``sum(phi) = f(x) - f(x')``
    exactly for networks of linear layers and elementwise nonlinearities (chained
    nonlinearities included). Softmax follows Captum. Max pooling routes the change of
    each pooled maximum to the winning positions of input and reference, as Captum does.

    Max-pool networks: by default the nonlinearity before or after a max pool reads the
    pool's *ordinary* gradient, which is what Captum's module hooks do there (both sit
    on the same tensor). Attributions and delta then equal Captum 0.9.0's, and the delta
    is not zero. ``exact_max_pool=True`` passes DeepLift multipliers through the pool as
    the chain rule says, and attributions sum to ``f(x) - f(x')``.
    ``captum_softmax`` and ``captum_nonlinearities`` give Captum's semantics (see
    ``deep_lift_rules``; ``pyattrib.compat`` switches both on).
    ``custom_attribution_func(multipliers, inputs, baselines)`` replaces the final product. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``, or
        ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685

    Example:
        >>> pa.deep_lift(model)(x, baselines, target=y).shape
        torch.Size([4, 8])
    """
    return _deep_lift(
        model, distribution=False, layer=None, multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, return_delta=return_delta,
        exact_max_pool=exact_max_pool, captum_softmax=captum_softmax, captum_nonlinearities=captum_nonlinearities,
        name="deep_lift",
    )  # fmt: skip


def deep_lift_shap(
    model: Callable[..., Any],
    *,
    multiply_by_inputs: bool = True,
    eps: float = 1e-10,
    custom_attribution_func: CustomFn | None = None,
    batch_size: int | None = None,
    return_delta: bool = False,
    exact_max_pool: bool = False,
    delta_per_sample: bool = False,
    captum_softmax: bool = False,
    captum_nonlinearities: bool = False,
) -> Attributor[DistributionCall]:
    r"""DeepLiftSHAP: DeepLift averaged over a distribution of references,
    :math:`\phi_i = \frac1R \sum_j \mathrm{DeepLift}_i(x; x'_j)` (Lundberg & Lee, 2017).

    ``baselines`` holds the ``R`` references along its first dimension. The ``N x R``
    pairs are evaluated in chunks of at most ``batch_size`` model rows (each pair is two
    rows), where Captum holds every pair at once. ``return_delta`` gives per example the
    mean pair delta ``sum(phi) - mean_j (f(x) - f(x'_j))``, or with ``delta_per_sample=True``
    the ``N * R`` pair deltas (row ``i * R + j``), as Captum. Call as
    ``(inputs, baselines, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero (the multiplier falls back to the
            gradient).
        custom_attribution_func: Combines multipliers, inputs and baselines into attributions (Captum's
            hook); ``None`` gives multiplier x (input - baseline).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        exact_max_pool: Propagate through max pooling with the exact rescale rule, which conserves
            relevance; ``False`` follows Captum.
        delta_per_sample: Report Captum's delta per random sample instead of one per example.
        captum_softmax: Captum's treatment of a final softmax (compat sets it); leave ``False``.
        captum_nonlinearities: Apply the rules only to the nonlinear modules Captum hooks (compat sets
            it); leave ``False``.

    Returns:
        Attributor: call it as ``(inputs, baselines, *, target=None, additional_forward_args=None)``; it
        returns attributions shaped like ``inputs``, or ``(attributions, delta)`` with
        ``return_delta=True``.

    References:
        - Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating Activation
          Differences", ICML 2017. https://arxiv.org/abs/1704.02685
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> pa.deep_lift_shap(model)(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 8])
    """
    return _deep_lift(
        model, distribution=True, layer=None, multiply_by_inputs=multiply_by_inputs, eps=eps,
        custom_attribution_func=custom_attribution_func, batch_size=batch_size, return_delta=return_delta,
        exact_max_pool=exact_max_pool, delta_per_sample=delta_per_sample, captum_softmax=captum_softmax,
        captum_nonlinearities=captum_nonlinearities,
        name="deep_lift_shap",
    )  # fmt: skip
