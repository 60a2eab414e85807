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

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ._core.attributor import Attributor
from ._core.call import Call, prepare
from ._core.capture import Layers
from ._core.errors import ArgumentError, check_batch_size
from ._core.inputs import ForwardArgs
from ._core.kernel import Chunk, accumulate, gradients
from ._core.overrides import Rules, apply, only_in_modules, output_only
from ._core.state import evaluating
from .layer import LayerLike


@dataclass(frozen=True)
class Rule:
    """An LRP rule: ``weight``/``bias`` map the layer's parameters to the ones relevance is
    distributed with; ``eps`` stabilises the denominator; ``identity`` passes relevance."""

    name: str
    eps: float = 1e-9
    weight: Callable[[Tensor], Tensor] | None = None
    bias: Callable[[Tensor], Tensor] | None = None
    identity: bool = False


def epsilon(eps: float = 1e-9) -> Rule:
    """LRP-epsilon: ``R_i = sum_j x_i w_ij R_j / (z_j + eps sign z_j)``. Conserves relevance
    as ``eps -> 0`` on bias-free layers; larger ``eps`` absorbs weak, noisy contributions."""
    return Rule("epsilon", eps=eps)


def gamma(gamma: float = 0.25, zero_bias: bool = False) -> Rule:
    """LRP-gamma: distribute with ``w + gamma * max(w, 0)``, favouring positive contributions."""
    return Rule(
        "gamma",
        weight=lambda w: w + gamma * w.clamp(min=0),
        bias=(lambda b: torch.zeros_like(b)) if zero_bias else None,
    )


def alpha1_beta0(zero_bias: bool = False) -> Rule:
    """LRP-alpha1-beta0 (deep Taylor): distribute with the positive weights ``max(w, 0)`` only."""
    return Rule(
        "alpha1_beta0", weight=lambda w: w.clamp(min=0), bias=(lambda b: torch.zeros_like(b)) if zero_bias else None
    )


def z_plus() -> Rule:
    """LRP-z+: positive weights, no bias (alpha1-beta0 with the bias removed)."""
    return alpha1_beta0(zero_bias=True)


def identity() -> Rule:
    """Pass relevance through unchanged (layers whose input and output have one shape)."""
    return Rule("identity", identity=True)


RuleMap = Mapping[type | nn.Module, Rule]
DEFAULT_RULES: dict[type, Rule] = {
    nn.Linear: epsilon(),
    nn.Conv1d: epsilon(),
    nn.Conv2d: epsilon(),
    nn.Conv3d: epsilon(),
    nn.MaxPool1d: epsilon(),
    nn.MaxPool2d: epsilon(),
    nn.MaxPool3d: epsilon(),
    nn.AvgPool1d: epsilon(),
    nn.AvgPool2d: epsilon(),
    nn.AdaptiveAvgPool2d: epsilon(),
    nn.BatchNorm1d: epsilon(),
    nn.BatchNorm2d: epsilon(),
}


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
        x, _, modified, rule = inputs
        ctx.save_for_backward(x)
        ctx.modified, ctx.rule = modified, rule

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor | None, None, None, None]:
        if ctx.rule.identity:
            return relevance, None, None, None
        (x,) = ctx.saved_tensors
        with torch._C.DisableTorchFunction():
            z, vjp = torch.func.vjp(ctx.modified, x)
            sign = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
            (c,) = vjp(relevance / (z + sign * ctx.rule.eps))
        return x * c, None, None, None


def _modified(
    module: nn.Module, forward: Callable[..., Tensor], rule: Rule, folded: tuple[Tensor, Tensor] | None = None
) -> Callable[[Tensor], Tensor]:
    """The layer with the rule's parameters, computed functionally (weights never change).
    ``folded`` replaces the layer's own (weight, bias), e.g. with a batch norm folded in."""
    if rule.weight is None and rule.bias is None and folded is None:
        return forward
    weight, bias = folded if folded is not None else (getattr(module, "weight", None), getattr(module, "bias", None))
    if weight is None:
        raise TypeError(f"rule {rule.name!r} modifies weights, but {type(module).__name__} has none")
    w = rule.weight(weight) if rule.weight else weight
    b = rule.bias(bias) if (rule.bias and bias is not None) else bias
    if isinstance(module, nn.Linear):
        return lambda t: F.linear(t, w, b)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return lambda t: module._conv_forward(t, w, b)
    raise TypeError(f"rule {rule.name!r} supports Linear and Conv layers, not {type(module).__name__}")


