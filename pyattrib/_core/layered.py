"""The layer combinator: an input method applied to a layer's value (the twin of ``on_neuron``).

``on_layer(make_inner, model, layer)`` applies the method ``make_inner(g)`` to the spliced model
``g(*leaves, *inputs, *args)``: the model run on the inputs with the layer's value replaced by
``leaves`` (the inputs travel as per-example forward arguments, so every chunk of the method's
rows carries its own). A call captures the layer's value at the inputs and hands its leaves to
the method as inputs; attributions come back in the layer's own layout. The method is built once,
and the attributor has its call signature.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from .attributor import Attributor, bind_baselines
from .call import completeness_delta, prepare
from .capture import Layers, LayerValue
from .errors import renamed_in
from .state import evaluating


def on_layer(
    make_inner: Callable[[Callable[..., Any]], Attributor],
    model: Any,
    layer: Any,
    to_input: bool,
    name: str,
    *,
    references: bool = False,
    return_delta: bool = False,
    renames: Mapping[str, str] | None = None,
) -> Attributor:
    """``make_inner(g)``'s method applied to ``layer``'s value (its input with ``to_input``).

    ``references=False``: the call's ``baselines`` are the layer's own (the value an ablation puts
    in), passed to the method as they are. ``references=True``: they are references of the inputs,
    and the method's baselines are the layer's value at them, captured in the same forward as at
    the inputs (integrated gradients at a layer). ``return_delta`` (with references): also
    ``sum(attr) - (f(x) - f(x'))``, taken on the original model. ``renames``: old keyword names
    still accepted, for one release, with a deprecation warning."""
    layers = Layers(model, layer, to_input)
    running: list[tuple[list[LayerValue], int, int]] = []  # the call's layer values, leaves, inputs

    def spliced(*a: Any) -> Any:
        values, k, n_in = running[-1]
        return layers.splice(values, a[k : k + n_in], a[k + n_in :])(*a[:k])

    spliced.__wrapped_module__ = model  # type: ignore[attr-defined]  # the model behind it, for model_of
    inner = make_inner(spliced)
    assert inner.signature is not None
    takes_baselines = "baselines" in inner.signature.parameters

    def attribute(
        inputs: Any, *args: Any, target: Any = None, additional_forward_args: Any = None, **kwargs: Any
    ) -> Any:
        kwargs = bind_baselines(args, kwargs)
        if renames:
            kwargs = renamed_in(kwargs, dict(renames), name)
        baselines = kwargs.pop("baselines", None)
        if baselines is not None and not (references or takes_baselines):
            raise TypeError(f"{name} takes no baselines (the method permutes or reads the layer's own values)")
        call = prepare(inputs, target, additional_forward_args, method=name, differentiable=False)
        with evaluating(model):
            if references:
                base = tuple(b.contiguous() for b in call.baselines(baselines))
                values, at_base = layers.capture_pair(call.inputs, base, call.args.values, call.args.values, call.n)
                kwargs["baselines"] = tuple(t for v in at_base for t in v.leaves)
            else:
                values = layers.capture(call.inputs, call.args.values, call.n)
                if takes_baselines:
                    kwargs["baselines"] = baselines
            leaves = tuple(t for v in values for t in v.leaves)
            running.append((values, len(leaves), len(call.inputs)))
            try:
                out = inner(
                    leaves, target=call.target, additional_forward_args=(*call.inputs, *call.args.values), **kwargs
                )
            finally:
                running.pop()
            attrs: tuple[Tensor, ...] = out if isinstance(out, tuple) else (out,)
            result = layers.result(values, attrs)
            if return_delta:
                return result, completeness_delta(model, call, base, attrs)
        return result

    edits = {"baselines": None} if not takes_baselines and not references else {}
    wrapped = inner.with_fn(attribute, edits, forward=model, name=name, returns_delta=return_delta)
    if renames:  # the old names reach the call: its signature keeps **kwargs
        assert wrapped.signature is not None
        params = [*wrapped.signature.parameters.values(), inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
        wrapped = dataclasses.replace(wrapped, signature=wrapped.signature.replace(parameters=params))
    return wrapped
