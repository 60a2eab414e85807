"""Op overrides: replace the backward rule of chosen ops for one evaluation.

A :class:`Rules` object maps op kinds (``"relu"``, ``"sigmoid"``, ``"max_pool"``, ...)
to backward rules. :func:`overridden` wraps a model so that, while it runs, a
``TorchFunctionMode`` routes every call of those ops -- module or functional form,
``F.relu``, ``torch.relu``, ``x.relu()``, ``inplace=True``, a module reused twice --
through a ``torch.autograd.Function`` whose forward is the op itself and whose backward
is the rule. Nothing outlives the call: the mode is a context, and the Functions live in
the autograd graph of that evaluation only. They are written with ``setup_context`` and
``generate_vmap_rule`` so they compose with torch.func.

A rule is ``rule(x, y, grad_out, ordinary) -> new grad_in`` where ``ordinary()``
computes the op's ordinary gradient on demand (most rules need it rarely or never);
rules marked :func:`output_only` get ``x=None``, so the input need not be kept, and rules
marked :func:`reads_difference` get only the pairs' input change (half the rows).
Paired rules (DeepLift) read the batch as two halves: inputs, then their references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from .errors import ArgumentError
from .ops import _GRAD_IN, _IN_PLACE, _INPLACE_AT, _KIND, OPS, _formula, _module_softmax
from .pairs import Difference, Rule, _difference, _traced, reads_difference, unpool
from .rules import deconvolution, guided, only_in_modules, output_only, rescale, rescale_max_pool, rescale_softmax

__all__ = [  # the mechanism, and the rules methods import from here
    "OPS", "Links", "Rules", "active", "apply", "observed", "overridden", "unpool", "deconvolution", "guided",
    "only_in_modules", "output_only", "reads_difference", "rescale", "rescale_max_pool", "rescale_softmax",
]  # fmt: skip
from .state import transformed


class _Elementwise(torch.autograd.Function):
    """``y = op(x)`` whose backward applies ``rule`` (through ``links``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor, op: Callable[[Tensor], Tensor], kind: str, rule: Rule, links: Links, change: Tensor | None
    ) -> Tensor:
        return op(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, op, kind, rule, links, change = inputs  # change: the input change, taken before an in-place op
        keep = _keeps_input(rule, kind)  # else freed early: less memory
        in_place = getattr(op, "in_place", False)
        # a rule that reads only the pairs' input change keeps that: half the rows of x
        ctx.difference = _reads_difference(rule, kind) and (change is not None or not in_place)
        # an in-place op's output lives on only in what we save: keep its input (a copy
        # anyway) and recompute the output in the backward, one elementwise op
        ctx.recompute = keep and in_place and not ctx.difference
        saved = change if change is not None else _difference(x) if ctx.difference else x if keep else None
        ctx.save_for_backward(saved, None if ctx.recompute else output)
        ctx.op, ctx.kind, ctx.rule, ctx.links = op, kind, rule, links

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        x, y = ctx.saved_tensors
        if ctx.difference:
            x = Difference(x)
        if ctx.recompute:
            with torch.no_grad(), torch._C.DisableTorchFunction():
                y = ctx.op(x)
        formula, from_input = _GRAD_IN.get(ctx.kind), getattr(ctx.op, "formula", None)

        def ordinary_of(g: Tensor) -> Tensor:
            if formula is not None:
                return formula(g, x, y)
            if from_input is not None:
                return from_input(g, x)
            with torch._C.DisableTorchFunction():  # the ordinary gradient, without our mode
                vjp = torch.func.vjp(ctx.op, x)[1]
                return vjp(g)[0]

        return ctx.links.backward(ctx.rule, x, y, grad_out, ordinary_of), None, None, None, None, None


class _ElementwiseInPlace(_Elementwise):
    """``x <- op(x)`` in place, as the model asked, for a rule that reads only the output
    (or the input change, taken before): the output kept for the backward is ``x`` itself
    (as ``torch.relu_`` keeps it), not a copy next to the ``x`` that the model's next layer
    keeps."""

    @staticmethod
    def forward(
        x: Tensor, op: Callable[[Tensor], Tensor], kind: str, rule: Rule, links: Links, change: Tensor | None
    ) -> Tensor:
        return x.copy_(op(x))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        ctx.mark_dirty(inputs[0])
        _Elementwise.setup_context(ctx, inputs, output)


def _keeps_input(rule: Rule, kind: str) -> bool:
    """Whether the backward needs the op's input: the rule reads it, or the ordinary
    gradient cannot be had from the output alone."""
    return bool(getattr(rule, "reads_input", True)) or kind not in _GRAD_IN


def _reads_difference(rule: Rule, kind: str) -> bool:
    """Whether the backward needs only the pairs' input change (see :func:`reads_difference`)."""
    return getattr(rule, "reads_input", True) == "difference" and kind in _GRAD_IN


class _MaxPool(torch.autograd.Function):
    """Max pooling whose backward applies ``rule(x, y, grad_out, ordinary, indices)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor, pool: Callable[..., Any], params: dict, rule: Callable[..., Tensor], links: Links
    ) -> tuple[Tensor, Tensor]:
        params = {**params, "return_indices": True}
        if x.device.type == "cpu" and x.dim() == 4 and not _traced(x) and x.is_contiguous():
            # CPU pools a channels-last copy ~4x faster, with the same values and indices
            y, idx = pool(x.contiguous(memory_format=torch.channels_last), **params)
            return y.contiguous(), idx.contiguous()
        return pool(x, **params)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, pool, params, rule, links = inputs
        y, idx = output
        ctx.save_for_backward(x, y, idx)
        ctx.rule, ctx.links = rule, links
        ctx.mark_non_differentiable(idx)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, _: Any) -> tuple[Tensor, None, None, None, None]:
        x, y, idx = ctx.saved_tensors
        rule = lambda x, y, g, ordinary: ctx.rule(x, y, g, ordinary, idx)  # noqa: E731
        return ctx.links.backward(rule, x, y, grad_out, lambda g: unpool(g, idx, x.shape)), None, None, None, None


class Links:
    """The backward of one overridden op, and what it hands to the op that made its input.

    Unlinked, the op returns ``rule(x, y, grad_out, ordinary)``: the producer's rule reads it,
    as the chain rule says. Linked (``upstream`` set, see :class:`Rules` ``handoff``), the op
    behaves like Captum's module hooks on two directly chained modules, which sit on one
    tensor: the producer's rule reads this op's *ordinary* gradient, and only the
    producer's fallback (its own ordinary gradient, where ``|x - x'| < eps``) sees this op's
    rule. The rule is therefore deferred until the producer asks for it -- usually never.
    """

    def __init__(self, upstream: Links | None = None) -> None:
        self.upstream = upstream
        self.handed: Tensor | None = None  # set by a linked consumer: its ordinary gradient
        self.deferred: Callable[[], Tensor] | None = None  # ... and its rule, on demand

    def backward(
        self, rule: Rule, x: Tensor, y: Tensor, grad_out: Tensor, ordinary_of: Callable[[Tensor], Tensor]
    ) -> Tensor:
        handed, deferred = self.handed, self.deferred
        if handed is None:
            actual = lambda: grad_out  # noqa: E731
        else:  # grad_out holds the consumer's ordinary gradient; swap in its rule
            self.handed = self.deferred = None  # only here: an unlinked op mutates nothing (dynamo traces it)
            actual = _once(lambda: grad_out - handed + deferred())  # type: ignore[misc]
        ordinary = _once(lambda: ordinary_of(actual()))
        if self.upstream is None:
            return rule(x, y, grad_out, ordinary)
        self.upstream.handed, self.upstream.deferred = ordinary(), lambda: rule(x, y, grad_out, ordinary)
        return ordinary()


def _once(compute: Callable[[], Tensor]) -> Callable[[], Tensor]:
    """``compute``, run on the first call only (``functools.cache``, which dynamo cannot trace)."""
    box: list[Tensor] = []

    def value() -> Tensor:
        if not box:
            box.append(compute())
        return box[0]

    return value


def apply(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)``. Outside torch.compile and torch.func, where the Python
    wrapper only binds default arguments (none here: every argument is passed), call the
    C implementation directly: it saves ~65 us per op, a few percent of a small model's pass."""
    if transformed():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*args)  # type: ignore[misc]


