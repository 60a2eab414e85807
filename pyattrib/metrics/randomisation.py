"""The model-parameter randomisation test (Adebayo et al., 2018, https://arxiv.org/abs/1810.03292)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError
from .._core.inputs import as_tuple


@dataclass(frozen=True)
class Randomisation:
    """``layers``: the names randomised, top first; ``correlation`` (``(L, N)``): the rank
    correlation between each example's attributions under the trained model and after
    randomising every layer down to ``layers[l]`` (cascading).

    Args:
        layers: The names randomised, top first.
        correlation: ``(L, N)``: the rank correlation of each example's attributions under the trained
            model and after randomising every layer down to ``layers[l]``.

    Example:
        >>> check = pa.metrics.mprt(model, lambda m: pa.saliency(m))(x, target=y)
        >>> check.layers
        ['2', '0']
    """

    layers: list[str]
    correlation: Tensor


def ranks(values: Tensor) -> Tensor:
    """Ranks within each row of ``(N, D)`` values, ties sharing their average rank."""
    n, d = values.shape
    sorted_values, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(sorted_values, dtype=torch.long)
    starts[:, 1:] = (sorted_values[:, 1:] != sorted_values[:, :-1]).long()
    run = starts.cumsum(1) - 1 + torch.arange(n, device=values.device)[:, None] * d  # run ids, unique per row
    position = torch.arange(d, device=values.device, dtype=torch.float64).expand(n, d).reshape(-1)
    total = torch.zeros(n * d, dtype=torch.float64, device=values.device).index_add_(0, run.reshape(-1), position)
    count = torch.zeros(n * d, dtype=torch.float64, device=values.device).index_add_(
        0, run.reshape(-1), torch.ones_like(position)
    )
    average = (total / count.clamp_min(1)).index_select(0, run.reshape(-1)).reshape(n, d)
    return torch.empty_like(average).scatter_(1, order, average)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per row of two ``(N, D)`` tensors (average ranks for ties;
    0 where a row is constant).

    Args:
        a: ``(N, D)`` values.
        b: ``(N, D)`` values.

    Returns:
        Tensor: the correlation per row, shape ``(N,)``.

    Example:
        >>> pa.metrics.spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 3.0, 2.0]]))
        tensor([0.5000], dtype=torch.float64)
    """
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-30)


def mprt(
    model: nn.Module,
    explain: Callable[[nn.Module], Callable[..., Any]],
    *,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 0,
) -> Callable[..., Randomisation]:
    """Cascading model randomisation: does the explanation depend on what the model learnt?

    ``explain(m)`` builds the attributor for a model ``m`` (e.g. ``lambda m:
    pa.integrated_gradients(m)``). The attributions of the trained model are compared with
    those of a copy whose layers are re-initialised one after another, from the output
    towards the input (``layers``: module names in that order; default every module that
    holds parameters directly, in reverse order of ``model.named_modules()``). Each layer is
    re-initialised with its ``reset_parameters()`` (else its parameters are redrawn from a
    normal distribution of their own std), from a generator seeded with ``seed``; the user's
    model is never touched. Returns a :class:`Randomisation` of Spearman correlations of the
    (``absolute``: absolute) attributions, per layer and example: a method that passes the
    sanity check drops towards 0 as more layers are randomised. Call as ``(inputs,
    *args, **attributor_kwargs)``.

    Args:
        model: The trained model (copied; never changed).
        explain: ``explain(m)`` builds the attributor for a model ``m`` (e.g. ``lambda m:
            pa.saliency(m)``).
        layers: Module names, randomised in this order (default: every module with parameters, from the
            output down).
        absolute: Compare absolute attributions.
        seed: Seed of the generator built for the draws (a convenience: the same seed gives the same
            draws).

    Returns:
        A function ``(inputs, *args, **attributor_kwargs) -> Randomisation``.

    References:
        - Adebayo, Gilmer, Goodfellow and Kim, "Local Explanation Methods for Deep Neural Networks Lack
          Sensitivity to Parameter Values", 2018. https://arxiv.org/abs/1810.03307

    Example:
        >>> check = pa.metrics.mprt(model, lambda m: pa.saliency(m))
        >>> check(x, target=y).correlation.shape
        torch.Size([2, 4])
    """
    named = dict(model.named_modules())
    if layers is None:
        layers = [
            name for name, m in reversed(list(named.items())) if next(m.parameters(recurse=False), None) is not None
        ]
    missing = [name for name in layers if name not in named]
    if missing:
        raise ArgumentError(f"layers {missing} are not modules of the model; use names from model.named_modules()")
    if not layers:
        raise ArgumentError("the model has no module with parameters to randomise; pass layers=")

    def measure(inputs: Any, *args: Any, **kwargs: Any) -> Randomisation:
        def flat(m: nn.Module) -> Tensor:
            out = explain(m)(inputs, *args, **kwargs)
            if isinstance(out, tuple) and len(out) == 2 and getattr(explain(m), "returns_delta", False):
                out = out[0]
            attrs, _ = as_tuple(out, "attributions")
            values = torch.cat([a.reshape(a.shape[0], -1) for a in attrs], 1).detach()
            return values.abs() if absolute else values

        trained = flat(model)
        copied = copy.deepcopy(model)
        rows = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name in layers:
                _reinitialise(dict(copied.named_modules())[name])
                rows.append(spearman(trained, flat(copied)))
        return Randomisation(list(layers), torch.stack(rows))

    return measure


@torch.no_grad()
def _reinitialise(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for p in module.parameters(recurse=False):
        p.copy_(torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))
