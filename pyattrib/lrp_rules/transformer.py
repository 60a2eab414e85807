r"""Relevance through transformers: AttnLRP and CP-LRP, as backward overrides of the ops.

Relevance is read in the gradient x input form: a layer value ``a`` holds relevance
``a * da`` where ``da`` is the gradient of the explained output (so the output's relevance is
its own value, where LRP starts). Plain gradients then carry LRP-0 through linear layers, sums
and softmax (whose gradient x input *is* AttnLRP's softmax rule, the bias term included); the
composites change the backward of the other ops, functional calls and modules alike, through
the op-override mode of ``pyattrib._core.overrides`` (no model is patched):

=====================================  =========================  ==========================
op                                      ``attnlrp``                ``cp_lrp``
=====================================  =========================  ==========================
product of two activations (``@``,      uniform: each factor's     plain (attention weights
``bmm``, ``*``: attention's             gradient halved            held constant below);
``Q K^T`` and ``A V``, gated MLPs)                                 a gate is held constant
``softmax``                              plain                      held constant
``scaled_dot_product_attention``        ``Q, K`` gradients / 4,    ``Q, K`` held constant
                                         ``V`` / 2 (the same)
``layer_norm``, ``rms_norm``,           the normaliser held        the same
``rsqrt``                                constant (identity rule)
GELU, SiLU, tanh-GELU, Mish             identity rule:             the same
(modules and functions)                  ``da = dy * y / x``
``nn.MultiheadAttention`` (its ops      query, key gradients / 4,  query, key held constant
run in one torch function)               value / 2 (at its inputs)
linear / conv layers                    plain (LRP-0), or the      the same
                                         rule ``layers`` names
=====================================  =========================  ==========================

A few small autograd Functions carry the rules (written with ``setup_context`` and
``generate_vmap_rule``, so they compose with torch.func): a view of ``x`` whose gradient is
scaled, and a view of ``y = f(x)`` whose gradient reaches ``x`` times ``y / x``; neither
copies its tensor.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as nn_module

from .._core.errors import ArgumentError
from .._core.overrides import Rules, apply
from .propagation import in_gradient_form
from .rules import Rule

EPS = 1e-10  # the identity rule's stabiliser, as LXT's


def _carries(t: Any) -> bool:
    """An activation on the graph (not a parameter): it carries relevance."""
    return isinstance(t, Tensor) and t.requires_grad and not isinstance(t, nn.Parameter)


class _ScaledGradient(torch.autograd.Function):
    """``x`` itself (a view: no copy), its gradient multiplied by ``factor``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, factor: float) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class _Identity(torch.autograd.Function):
    """``y = f(x)`` (a view of it) whose gradient reaches ``x`` as ``grad(y) * y / (x + eps)``,
    the ratio formed in the backward only (a gate held constant never pays for it)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, y: Tensor) -> Tensor:
        return y.view_as(y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        ctx.save_for_backward(inputs[0].detach(), inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        x, y = ctx.saved_tensors
        return grad * (y / (x + EPS)), None


class _HeldLayerNorm(torch.autograd.Function):
    """``F.layer_norm`` (the fused kernel) whose backward holds the standard deviation constant:
    ``dx = (g w - mean(g w)) / std`` (the identity rule of a normalisation; no parameter gradients)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, shape: tuple[int, ...], weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        return F.layer_norm(x, shape, weight, bias, eps)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, shape, weight, _, eps = inputs
        dims = tuple(range(-len(shape), 0))
        std = x.detach().var(dims, unbiased=False, keepdim=True).add(eps).sqrt()
        ctx.dims = dims
        ctx.save_for_backward(std, weight)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None]:
        std, weight = ctx.saved_tensors
        scaled = grad * weight if weight is not None else grad
        return (scaled - scaled.mean(ctx.dims, keepdim=True)) / std, None, None, None, None


def scaled_gradient(x: Tensor, factor: float) -> Tensor:
    """``x`` whose gradient is multiplied by ``factor``."""
    return apply(_ScaledGradient, x, factor)


