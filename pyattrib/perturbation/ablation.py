"""Feature ablation and feature permutation: each feature group replaced by its baseline, or permuted
across the batch, and the change of the output recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._core.attributor import FEATURE_PER_EXAMPLE, Attributor
from .._core.call import Call, prepare
from .._core.calls import FeatureCall, PermutationCall
from .._core.errors import ArgumentError, check_batch_size
from .._core.inputs import BaselineLike
from .._core.perturb import (
    FeatureMask,
    evaluate,
    example_rows,
    prepare_perturbation,
    reference_outputs,
    shared_mask,
    squeeze_outputs,
)
from .._core.state import evaluating
from .._core.targets import TargetLike

Forward = Callable[..., Any]




def _group(mask: FeatureMask, j: int, g: int) -> Tensor:
    return mask.ids[j] == g


def _ablate(
    f: Forward,
    call: Call,
    mask: FeatureMask,
    replace: Callable[[int, Tensor, Tensor, Tensor], Tensor],
    batch_size: int | None,
    show_progress: bool,
    desc: str,
) -> tuple[Tensor, ...]:
    """Attribution ``f(x) - f(x with feature p replaced)`` spread over feature ``p``'s elements.

    ``replace(j, rows_of_input_j, selected, p)`` gives the replaced values of input ``j``.
    """
    reference = reference_outputs(f, call, call.inputs)
    shared_mask(mask, reference.whole)

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        rows = []
        for j, x in enumerate(call.inputs):
            xr = x.index_select(0, i)
            hit = example_rows(mask.ids[j], i) == p.reshape(-1, *[1] * (x.dim() - 1))
            rows.append(torch.where(hit, replace(j, xr, i, p), xr))
        return tuple(rows)

    out = evaluate(f, call, build, mask.n_features, batch_size, show_progress, desc, whole=reference.whole)
    diff = (reference.values[None] - out.values).permute(1, 2, 0)  # (N, K, F); N = 1 for a whole-batch output
    return squeeze_outputs(mask.spread(diff), out.shape, out.whole)


def feature_ablation(
    f: Forward, *, batch_size: int | None = None, show_progress: bool = False
) -> Attributor[FeatureCall]:
    r"""Feature ablation: replace one feature group at a time by its baseline,
    :math:`\phi_g = f(x) - f(x_{g \leftarrow x'})`, and give every element of group ``g`` that value.

    ``feature_mask`` (per call) holds integer group ids per input, shaped like one example
    (shared) or like the input (per example); equal ids in different inputs form one group.
    Without it every scalar is its own group. All groups of all examples are evaluated in
    batched forwards of at most ``batch_size`` rows (Captum: one group per forward by
    default). Call as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
    feature_mask=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.feature_ablation(model)(x, target=y).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "feature_ablation"
        )
        with evaluating(f):
            attrs = _ablate(
                f,
                call,
                mask,
                lambda j, xr, i, p: example_rows(base[j], i),
                batch_size,
                show_progress,
                "Feature Ablation attribution",
            )
        return call.restore(attrs)

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, name="feature_ablation")


def random_permutation(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """A permutation of ``0..n-1`` that moves at least one element (for ``n > 1``)."""
    while True:
        perm = torch.randperm(n, generator=generator, device=generator.device if generator else device).to(device)
        if n < 2 or not bool((perm == torch.arange(n, device=device)).all()):
            return perm


def feature_permutation(
    f: Forward,
    *,
    perm_func: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[PermutationCall]:
    r"""Permutation feature importance (Breiman, 2001): shuffle one feature group across the
    batch, :math:`\phi_g = f(x) - f(x_{g \leftarrow \pi(x)_g})`.

    ``perm_func(x, group_mask) -> x_permuted`` replaces the default (a random permutation of
    the batch per group, drawn from ``generator``), which needs a batch of at least 2. Call as
    ``(inputs, *, target=None, additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation from the call's generator.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None,
        feature_mask=None, generator=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Fisher, Rudin and Dominici, "All Models are Wrong, but Many are Useful: Learning a Variable's
          Importance by Studying an Entire Class of Prediction Models Simultaneously", JMLR 2019.
          https://arxiv.org/abs/1801.01489

    Example:
        >>> pa.feature_permutation(model)(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="feature_permutation", differentiable=False)
        if call.n < 2 and perm_func is None:
            raise ArgumentError(
                "feature_permutation needs a batch of at least 2 examples to permute across (or a perm_func)"
            )
        mask = FeatureMask(feature_mask, call)
        if perm_func is None:
            perms = torch.stack([random_permutation(call.n, call.device, generator) for _ in range(mask.n_features)])

            def replace(j: int, xr: Tensor, i: Tensor, p: Tensor) -> Tensor:
                return call.inputs[j].index_select(0, perms[p, i])
        else:
            permuted = [
                [perm_func(x, _group(mask, j, g)) for j, x in enumerate(call.inputs)] for g in range(mask.n_features)
            ]
            stacked = [torch.stack([permuted[g][j] for g in range(mask.n_features)]) for j in range(len(call.inputs))]

            def replace(j: int, xr: Tensor, i: Tensor, p: Tensor) -> Tensor:
                return stacked[j][p, i]

        with evaluating(f):
            attrs = _ablate(f, call, mask, replace, batch_size, show_progress, "Feature Permutation attribution")
        return call.restore(attrs)

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, random=True, name="feature_permutation")
