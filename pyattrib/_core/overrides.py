"""Op overrides: replace the backward rule of chosen ops for one evaluation.

A :class:`Rules` object maps op kinds (``"relu"``, ``"sigmoid"``, ``"max_pool"``, ...)
to backward rules. :func:`overridden` wraps a model so that, while it runs, a
``TorchFunctionMode`` routes every call of those ops -- module or functional form,
``F.relu``, ``torch.relu``, ``x.relu()``, ``inplace=True``, a module reused twice --
through a ``torch.autograd.Function`` whose forward is the op itself and whose backward
is the rule. Nothing outlives the call: the mode is a context, and the Functions live in
the autograd graph of that evaluation only. They are written with ``setup_context`` and
``generate_vmap_rule`` so they compose with torch.func.

A rule is ``rule(x, y, grad_out, grad_in) -> new grad_in`` where ``grad_in`` is the
ordinary gradient. Paired rules (DeepLift) read the batch as two halves: inputs, then
their references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

Rule = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

# every callable a model may use for an op, by op kind
OPS: dict[str, tuple[Callable[..., Any], ...]] = {
    "relu": (F.relu, torch.relu, Tensor.relu, torch.relu_, Tensor.relu_),
    "elu": (F.elu,),
    "leaky_relu": (F.leaky_relu,),
    "sigmoid": (torch.sigmoid, Tensor.sigmoid),
    "tanh": (torch.tanh, Tensor.tanh),
    "softplus": (F.softplus,),
    "gelu": (F.gelu,),
    "silu": (F.silu,),
    "softmax": (F.softmax, torch.softmax, Tensor.softmax),
    "max_pool": (F.max_pool1d, F.max_pool2d, F.max_pool3d),
}
_IN_PLACE = {torch.relu_, Tensor.relu_}
_KIND = {fn: kind for kind, fns in OPS.items() for fn in fns}


# ordinary gradients from the saved output, where a formula exists (cheaper than a vjp)
_GRAD_IN: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "relu": lambda g, x, y: torch.ops.aten.threshold_backward(g, y, 0),
    "sigmoid": lambda g, x, y: g * y * (1 - y),
    "tanh": lambda g, x, y: g * (1 - y * y),
}


class _Elementwise(torch.autograd.Function):
    """``y = op(x)`` whose backward is ``rule(x, y, grad_out, ordinary grad_in)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, op: Callable[[Tensor], Tensor], kind: str, rule: Rule) -> Tensor:
        return op(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, op, kind, rule = inputs
        ctx.save_for_backward(x, output)
        ctx.op, ctx.kind, ctx.rule = op, kind, rule

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None]:
        x, y = ctx.saved_tensors
        formula = _GRAD_IN.get(ctx.kind)
        if not getattr(ctx.rule, "uses_grad_in", True):
            grad_in = None  # the rule works from grad_out alone
        elif formula is not None:
            grad_in = formula(grad_out, x, y)
        else:
            with torch._C.DisableTorchFunction():  # the ordinary gradient, without our mode
                _, vjp = torch.func.vjp(ctx.op, x)
                (grad_in,) = vjp(grad_out)
        return ctx.rule(x, y, grad_out, grad_in), None, None, None


class _MaxPool(torch.autograd.Function):
    """Max pooling whose backward is ``rule(x, y, grad_out, grad_in, indices)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor, pool: Callable[..., Any], params: dict, rule: Callable[..., Tensor]
    ) -> tuple[Tensor, Tensor]:
        return pool(x, **{**params, "return_indices": True})

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, pool, params, rule = inputs
        y, idx = output
        ctx.save_for_backward(x, y, idx)
        ctx.rule = rule
        ctx.mark_non_differentiable(idx)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, _: Any) -> tuple[Tensor, None, None, None]:
        x, y, idx = ctx.saved_tensors
        grad_in = unpool(grad_out, idx, x.shape)  # the ordinary max-pool gradient
        return ctx.rule(x, y, grad_out, grad_in, idx), None, None, None


def unpool(values: Tensor, idx: Tensor, shape: torch.Size) -> Tensor:
    """Scatter-add pooled ``values`` back to the input positions ``idx`` came from."""
    flat = values.new_zeros(shape[0], shape[1], math.prod(shape[2:]))
    return flat.scatter_add(2, idx.flatten(2), values.flatten(2)).view(shape)


_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


class Rules(TorchFunctionMode):
    """A TorchFunctionMode that applies ``rules`` (op kind -> rule) to matching calls."""

    def __init__(self, rules: dict[str, Callable[..., Tensor]]) -> None:
        super().__init__()
        unknown = set(rules) - set(OPS)
        if unknown:
            raise ValueError(f"no override for ops {sorted(unknown)}; known: {sorted(OPS)}")
        self.rules = rules

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        kind = _KIND.get(func)
        rule = self.rules.get(kind) if kind else None
        if rule is None or not isinstance(args[0], Tensor) or not args[0].requires_grad:
            return func(*args, **kwargs)
        x = args[0]
        if kind == "max_pool":
            params = dict(zip(_POOL_ARGS, args[1:]), **kwargs)
            if params.get("return_indices"):
                return func(*args, **kwargs)
            return _MaxPool.apply(x, func, params, rule)[0]
        in_place = func in _IN_PLACE or kwargs.get("inplace", False)
        rest = args[1:]
        opts = {k: v for k, v in kwargs.items() if k != "inplace"}
        op = _bind(func, rest, opts)
        y = _Elementwise.apply(x.clone() if in_place else x, op, kind, rule)
        return x.copy_(y) if in_place else y


def _bind(func: Callable[..., Any], rest: tuple, opts: dict) -> Callable[[Tensor], Tensor]:
    if func in (torch.relu_, Tensor.relu_):
        return torch.relu
    return lambda t: func(t, *rest, **opts)


def overridden(model: Callable[..., Any], rules: dict[str, Callable[..., Tensor]]) -> Callable[..., Any]:
    """``model`` with ``rules`` active while its forward runs (the backward uses them later)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with Rules(rules):
            return model(*args, **kwargs)

    run.__wrapped_module__ = getattr(model, "__wrapped_module__", model)  # type: ignore[attr-defined]
    return run