def identity_rule(x: Tensor, y: Tensor) -> Tensor:
    """The identity rule of an elementwise nonlinearity ``y = f(x)``: relevance passes unchanged
    (``R_x = R_y``), i.e. ``dx = dy * y / (x + eps)``."""
    return apply(_Identity, x, y.detach())


@dataclass(frozen=True)
class Composite:
    """A transformer composite: how products, softmax, normalisation and elementwise
    nonlinearities pass relevance (see the module's table).

    Elementwise nonlinearities called outside an activation module that the composite knows
    (``torch.tanh``, ``torch.sigmoid``, ``torch.exp``, ``F.softplus``, ...) on a relevance path
    are refused, naming the op: list them in ``identity`` to give them the identity rule.

    Linear and convolution layers pass relevance by their plain gradient (LRP-0, LXT's default);
    ``layers`` gives them rules instead (LXT's ViT recipe: Zennit's gamma on the patch
    embedding and the dense layers), applied where the module runs, in the gradient x input form.

    Args:
        name: The composite's name.
        products: ``"uniform"`` (AttnLRP: each factor of a product of two activations gets half)
            or ``"constant_weights"`` (CP-LRP: attention weights and gates held constant).
        identity: More functions given the identity rule (e.g. ``(torch.tanh,)``).
        layers: Rules of layer modules by type or instance, e.g.
            ``{nn.Linear: pa.lrp_rules.gamma(0.05, generalized=True)}``.

    References:
        - Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin and Samek, "AttnLRP: Attention-Aware
          Layer-Wise Relevance Propagation for Transformers", ICML 2024. https://arxiv.org/abs/2402.05602
        - Ali, Schnake, Eberle, Montavon, Müller and Wolf, "XAI for Transformers: Better Explanations
          through Conservative Propagation", ICML 2022. https://arxiv.org/abs/2202.07304

    Example:
        >>> pa.lrp_rules.Composite("mine", products="uniform").name
        'mine'
    """

    name: str
    products: str = "uniform"
    identity: tuple[Callable[..., Any], ...] = ()
    layers: Mapping[type | nn.Module, Rule] = field(default_factory=dict, hash=False)

    def layer_rule(self, module: nn.Module) -> Rule | None:
        """The rule ``layers`` gives ``module`` (by instance, else by type), or None."""
        for key, rule in self.layers.items():
            if key is module:
                return rule
        return next((r for k, r in self.layers.items() if isinstance(k, type) and isinstance(module, k)), None)

    def __post_init__(self) -> None:
        if self.products not in ("uniform", "constant_weights"):
            raise ArgumentError(
                f"products={self.products!r}; choose 'uniform' (AttnLRP) or 'constant_weights' (CP-LRP)"
            )


ATTNLRP = Composite("attnlrp", "uniform")
CP_LRP = Composite("cp_lrp", "constant_weights")
COMPOSITES = {"attnlrp": ATTNLRP, "cp_lrp": CP_LRP}


def composite_of(composite: str | Composite) -> Composite:
    """A composite named by a string, or given as an object."""
    if isinstance(composite, Composite):
        return composite
    found = COMPOSITES.get(composite) if isinstance(composite, str) else None
    if found is None:
        raise ArgumentError(f"composite={composite!r}; name one of {sorted(COMPOSITES)} or pass a "
                            "pyattrib.lrp_rules.Composite")  # fmt: skip
    return found


# the activation modules given the identity rule, and transformers' own (by module name)
ACTIVATIONS = (nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU)


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, ACTIVATIONS) or type(module).__module__ == "transformers.activations"


UNRULED = (torch.tanh, Tensor.tanh, torch.sigmoid, Tensor.sigmoid, F.sigmoid, F.tanh, torch.exp, Tensor.exp, torch.erf,
           Tensor.erf, F.softplus, F.elu, F.selu, F.celu, F.hardswish, F.hardsigmoid, F.logsigmoid)  # fmt: skip


