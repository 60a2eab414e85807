"""The ops the overrides know: every callable a model may use for each op kind, where an op's
``inplace`` flag sits among its arguments, and each op's ordinary gradient as a formula (so a
rule that needs it does not re-run the op)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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
    "hardtanh": (F.hardtanh, F.relu6),
    "hardswish": (F.hardswish,),
    "hardsigmoid": (F.hardsigmoid,),
    "mish": (F.mish,),
    "softmax": (F.softmax, torch.softmax, Tensor.softmax),
    "max_pool": (F.max_pool1d, F.max_pool2d, F.max_pool3d),
    "dropout": (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d),
}
_IN_PLACE = {torch.relu_, Tensor.relu_}
_KIND = {fn: kind for kind, fns in OPS.items() for fn in fns}


def _inplace_position(func: Callable[..., Any]) -> int | None:
    """Where ``func`` takes ``inplace`` positionally (``nn.ELU`` and ``nn.ReLU6`` pass it so)."""
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # builtins: no inplace argument
        return None
    return params.index("inplace") if "inplace" in params else None


# looked up, not computed, per call: a plain dict, which torch.compile traces as a constant
_INPLACE_AT = {fn: _inplace_position(fn) for fn in _KIND}


def _module_softmax(kwargs: dict[str, Any]) -> bool:
    """Whether a softmax call comes from an ``nn.Softmax`` module, which passes
    ``_stacklevel=5`` to ``F.softmax``; functional calls (attention) do not."""
    return kwargs.get("_stacklevel") == 5


# ordinary gradients from the saved output, where a formula exists (cheaper than a vjp)
_GRAD_IN: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "relu": lambda g, x, y: torch.ops.aten.threshold_backward(g, y, 0),
    "sigmoid": lambda g, x, y: g * y * (1 - y),
    "tanh": lambda g, x, y: g * (1 - y * y),
}


_aten = torch.ops.aten
# the ordinary gradient of a bound op from its input, by function: aten's own backward kernels
# (a torch.func.vjp per call costs a second autograd pass)
_PARAMS = {F.hardtanh: ("min_val", "max_val"), F.leaky_relu: ("negative_slope",), F.softplus: ("beta", "threshold"),
           F.elu: ("alpha",), F.gelu: ("approximate",)}  # fmt: skip
_DEFAULTS = {"min_val": -1.0, "max_val": 1.0, "negative_slope": 0.01, "beta": 1.0, "threshold": 20.0, "alpha": 1.0,
             "approximate": "none"}  # fmt: skip
_FORMULAS: dict[Callable[..., Any], Callable[[dict[str, Any]], Callable[[Tensor, Tensor], Tensor]]] = {
    F.relu6: lambda p: lambda g, x: _aten.hardtanh_backward(g, x, 0.0, 6.0),
    F.hardtanh: lambda p: lambda g, x: _aten.hardtanh_backward(g, x, p["min_val"], p["max_val"]),
    F.hardswish: lambda p: _aten.hardswish_backward,
    F.hardsigmoid: lambda p: _aten.hardsigmoid_backward,
    F.silu: lambda p: _aten.silu_backward,
    F.mish: lambda p: _aten.mish_backward,
    F.gelu: lambda p: lambda g, x: _aten.gelu_backward(g, x, approximate=p["approximate"]),
    F.leaky_relu: lambda p: lambda g, x: _aten.leaky_relu_backward(g, x, p["negative_slope"], False),
    F.softplus: lambda p: lambda g, x: _aten.softplus_backward(g, x, p["beta"], p["threshold"]),
    F.elu: lambda p: lambda g, x: _aten.elu_backward(g, p["alpha"], 1, 1, False, x),
}


def _formula(func: Callable[..., Any], rest: tuple, opts: dict[str, Any]) -> Callable[[Tensor, Tensor], Tensor] | None:
    """``(grad_out, x) -> grad_in`` of ``func`` called with ``rest`` and ``opts`` after its input."""
    make = _FORMULAS.get(func)
    if make is None:
        return None
    names = _PARAMS.get(func, ())
    return make({**{k: _DEFAULTS[k] for k in names}, **dict(zip(names, rest)), **opts})