@contextmanager
def active(rules: dict[str, Callable[..., Tensor]]) -> Iterator[None]:
    """The rules as a plain context, for code that runs the model itself (layer capture)."""
    with Rules(rules):
        yield


# -- rules -------------------------------------------------------------------------


def _wide(t: Tensor) -> Tensor:
    """At least float32: rules divide small differences, which fp16/bf16 cannot hold."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _paired(grad_in: Tensor, grad_out: Tensor, dx: Tensor, change: Tensor, eps: float) -> Tensor:
    """``grad_out * change / dx`` for both halves, the ordinary ``grad_in`` where
    ``|dx| < eps``. ``dx`` and ``change`` are per pair (half the rows); work on halves, so
    no full-size copies of them are made."""
    near = dx.abs() < eps
    ratio = change / torch.where(near, 1.0, dx)
    halves = [torch.where(near, _wide(gi), _wide(go) * ratio) for gi, go in zip(grad_in.chunk(2), grad_out.chunk(2))]
    return torch.cat(halves).to(grad_in.dtype)


def _difference(t: Tensor) -> Tensor:
    """``t[:n] - t[n:]``: the change from reference to input, per pair."""
    a, b = _wide(t).chunk(2)
    return a - b


def rescale(eps: float) -> Rule:
    """DeepLift's rescale rule: multiplier ``(y - y') / (x - x')``, the gradient where
    ``|x - x'| < eps``. Computed in at least float32, so fp16/bf16 give finite results."""

    def rule(x: Tensor, y: Tensor, grad_out: Tensor, grad_in: Tensor) -> Tensor:
        return _paired(grad_in, grad_out, _difference(x), _difference(y), eps)

    return rule


def rescale_softmax(eps: float) -> Rule:
    """Rescale, then centred by the mean over the whole tensor (Captum's softmax handling)."""
    base = rescale(eps)

    def rule(x: Tensor, y: Tensor, grad_out: Tensor, grad_in: Tensor) -> Tensor:
        g = _wide(base(x, y, grad_out, grad_in))
        return (g - g.sum() / g.numel()).to(grad_in.dtype)

    return rule


def rescale_max_pool(eps: float) -> Callable[..., Tensor]:
    """DeepLift for max pooling (as Captum): the change of the pooled maximum, routed to
    the winning positions of input and reference, divided by the input change."""

    def rule(x: Tensor, y: Tensor, grad_out: Tensor, grad_in: Tensor, idx: Tensor) -> Tensor:
        out, out_ref = _wide(y).chunk(2)
        top = torch.max(out, out_ref)
        delta_out = torch.cat([top - out_ref, out - top])
        a, b = unpool(_wide(grad_out) * delta_out, idx, x.shape).chunk(2)
        routed = a + b  # the same numerator serves both halves
        near = (dx := _difference(x)).abs() < eps
        value = routed / torch.where(near, 1.0, dx)
        halves = [torch.where(near, _wide(gi), value) for gi in grad_in.chunk(2)]
        return torch.cat(halves).to(grad_in.dtype)

    return rule


def guided(x: Tensor, y: Tensor, grad_out: Tensor, grad_in: Tensor | None) -> Tensor:
    """Guided backpropagation (Springenberg et al.): only positive gradients pass a ReLU
    that was active, ``relu(grad_out) * 1[y > 0]``."""
    return torch.ops.aten.threshold_backward(F.relu(grad_out), y, 0)


def deconvolution(x: Tensor, y: Tensor, grad_out: Tensor, grad_in: Tensor | None) -> Tensor:
    """Deconvolution (Zeiler & Fergus): a ReLU passes positive gradients, whatever its input."""
    return F.relu(grad_out)


guided.uses_grad_in = False  # type: ignore[attr-defined]
deconvolution.uses_grad_in = False  # type: ignore[attr-defined]
