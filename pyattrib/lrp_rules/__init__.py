"""Layer-wise relevance propagation (Bach et al., 2015) with rules per module type or instance.

Relevance starts as the selected output ``R = f_t(x)`` and flows back layer by layer.
A layer ``z = layer(x)`` with rule ``rho`` (a modified copy of the layer) passes

.. math:: R_{in} = x \\odot \\Big(\\frac{\\partial \\rho(x)}{\\partial x}\\Big)^\\top
          \\frac{R_{out}}{\\rho(x) + \\epsilon\\,\\mathrm{sign}(\\rho(x))}

ReLU and tanh pass relevance unchanged (identity). Rules never touch the model's
weights: modified weights are computed on the fly and used functionally. Modules are
intercepted by swapping their ``forward`` for the duration of one call (restored in
``finally``), so a module used twice gets its rule at both uses. ``F.linear`` and
``F.conv1d/2d/3d`` called directly (a module holding its own parameters) get the rule of
their module type, through a TorchFunctionMode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.call import Call, prepare
from .._core.calls import InputCall
from .._core.capture import Layers, LayerValue
from .._core.errors import ArgumentError, check_batch_size
from .._core.kernel import Chunk, accumulate, gradients
from .._core.state import evaluating
from .._core.targets import TargetLike, model_output
from ..layer import LayerLike
from .captum import VALUE
from .composites import (
    MODULE_COMPOSITES,
    ModuleComposite,
    epsilon_alpha2_beta1,
    epsilon_gamma_box,
    epsilon_plus_flat,
    module_composite,
)
from .propagation import batchnorm_pairs, relevance_rules
from .rules import (
    DEFAULT_RULES,
    PASSED,
    Rule,
    RuleMap,
    Term,
    alpha1_beta0,
    alpha_beta,
    epsilon,
    flat,
    gamma,
    gradient,
    identity,
    z_box,
    z_plus,
)
from .transformer import COMPOSITES, Composite, transformer_rules

__all__ = ["Rule", "Term", "RuleMap", "DEFAULT_RULES", "PASSED", "epsilon", "gamma", "alpha1_beta0", "alpha_beta",
           "z_plus", "z_box", "flat", "identity", "gradient", "relevance_rules", "lrp", "layer_lrp", "Composite",
           "transformer_rules", "ModuleComposite", "epsilon_plus_flat", "epsilon_gamma_box",
           "epsilon_alpha2_beta1"]  # fmt: skip
CompositeLike = str | Composite | ModuleComposite


@contextmanager
def _propagation(
    model: nn.Module, rules: RuleMap, composite: Composite | None, folded: Any = None, split_sums: bool = True,
    captum_hooks: bool = False,
) -> Iterator[None]:  # fmt: skip
    """The module rules, or a transformer composite's op rules."""
    if composite is not None:
        with transformer_rules(composite):
            yield
    else:
        with relevance_rules(model, rules, folded, split_sums, captum_hooks):
            yield


def _checked_composite(
    composite: CompositeLike | None, rules: RuleMap | None, captum_hooks: bool
) -> Composite | ModuleComposite | None:
    """The composite (by name or as an object), refused beside module ``rules`` or Captum's hooks
    (one propagation at a time)."""
    if composite is None:
        return None
    if rules or captum_hooks:
        raise ArgumentError("composite= sets every rule; drop rules= and captum_hooks= beside it")
    if isinstance(composite, (Composite, ModuleComposite)):
        return composite
    found = (COMPOSITES.get(composite) or module_composite(composite)) if isinstance(composite, str) else None
    if found is None:
        names = sorted([*COMPOSITES, *MODULE_COMPOSITES])
        raise ArgumentError(f"composite={composite!r}; name one of {names} or pass a pyattrib.lrp_rules.Composite "
                            "(transformers) or ModuleComposite (CNNs)")  # fmt: skip
    return found


def _split(chosen: Composite | ModuleComposite | None) -> tuple[Composite | None, ModuleComposite | None]:
    """A transformer composite (op rules) or a module composite (module rules)."""
    transformer = chosen if isinstance(chosen, Composite) else None
    return transformer, (chosen if isinstance(chosen, ModuleComposite) else None)


def _eager(attribute: Callable[..., Any]) -> Callable[..., Any]:
    """``attribute`` kept out of torch.compile's graphs: the rules swap the modules' ``forward``
    for the duration of a call, which dynamo's traced module calls would not see (they would
    give the plain gradient). Compiled, LRP breaks the graph and runs eagerly; with
    ``fullgraph=True`` dynamo refuses it."""
    return torch.compiler.disable(attribute)


def _scaled(model: nn.Module, by_output: bool = True) -> Callable[..., Tensor]:
    """``f * stopgrad(f)``: its gradient at the output is ``f`` itself, the starting relevance
    (``by_output=False``: ``f``, for the gradient x input form, where ``f * 1`` starts it)."""

    def run(*args: Any) -> Tensor:
        out = model_output(model(*args))  # a Hugging Face output: its logits
        return out * out.detach() if by_output else out

    run.__wrapped_module__ = model  # type: ignore[attr-defined]
    return run


