"""Leave the user's model exactly as found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def evaluating(model: Callable[..., Any], create_graph: bool = False) -> Iterator[None]:
    """The context of one attribution call.

    - Grad mode is ``create_graph``. Gradients are taken with torch.func, which works
      under ``no_grad``; with ``create_graph=False`` the result is detached, so no graph
      (and no activation memory) outlives a chunk. With ``True`` attributions stay
      differentiable with respect to the parameters, for losses on attributions.
    - torch.func never touches ``.grad`` or ``requires_grad``, and modules in eval mode
      do not write their buffers, so only the buffers of modules in training mode
      (BatchNorm statistics) are copied, and written back in ``finally``.
    """
    module = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    saved = []
    if isinstance(module, nn.Module):
        saved = [
            (b, b.detach().clone())
            for m in module.modules()
            if m.training
            for b in m.buffers(recurse=False)
            if b is not None
        ]
    try:
        with torch.set_grad_enabled(create_graph):
            yield
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)