_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


Handler = Callable[[Callable[..., Any], tuple, dict[str, Any]], Any]  # (func, args, kwargs) -> result


class Rules(TorchFunctionMode):
    """A TorchFunctionMode that applies ``rules`` (op kind -> rule) to matching calls, and
    ``ops``: handlers of other functions' calls (an LRP layer's ``F.linear``, a residual ``+``),
    ``(func, args, kwargs) -> result``, or ``NotImplemented`` for the plain call."""

    def __init__(
        self,
        rules: dict[str, Callable[..., Tensor]],
        handoff: frozenset[str] = frozenset(),
        ops: Mapping[Callable[..., Any], Handler] | None = None,
    ) -> None:
        super().__init__()
        self.ops = dict(ops or {})
        unknown = set(rules) - set(OPS)
        if unknown:
            raise ArgumentError(f"no override for ops {sorted(unknown)}; known: {sorted(OPS)}")
        self.rules, self.handoff = rules, handoff
        self.made: dict[int, tuple[Tensor, str, Links]] = {}  # outputs of overridden ops, by id
        # rules limited to calls made by a module's own forward (``only_in_modules``) need to
        # know which module is running: a stack kept by global forward hooks while active
        self.running: list[Any] | None = None
        if any(getattr(r, "modules", None) is not None for r in rules.values()):
            self.running = []

    def __enter__(self) -> Rules:
        if self.running is not None:
            from torch.nn.modules import module as nn_module

            running = self.running

            def enter(m: Any, args: Any) -> None:
                running.append(m)

            def leave(m: Any, args: Any, out: Any) -> None:  # returns None: the output stays
                running.pop()

            self._hooks: tuple[Any, ...] = (
                nn_module.register_module_forward_pre_hook(enter),
                nn_module.register_module_forward_hook(leave, always_call=True),
            )
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        finally:
            for handle in getattr(self, "_hooks", ()):
                handle.remove()
            self._hooks = ()

    def _in_module(self, rule: Any) -> bool:
        """Whether ``rule`` applies here: it is not limited to modules, or the module whose
        forward makes this call is of one of its types (exactly, as Captum's ``type(m) in``)."""
        types = getattr(rule, "modules", None)
        if types is None:
            return True
        here = self.running[-1] if self.running else None
        return here is not None and type(here) in types and id(here) not in rule.excluded

    def _links(self, x: Tensor, kind: str) -> Links:
        """Links for an op of ``kind`` applied to ``x``: handed back to the op that made ``x``
        when either kind is in ``handoff``."""
        made = self.made.get(id(x))  # ids are unique here: ``made`` keeps each output alive
        if made is None or (kind not in self.handoff and made[1] not in self.handoff):
            return Links(None)
        return Links(made[2])

    def _made(self, y: Tensor, kind: str, links: Links) -> Tensor:
        if self.handoff:
            self.made[id(y)] = (y, kind, links)
        return y

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        handler = self.ops.get(func)
        if handler is not None:
            out = handler(func, args, kwargs)
            if out is not NotImplemented:
                return out
        kind = _KIND.get(func)
        rule: Any = self.rules.get(kind) if kind else None
        if (
            kind is None
            or rule is None
            or not isinstance(args[0], Tensor)
            or not args[0].requires_grad
            or not self._in_module(rule)
        ):
            return func(*args, **kwargs)
        if kind == "dropout":
            p, training = (
                (args[1] if len(args) > 1 else kwargs.get("p", 0.5)),
                (args[2] if len(args) > 2 else kwargs.get("training", True)),
            )
            if not training or p == 0:
                return func(*args, **kwargs)  # the input itself: nothing to override
        x = args[0]
        if kind == "max_pool":
            params = dict(zip(_POOL_ARGS, args[1:]), **kwargs)
            if params.get("return_indices"):
                return func(*args, **kwargs)
            links = self._links(x, kind)
            return self._made(apply(_MaxPool, x, func, params, rule, links)[0], kind, links)
        if kind == "softmax":
            if not _module_softmax(kwargs):
                return func(*args, **kwargs)  # attention: the ordinary gradient, as a fused SDPA kernel has
            rule = rule(args[1] if len(args) > 1 else kwargs.get("dim"))
        at = _INPLACE_AT[func]
        positional = at is not None and len(args) > at
        in_place = (
            func in _IN_PLACE
            or bool(kwargs.get("inplace", False))
            or (at is not None and positional and bool(args[at]))
        )
        rest = args[1:at] + (False,) + args[at + 1 :] if at is not None and positional else args[1:]
        opts = {k: v for k, v in kwargs.items() if k != "inplace"}
        op = _bind(func, rest, opts, in_place)
        links = self._links(x, kind)
        difference = _reads_difference(rule, kind)
        if in_place and not transformed() and (difference or not _keeps_input(rule, kind)):
            with torch.no_grad():
                change = _difference(x) if difference else None
            return self._made(apply(_ElementwiseInPlace, x, op, kind, rule, links, change), kind, links)
        # an in-place op whose input the backward needs runs on a copy (vmap and compile
        # take this way too: in-place autograd Functions are not supported there)
        y = apply(_Elementwise, x.clone() if in_place else x, op, kind, rule, links, None)
        return self._made(x.copy_(y) if in_place else y, kind, links)