class _FunctionalLayers(TorchFunctionMode):
    """LRP for ``F.linear`` / ``F.conv1d/2d/3d`` called directly (a module holding its own
    parameters, or a plain function): the rule given for the matching module type, else the
    default. Calls inside a module that has its own rule are not intercepted twice."""

    TYPES: dict[Callable[..., Any], type] = {
        F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d,
    }  # fmt: skip

    def __init__(self, by_type: Mapping[type, Rule]) -> None:
        super().__init__()
        self.by_type = by_type

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        kind = self.TYPES.get(func)
        rule = (self.by_type.get(kind) or DEFAULT_RULES.get(kind)) if kind else None
        if rule is None or not isinstance(args[0], Tensor) or not args[0].requires_grad:
            return func(*args, **kwargs)
        x, rest = args[0], list(args[1:])
        weight = rest.pop(0) if rest else kwargs.pop("weight")
        bias = rest.pop(0) if rest else kwargs.pop("bias", None)
        w = rule.weight(weight) if rule.weight else weight
        b = rule.bias(bias) if (rule.bias and bias is not None) else bias
        layer = lambda t: func(t, weight, bias, *rest, **kwargs)  # noqa: E731
        modified = lambda t: func(t, w, b, *rest, **kwargs)  # noqa: E731
        return apply(_Relevance, x, layer, modified, rule)


@output_only
def _pass(x: Tensor | None, y: Tensor, grad_out: Tensor, ordinary: Callable[[], Tensor]) -> Tensor:
    return grad_out


# modules that pass relevance as is: ReLU and tanh (relevance is distributed at the
# layers around them), and modules that do nothing in eval mode or only reshape
PASSED = (
    nn.ReLU, nn.Tanh, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.ParameterDict, nn.ParameterList,
)  # fmt: skip


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
        share = relevance / (z + torch.where(z >= 0, 1e-9, -1e-9))
        return _reduce(a * share, a.shape), _reduce(b * share, b.shape)