def _lost_relevance(model: nn.Module, call: Call, relevance: Sequence[Tensor]) -> Tensor:
    """``f_t(x) - sum(R)`` per example: the relevance lost (or created) on the way back."""
    with torch.no_grad():
        out = call.target.select(model(*call.inputs, *call.args.values))
    return out - sum(r.reshape(call.n, -1).sum(1) for r in relevance)


def lrp(
    model: nn.Module,
    *,
    rules: RuleMap | None = None,
    fold_batchnorm: bool = False,
    batch_size: int | None = None,
    return_delta: bool = False,
    split_sums: bool = True,
    captum_hooks: bool = False,
    composite: CompositeLike | None = None,
) -> Attributor[InputCall]:
    r"""Layer-wise relevance propagation.

    ``rules`` maps module types or module instances to rules (:func:`epsilon`,
    :func:`gamma`, :func:`alpha1_beta0`, :func:`z_plus`, :func:`identity`); instances win
    over types, types over the default (epsilon for linear, conv, pooling and batch norm
    layers). ``fold_batchnorm=True`` treats a linear/conv layer followed directly by a batch
    norm as one layer with the norm folded into its weights (the usual canonization), so
    the layer's rule sees the normalised output; the weights are folded on the fly, never
    written. ``return_delta`` gives ``f_t(x) - sum(R)`` per example, as Captum does (0 when
    relevance is conserved).

    Every leaf module needs a rule, or must pass relevance as is (ReLU, tanh, dropout,
    identity, flatten): others (ReLU6, SiLU, LayerNorm, ...) raise an error that names them,
    as Captum does; give their types a rule in ``rules``. In-place activations work.
    ``split_sums=True`` (the default) splits relevance at the sum of two tensors that both
    carry it (residual connections) in proportion to the summands, so it is conserved
    there. ``split_sums=False`` passes the plain gradient, which hands all of it to both
    branches; Captum 0.9 conserves at neither (tests/test_architectures.py).

    ``captum_hooks=True`` propagates as Captum 0.9's tensor hooks do (what
    :mod:`pyattrib.compat` switches on): the multiplication by a layer's input is applied to
    *all* the relevance its input tensor receives, a skip connection's share included, once per
    tensor (by the first layer that reads it); only ``nn.ReLU``, ``nn.Tanh`` and ``nn.Dropout``
    modules pass relevance as is (functional calls take their plain gradient); sums and
    functional layers are differentiated plainly (``split_sums`` does not apply).
    ``composite="attnlrp"`` or ``"cp_lrp"`` (or a :class:`Composite`) explains a transformer
    instead (Hugging Face models unpatched): the rules of attention, normalisation, gated
    products and elementwise nonlinearities of ``pyattrib.lrp_rules.transformer``, one
    forward and one backward, relevance ``x * grad``. ``composite="epsilon_plus_flat"``,
    ``"epsilon_gamma_box"`` or ``"epsilon_alpha2_beta1"`` (Zennit's, or a
    :class:`ModuleComposite`) sets a CNN's module rules, the first layer's included.
    Call as ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        rules: The LRP rule per module type or instance (see :mod:`pyattrib.lrp_rules`); unset types get
            :data:`pyattrib.lrp_rules.rules.DEFAULT_RULES`.
        fold_batchnorm: Fold each BatchNorm into the preceding convolution or linear layer before
            propagating.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        split_sums: Split relevance at residual additions in proportion to the summands.
        captum_hooks: Reproduce Captum's hook placement (compat sets it); leave ``False``.
        composite: A composite instead of ``rules``: ``"attnlrp"``, ``"cp_lrp"`` (transformers),
            ``"epsilon_plus_flat"``, ``"epsilon_gamma_box"``, ``"epsilon_alpha2_beta1"`` (CNNs), or an object.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like ``inputs``, or ``(attributions, delta)`` with ``return_delta=True``.

    References:
        - Bach, Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-
          Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015.
          https://doi.org/10.1371/journal.pone.0130140
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> attr, delta = pa.lrp(model, return_delta=True)(x, target=y)
        >>> attr.shape, delta.shape
        (torch.Size([4, 8]), torch.Size([4]))
    """
    check_batch_size(batch_size)
    chosen, by_modules = _split(_checked_composite(composite, rules, captum_hooks))
    rules = dict(rules or {})
    f = _scaled(model, by_output=chosen is None)

    def attribute(inputs: Any, *, target: TargetLike = None, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="lrp")
        with evaluating(model):
            folded = batchnorm_pairs(model, call.inputs, call.args) if fold_batchnorm else None

        now = by_modules.rules(model, call.inputs) if by_modules is not None else rules

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            xs = tuple(c.take(x) for x in call.inputs)
            with _propagation(model, now, chosen, folded, split_sums, captum_hooks):
                grads = gradients(f, call.args, call.target, xs, c.index)
            return grads if chosen is None else tuple(g * x for g, x in zip(grads, xs))  # relevance x * grad

        with evaluating(model):
            relevance = accumulate(contribution, 1, call.n, call.chunk(batch_size), call.device)
            result = call.restore(relevance)
            if return_delta:
                return result, _lost_relevance(model, call, relevance)
        return result

    return Attributor(
        _eager(attribute), model, per_example=("target", "additional_forward_args"), returns_delta=return_delta,
        name="lrp",
    )  # fmt: skip


