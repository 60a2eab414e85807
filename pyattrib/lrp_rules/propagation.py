"""Applying rules: the relevance Function, functional layers and split sums (handlers of
``_core.overrides.Rules``, the one op-override mechanism), batch-norm folding, and
:func:`relevance_rules`, the context in which a model's layers propagate relevance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError
from .._core.inputs import ForwardArgs
from .._core.overrides import Handler, Rules, apply, only_in_modules, output_only
from .._core.state import transformed
from .captum import captum_layer
from .rules import DEFAULT_RULES, PASSED, Rule, RuleMap, identity, stabilised


class _Relevance(torch.autograd.Function):
    """``y = forward(x)``; backward turns output relevance into input relevance by ``rule``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor, forward: Callable[[Tensor], Tensor], modified: Callable[[Tensor], Tensor], rule: Rule
    ) -> Tensor:
        with torch._C.DisableTorchFunction():  # the layer's own F.linear/F.conv is not intercepted again
            return forward(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, forward, modified, rule = inputs
        ctx.save_for_backward(x)
        ctx.forward, ctx.modified, ctx.rule = forward, modified, rule

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor | None, None, None, None]:
        (x,) = ctx.saved_tensors
        return _distribute(ctx.rule, ctx.forward, ctx.modified, x, relevance), None, None, None


def _distribute(rule: Rule, forward: Callable[[Tensor], Tensor], modified: Any, x: Tensor, relevance: Tensor) -> Tensor:
    """The input's relevance: the output's ``relevance`` distributed by ``rule`` over the layer
    ``forward`` (``modified``: the layer with the rule's parameters, or their maker)."""
    if rule.identity:
        return relevance
    with torch._C.DisableTorchFunction():
        if rule.gradient:
            return _vjp(forward, x)[1](relevance)
        if rule.groups:
            return _grouped(rule, modified, x, relevance)
        return _pulled_back([(modified, x)], relevance, rule.eps)


def _pulled_back(
    terms: list[tuple[Callable[[Tensor], Tensor], Tensor]], relevance: Tensor, eps: float, mask: Tensor | None = None
) -> Tensor:
    """LRP's one template: ``z = sum_k layer_k(input_k)`` and each term hands back
    ``input_k * (d layer_k / d input_k)^T (R / (z + eps sign z))`` (only where ``mask`` selects)."""
    pulled = [_vjp(layer, xi) for layer, xi in terms]
    z = sum(p[0] for p in pulled)
    assert isinstance(z, Tensor)
    c = relevance / stabilised(z, eps)
    if mask is not None:
        c = c * mask
    out = sum(xi * p[1](c) for (_, xi), p in zip(terms, pulled))
    assert isinstance(out, Tensor)
    return out


def _vjp(layer: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``(layer(x), pull)`` with ``pull(c) = (d layer / d x)^T c``, by one autograd graph of the
    layer alone (built here, inside a backward, and freed by ``pull``); ``torch.func.vjp`` inside
    a torch.func transform (vmap of the attributor), where a graph cannot be built by hand."""
    if transformed():
        z, vjp, *_ = torch.func.vjp(layer, x)
        return z, lambda c: vjp(c)[0]
    with torch.enable_grad():
        at = x.detach().requires_grad_()
        z = layer(at)

    def pull(c: Tensor) -> Tensor:
        return torch.autograd.grad(z, at, c)[0]

    return z.detach(), pull


class _GradientForm(torch.autograd.Function):
    """``y = layer(x)`` (a view of it) in the gradient x input form of the transformer composites:
    the output's relevance ``y * dy`` is distributed by the rule and handed to ``x`` as
    ``R_in / x`` (stabilised by ``1e-10``, LXT's use of Zennit's rules)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, y: Tensor, forward: Callable[[Tensor], Tensor], modified: Any, rule: Rule) -> Tensor:
        return y.view_as(y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, y, forward, modified, rule = inputs
        ctx.save_for_backward(x, y)
        ctx.forward, ctx.modified, ctx.rule = forward, modified, rule

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None]:
        x, y = ctx.saved_tensors
        relevance = _distribute(ctx.rule, ctx.forward, ctx.modified, x, grad * y)
        return relevance / stabilised(x, 1e-10), None, None, None, None


