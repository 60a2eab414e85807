"""Explanation infidelity (Yeh et al., 2019, https://arxiv.org/abs/1901.09392)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from .._core.call import prepare
from .._core.errors import ArgumentError, check_batch_size, check_count, renamed
from .._core.inputs import BaselineLike, TensorOrTuple, as_tuple, matching_attributions, restore
from .._core.perturb import evaluate_rows
from .._core.state import evaluating
from .._core.targets import TargetLike

PerturbFunc = Callable[..., Any]


@renamed(n_perturb_samples="n_samples")
def infidelity(
    f: Callable[..., Any],
    perturb_func: PerturbFunc,
    *,
    n_samples: int = 10,
    batch_size: int | None = None,
    normalize: bool = False,
) -> Callable[..., Tensor]:
    r"""Infidelity of attributions: how badly ``perturbation · attribution`` predicts the output drop.

    .. math::
        \mathrm{INFD}(\Phi, f, x) = \mathbb{E}_{I \sim \mu_I}\big[(I^\top \Phi(f, x) - (f(x) - f(x - I)))^2\big]

    estimated with ``n_samples`` draws per example. ``perturb_func(inputs[, baselines])``
    returns ``(perturbations I, perturbed inputs x - I)`` (a tensor each, or tuples for tuple
    inputs): Captum's protocol, so Captum's perturbation functions work as they are;
    :func:`perturbations_from` builds one from a function returning perturbed inputs only.
    It is called on each example repeated in place (row ``i * s + k``), ``s`` samples at a
    time. ``normalize=True`` first rescales the attributions by the optimal
    :math:`\beta = E[I^\top\Phi\,\Delta f] / E[(I^\top\Phi)^2]`, making the score invariant
    to their scale.

    ``f(x)`` is evaluated once; the perturbed copies go through the model without autograd in
    chunks of at most ``batch_size`` rows (whole samples of the batch; ``None``: pyattrib's
    budget rule). Call as ``(inputs, attributions, baselines=None, *, target=None,
    additional_forward_args=None)``; returns one score per example, shape ``(N,)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        perturb_func: ``perturb_func(inputs[, baselines]) -> (perturbations I, perturbed inputs x - I)``
            (Captum's protocol; :func:`perturbations_from` builds one).
        n_samples: Random perturbations drawn per example.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        normalize: First rescale the attributions by the optimal :math:`\beta`, making the score
            invariant to their scale.

    Returns:
        A function ``(inputs, attributions, baselines=None, *, target=None,
        additional_forward_args=None, generator=None) -> Tensor`` of one score per example, shape
        ``(N,)``.

    References:
        - Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
          Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392

    Example:
        >>> infd = pa.metrics.infidelity(model, pa.metrics.perturbations_from(lambda x: x + 0.1 * torch.randn_like(x)))
        >>> attr = pa.integrated_gradients(model)(x, target=y)
        >>> infd(x, attr, target=y).shape
        torch.Size([4])
    """
    check_count("n_samples", n_samples)
    check_batch_size(batch_size)
    if not callable(perturb_func):
        raise TypeError("perturb_func must be a callable (inputs[, baselines]) -> (perturbations, perturbed_inputs)")

    def measure(
        inputs: TensorOrTuple,
        attributions: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method="infidelity", differentiable=False)
        attrs = matching_attributions(attributions, call.inputs)
        base = None if baselines is None else call.baselines(baselines)
        n, total = call.n, n_samples
        per = max(1, min(total, call.chunk(batch_size) // n))
        everyone = torch.arange(n, device=call.device)
        # Captum's order: chunks of `per` samples of every example, the rows of a chunk example-major
        examples = torch.cat([everyone.repeat_interleave(min(per, total - s)) for s in range(0, total, per)])
        dots: list[Tensor] = []

        def build(rows: Tensor) -> tuple[Tensor, ...]:
            c = len(rows) // n
            perts, perturbed = _perturb(perturb_func, call.inputs, base, call.was_tuple, c)
            dots.append(cast(Tensor, sum((a.repeat_interleave(c, 0) * p).reshape(n * c, -1).sum(1)
                                         for a, p in zip(attrs, perts))))  # fmt: skip
            return perturbed

        with evaluating(f):
            fx = evaluate_rows(f, call, lambda rows: call.inputs, everyone, n)
            moved = evaluate_rows(f, call, build, examples, n * per)
        dot, drop = torch.cat(dots).double(), (fx.index_select(0, examples) - moved).double()
        terms = torch.stack([dot * dot, dot * drop, drop * drop]) if normalize else ((dot - drop) ** 2)[None]
        sums = torch.zeros(len(terms), n, device=call.device, dtype=torch.float64).index_add_(1, examples, terms)
        if normalize:
            beta = sums[1] / torch.where(sums[0] == 0, torch.ones_like(sums[0]), sums[0])
            value = beta * beta * sums[0] - 2 * beta * sums[1] + sums[2]
        else:
            value = sums[0]
        return (value / total).to(fx.dtype)

    return measure


def _perturb(
    perturb_func: PerturbFunc, xs: tuple[Tensor, ...], base: tuple[Tensor, ...] | None, was_tuple: bool, c: int
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``perturb_func`` on every example repeated ``c`` times in place; checked results."""
    n = xs[0].shape[0]
    expanded = restore([x.repeat_interleave(c, 0) for x in xs], was_tuple)
    if base is None:
        result = perturb_func(expanded)
    else:
        rows = [b.repeat_interleave(c, 0) if b.shape[0] == n and n > 1 else b for b in base]
        result = perturb_func(expanded, restore(rows, was_tuple))
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise ArgumentError(
            "perturb_func must return (perturbations, perturbed_inputs); to return perturbed inputs only, "
            "wrap it: pa.metrics.perturbations_from(perturb_func)"
        )
    perts, perturbed = (as_tuple(r, name)[0] for r, name in zip(result, ("perturbations", "perturbed inputs")))
    if len(perts) != len(xs) or len(perturbed) != len(xs):
        raise ArgumentError(f"perturb_func returned {len(perts)} perturbations for {len(xs)} inputs; return one each")
    for j, (p, q, x) in enumerate(zip(perts, perturbed, xs)):
        want = (n * c, *x.shape[1:])
        if tuple(p.shape) != want or tuple(q.shape) != want:
            raise ArgumentError(
                f"perturb_func returned shapes {tuple(p.shape)} and {tuple(q.shape)} for input {j}; both must be "
                f"{want}, the shape of the repeated inputs it was given"
            )
    to = xs[0]
    return tuple(p.to(to.device) for p in perts), tuple(q.to(x.device, x.dtype) for q, x in zip(perturbed, xs))


def perturbations_from(
    perturb_inputs: Callable[..., TensorOrTuple], multiply_by_inputs: bool = True
) -> Callable[..., tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]:
    r"""Turn ``perturb_inputs(inputs[, baselines]) -> perturbed`` into an infidelity perturb_func.

    The perturbation is :math:`I = x - \tilde x`, or with ``multiply_by_inputs=True`` (for
    global attributions, which already multiply by ``x - x'``) :math:`I = (x - \tilde x) /
    (x - x')` (``x'``: the baselines, 0 when none; 1 is used where the denominator is 0).
    Captum's ``infidelity_perturb_func_decorator``.

    Args:
        perturb_inputs: ``perturb_inputs(inputs[, baselines]) -> perturbed inputs``.
        multiply_by_inputs: Divide the perturbation by ``x - x'`` (for global attributions, which
            already multiply by it).

    Returns:
        A perturbation function ``(inputs[, baselines]) -> (perturbations, perturbed inputs)`` for
        :func:`infidelity`.

    References:
        - Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
          Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392

    Example:
        >>> perturb = pa.metrics.perturbations_from(lambda x: x + 0.1, multiply_by_inputs=False)
        >>> perturbations, perturbed = perturb(x)
        >>> torch.allclose(perturbations[0], -0.1 * torch.ones_like(x))
        True
    """

    def perturb_func(
        inputs: TensorOrTuple, baselines: BaselineLike = None
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        given = perturb_inputs(inputs) if baselines is None else perturb_inputs(inputs, baselines)
        perturbed = as_tuple(given, "perturbed inputs")[0]
        xs = as_tuple(inputs)[0]
        given_refs: tuple[Any, ...] = (
            tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
        )
        refs = tuple(0.0 if b is None else b for b in given_refs)
        perts: list[Tensor] = []
        for x, q, b in zip(xs, perturbed, refs):
            if multiply_by_inputs:
                denom = x - b
                perts.append((x - q) / torch.where(denom == 0, torch.ones_like(denom), denom))
            else:
                perts.append(x - q)
        return tuple(perts), perturbed

    return perturb_func
