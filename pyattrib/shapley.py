"""Shapley values of feature groups: exact, and sampled over permutations.

For a value function ``v(S) = f(x_S, x'_{rest})`` (features in coalition ``S`` take the
input's values, the others the baseline's),

.. math:: \\phi_i = \\sum_{S \\subseteq F \\setminus \\{i\\}} \\frac{|S|!\\,(|F|-|S|-1)!}{|F|!}
          \\big(v(S \\cup \\{i\\}) - v(S)\\big)

(Shapley, 1953; Strumbelj & Kononenko, 2010 for sampling). Every coalition of every
example is one row of the perturbation engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.call import Call
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.perturb import FeatureMask, evaluate, prepare_perturbation, shared_mask, squeeze_outputs
from ._core.state import evaluating

Forward = Callable[..., Any]
PER_EXAMPLE = ("baselines", "target", "additional_forward_args", "feature_mask")


def coalition_rows(
    call: Call, base: tuple[Tensor, ...], mask: FeatureMask, present: Callable[[Tensor, Tensor, Tensor], Tensor]
):
    """A ``build(p, i)`` for the engine: input values where ``present(p, i, ids)`` is true,
    baseline values elsewhere. ``ids`` are the feature ids of the rows' elements."""

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        rows = []
        for j, x in enumerate(call.inputs):
            ids = mask.rows(j, i)
            keep = present(p, i, ids.reshape(len(i), -1)).reshape(ids.shape)
            b = base[j]
            b_rows = b.index_select(0, i) if b.shape[0] != 1 else b.expand(len(i), *b.shape[1:])
            rows.append(torch.where(keep, x.index_select(0, i), b_rows))
        return tuple(rows)

    return build


def shapley_value_sampling(
    f: Forward, *, n_samples: int = 25, batch_size: int | None = None, show_progress: bool = False
) -> Attributor:
    """Shapley values estimated from ``n_samples`` random feature orderings: each ordering
    adds the groups one at a time, from the baseline to the input, and credits each group
    with its marginal change. Every ordering sums exactly to ``f(x) - f(x')`` (efficiency
    holds per sample, not only on average). The empty and the full coalition (once) and
    the ``n_samples * (F - 1)`` others, for all examples, are evaluated in batches of at
    most ``batch_size`` rows. Call as ``(inputs, baselines=None, *, target=None,
    additional_forward_args=None, feature_mask=None, generator=None)``.
    """
    check_batch_size(batch_size)
    check_count("n_samples", n_samples)

    def attribute(inputs: Any, baselines: Any = None, *, target: Any = None, additional_forward_args: Any = None,
                  feature_mask: Any = None, generator: torch.Generator | None = None) -> Any:  # fmt: skip
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "shapley_value_sampling"
        )
        n_f, s = mask.n_features, n_samples
        dev = generator.device if generator is not None else call.device
        perms = torch.stack([torch.randperm(n_f, generator=generator, device=dev) for _ in range(s)]).to(call.device)
        ranks = torch.empty_like(perms).scatter_(1, perms, torch.arange(n_f, device=call.device).expand(s, n_f))

        # rows: the empty and the full coalition once, then the n_f - 1 inner coalitions of
        # every ordering
        inner = n_f - 1

        def present(p: Tensor, i: Tensor, ids: Tensor) -> Tensor:
            q = (p - 2).clamp(min=0)
            sample, k = q // max(inner, 1), q % max(inner, 1) + 1
            first_k = ranks[sample].gather(1, ids) < k[:, None]  # the first k groups of the ordering
            return torch.where((p == 1)[:, None], True, first_k & (p >= 2)[:, None])

        with evaluating(f):
            result = evaluate(
                f,
                call,
                coalition_rows(call, base, mask, present),
                2 + s * inner,
                batch_size,
                show_progress,
                "Shapley Value Sampling attribution",
                whole=None,
            )
        shared_mask(mask, result.whole)
        out = _real(result.values)
        empty, full = out[:1].expand(s, 1, *out.shape[1:]), out[1:2].expand(s, 1, *out.shape[1:])
        out = torch.cat([empty, out[2:].reshape(s, inner, *out.shape[1:]), full], 1)  # (S, F + 1, N, K)
        marginal = (out[:, 1:] - out[:, :-1]).permute(2, 3, 0, 1)  # (N, K, S, F) by position in the ordering
        per_feature = torch.zeros_like(marginal).scatter_(3, perms.expand_as(marginal), marginal).mean(2)
        return call.restore(squeeze_outputs(mask.spread(per_feature), result.shape, result.whole))

    return Attributor(attribute, f, per_example=PER_EXAMPLE, random=True, name="shapley_value_sampling")


def shapley_values(
    f: Forward, *, batch_size: int | None = None, show_progress: bool = False, max_features: int = 14
) -> Attributor:
    """Exact Shapley values from all ``2^F`` coalitions of the ``F`` feature groups.

    The cost doubles with every group: past ``max_features`` groups it raises and points to
    :func:`shapley_value_sampling` or a coarser ``feature_mask``. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None, feature_mask=None)``.
    """
    check_batch_size(batch_size)

    def attribute(inputs: Any, baselines: Any = None, *, target: Any = None, additional_forward_args: Any = None,
                  feature_mask: Any = None) -> Any:  # fmt: skip
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "shapley_values"
        )
        n_f = mask.n_features
        if n_f > max_features:
            raise ArgumentError(
                f"shapley_values needs 2^{n_f} model evaluations per example for {n_f} feature groups "
                f"(limit max_features={max_features}); group features with feature_mask, raise max_features, "
                "or use pa.shapley_value_sampling"
            )
        bit = 2 ** torch.arange(n_f, device=call.device)

        def present(p: Tensor, i: Tensor, ids: Tensor) -> Tensor:
            return (p[:, None] & bit[ids]) > 0

        with evaluating(f):
            result = evaluate(
                f,
                call,
                coalition_rows(call, base, mask, present),
                2**n_f,
                batch_size,
                show_progress,
                "Shapley Values attribution",
                whole=None,
            )
        shared_mask(mask, result.whole)
        v = _real(result.values)
        subsets = torch.arange(2**n_f, device=call.device)
        size = ((subsets[:, None] & bit) > 0).sum(1)
        weight = torch.tensor(
            [math.factorial(k) * math.factorial(n_f - k - 1) / math.factorial(n_f) for k in range(n_f)],
            dtype=v.dtype, device=call.device,
        )  # fmt: skip
        phi = []
        for g in range(n_f):
            without = subsets[(subsets & bit[g]) == 0]
            w = weight[size[without]][:, None, None]
            phi.append(((v[without + bit[g]] - v[without]) * w).sum(0))  # (N, K)
        per_feature = torch.stack(phi, -1)  # (N, K, F)
        return call.restore(squeeze_outputs(mask.spread(per_feature), result.shape, result.whole))

    return Attributor(attribute, f, per_example=PER_EXAMPLE, name="shapley_values")


def _real(values: Tensor) -> Tensor:
    """Shapley values average marginal changes: integer outputs (counts) become float64."""
    return values if values.is_floating_point() else values.double()