def in_gradient_form(module: nn.Module, rule: Rule, x: Tensor, y: Tensor) -> Tensor:
    """``y = module(x)`` whose gradient reaches ``x`` by ``rule`` in the gradient x input form
    (a layer rule inside a transformer composite)."""
    return apply(_GradientForm, x, y.detach(), module.forward, _modified(module, module.forward, rule), rule)


def _grouped(rule: Rule, layer_with: Callable[..., Callable[[Tensor], Tensor]], x: Tensor, relevance: Tensor) -> Tensor:
    """A rule in Zennit's general form (``rule.groups``): per group, ``z`` sums its terms' outputs
    and each term hands back ``input_k(x) * vjp_k(R / (z + eps sign z))``, weighted by the group's
    coefficient (and masked where the group selects outputs of the plain layer).
    ``layer_with(weight_map, bias_map)`` is the layer with mapped parameters."""
    out = torch.zeros_like(x)
    with torch._C.DisableTorchFunction():
        plain = layer_with(None, None)(x) if any(len(g) > 2 for g in rule.groups) else None
        for coefficient, terms, *where in rule.groups:
            layers = [(layer_with(t.weight, t.bias), t.input(x) if t.input else x) for t in terms]
            mask = where[0](plain) if where and plain is not None else None
            out = out + coefficient * _pulled_back(layers, relevance, rule.eps, mask)
    return out


def _mapped_layer(
    run: Callable[[Tensor, Any, Any], Tensor], weight: Any, bias: Any
) -> Callable[..., Callable[[Tensor], Tensor]]:
    """``(weight_map, bias_map) -> layer``: ``run(x, w, b)`` with mapped parameters (``None``: as is),
    computed functionally: the weights are never written."""

    def layer_with(weight_map: Any, bias_map: Any) -> Callable[[Tensor], Tensor]:
        w = weight_map(weight) if weight_map else weight
        b = bias_map(bias) if (bias_map and bias is not None) else bias
        return lambda t: run(t, w, b)

    return layer_with


def _for_rule(layer_with: Callable[..., Callable[[Tensor], Tensor]], rule: Rule) -> Any:
    """What :class:`_Relevance` distributes with: the maker of mapped layers for a rule with
    ``groups`` (see :func:`_grouped`), else the layer with the rule's parameters."""
    return layer_with if rule.groups else layer_with(rule.weight, rule.bias)


def _modified(
    module: nn.Module, forward: Callable[..., Tensor], rule: Rule, folded: tuple[Tensor, Tensor] | None = None
) -> Any:
    """The layer with the rule's parameters, computed functionally (weights never change).
    ``folded`` replaces the layer's own (weight, bias), e.g. with a batch norm folded in."""
    if not rule.groups and rule.weight is None and rule.bias is None and folded is None:
        return forward
    weight, bias = folded if folded is not None else (getattr(module, "weight", None), getattr(module, "bias", None))
    if weight is None:
        raise TypeError(f"rule {rule.name!r} modifies weights, but {type(module).__name__} has none")
    if isinstance(module, nn.Linear):
        run: Callable[[Tensor, Any, Any], Tensor] = F.linear
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        run = module._conv_forward
    else:
        raise TypeError(f"rule {rule.name!r} supports Linear and Conv layers, not {type(module).__name__}")
    return _for_rule(_mapped_layer(run, weight, bias), rule)


FUNCTIONAL_LAYERS: dict[Callable[..., Any], type] = {
    F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d,
}  # fmt: skip