def _reduce(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast result back to ``shape``."""
    while t.dim() > len(shape):
        t = t.sum(0)
    dims = tuple(d for d, (m, n) in enumerate(zip(t.shape, shape)) if n == 1 and m != 1)
    return t.sum(dims, keepdim=True) if dims else t


class _SplitSums(TorchFunctionMode):
    """Routes ``a + b`` (and ``+=``, ``torch.add``) of two relevance-carrying float tensors through :class:`_Sum`."""

    ADD = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__}
    IN_PLACE = {Tensor.__iadd__, Tensor.add_}

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        in_place = func in self.IN_PLACE
        if (func in self.ADD or in_place) and len(args) == 2 and not kwargs:
            a, b = args
            if isinstance(a, Tensor) and isinstance(b, Tensor) and a.requires_grad and b.requires_grad:
                if in_place:
                    return a.copy_(apply(_Sum, a.clone(), b))
                return apply(_Sum, a, b)
        return func(*args, **kwargs)


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


def _fold(layer: nn.Module, norm: nn.Module) -> tuple[Tensor, Tensor]:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
    weight = layer.weight * scale.reshape(-1, *[1] * (layer.weight.dim() - 1))
    return weight, (bias - norm.running_mean) * scale + norm.bias


class _CaptumLayer(torch.autograd.Function):
    """A ruled layer as Captum's hooks see it (``captum_hooks``): the backward divides the total
    output relevance by ``z + eps sign z`` (``z`` the rule's layer on the input) and takes the
    vector-Jacobian product, *without* multiplying by the input: that product is a hook on the
    input tensor, applied to all the relevance that tensor receives."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        forward: Callable[..., Tensor], modified: Callable[..., Tensor], eps: float, seen: list, *xs: Tensor
    ) -> Tensor:
        with torch._C.DisableTorchFunction():
            return forward(*xs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        _, modified, eps, seen, *xs = inputs
        ctx.save_for_backward(*xs)
        ctx.modified, ctx.eps, ctx.seen = modified, eps, seen

    @staticmethod
    def backward(ctx: Any, relevance: Tensor) -> tuple[Tensor | None, ...]:
        xs = ctx.saved_tensors
        ctx.seen[:] = [relevance]  # what an identity rule's input hook hands on
        with torch._C.DisableTorchFunction():
            z, vjp = torch.func.vjp(ctx.modified, *xs)
            sign = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
            grads = vjp(relevance / (z + sign * ctx.eps))
        return (None, None, None, None, *grads)


def _captum_layer(
    forward: Callable[..., Tensor],
    modified: Callable[..., Tensor],
    rule: Rule,
    hooked: dict[int, Tensor],
    record: dict[int, Tensor],
) -> Callable[..., Tensor]:
    """``forward`` with Captum's hooks (see ``captum_hooks`` in :func:`lrp`): each float input
    that no layer has hooked yet in this pass gets the input hook (multiply all its relevance by
    its value; an identity rule hands on its output relevance instead). What a hook hands on is
    kept in ``record`` by input position: Captum's relevance at the layer's input."""

    def run(*args: Any, **kw: Any) -> Tensor:
        at = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.is_floating_point()]
        seen: list[Tensor] = []

        def hook(g: Tensor, value: Tensor, position: int) -> Tensor:
            record[position] = out = seen[0] if rule.identity else g * value
            return out

        for i in at:
            a = args[i]
            if a.requires_grad and id(a) not in hooked:
                hooked[id(a)] = a  # kept alive for the pass: ids stay unique
                a.register_hook(lambda g, v=a.detach(), k=i: hook(g, v, k))

        def with_tensors(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
            def call(*ts: Tensor) -> Tensor:
                full = list(args)
                for i, t in zip(at, ts):
                    full[i] = t
                return fn(*full, **kw) if fn is forward else fn(*full)

            return call

        mod = modified if modified is not forward else (lambda *full: forward(*full, **kw))
        return _CaptumLayer.apply(with_tensors(forward), with_tensors(mod), rule.eps, seen, *(args[i] for i in at))

    return run


@contextmanager
def relevance_rules(
    model: nn.Module, rules: RuleMap, folded: Folding | None = None, split_sums: bool = True,
    captum_hooks: bool = False, record: dict[nn.Module, dict[int, Tensor]] | None = None,
) -> Iterator[None]:  # fmt: skip
    """Within the context, ``model``'s layers propagate relevance by their rules. Layers in
    ``folded`` distribute relevance with their batch norm folded in; that norm passes it on.
    A leaf module with no rule (and not one that passes relevance as is) is refused, naming it.
    With ``split_sums``, the sum of two tensors that both carry relevance (a residual
    connection) splits it in proportion to the summands (:class:`_Sum`)."""
    by_instance = {id(k): v for k, v in rules.items() if isinstance(k, nn.Module)}
    by_type = {k: v for k, v in rules.items() if isinstance(k, type)}
    folded = folded or {}
    swapped: list[tuple[nn.Module, Any]] = []

    hooked: dict[int, Tensor] = {}  # captum_hooks: tensors whose input hook is set, this pass

    def wrap(module: nn.Module, rule: Rule) -> None:
        forward = module.forward
        modified = _modified(module, forward, rule, folded.get(module))
        swapped.append((module, module.__dict__.get("forward")))
        copy = bool(getattr(module, "inplace", False))  # an in-place module writes on a copy of its input

        def run(x: Tensor, *rest: Any, **kw: Any) -> Tensor:
            return apply(_Relevance, x, lambda t: forward(t.clone() if copy else t, *rest, **kw), modified, rule)

        if captum_hooks:
            run = _captum_layer(
                forward, modified, rule, hooked, (record if record is not None else {}).setdefault(module, {})
            )
        module.forward = run

    chosen: list[tuple[nn.Module, Rule]] = []
    missing, inside_ruled = [], set()
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
    with ExitStack() as stack:
        try:
            for m, rule in chosen:
                wrap(m, rule)
            if captum_hooks:  # Captum's module hooks: only these modules pass relevance as is
                passed = {"relu": nn.ReLU, "tanh": nn.Tanh, "dropout": nn.Dropout}
                stack.enter_context(Rules({op: only_in_modules(_pass, t) for op, t in passed.items()}))
            else:
                stack.enter_context(Rules({"relu": _pass, "tanh": _pass, "dropout": _pass}))
                stack.enter_context(_FunctionalLayers(by_type))
                if split_sums:
                    stack.enter_context(_SplitSums())
            yield
        finally:
            for m, before in reversed(swapped):
                if before is None:
                    m.__dict__.pop("forward", None)
                else:
                    m.forward = before


def _eager(attribute: Callable[..., Any]) -> Callable[..., Any]:
    """``attribute`` kept out of torch.compile's graphs: the rules swap the modules' ``forward``
    for the duration of a call, which dynamo's traced module calls would not see (they would
    give the plain gradient). Compiled, LRP breaks the graph and runs eagerly; with
    ``fullgraph=True`` dynamo refuses it."""
    return torch.compiler.disable(attribute)


def _scaled(model: nn.Module) -> Callable[..., Tensor]:
    """``f * stopgrad(f)``: its gradient at the output is ``f`` itself, the starting relevance."""

    def run(*args: Any) -> Tensor:
        out = model(*args)
        return out * out.detach()

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
) -> Attributor:
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
    Call as ``(inputs, *, target=None, additional_forward_args=None)``.
    """
    check_batch_size(batch_size)
    rules = dict(rules or {})
    f = _scaled(model)

    def attribute(inputs: Any, *, target: Any = None, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="lrp")
        with evaluating(model):
            folded = batchnorm_pairs(model, call.inputs, call.args) if fold_batchnorm else None

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            with relevance_rules(model, rules, folded, split_sums, captum_hooks):
                return gradients(f, call.args, call.target, tuple(c.take(x) for x in call.inputs), c.index)

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
) -> Attributor:  # fmt: skip
    """Relevance arriving at a layer's output (or input): :func:`lrp` stopped at ``layer``.
    Call as ``(inputs, *, target=None, additional_forward_args=None)``."""
    rules = dict(rules or {})
    layers = Layers(model, layer, attribute_to_layer_input)
    scaled = Layers(_scaled(model), layer, attribute_to_layer_input)
    scaled.names = layers.names

    def attribute(inputs: Any, *, target: Any = None, additional_forward_args: Any = None) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="layer_lrp", differentiable=False)
        if captum_hooks and attribute_to_layer_input:
            values, relevance = _hooked_inputs(model, layers, rules, call)
        else:
            with evaluating(model), relevance_rules(model, rules, split_sums=split_sums, captum_hooks=captum_hooks):
                values, relevance = scaled.gradients(
                    lambda o: call.target.select(o), call.inputs, call.args.values, call.n
                )
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
    record: dict[nn.Module, dict[int, Tensor]] = {}
    with evaluating(model):
        values = layers.capture(call.inputs, call.args.values, call.n)
        with relevance_rules(model, rules, captum_hooks=True, record=record), torch.enable_grad():
            xs = tuple(x.detach().requires_grad_() if x.is_floating_point() else x for x in call.inputs)
            total = call.target.select(_scaled(model)(*xs, *call.args.values)).sum()
            torch.autograd.grad(total, [x for x in xs if x.requires_grad], allow_unused=True)
    relevance = []
    for name, module, value in zip(layers.names, layers.modules, values):
        got = [r.detach() for _, r in sorted(record.get(module, {}).items())]
        if len(got) != len(value.leaves):
            raise ArgumentError(
                f"layer {name!r}: with captum_hooks, relevance at a layer's input is what its input hook saw, and "
                "this layer hooked none of its inputs (it has no rule, or an earlier layer hooked the same tensor); "
                "attribute to the layer's output instead"
            )
        relevance += got
    return values, relevance
