"""Captum 0.9's LRP propagation (``captum_hooks``): its tensor hooks, emulated exactly, for
:mod:`pyattrib.compat`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .rules import Rule, stabilised

VALUE = -1  # the key of a layer's input value in a captum_layer record


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
            z, vjp, *_ = torch.func.vjp(ctx.modified, *xs)
            grads = vjp(relevance / stabilised(z, ctx.eps))
        return (None, None, None, None, *grads)


def captum_layer(
    forward: Callable[..., Tensor],
    modified: Callable[..., Tensor],
    rule: Rule,
    hooked: dict[int, Tensor],
    record: dict[int, Any],
) -> Callable[..., Tensor]:
    """``forward`` with Captum's hooks (see ``captum_hooks`` in :func:`lrp`): each float input
    that no layer has hooked yet in this pass gets the input hook (multiply all its relevance by
    its value; an identity rule hands on its output relevance instead). What a hook hands on is
    kept in ``record`` by input position (Captum's relevance at the layer's input), and the
    layer's input itself under ``VALUE``."""

    def run(*args: Any, **kw: Any) -> Tensor:
        record[VALUE] = args[0] if len(args) == 1 else args  # as Layers reads a layer's input
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