def _functional_layers(by_type: Mapping[type, Rule]) -> dict[Callable[..., Any], Handler]:
    """LRP for ``F.linear`` / ``F.conv1d/2d/3d`` called directly (a module holding its own
    parameters, or a plain function): the rule given for the matching module type, else the
    default. Calls inside a module that has its own rule are not intercepted twice (its forward
    runs with torch functions undispatched)."""

    def handler(kind: type) -> Handler:
        rule = by_type.get(kind) or DEFAULT_RULES.get(kind)

        def handle(func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
            if rule is None or not isinstance(args[0], Tensor) or not args[0].requires_grad:
                return NotImplemented
            x, rest, options = args[0], list(args[1:]), dict(kwargs)
            weight = rest.pop(0) if rest else options.pop("weight")
            bias = rest.pop(0) if rest else options.pop("bias", None)
            layer = lambda t: func(t, weight, bias, *rest, **options)  # noqa: E731
            mapped = _mapped_layer(lambda t, w, b: func(t, w, b, *rest, **options), weight, bias)
            return apply(_Relevance, x, layer, _for_rule(mapped, rule), rule)

        return handle

    return {func: handler(kind) for func, kind in FUNCTIONAL_LAYERS.items()}


@output_only
def _pass(x: Tensor | None, y: Tensor, grad_out: Tensor, ordinary: Callable[[], Tensor]) -> Tensor:
    return grad_out


class _Sum(torch.autograd.Function):
    """``z = a + b`` whose backward splits relevance ``R`` as ``R_a = a R / (z + eps sign z)``,
    ``R_b = b R / (z + eps sign z)``: LRP-epsilon for a sum, so a residual connection conserves
    relevance instead of handing all of it to both branches (the plain gradient)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: Tensor, b: Tensor) -> Tensor:
        return a + b

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        a, b = inputs
        ctx.save_for_backward(a, b, output)

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor, Tensor]:
        a, b, z = ctx.saved_tensors
        share = relevance / stabilised(z, 1e-9)
        return _reduce(a * share, a.shape), _reduce(b * share, b.shape)


def _reduce(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to ``shape``."""
    while t.dim() > len(shape):
        t = t.sum(0)
    dims = tuple(d for d, (m, n) in enumerate(zip(t.shape, shape)) if n == 1 and m != 1)
    return t.sum(dims, keepdim=True) if dims else t


SUMS_IN_PLACE = (Tensor.__iadd__, Tensor.add_)


def _split_sum(func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """``a + b`` (and ``+=``, ``torch.add``) of two relevance-carrying float tensors through ``_Sum``."""
    if len(args) == 2 and not kwargs:
        a, b = args
        if isinstance(a, Tensor) and isinstance(b, Tensor) and a.requires_grad and b.requires_grad:
            return a.copy_(apply(_Sum, a.clone(), b)) if func in SUMS_IN_PLACE else apply(_Sum, a, b)
    return NotImplemented


SPLIT_SUMS: dict[Callable[..., Any], Handler] = {
    f: _split_sum for f in (torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__, *SUMS_IN_PLACE)
}


FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


Folding = dict[nn.Module, "tuple[Tensor, Tensor] | None"]


def batchnorm_pairs(model: nn.Module, inputs: tuple, args: ForwardArgs) -> Folding:
    """Linear/conv layers whose output feeds straight into a batch norm (found by running
    one example), mapped to the weights and bias of the two folded into one layer,
    ``W' = W s``, ``b' = (b - mean) s + beta`` with ``s = gamma / sqrt(var + eps)``; each
    such batch norm is mapped to None."""
    layers = [m for m in model.modules() if isinstance(m, FOLDABLE)]
    norms = [m for m in model.modules() if isinstance(m, NORMS)]
    if not layers or not norms:
        return {}
    outputs: dict[int, nn.Module] = {}
    pairs: Folding = {}

    def seen_output(j: int, value: Any) -> None:
        outputs[id(value)] = layers[j]

    def seen_input(j: int, value: Any) -> None:
        layer = outputs.get(id(value))
        if layer is not None:
            pairs[layer] = _fold(layer, norms[j])
            pairs[norms[j]] = None

    with (
        torch.no_grad(),
        Layers(model, layers, False).hooked(seen_output),
        Layers(model, norms, True).hooked(seen_input),
    ):
        model(*(x[:1] for x in inputs), *args.rows(torch.zeros(1, dtype=torch.long, device=inputs[0].device)))
    return pairs


def _fold(layer: Any, norm: Any) -> tuple[Tensor, Tensor]:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
    weight = layer.weight * scale.reshape(-1, *[1] * (layer.weight.dim() - 1))
    return weight, (bias - norm.running_mean) * scale + norm.bias


@contextmanager
def relevance_rules(
    model: nn.Module, rules: RuleMap, folded: Folding | None = None, split_sums: bool = True,
    captum_hooks: bool = False, record: dict[nn.Module, dict[int, Tensor]] | None = None,
) -> Iterator[None]:  # fmt: skip
    """Within the context, ``model``'s layers propagate relevance by their rules. Layers in
    ``folded`` distribute relevance with their batch norm folded in; that norm passes it on.
    A leaf module with no rule (and not one that passes relevance as is) is refused, naming it.
    With ``split_sums``, the sum of two tensors that both carry relevance (a residual
    connection) splits it in proportion to the summands (``_Sum``).

    Args:
        model: The model whose layers propagate relevance inside the context.
        rules: The rule per module type or instance.
        folded: Layers with a batch norm folded in (from ``fold_batchnorm``); ``None``: none.
        split_sums: Split relevance at the sum of two relevance-carrying tensors in proportion to the
            summands.
        captum_hooks: Reproduce Captum's hook placement.
        record: Filled with the relevance reaching each listed module (for ``layer_lrp``).

    Returns:
        A context manager; within it, a gradient of the model's output is its LRP relevance.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> with pa.lrp_rules.relevance_rules(model, pa.lrp_rules.DEFAULT_RULES):
        ...     out = model(x.clone().requires_grad_())
        ...
        >>> out.shape
        torch.Size([4, 3])
    """
    by_instance = {id(k): v for k, v in rules.items() if isinstance(k, nn.Module)}
    by_type = {k: v for k, v in rules.items() if isinstance(k, type)}
    folded = folded or {}
    hooked: dict[int, Tensor] = {}  # captum_hooks: tensors whose input hook is set, this pass

    def relevant(module: nn.Module, rule: Rule, forward: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """``module``'s forward passing relevance by ``rule``."""
        modified = _modified(module, forward, rule, folded.get(module))
        if captum_hooks:
            return captum_layer(
                forward, modified, rule, hooked, (record if record is not None else {}).setdefault(module, {})
            )
        copy = bool(getattr(module, "inplace", False))  # an in-place module writes on a copy of its input

        def run(x: Tensor, *rest: Any, **kw: Any) -> Tensor:
            return apply(_Relevance, x, lambda t: forward(t.clone() if copy else t, *rest, **kw), modified, rule)

        return run

    chosen: list[tuple[nn.Module, Rule]] = []
    missing: list[tuple[str, str]] = []
    inside_ruled: set[int] = set()
    for name, m in model.named_modules():
        if id(m) in inside_ruled:
            continue
        rule = by_instance.get(id(m)) or next((r for t, r in by_type.items() if isinstance(m, t)), None)
        rule = rule or DEFAULT_RULES.get(type(m))
        if m in folded and folded[m] is None:  # a batch norm folded into its layer
            rule = identity()
        if rule is not None:
            chosen.append((m, rule))
            inside_ruled.update(id(c) for c in m.modules() if c is not m)  # run inside the rule's layer
        elif not any(True for _ in m.children()) and not isinstance(m, PASSED):
            missing.append((f"{name or 'model'} ({type(m).__name__})", type(m).__name__))
    if missing:
        raise ArgumentError(
            f"lrp has no rule for {len(missing)} module(s): {', '.join(label for label, _ in missing[:8])}"
            f"{', ...' if len(missing) > 8 else ''}. Give each type a rule, e.g. "
            f"rules={{nn.{missing[0][1]}: pa.lrp_rules.identity()}} for an activation, "
            "or pa.lrp_rules.epsilon() for a layer with weights"
        )
    runs: dict[int, Callable[..., Tensor]] = {}  # layer j's relevance forward, built at its first call

    def call(j: int, forward: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        if j not in runs:
            runs[j] = relevant(*chosen[j], forward)
        return runs[j](*args, **kwargs)

    with ExitStack() as stack:
        if chosen:  # the module interception of _core.capture (a layer may run several times here)
            stack.enter_context(Layers(model, [m for m, _ in chosen], False).around(call, once=False))
        if captum_hooks:  # Captum's module hooks: only these modules pass relevance as is
            passed = {"relu": nn.ReLU, "tanh": nn.Tanh, "dropout": nn.Dropout}
            stack.enter_context(Rules({op: only_in_modules(_pass, t) for op, t in passed.items()}))
        else:  # one mode: activations pass relevance, functional layers and sums propagate it
            ops = {**_functional_layers(by_type), **(SPLIT_SUMS if split_sums else {})}
            stack.enter_context(Rules({"relu": _pass, "tanh": _pass, "dropout": _pass}, ops=ops))
        yield
