"""Dataset-level feature ablation: how much does a metric over the whole dataset change
when one feature group is ablated in every example?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.budget import FORWARD_BUDGET, rows_per_chunk
from .._core.errors import ArgumentError, check_batch_size
from .._core.inputs import BaselineLike
from .._core.perturb import FeatureMask, forward_versions
from .._core.progress import progress as show
from .._core.state import evaluating

NEED_ATTR, NEED_FORWARD, NO_FORWARD = 0, 1, 2


def concat_outputs(accum: Tensor | None, output: Tensor, inputs: Any) -> Tensor:
    """The default ``reduce``: every batch's outputs, concatenated."""
    return output if accum is None else torch.cat([accum, output])


def dataloader_attribution(
    f: Callable[..., Any],
    *,
    reduce: Callable[[Any, Tensor, tuple], Any] | None = None,
    to_metric: Callable[[Any], Tensor] | None = None,
    perturbations_per_pass: int | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    flat_metric: bool = False,
) -> Callable[..., Any]:
    r"""Feature ablation over a whole dataset: :math:`\phi_g = m(D) - m(D_{g \leftarrow b})`, where
    ``m = to_metric(reduce(...))`` folds the model's outputs over every batch of the loader and
    :math:`D_{g \leftarrow b}` is the dataset with feature group ``g`` set to its baseline in
    every example (Captum's ``DataLoaderAttribution`` over ``FeatureAblation``).

    Call as ``(loader, baselines=None, *, input_roles=None, feature_mask=None,
    return_input_shape=True)``. Each batch is a tensor or a tuple of tensors; ``input_roles``
    says per tensor whether it is attributed (0), only passed to the model (1), or only to
    ``reduce`` (2, e.g. labels). ``feature_mask`` gives group ids per attributed tensor with a
    first dimension of 1 (default: every element its own group); ``baselines`` are numbers or
    tensors with a first dimension of 1. ``reduce(accum, outputs, batch_inputs)`` folds one
    batch (default: concatenate the outputs); ``to_metric(accum)`` makes the metric tensor.
    The result has shape ``(*metric.shape, *input.shape[1:])`` per attributed input, or
    ``(*metric.shape, n_groups)`` with ``return_input_shape=False`` (a scalar metric counts as
    shape ``(1,)``, as in Captum). ``flat_metric=True`` flattens the metric's dimensions into
    one, ``(metric.numel(), ...)``, as Captum's ``DataLoaderAttribution`` does.

    The data is read ``2 + ceil(G / perturbations_per_pass)`` times (a first batch for the
    shapes, the unperturbed pass, then the passes of ablations); within a pass all ablations of
    a batch go through the model together, ``batch_size`` rows at a time. The default
    ``perturbations_per_pass=None`` ablates every group in one pass (Captum: one per pass).

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        reduce: ``reduce(accum, output, inputs) -> accum`` folds the model's outputs over the batches.
        to_metric: ``to_metric(accum)`` makes the metric tensor.
        perturbations_per_pass: Feature groups ablated per pass over the loader (``None``: all in one
            pass).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        flat_metric: Flatten the metric's dimensions into one, as Captum's ``DataLoaderAttribution``
            does.

    Returns:
        A function ``(loader, baselines=None, *, input_roles=None, feature_mask=None,
        return_input_shape=True) -> attributions``.

    Example:
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=2)
        >>> total = lambda acc, out, inputs: out.sum(0) if acc is None else acc + out.sum(0)
        >>> ablate = pa.data.dataloader_attribution(model, reduce=total)
        >>> [a.shape for a in ablate(loader)]
        [torch.Size([3, 8])]
    """
    check_batch_size(batch_size)
    if perturbations_per_pass is not None and perturbations_per_pass < 1:
        raise ArgumentError(f"perturbations_per_pass must be None or a positive int, got {perturbations_per_pass}")
    fold = reduce or concat_outputs

    def attribute(loader: Any, baselines: BaselineLike = None, *, input_roles: Sequence[int] | None = None,
                  feature_mask: Any = None, return_input_shape: bool = True) -> Any:  # fmt: skip
        first_batch = next(iter(loader))
        was_tuple, first = isinstance(first_batch, (tuple, list)), _as_inputs(first_batch)
        roles = tuple(input_roles) if input_roles else (NEED_ATTR,) * len(first)
        if len(roles) != len(first) or NEED_ATTR not in roles:
            raise ArgumentError(
                f"input_roles has {len(roles)} entries for batches of {len(first)} tensors, and must attribute at "
                "least one (role 0)"
            )
        attributed = [j for j, r in enumerate(roles) if r == NEED_ATTR]
        masks, n_groups = _masks(feature_mask, [first[j] for j in attributed])
        bases = _baselines(baselines, [first[j] for j in attributed])
        per_pass = perturbations_per_pass or n_groups
        with evaluating(f):
            base = _pass(loader, [None], roles, attributed, masks, bases, show_progress)[0]
            metrics: list[Tensor] = []
            for start in range(0, n_groups, per_pass):
                groups = list(range(start, min(start + per_pass, n_groups)))
                metrics += _pass(loader, groups, roles, attributed, masks, bases, show_progress)
        unique = (base[..., None] - torch.stack(metrics, -1)) if metrics else base[..., None][..., :0]
        unique = unique.reshape(1, -1) if base.dim() == 0 else unique  # a scalar metric: one row, as Captum
        unique = unique.reshape(-1, unique.shape[-1]) if flat_metric else unique
        if not return_input_shape:
            return unique
        out = [unique[..., m.reshape(-1)].reshape(*unique.shape[:-1], *m.shape[1:]) for m in masks]
        return tuple(out) if was_tuple else out[0]

    def _pass(loader: Any, groups: Sequence[int | None], roles: tuple[int, ...], attributed: list[int],
              masks: list[Tensor], bases: list[Any], progress: bool) -> list[Tensor]:  # fmt: skip
        """One pass over the data: the metric of each ablation in ``groups`` (None: none)."""
        states: list[Any] = [None] * len(groups)
        batches = show(loader, progress, "DataLoader attribution")
        with torch.no_grad():
            for batch in batches:
                xs = _as_inputs(batch)
                versions = [_ablated(xs, attributed, masks, bases, g) for g in groups]
                outputs = _forward(versions, roles, len(xs[0]))
                for k, (version, out) in enumerate(zip(versions, outputs)):
                    states[k] = fold(states[k], out, version)
        results = [to_metric(s) if to_metric else s for s in states]
        for r in results:
            if not isinstance(r, Tensor):
                raise ArgumentError(f"the metric must be a tensor, got {type(r).__name__}; return one from to_metric")
        return results

    def _forward(versions: list[tuple[Tensor, ...]], roles: tuple[int, ...], n: int) -> list[Tensor]:
        """The model's outputs for every version of one batch, several versions per call."""
        fed = [tuple(x for x, r in zip(v, roles) if r != NO_FORWARD) for v in versions]
        step = max(1, rows_per_chunk(batch_size, fed[0], n, FORWARD_BUDGET) // n)
        outs: list[Tensor] = []
        for s in range(0, len(fed), step):
            group = fed[s : s + step]
            out, _ = forward_versions(f, group, n)
            outs += list(out.split(n)) if len(group) > 1 else [out]
        return outs

    return attribute


def _as_inputs(batch: Any) -> tuple[Tensor, ...]:
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def _masks(feature_mask: Any, xs: list[Tensor]) -> tuple[list[Tensor], int]:
    """The feature groups of the attributed inputs (the core's ``FeatureMask``, ids as given),
    shared by every batch."""
    if feature_mask is not None:
        given = list(feature_mask) if isinstance(feature_mask, (tuple, list)) else [feature_mask]
        if len(given) != len(xs):
            raise ArgumentError(f"feature_mask has {len(given)} tensors for {len(xs)} attributed inputs; give one each")
        for j, m in enumerate(given):
            if m.shape[0] != 1:
                raise ArgumentError(f"feature_mask[{j}] must have a first dimension of 1 (shared by every batch)")
        feature_mask = tuple(given)
    groups = FeatureMask(feature_mask, tuple(xs), ids_rule="given")
    return [m.long() for m in groups.ids], groups.n_features


def _baselines(baselines: BaselineLike, xs: list[Tensor]) -> list[Any]:
    given = list(baselines) if isinstance(baselines, (tuple, list)) else [baselines] * len(xs)
    if len(given) != len(xs):
        raise ArgumentError(f"baselines has {len(given)} entries for {len(xs)} attributed inputs; give one each")
    for j, b in enumerate(given):
        if isinstance(b, Tensor) and b.dim() > 0 and b.shape[0] != 1:
            raise ArgumentError(f"baselines[{j}] must have a first dimension of 1 (it is used for every batch)")
    return [0.0 if b is None else b for b in given]


def _ablated(xs: tuple[Tensor, ...], attributed: list[int], masks: list[Tensor], bases: list[Any],
             group: int | None) -> tuple[Tensor, ...]:  # fmt: skip
    if group is None:
        return xs
    out = list(xs)
    for j, m, b in zip(attributed, masks, bases):
        hit = m == group
        if bool(hit.any()):
            out[j] = torch.where(hit, torch.as_tensor(b, device=xs[j].device), xs[j])  # float b: ints too
    return tuple(out)
