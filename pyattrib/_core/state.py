"""Leave the user's model exactly as found."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


def transformed() -> bool:
    """Whether we run under torch.compile or inside a torch.func transform (vmap, grad),
    where eager-only shortcuts (``autograd.grad``, early stops, channels-last rows) do not apply."""
    return torch.compiler.is_compiling() or torch._C._functorch.maybe_current_level() is not None


def submodules(module: nn.Module) -> list[nn.Module]:
    """``module`` and every module inside it, as ``module.modules()`` gives them but without
    the names it builds: this walk runs on every call, so it is kept cheap (~5 us for 40
    modules, a quarter of ``modules()``). A shared module may come twice."""
    found = [module]
    for m in found:  # the list grows while it is read: a breadth-first walk
        if m._modules:
            found += [c for c in m._modules.values() if c is not None]
    return found


def model_of(f: Callable[..., Any]) -> nn.Module | None:
    """The nn.Module behind ``f`` (the first of :func:`modules_of`)."""
    found = modules_of(f)
    return found[0] if found else None


def modules_of(f: Any, depth: int = 3) -> list[nn.Module]:
    """The nn.Modules behind a callable: itself, a bound method's owner, the model a
    pyattrib wrapper was built from, a ``functools.partial``'s function and arguments, and
    the modules a function or lambda closes over or names as globals (``lambda t: m(t)``),
    searched ``depth`` callables deep."""
    if isinstance(f, nn.Module):
        return [f]
    if depth == 0 or f is None:
        return []
    inner = getattr(f, "__wrapped_module__", None) or getattr(f, "__self__", None)
    if inner is not None:
        return modules_of(inner, depth)
    candidates: list[Any] = []
    if isinstance(f, functools.partial):
        candidates = [f.func, *f.args, *f.keywords.values()]
    elif inspect.isfunction(f):
        candidates = _contents(f.__closure__)
        candidates += [f.__globals__[n] for n in f.__code__.co_names if n in f.__globals__]
        candidates.append(getattr(f, "__wrapped__", None))
    elif callable(f) and hasattr(f, "__dict__"):  # a callable object holding the model
        candidates = list(vars(f).values())
    found: list[nn.Module] = []
    for c in candidates:
        if isinstance(c, nn.Module) or callable(c):
            found += [m for m in modules_of(c, depth - 1) if all(m is not k for k in found)]
    return found


@contextmanager
def in_eval(model: nn.Module) -> Iterator[None]:
    """``model`` and every module in it in eval mode for the block; afterwards each module gets
    back its *own* training flag (``model.train()`` would wake a BatchNorm the user froze in eval
    inside a training model). Restored in ``finally``, an exception included."""
    with kept_flags(model):
        model.eval()
        yield


@contextmanager
def kept_flags(model: nn.Module) -> Iterator[None]:
    """Each module's own ``training`` flag as found, restored after the block whatever it did."""
    flags = [(m, m.training) for m in submodules(model)]
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _contents(closure: tuple | None) -> list[Any]:
    out = []
    for cell in closure or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return out


class _FrozenNorms(TorchFunctionMode):
    """For callables whose modules could not be found: batch norm with running statistics
    runs in eval mode, so the statistics are never updated, and its step counter
    (``num_batches_tracked += 1``, a 0-d integer tensor bumped in place) is not advanced."""

    NAMES = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is F.batch_norm:
            bound = dict(zip(self.NAMES, args), **kwargs)
            if bound.get("running_mean") is not None and bound.get("training"):
                return func(**{**bound, "training": False})
        if func is torch.Tensor.add_ and _is_counter(args[0]):
            return args[0]
        return func(*args, **kwargs)


def _is_counter(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 0 and t.dtype == torch.long and not t.requires_grad


@contextmanager
def evaluating(model: Callable[..., Any], create_graph: bool = False) -> Iterator[None]:
    """The context of one attribution call.

    - Grad mode is ``create_graph``. Gradients are taken with torch.func, which works
      under ``no_grad``; with ``create_graph=False`` the result is detached, so no graph
      (and no activation memory) outlives a chunk. With ``True`` attributions stay
      differentiable with respect to the parameters, for losses on attributions.
    - The modules are found behind any callable (:func:`modules_of`); where none can be
      found, batch norm calls are made in eval mode all the same.
    - Modules that hold buffers and are in training mode (BatchNorm and other running
      statistics) are evaluated in eval mode: batch statistics over an expanded batch
      would couple the examples, and updating running statistics would change the
      model. Their flags are restored in ``finally``. Dropout keeps its mode.
    - torch.func never touches ``.grad`` or ``requires_grad``.
    """
    found = modules_of(model)
    switched = [
        m for top in found for m in submodules(top) if m.training and any(b is not None for b in m._buffers.values())
    ]
    switched = list({id(m): m for m in switched}.values())
    try:
        for m in switched:
            m.training = False
        with torch.set_grad_enabled(create_graph), _FrozenNorms() if not found else contextlib.nullcontext():
            yield
    finally:
        for m in switched:
            m.training = True