def _handlers(
    composite: Composite, gates: MutableMapping[int, Tensor], running: list[nn.Module]
) -> dict[Callable[..., Any], Callable[..., Any]]:
    """The op handlers of ``composite``: ``(func, args, kwargs) -> result`` (or NotImplemented)."""
    uniform = composite.products == "uniform"

    def product(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if len(args) < 2 or not (_carries(args[0]) and _carries(args[1])):
            return NotImplemented
        a, b = args[0], args[1]
        if uniform:
            return func(scaled_gradient(a, 0.5), scaled_gradient(b, 0.5), *args[2:], **kwargs)
        held = [t.detach() if id(t) in gates else t for t in (a, b)]  # a gate is held constant
        return func(*held, *args[2:], **kwargs)

    def softmax(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        out = func(*args, **kwargs)
        return out if uniform or not isinstance(out, Tensor) else out.detach()

    def attention(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        q, k, v = (list(args[:3]) + [kwargs.pop(n) for n in ("query", "key", "value")[len(args[:3]) :]])[:3]
        return func(*_attention_rule(uniform, q, k, v), *args[3:], **kwargs)

    def layer_norm(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if not _carries(x):
            return NotImplemented
        shape, weight, bias, eps = _norm_args(args, kwargs, ("normalized_shape", "weight", "bias", "eps"), 1e-5)
        return apply(_HeldLayerNorm, x, shape, weight, bias, eps)

    def rms_norm(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if not _carries(x):
            return NotImplemented
        shape, weight, eps, _ = _norm_args(args, kwargs, ("normalized_shape", "weight", "eps", "_"), None)
        dims = tuple(range(-len(shape), 0))
        scale = torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + (eps or torch.finfo(x.dtype).eps))
        y = x * scale.detach()
        return y * weight if weight is not None else y

    def normaliser(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        return func(*args, **kwargs).detach()  # rsqrt: RMSNorm's normaliser, held constant

    def activation(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if not (_carries(args[0]) and torch.is_grad_enabled()):  # (inside an activation module: its rule)
            return NotImplemented
        with torch.no_grad():
            y = func(*args, **kwargs)
        out = identity_rule(args[0], y)
        gates[id(out)] = out  # a weak entry: gone with its tensor, whose id may then be reused
        return out

    products = (torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.bmm, Tensor.bmm, torch.mul, Tensor.mul,
                Tensor.__mul__, Tensor.__rmul__)  # fmt: skip
    table: dict[Callable[..., Any], Callable[..., Any]] = {f: product for f in products}
    table.update({f: softmax for f in (F.softmax, torch.softmax, Tensor.softmax)})
    table[F.scaled_dot_product_attention] = attention
    table[F.layer_norm] = layer_norm
    table[F.rms_norm] = rms_norm
    table.update({f: normaliser for f in (torch.rsqrt, Tensor.rsqrt)})
    def unruled(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if args and _carries(args[0]) and not any(_is_activation(m) for m in running):
            name = f"{getattr(func, '__module__', None) or 'torch.Tensor'}.{func.__name__}"
            raise ArgumentError(
                f"{name} is called on a relevance path and composite {composite.name!r} has no rule for it (its "
                f"plain gradient would not be LRP): give it the identity rule with pyattrib.lrp_rules.Composite("
                f"{composite.name!r}, products={composite.products!r}, identity=({name},)), or call it inside an "
                "activation module (nn.Tanh, nn.Sigmoid...)"
            )
        return NotImplemented

    ruled: tuple[Callable[..., Any], ...] = (F.gelu, F.silu, F.mish, *composite.identity)
    table.update({f: unruled for f in UNRULED})
    table.update({f: activation for f in ruled})
    return table


def _norm_args(args: tuple, kwargs: dict, names: tuple[str, ...], eps: float | None) -> tuple[Any, ...]:
    """A normalisation call's arguments after the input, by position or name."""
    given = dict(zip(names, args[1:]))
    given.update({k: v for k, v in kwargs.items() if k in names})
    shape = given["normalized_shape"]
    return (tuple(shape) if not isinstance(shape, int) else (shape,), *(given.get(n, eps if n == "eps" else None)
                                                                         for n in names[1:]))  # fmt: skip


def _attention_rule(uniform: bool, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Attention's query, key and value under the rule of ``softmax(q k^T) v``: AttnLRP's
    gradients /4, /4, /2 (the uniform rule of its two products), or CP-LRP's query and key held
    constant (the attention weights)."""
    if uniform:
        return scaled_gradient(q, 0.25), scaled_gradient(k, 0.25), scaled_gradient(v, 0.5)
    return q.detach(), k.detach(), v


def _attention_inputs(composite: Composite, args: tuple) -> tuple:
    """``nn.MultiheadAttention``'s inputs under the attention rule: its ops run inside one torch
    function, out of the mode's sight, and its projections are linear, so the rule applies to
    their inputs as to their outputs."""
    if len(args) < 3:
        raise ArgumentError("nn.MultiheadAttention under an LRP composite takes query, key and value by position "
                            "(as torchvision's ViT calls it)")  # fmt: skip
    return (*_attention_rule(composite.products == "uniform", *args[:3]), *args[3:])


@contextmanager
def transformer_rules(composite: str | Composite) -> Iterator[None]:
    """Within the context, gradients of the model's output follow ``composite``'s rules: every
    call of the table's ops, and every activation module (``nn.GELU``, ``nn.SiLU``, ``nn.Mish``,
    ``nn.Tanh`` and transformers' activation modules, whose forwards are Python formulas), whoever
    makes it. Nothing is patched: a TorchFunctionMode and a global forward hook, both removed on
    exit.

    Args:
        composite: ``"attnlrp"``, ``"cp_lrp"`` or a :class:`Composite`.

    Returns:
        A context manager.

    References:
        - Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin and Samek, "AttnLRP: Attention-Aware
          Layer-Wise Relevance Propagation for Transformers", ICML 2024. https://arxiv.org/abs/2402.05602

    Example:
        >>> with pa.lrp_rules.transformer_rules("attnlrp"):
        ...     out = model(x.clone().requires_grad_())
        ...
        >>> out.shape
        torch.Size([4, 3])
    """
    chosen = composite_of(composite)
    # outputs of the identity rule, a gated product's gate (CP-LRP holds it): weakly, so a gate the
    # product detached frees its graph as soon as the model lets go of it
    gates: MutableMapping[int, Tensor] = weakref.WeakValueDictionary()
    running: list[nn.Module] = []  # the modules whose forward is running
    # per running module, what replaces its output (None: nothing): an activation's identity rule or
    # a ruled layer's rule; such a forward runs without a graph (its own graph would go unused)
    replacing: list[Callable[[Tensor, Tensor], Tensor] | None] = []

    def identity_gate(x: Tensor, out: Tensor) -> Tensor:
        wrapped = identity_rule(x, out)
        gates[id(wrapped)] = wrapped
        return wrapped

    def before(module: nn.Module, args: tuple) -> Any:
        running.append(module)
        rule = chosen.layer_rule(module) if chosen.layers else None
        replace: Callable[[Tensor, Tensor], Tensor] | None = None
        if rule is not None:
            replace = partial(in_gradient_form, module, rule)
        elif _is_activation(module):
            replace = identity_gate
        if replace is not None and args and _carries(args[0]) and torch.is_grad_enabled():
            torch.set_grad_enabled(False)
            replacing.append(replace)
        else:
            replacing.append(None)
        return _attention_inputs(chosen, args) if isinstance(module, nn.MultiheadAttention) else None

    def after(module: nn.Module, args: tuple, out: Any) -> Any:
        running.pop()
        replace = replacing.pop()
        if replace is None:
            return None
        torch.set_grad_enabled(True)  # (it was on when ``before`` turned it off)
        return replace(args[0], out) if isinstance(out, Tensor) else None

    handles = (nn_module.register_module_forward_pre_hook(before),
               nn_module.register_module_forward_hook(after, always_call=True))  # fmt: skip
    try:
        with Rules({}, ops=_handlers(chosen, gates, running)):
            yield
    finally:
        for handle in handles:
            handle.remove()
