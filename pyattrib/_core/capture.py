"""Capture and splice: read a layer's value, or run the model with it replaced.

A *layer value* is what a module returns (or receives, with ``to_input=True``): a
tensor, or any pytree of tensors (``nn.LSTM`` returns ``(out, (h, c))``). It is kept
as a flat list of batch-first leaves plus what is needed to put it back. The batch
dimension of a leaf is 0, or 1 where dimension 0 does not match the batch (``h`` and
``c`` of ``nn.LSTM``).

Interceptions live in a context manager and are undone in ``finally``. A module that runs
more than once in one forward pass is an error: which call to explain is ambiguous.
Values are returned from the hooked call, never stored on modules, so everything
works under torch.func transforms and torch.compile.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from .errors import ArgumentError
from .state import transformed

# layers known to run once per forward pass of a model (checked by a full capture)
_single_use: weakref.WeakKeyDictionary[nn.Module, weakref.WeakSet[nn.Module]] = weakref.WeakKeyDictionary()


@dataclass
class LayerValue:
    """A layer value as batch-first leaves; ``layout`` puts leaves back as the module has them.

    Leaves that hold no attribution pass through: ``None`` (``nn.MultiheadAttention`` returns
    ``(out, None)``) and, next to a floating-point tensor, tensors that are not floating point
    and Python values (a transformer block's bool or int attention mask among its positional
    inputs). They come back as None in attributions, and the model reads them as the current
    forward pass has them (``feed``). A value with no floating-point tensor (token ids) is
    all leaves, as before."""

    leaves: list[Tensor]
    bdims: list[int]
    spec: Any
    nones: tuple[int, ...] = ()  # positions of the passed-through leaves

    @staticmethod
    def of(value: Any, rows: int, name: str) -> LayerValue:
        leaves, spec = pytree.tree_flatten(value)
        floating = [isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex()) for t in leaves]
        out, bdims, nones = [], [], []
        for at, leaf in enumerate(leaves):
            if leaf is None or (any(floating) and not floating[at]):
                nones.append(at)
                continue
            if not isinstance(leaf, Tensor):
                raise TypeError(f"{name} produced a {type(leaf).__name__}; layer values must be tensors")
            if leaf.dim() > 0 and leaf.shape[0] == rows:
                bd = 0
            elif leaf.dim() > 1 and leaf.shape[1] == rows:
                bd = 1
            else:
                raise ArgumentError(
                    f"{name} produced a tensor of shape {tuple(leaf.shape)} with no batch dimension of size "
                    f"{rows} (dimension 0 or 1); attribute to a layer whose value is batched"
                )
            out.append(leaf.movedim(bd, 0))
            bdims.append(bd)
        return LayerValue(out, bdims, spec, tuple(nones))

    def layout(self, leaves: Sequence[Tensor], lead: int = 1, current: Any = None) -> Any:
        """Leaves whose first ``lead`` dimensions stand for the batch (``(N, T, ...)`` with a
        target dimension) back in the module's layout, those dimensions where its batch was.
        Passed-through leaves are None, or taken from ``current`` (the layer's value in the
        forward pass now running)."""
        first = tuple(range(lead))
        placed: list[Any] = [
            t.movedim(first, tuple(range(bd, bd + lead))) if bd else t for t, bd in zip(leaves, self.bdims)
        ]
        kept = pytree.tree_flatten(current)[0] if current is not None and self.nones else None
        for at in self.nones:
            placed.insert(at, None if kept is None else kept[at])
        return pytree.tree_unflatten(placed, self.spec)

    def feed(self, leaves: Sequence[Tensor], current: Any = None) -> Any:
        """``layout`` of copies, for the model to read on: an in-place op after the layer
        (``nn.ReLU(inplace=True)``) may then write on them, which on the leaves themselves
        autograd forbids. Passed-through leaves come from ``current``."""
        return self.layout([t.clone() for t in leaves], current=current)

    def with_leaves(self, leaves: Sequence[Tensor]) -> LayerValue:
        return LayerValue(list(leaves), self.bdims, self.spec, self.nones)


class Layers:
    """One module or a list of them, and whether their input or output is meant."""

    def __init__(self, model: Callable[..., Any], layers: nn.Module | Sequence[nn.Module], to_input: bool) -> None:
        self.was_list = isinstance(layers, (list, tuple))
        self.modules: list[nn.Module] = list(layers) if isinstance(layers, (list, tuple)) else [layers]  # type: ignore[list-item]
        if not self.modules:
            raise ArgumentError("layer list is empty; pass a module of the model, or a list of them")
        for m in self.modules:
            if not isinstance(m, nn.Module):
                raise TypeError(f"layer must be an nn.Module of the model, got {type(m).__name__}")
        names = {id(m): n for n, m in model.named_modules()} if isinstance(model, nn.Module) else {}
        self.names = [names.get(id(m), type(m).__name__) or "model" for m in self.modules]
        self.to_input = to_input
        self.model = model

    def restore(self, per_layer: list[Any]) -> Any:
        return per_layer if self.was_list else per_layer[0]

    def result(self, templates: list[LayerValue], flat: Sequence[Tensor]) -> Any:
        """Flat batch-first leaves -> per-layer values in each module's own layout."""
        return self.restore([t.layout(part) for t, part in zip(templates, split(flat, templates))])

    @contextmanager
    def hooked(self, on_value: Callable[[int, Any], Any]) -> Iterator[None]:
        """Call ``on_value(j, value)`` when layer ``j`` runs; a non-None return replaces the value.

        The interception swaps each layer's ``forward`` for a wrapper on the instance and
        restores it in ``finally``. Unlike ``register_forward_hook`` this traces under
        torch.compile(fullgraph=True), and the user's own hooks still run around it.
        """

        def call(j: int, forward: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
            if self.to_input:
                new = on_value(j, args[0] if len(args) == 1 else args)
                if new is not None:
                    args = new if len(args) > 1 else (new,)
                return forward(*args, **kwargs)
            out = forward(*args, **kwargs)
            new = on_value(j, out)
            return out if new is None else new

        with self.around(call):
            yield

    @contextmanager
    def around(
        self, call: Callable[[int, Callable[..., Any], tuple, dict[str, Any]], Any], once: bool = True
    ) -> Iterator[None]:
        """Each call of layer ``j`` becomes ``call(j, forward, args, kwargs)``, ``forward`` the
        layer's own: the one interception that :meth:`hooked`, LRP's rules and methods needing a
        layer's whole call (its keyword arguments, ops run inside it) are built on. With ``once``,
        a layer that runs twice in one forward pass is an error (which call to explain is
        ambiguous); the instances' ``forward`` is restored in ``finally``."""
        calls = [0] * len(self.modules)
        saved = [m.__dict__.get("forward") for m in self.modules]

        def wrap(j: int, forward: Callable[..., Any]) -> Callable[..., Any]:
            def intercepted(*args: Any, **kwargs: Any) -> Any:
                calls[j] += 1
                if once and calls[j] > 1:
                    raise RuntimeError(
                        f"layer {self.names[j]!r} ran {calls[j]} times in one forward pass; pyattrib explains one "
                        "call of a layer. Give each use its own module (e.g. separate nn.ReLU instances), or "
                        "choose a layer that runs once."
                    )
                return call(j, forward, args, kwargs)

            return intercepted

        try:
            for j, m in enumerate(self.modules):
                m.forward = wrap(j, m.forward)
            yield
        finally:
            for m, before in zip(self.modules, saved):
                if before is None:
                    m.__dict__.pop("forward", None)
                else:
                    m.forward = before

    def capture(self, inputs: tuple, args: tuple, rows: int, with_output: bool = False) -> Any:
        """Layer values for one forward pass.

        The first capture of these layers in this model runs the whole forward, so a layer
        that runs twice is caught (an error, never a silent pick of the first call). Once
        each layer is known to run once, eager captures stop the forward as soon as all
        are read: the rest of the network costs nothing. ``with_output``: the whole forward
        runs and ``(values, model output)`` is returned, for methods that need both."""
        slots: list[LayerValue | None] = [None] * len(self.modules)
        eager = not torch.compiler.is_compiling()  # compiled graphs run the whole forward, no state read
        checked = (
            _single_use.setdefault(self.model, weakref.WeakSet())
            if eager and isinstance(self.model, nn.Module)
            else None
        )
        early = not with_output and checked is not None and all(m in checked for m in self.modules)
        output = None

        def read(j: int, value: Any) -> None:
            v = LayerValue.of(value, rows, self.names[j])
            # the forward goes on: an in-place op later (nn.ReLU(inplace=True)) must not change what was read
            slots[j] = v if early else v.with_leaves([t.clone() for t in v.leaves])
            if early and all(v is not None for v in slots):
                raise _Captured

        with self.hooked(read):
            try:
                output = self.model(*inputs, *args)
            except _Captured:
                pass
        values = self._check_ran(slots)
        if checked is not None and not early:
            checked.update(self.modules)
        return (values, output) if with_output else values

    def capture_pair(
        self, first: tuple, second: tuple, args_first: tuple, args_second: tuple, rows: int
    ) -> tuple[list[LayerValue], list[LayerValue]]:
        """Layer values at two sets of ``rows`` rows (inputs and references) from one forward pass
        over both. ``args_*`` are the extra forward args of each set; batched ones are stacked."""
        both = tuple(torch.cat([a, b]) for a, b in zip(first, second))
        args = tuple(
            torch.cat([a, b]) if isinstance(a, Tensor) and a.dim() and a.shape[0] == rows else a
            for a, b in zip(args_first, args_second)
        )
        values = self.capture(both, args, 2 * rows)
        return (
            [v.with_leaves([t[:rows] for t in v.leaves]) for v in values],
            [v.with_leaves([t[rows:] for t in v.leaves]) for v in values],
        )

    def splice(self, templates: list[LayerValue], inputs: tuple, args: tuple) -> Callable[..., Any]:
        """``g(*leaves)``: the model on ``inputs`` with each layer's value replaced by ``leaves``."""

        def run(*leaves: Tensor) -> Any:
            parts = split(leaves, templates)
            with self.hooked(lambda j, value: templates[j].feed(parts[j], value)):
                return self.model(*inputs, *args)

        return run

    def gradients(
        self, select: Callable[[Any], Tensor], inputs: tuple, args: tuple, rows: int, with_inputs: bool = False
    ) -> tuple[list[LayerValue], list[Tensor]]:
        """Layer values at ``inputs`` and ``d sum(select(output)) / d value``, flat over layers.

        Eager: one forward in which each layer value is swapped for a detached leaf, and
        one backward that stops at the layer. Under torch.compile or a torch.func
        transform: capture, then differentiate the spliced model with torch.func.
        ``with_inputs`` (eager only): the backward goes on to the inputs, and the gradients
        with respect to ``inputs`` follow the layers' in the returned list.
        """
        if with_inputs:
            return self._gradients_through(select, inputs, args, rows)
        if transformed():
            captured = self.capture(inputs, args, rows)
            leaves = [t for v in captured for t in v.leaves]
            run = self.splice(captured, inputs, args)
            grads = torch.func.grad(lambda *ls: select(run(*ls)).sum(), argnums=tuple(range(len(leaves))))(*leaves)
            return captured, list(grads)
        slots: list[LayerValue | None] = [None] * len(self.modules)
        # Nothing before the layer needs a graph: run without one, and switch recording on
        # from the moment a layer value is swapped for a leaf.
        grad_mode = torch.is_grad_enabled()

        def swap(j: int, value: Any) -> Any:
            v = LayerValue.of(value, rows, self.names[j])
            # a value already on the graph (a later layer fed by an earlier one) stays on it,
            # so each layer's gradient is the total derivative, as with one layer alone
            slots[j] = leafed = v.with_leaves(
                [t if t.grad_fn is not None else t.detach().requires_grad_() for t in v.leaves]
            )
            torch._C._set_grad_enabled(True)
            return leafed.feed(leafed.leaves, value)

        try:
            torch._C._set_grad_enabled(False)
            with self.hooked(swap):
                total = select(self.model(*inputs, *args)).sum()
        finally:
            torch._C._set_grad_enabled(grad_mode)
        values = self._check_ran(slots)
        leaves = [t for v in values for t in v.leaves]
        grads = torch.autograd.grad(total, leaves, allow_unused=True, materialize_grads=True)
        return values, list(grads)

    def _gradients_through(
        self, select: Callable[[Any], Tensor], inputs: tuple, args: tuple, rows: int
    ) -> tuple[list[LayerValue], list[Tensor]]:
        with torch.enable_grad():
            values, leaves, xs, total = self._forward_kept(select, inputs, args, rows)
            grads = torch.autograd.grad(total, [*leaves, *xs], allow_unused=True, materialize_grads=True)
        return values, list(grads)

    def _forward_kept(
        self, select: Callable[[Any], Tensor], inputs: tuple, args: tuple, rows: int
    ) -> tuple[list[LayerValue], list[Tensor], tuple[Tensor, ...], Tensor]:
        """One forward (grad mode on) with a graph from fresh input leaves ``xs`` through each
        layer's value: ``(values, their leaves, xs, sum(select(output)))``."""
        slots: list[LayerValue | None] = [None] * len(self.modules)

        def keep(j: int, value: Any) -> Any:
            slots[j] = v = LayerValue.of(value, rows, self.names[j])
            return v.feed(v.leaves, value)  # the rest of the model reads these leaves

        xs = tuple(x.detach().requires_grad_() for x in inputs)
        with self.hooked(keep):
            total = select(self.model(*xs, *args)).sum()
        values = self._check_ran(slots)
        return values, [t for v in values for t in v.leaves], xs, total

    def through_neuron(
        self, select: Callable[[Any], Tensor], neuron: Callable[[Any], Tensor], inputs: tuple, args: tuple, rows: int
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """For ``a = neuron(layer value)`` of shape ``(rows,)``: ``d sum(select(output)) / d a``
        and ``d sum(a) / d inputs``.

        Eager: one forward pass with a graph from the inputs through the layer, and two
        backward passes over it. Under torch.compile or a torch.func transform: the layer
        gradient as in :meth:`gradients`, and ``torch.func.grad`` of the captured neuron.
        """
        if transformed():
            values, layer_grads = self.gradients(select, inputs, args, rows)

            def neuron_total(*xs: Tensor) -> Tensor:
                captured = self.capture(xs, args, rows)
                return neuron(self.result(captured, [t for v in captured for t in v.leaves])).sum()

            input_grads = torch.func.grad(neuron_total, argnums=tuple(range(len(inputs))))(*inputs)
            return neuron(self.result(values, layer_grads)), input_grads
        with torch.enable_grad():
            values, leaves, xs, total = self._forward_kept(select, inputs, args, rows)
            at_layer = torch.autograd.grad(total, leaves, retain_graph=True, allow_unused=True, materialize_grads=True)
            a = neuron(self.result(values, leaves))
            input_grads = torch.autograd.grad(a.sum(), xs, allow_unused=True, materialize_grads=True)
        return neuron(self.result(values, list(at_layer))).detach(), input_grads

    def _check_ran(self, values: list[LayerValue | None]) -> list[LayerValue]:
        """``values`` once every layer has one (else the named error)."""
        ran = [v for v in values if v is not None]
        if len(ran) < len(values):
            missing = [self.names[j] for j, v in enumerate(values) if v is None]
            raise RuntimeError(
                f"layer(s) {missing} did not run in the model's forward pass; pass modules the model calls"
            )
        return ran


class _Captured(Exception):
    """Raised from a hook to end a forward pass once every layer value is read."""


def split(flat: Sequence[Tensor], templates: list[LayerValue]) -> list[list[Tensor]]:
    """Cut a flat list of leaves back into one list per layer."""
    out, start = [], 0
    for t in templates:
        out.append(list(flat[start : start + len(t.leaves)]))
        start += len(t.leaves)
    return out
