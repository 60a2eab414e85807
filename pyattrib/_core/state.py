"""Leave the user's model exactly as found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def transformed() -> bool:
    """Whether we run under torch.compile or inside a torch.func transform (vmap, grad),
    where eager-only shortcuts (``autograd.grad``, retries on error) do not apply."""
    return torch.compiler.is_compiling() or torch._C._functorch.maybe_current_level() is not None


def model_of(f: Callable[..., Any]) -> nn.Module | None:
    """The nn.Module behind ``f``: itself, a bound method's owner, or the model a pyattrib
    wrapper (truncated, overridden) was built from."""
    if isinstance(f, nn.Module):
        return f
    inner = getattr(f, "__wrapped_module__", None) or getattr(f, "__self__", None)
    return model_of(inner) if inner is not None else None


@contextmanager
def evaluating(model: Callable[..., Any], create_graph: bool = False) -> Iterator[None]:
    """The context of one attribution call.

    - Grad mode is ``create_graph``. Gradients are taken with torch.func, which works
      under ``no_grad``; with ``create_graph=False`` the result is detached, so no graph
      (and no activation memory) outlives a chunk. With ``True`` attributions stay
      differentiable with respect to the parameters, for losses on attributions.
    - Modules that hold buffers and are in training mode (BatchNorm and other running
      statistics) are evaluated in eval mode: batch statistics over an expanded batch
      would couple the examples, and updating running statistics would change the
      model. Their flags are restored in ``finally``. Dropout keeps its mode.
    - torch.func never touches ``.grad`` or ``requires_grad``.
    """
    module = model_of(model)
    switched = []
    if isinstance(module, nn.Module):
        switched = [m for m in module.modules() if m.training and next(m.buffers(recurse=False), None) is not None]
    try:
        for m in switched:
            m.training = False
        with torch.set_grad_enabled(create_graph):
            yield
    finally:
        for m in switched:
            m.training = True