def layer_lrp(
    model: nn.Module, layer: LayerLike, *, rules: RuleMap | None = None, attribute_to_layer_input: bool = False,
    return_delta: bool = False, split_sums: bool = True, captum_hooks: bool = False,
    composite: CompositeLike | None = None,
) -> Attributor[InputCall]:  # fmt: skip
    """Relevance arriving at a layer's output (or input): :func:`lrp` stopped at ``layer``
    (with ``composite=``: a transformer's, e.g. its token embeddings' relevance).
    Call as ``(inputs, *, target=None, additional_forward_args=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        rules: The LRP rule per module type or instance (see :mod:`pyattrib.lrp_rules`); unset types get
            :data:`pyattrib.lrp_rules.rules.DEFAULT_RULES`.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        return_delta: Also return the per-example completeness error ``sum(attr) - (f(x) - f(x'))``.
        split_sums: Split relevance at residual additions in proportion to the summands.
        captum_hooks: Reproduce Captum's hook placement (compat sets it); leave ``False``.
        composite: A composite instead of ``rules`` (as :func:`lrp`'s).

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)``; it returns
        attributions shaped like the layer's output (or input), or ``(attributions, delta)`` with
        ``return_delta=True``.

    References:
        - Bach, Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-
          Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015.
          https://doi.org/10.1371/journal.pone.0130140
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.layer_lrp(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    chosen, by_modules = _split(_checked_composite(composite, rules, captum_hooks))
    rules = dict(rules or {})
    layers = Layers(model, layer, attribute_to_layer_input)
    scaled = Layers(_scaled(model, by_output=chosen is None), layer, attribute_to_layer_input)
    scaled.names = layers.names

    def attribute(inputs: Any, *, target: TargetLike = None, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="layer_lrp", differentiable=False)
        if captum_hooks and attribute_to_layer_input:
            values, relevance = _hooked_inputs(model, layers, rules, call)
        else:
            now = by_modules.rules(model, call.inputs) if by_modules is not None else rules
            with evaluating(model), _propagation(model, now, chosen, None, split_sums, captum_hooks):
                values, relevance = scaled.gradients(
                    lambda o: call.target.select(o), call.inputs, call.args.values, call.n
                )
            if chosen is not None:  # relevance x * grad at the layer
                leaves = [t for v in values for t in v.leaves]
                relevance = [g * t.detach() for g, t in zip(relevance, leaves)]
        result = layers.result(values, relevance)
        if return_delta:
            return result, _lost_relevance(model, call, relevance)
        return result

    return Attributor(
        _eager(attribute),
        model,
        per_example=("target", "additional_forward_args"),
        returns_delta=return_delta,
        name="layer_lrp",
    )


def _hooked_inputs(model: nn.Module, layers: Layers, rules: RuleMap, call: Call) -> tuple[list[Any], list[Tensor]]:
    """Captum's relevance at layers' inputs (``captum_hooks``): what each layer's input hook
    handed on, i.e. all the relevance its input tensor received (a skip connection's share too)."""
    record: dict[nn.Module, dict[int, Any]] = {}
    with evaluating(model), relevance_rules(model, rules, captum_hooks=True, record=record), torch.enable_grad():
        xs = tuple(x.detach().requires_grad_() if x.is_floating_point() else x for x in call.inputs)
        total = call.target.select(_scaled(model)(*xs, *call.args.values)).sum()
        torch.autograd.grad(total, [x for x in xs if x.requires_grad], allow_unused=True)
    values, relevance = [], []
    for name, module in zip(layers.names, layers.modules):
        seen = dict(record.get(module, {}))
        if VALUE not in seen:
            raise ArgumentError(f"layer {name!r} has no LRP rule, so Captum's hooks never see its input; give it one")
        values.append(LayerValue.of(seen.pop(VALUE), call.n, name))
        got = [r.detach() for _, r in sorted(seen.items())]
        if len(got) != len(values[-1].leaves):
            raise ArgumentError(
                f"layer {name!r}: with captum_hooks, relevance at a layer's input is what its input hook saw, and "
                "this layer hooked none of its inputs (it has no rule, or an earlier layer hooked the same tensor); "
                "attribute to the layer's output instead"
            )
        relevance += got
    return values, relevance