def _bind(func: Callable[..., Any], rest: tuple, opts: dict, in_place: bool = False) -> Callable[[Tensor], Tensor]:
    """``func`` on its input alone, out of place, marked with its ordinary-gradient formula
    and whether the model called it in place."""
    if func in (torch.relu_, Tensor.relu_):
        func = torch.relu
    op = lambda t: func(t, *rest, **opts)  # noqa: E731
    op.formula, op.in_place = _formula(func, rest, opts), in_place  # type: ignore[attr-defined]
    return op


def overridden(
    model: Callable[..., Any], rules: dict[str, Callable[..., Tensor]], handoff: frozenset[str] = frozenset()
) -> Callable[..., Any]:
    """``model`` with ``rules`` active while its forward runs (the backward uses them later)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with Rules(rules, handoff):
            return model(*args, **kwargs)

    run.__wrapped_module__ = getattr(model, "__wrapped_module__", model)  # type: ignore[attr-defined]
    return run


@contextmanager
def active(rules: dict[str, Callable[..., Tensor]], handoff: frozenset[str] = frozenset()) -> Iterator[None]:
    """The rules as a plain context, for code that runs the model itself (layer capture)."""
    with Rules(rules, handoff):
        yield


class _Observe(TorchFunctionMode):
    """Hands each output of the watched op kinds to ``fn(kind, output)``; a returned tensor
    replaces the output."""

    def __init__(self, kinds: tuple[str, ...], fn: Callable[[str, Tensor], Tensor | None]) -> None:
        super().__init__()
        self.kinds, self.fn = kinds, fn

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = _KIND.get(func)
        if kind is None or kind not in self.kinds:
            return out
        new = self.fn(kind, out)
        return out if new is None else new


@contextmanager
def observed(kinds: tuple[str, ...], fn: Callable[[str, Tensor], Tensor | None]) -> Iterator[None]:
    """While the block runs, every call of an op of ``kinds`` (keys of :data:`OPS`, in any of
    its forms) passes its output through ``fn(kind, output)``: read it (an attention pattern
    from ``F.softmax``), or return a tensor to use instead. Forward only; backward rules are
    :func:`overridden`'s."""
    unknown = [k for k in kinds if k not in OPS]
    if unknown:
        raise ArgumentError(f"unknown op kinds {unknown}; known: {sorted(OPS)}")
    with _Observe(tuple(kinds), fn):
        yield
