"""The backward rules of modified backpropagation, each a few lines over the pair helpers:
DeepLift's rescale rule (elementwise, softmax, max pooling), guided backpropagation,
deconvolution, and the markers that say what a rule reads (:func:`output_only`) or where it
applies (:func:`only_in_modules`). :mod:`.overrides` applies them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .pairs import Ordinary, Rule, _difference, _near, _pairs, _wide, reads_difference, unpool


def _rescaled(
    numerator: Tensor, dx: Tensor, eps: float, ordinary: Ordinary, dtype: torch.dtype, grad: Tensor | None = None
) -> Tensor:
    """``numerator / dx`` (times ``grad``, (2, n, ...), when given) for both halves, the
    ordinary gradient where ``|dx| < eps``. ``numerator`` is (2, n, ...) or one (n, ...)
    for both halves: dividing the one before multiplying by both halves saves a pass."""
    near = _near(dx, eps)
    value = numerator / (dx if near is None else torch.where(near, 1.0, dx))
    if grad is not None:
        value = grad * value
    if near is not None:
        value = torch.where(near, _pairs(ordinary()), value)
    if value.dim() == dx.dim():
        value = torch.stack([value, value])
    return value.flatten(0, 1).to(dtype)


def rescale(eps: float) -> Rule:
    """DeepLift's rescale rule: multiplier ``(y - y') / (x - x')``, the gradient where
    ``|x - x'| < eps``. Computed in at least float32, so fp16/bf16 give finite results."""

    @reads_difference
    def rule(x: Tensor, y: Tensor, grad_out: Tensor, ordinary: Ordinary) -> Tensor:
        return _rescaled(_difference(y), _difference(x), eps, ordinary, grad_out.dtype, grad=_pairs(grad_out))

    return rule


def rescale_softmax(eps: float, whole_tensor: bool = False) -> Callable[[int | None], Rule]:
    """DeepLift for an ``nn.Softmax`` module over ``dim``: rescale, then centre the
    multipliers of each softmax vector (softmax ignores a shift of its inputs, so the
    shared part of the multipliers carries no contribution). Each example is centred on
    its own, so examples do not interact. ``whole_tensor=True`` centres by the mean over
    the whole evaluated tensor, every example and reference included: Captum's handling,
    which couples the examples of a batch."""
    base = rescale(eps)

    def bind(dim: int | None) -> Rule:
        def rule(x: Tensor, y: Tensor, grad_out: Tensor, ordinary: Ordinary) -> Tensor:
            g = _wide(base(x, y, grad_out, ordinary))
            centre = g.mean() if whole_tensor or dim is None else g.mean(dim, keepdim=True)
            return (g - centre).to(grad_out.dtype)

        return rule

    return bind


def rescale_max_pool(eps: float) -> Callable[..., Tensor]:
    """DeepLift for max pooling (as Captum): the change of the pooled maximum, routed to
    the winning positions of input and reference, divided by the input change."""

    def rule(x: Tensor, y: Tensor, grad_out: Tensor, ordinary: Ordinary, idx: Tensor) -> Tensor:
        change = _difference(y)  # input half gains max(change, 0), the reference loses min(change, 0)
        g, (i, i_ref) = _pairs(grad_out), idx.unflatten(0, (2, -1))
        half = (x.shape[0] // 2, *x.shape[1:])
        routed = unpool(g[0] * change.clamp(min=0), i, half, (g[1] * change.clamp(max=0), i_ref))
        return _rescaled(routed, _difference(x), eps, ordinary, grad_out.dtype)

    return rule


def only_in_modules(rule: Any, *types: type, excluded: tuple[Any, ...] = ()) -> Any:
    """``rule`` applied only to calls made by the forward of a module of exactly one of ``types``
    (what module hooks reach, as Captum's DeepLift does), other than the ``excluded`` instances;
    elsewhere the op's ordinary gradient."""

    def limited(*args: Any, **kwargs: Any) -> Any:
        return rule(*args, **kwargs)

    limited.__dict__.update(rule.__dict__)
    limited.modules = types  # type: ignore[attr-defined]
    limited.excluded = frozenset(map(id, excluded))  # type: ignore[attr-defined]
    return limited


def output_only(rule: Rule) -> Rule:
    """Mark a rule that never reads the op's input ``x`` (it gets None): the input is then
    not kept for the backward."""
    rule.reads_input = False  # type: ignore[attr-defined]
    return rule


@output_only
def guided(x: Tensor, y: Tensor, grad_out: Tensor, ordinary: Ordinary) -> Tensor:
    """Guided backpropagation (Springenberg et al.): only positive gradients pass a ReLU
    that was active, ``relu(grad_out) * 1[y > 0]``."""
    return torch.ops.aten.threshold_backward(grad_out, y, 0).clamp_(min=0)  # in place on our own result


@output_only
def deconvolution(x: Tensor, y: Tensor, grad_out: Tensor, ordinary: Ordinary) -> Tensor:
    """Deconvolution (Zeiler & Fergus): a ReLU passes positive gradients, whatever its input."""
    return F.relu(grad_out)
