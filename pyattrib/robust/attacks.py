"""Gradient attacks: FGSM (Goodfellow et al., 2015) and PGD (Madry et al., 2018).

Both are transforms: ``fgsm(model, ...)`` returns an attack, and
``attack(inputs, epsilon, target=...)`` returns perturbed inputs in the structure of
``inputs``. Every step is one batched gradient of the summed per-example loss (the
gradient kernel of :mod:`pyattrib._core.kernel`), with no loop over examples; the model is
evaluated with its batch norms frozen and left as found.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._core.call import Call, prepare
from .._core.errors import ArgumentError, check_count
from .._core.inputs import TensorOrTuple
from .._core.kernel import along_rows, gradient_of_sum
from .._core.layout import feeder
from .._core.state import evaluating
from .._core.targets import TargetLike

LossFn = Callable[[Tensor, Any], Tensor]
NORMS = ("Linf", "L2")
# gradients smaller than this leave their input element unchanged (Captum's rule)
ZERO_GRADIENT = 1e-6


def fgsm(
    model: Callable[..., Any],
    *,
    loss_fn: LossFn | None = None,
    lower_bound: float = -math.inf,
    upper_bound: float = math.inf,
    targeted: bool = False,
) -> Callable[..., TensorOrTuple]:
    r"""Fast gradient sign method: one signed gradient step on the loss.

    .. math:: \tilde x = \mathrm{clip}_{[l, u]}\big(x \pm \epsilon\, m \odot \mathrm{sign}(\nabla_x L(f(x), y))\big)

    with ``+`` (raise the loss of ``target``) or, ``targeted=True``, ``-`` (lower the loss of
    the ``target`` the attack aims for); ``m`` is the optional ``mask`` (1 where the input
    may change). Elements whose gradient is below 1e-6 in magnitude are left unchanged.
    ``loss_fn(outputs, target)`` returns one loss per example or a total; without it the loss
    is ``-log(output[target])`` (the model outputs probabilities). Call as ``(inputs,
    epsilon, *, target=None, additional_forward_args=None, mask=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        loss_fn: ``loss_fn(outputs, target)`` returning one loss per example or a total; default
            ``-log(output[target])`` (the model outputs probabilities).
        lower_bound: Smallest value an input element may take after the attack.
        upper_bound: Largest value an input element may take after the attack.
        targeted: Lower the loss of ``target`` (steer towards it) instead of raising it.

    Returns:
        A function ``(inputs, epsilon, *, target=None, additional_forward_args=None, mask=None) ->
        perturbed inputs``.

    References:
        - Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
          https://arxiv.org/abs/1412.6572

    Example:
        >>> attack = pa.robust.fgsm(model, loss_fn=torch.nn.functional.cross_entropy)
        >>> attack(x, 0.1, target=y).shape
        torch.Size([4, 8])
    """
    step = _step(model, loss_fn, targeted)

    def attack(
        inputs: TensorOrTuple, epsilon: float, *, target: TargetLike = None, additional_forward_args: Any = None,
        mask: TensorOrTuple | None = None,
    ) -> TensorOrTuple:  # fmt: skip
        call = prepare(inputs, target, additional_forward_args, method="fgsm")
        masks = _masks(mask, call)
        with evaluating(model):
            moved = step(call, call.inputs, epsilon, masks, target)
        return call.restore([m.clamp(lower_bound, upper_bound).detach() for m in moved])

    return attack


def pgd(
    model: Callable[..., Any],
    *,
    loss_fn: LossFn | None = None,
    lower_bound: float = -math.inf,
    upper_bound: float = math.inf,
    norm: str = "Linf",
    step_size: float = 0.01,
    steps: int = 20,
    random_start: bool = False,
    targeted: bool = False,
) -> Callable[..., TensorOrTuple]:
    r"""Projected gradient descent: ``steps`` FGSM steps of ``step_size``, each projected back
    onto the ball of ``radius`` around the input and clipped to ``[lower_bound, upper_bound]``.

    .. math:: x_{t+1} = \mathrm{clip}_{[l, u]}\big(\Pi_{\lVert \delta \rVert \le r}
              (x_t \pm \alpha\, m \odot \mathrm{sign}\,\nabla L(f(x_t), y))\big)

    ``norm="Linf"`` clamps each element of :math:`\delta = x_t - x` to ``[-r, r]``;
    ``norm="L2"`` rescales each example's :math:`\delta` to norm at most ``r`` (the step is
    the sign step in both, as in Captum). ``random_start=True`` starts from a uniform point
    of the ball (drawn from ``generator``), clipped to the bounds. Call as ``(inputs, radius,
    *, target=None, additional_forward_args=None, mask=None, generator=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        loss_fn: ``loss_fn(outputs, target)`` returning one loss per example or a total; default
            ``-log(output[target])`` (the model outputs probabilities).
        lower_bound: Smallest value an input element may take after the attack.
        upper_bound: Largest value an input element may take after the attack.
        norm: ``"Linf"`` (clamp each element of the step) or ``"L2"`` (rescale each example's step).
        step_size: The size of each signed gradient step.
        steps: The number of steps.
        random_start: Start from a uniform point of the ball (drawn from the call's ``generator``).
        targeted: Lower the loss of ``target`` (steer towards it) instead of raising it.

    Returns:
        A function ``(inputs, radius, *, target=None, additional_forward_args=None, mask=None,
        generator=None) -> perturbed inputs``.

    References:
        - Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models Resistant to
          Adversarial Attacks", ICLR 2018. https://arxiv.org/abs/1706.06083

    Example:
        >>> attack = pa.robust.pgd(model, loss_fn=torch.nn.functional.cross_entropy, steps=5)
        >>> attack(x, 0.1, target=y).shape
        torch.Size([4, 8])
    """
    if norm not in NORMS:
        raise ArgumentError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    check_count("steps", steps, minimum=0)
    step = _step(model, loss_fn, targeted)

    def attack(
        inputs: TensorOrTuple, radius: float, *, target: TargetLike = None, additional_forward_args: Any = None,
        mask: TensorOrTuple | None = None, generator: torch.Generator | None = None,
    ) -> TensorOrTuple:  # fmt: skip
        call = prepare(inputs, target, additional_forward_args, method="pgd")
        masks = _masks(mask, call)
        xs = tuple(x.detach() for x in call.inputs)
        current = xs
        if random_start:
            current = tuple(
                (x + ball_point(x, radius, norm, generator) * m).clamp(lower_bound, upper_bound)
                for x, m in zip(xs, masks)
            )
        with evaluating(model):
            for _ in range(steps):
                moved = step(call, current, step_size, masks, target)
                current = tuple(
                    (x + project(q - x, radius, norm)).clamp(lower_bound, upper_bound).detach()
                    for x, q in zip(xs, moved)
                )
        return call.restore(current)

    return attack


def _step(model: Callable[..., Any], loss_fn: LossFn | None, targeted: bool):
    """One signed gradient step of size ``epsilon`` from ``xs`` (unbounded)."""
    sign = -1.0 if targeted else 1.0

    def step(
        call: Call, xs: tuple[Tensor, ...], epsilon: float, masks: tuple[Any, ...], target: TargetLike
    ) -> tuple[Tensor, ...]:
        grads = gradient_of_sum(lambda *rows: loss(model, loss_fn, call, rows, target), xs)
        return tuple(
            torch.where(g.abs() > ZERO_GRADIENT, x + sign * epsilon * torch.sign(g) * m, x)
            for x, g, m in zip(xs, grads, masks)
        )

    return step


def loss(
    model: Callable[..., Any], loss_fn: LossFn | None, call: Call, rows: tuple[Tensor, ...], target: TargetLike
) -> Tensor:
    """The summed loss of the batch: ``loss_fn(outputs, target)``, or ``-log`` of the target's output."""
    out = feeder(model, rows, backward=True)(*rows, *call.args.values)
    if loss_fn is not None:
        return loss_fn(out, target).sum()
    return call.target.select(-torch.log(out)).sum()


def project(delta: Tensor, radius: float, norm: str) -> Tensor:
    """``delta`` moved onto the ball of ``radius``: clamped (Linf) or rescaled per example (L2)."""
    if norm == "Linf":
        return delta.clamp(-radius, radius)
    return torch.renorm(delta, 2, 0, radius)


def ball_point(x: Tensor, radius: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A uniform random point of the ball of ``radius`` per example of ``x``."""
    device = generator.device if generator is not None else x.device
    if norm == "Linf":
        u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        return u * radius * 2 - radius
    u = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    direction = torch.nn.functional.normalize(u.reshape(len(u), -1)).reshape(u.shape)
    length = torch.rand(len(u), generator=generator, device=device).to(x.device, x.dtype) ** (1.0 / x[0].numel())
    return along_rows(length * radius, x) * direction


def _masks(mask: TensorOrTuple | None, call: Call) -> tuple[Any, ...]:
    if mask is None:
        return (1,) * len(call.inputs)
    was_tuple = isinstance(mask, (tuple, list))
    ms = tuple(mask) if was_tuple else (mask,)
    if len(ms) != len(call.inputs):
        raise ArgumentError(f"mask has {len(ms)} tensors but inputs has {len(call.inputs)}; pass one per input")
    for j, (m, x) in enumerate(zip(ms, call.inputs)):  # each mask broadcasts against its own input, as Captum's
        where = f"mask[{j}]" if was_tuple else "mask"
        if not isinstance(m, Tensor):
            raise TypeError(f"{where} is a {type(m).__name__}; pass a torch.Tensor of 0s and 1s")
        try:
            fits = torch.broadcast_shapes(m.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ArgumentError(
                f"{where} has shape {tuple(m.shape)}, which does not broadcast to its input's {tuple(x.shape)}; "
                "pass a mask shaped like the input, or like one example"
            )
    return tuple(m.to(x.device, x.dtype) for m, x in zip(ms, call.inputs))
