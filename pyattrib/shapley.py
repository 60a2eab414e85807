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

from ._core.attributor import FEATURE_PER_EXAMPLE, Attributor
from ._core.call import Call
from ._core.calls import FeatureCall, SampledFeatureCall
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike
from ._core.perturb import (
    STREAM_ROWS,
    FeatureMask,
    evaluate,
    example_rows,
    prepare_perturbation,
    shared_mask,
    squeeze_outputs,
)
from ._core.state import evaluating
from ._core.targets import TargetLike

Forward = Callable[..., Any]


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
            rows.append(torch.where(keep, x.index_select(0, i), example_rows(base[j], i)))
        return tuple(rows)

    return build


class OrderingSums:
    """Sums of marginal changes per feature group, streamed from the rows of sampled orderings.

    Rows come in the engine's order ``r = p * n + i``: the empty coalition (``p = 0``), the
    full one (1), then ordering ``s``'s coalition of its first ``k`` groups at
    ``p = 2 + s (F - 1) + k - 1``. Each row's change from the coalition before it in its
    ordering goes to the group the ordering added at that step; the change from its last
    inner coalition to the full one goes to its last group. Only the ``(n, F, K)`` sums and
    the latest row per example are held, never all outputs.
    """

    def __init__(self, perms: Tensor, units: Tensor | None = None) -> None:
        self.perms, self.n_f, self.inner = perms, perms.shape[1], perms.shape[1] - 1
        self.sums: Tensor | None = None
        # with ``units`` (one id per ordering, 0..U-1), the sums are also kept per unit, for the
        # standard error: the units are independent draws (an ordering, an antithetic pair, a block)
        self.units, self.n_units = units, (int(units.max()) + 1 if units is not None else 1)
        self.unit_sums: Tensor | None = None

    def __call__(self, first: int, n: int, values: Tensor) -> None:
        v = _real(values)
        if self.sums is None:
            self.sums = v.new_zeros(n * self.n_f, v.shape[-1])
            self.empty, self.full, self.last = (v.new_zeros(n, v.shape[-1]) for _ in range(3))
            if self.units is not None:
                self.unit_sums = v.new_zeros(n * self.n_units * self.n_f, v.shape[-1])
        end = first + len(v)
        for which, lo in ((self.empty, 0), (self.full, n)):  # rows of perturbations 0 and 1
            a, b = max(first, lo), min(end, lo + n)
            if a < b:
                which[a - lo : b - lo] = v[a - first : b - first]
        start = max(first, 2 * n)
        if start >= end or self.inner == 0:
            return
        v = v[start - first :]
        q = torch.arange(start - 2 * n, end - 2 * n, device=v.device)  # row among the inner ones
        i, step = q % n, q // n
        sample, k = step // self.inner, step % self.inner + 1
        # the coalition before each row: n rows earlier in this run, else the last run's
        head = min(n, len(v))
        before = torch.cat([self.last.index_select(0, i[:head]), v[: len(v) - head]])
        self.last.index_copy_(0, i[-head:], v[-head:])
        before = torch.where((k == 1)[:, None], self.empty.index_select(0, i), before)
        to_full = torch.where((k == self.inner)[:, None], self.full.index_select(0, i) - v, 0)
        for sums, row in self._targets(i, sample):
            sums.index_add_(0, row * self.n_f + self.perms[sample, k - 1], v - before)
            sums.index_add_(0, row * self.n_f + self.perms[sample, -1], to_full)

    def _targets(self, i: Tensor, sample: Tensor) -> list[tuple[Tensor, Tensor]]:
        assert self.sums is not None
        out = [(self.sums, i)]
        if self.unit_sums is not None and self.units is not None:
            out.append((self.unit_sums, i * self.n_units + self.units[sample]))
        return out

    def total(self) -> Tensor:
        """``(n, F, K)`` sums."""
        assert self.sums is not None
        if self.inner == 0:  # one group: every ordering credits it with f(x) - f(x')
            return ((self.full - self.empty) * self.perms.shape[0])[:, None]
        return self.sums.reshape(-1, self.n_f, self.sums.shape[-1])

    def stderr(self) -> Tensor:
        """``(n, F, K)``: the standard error of the mean of the units' estimates (NaN with one unit;
        0 with one feature group, whose value is exact)."""
        assert self.units is not None
        if self.inner == 0 or self.unit_sums is None:
            return torch.zeros_like(self.total())
        size = torch.bincount(self.units, minlength=self.n_units).to(self.unit_sums)
        per_unit = self.unit_sums.reshape(-1, self.n_units, self.n_f, self.unit_sums.shape[-1]) / size[:, None, None]
        return per_unit.std(1, correction=1) / math.sqrt(self.n_units)


SAMPLERS = ("random", "antithetic", "stratified")


def orderings(
    n_f: int, n_samples: int, sampler: str, generator: torch.Generator | None, device: Any
) -> tuple[Tensor, Tensor]:
    """``n_samples`` orderings of ``n_f`` groups ``(S, F)`` and the independent unit of each ``(S,)``.

    ``random``: independent uniform orderings, each its own unit. ``antithetic``: pairs of an
    ordering and its reverse (a pair's average is exact for a model with interactions of at
    most two groups). ``stratified``: blocks of the ``F`` cyclic shifts of a random ordering, each
    group at every position once per block, each shift also reversed (blocks of ``2F``).
    """
    dev = generator.device if generator is not None else device
    draw = lambda: torch.randperm(n_f, generator=generator, device=dev)  # noqa: E731
    if sampler == "random":
        perms = [draw() for _ in range(n_samples)]
        units = list(range(n_samples))
    elif sampler == "antithetic":
        perms = [q for _ in range(n_samples // 2) for p in [draw()] for q in (p, p.flip(0))]
        units = [s // 2 for s in range(n_samples)]
    else:
        block = 2 * n_f
        perms = [q for _ in range(n_samples // block) for p in [draw()] for k in range(n_f)
                 for q in (p.roll(k), p.roll(k).flip(0))]  # fmt: skip
        units = [s // block for s in range(n_samples)]
    return torch.stack(perms).to(device), torch.tensor(units, device=device)


def shapley_value_sampling(
    f: Forward,
    *,
    n_samples: int = 25,
    sampler: str = "random",
    return_stderr: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[SampledFeatureCall]:
    """Shapley values estimated from ``n_samples`` random feature orderings: each ordering
    adds the groups one at a time, from the baseline to the input, and credits each group
    with its marginal change. Every ordering sums exactly to ``f(x) - f(x')`` (efficiency
    holds per sample, not only on average). The empty and the full coalition (once) and
    the ``n_samples * (F - 1)`` others, for all examples, are evaluated in batches of at
    most ``batch_size`` rows. Call as ``(inputs, baselines=None, *, target=None,
    additional_forward_args=None, feature_mask=None, generator=None)``.

    ``sampler`` chooses how orderings are drawn: ``"random"`` (Captum's),
    ``"antithetic"`` (each ordering with its reverse) or ``"stratified"`` (blocks of cyclic shifts
    and their reverses: every group at every position equally often). All three are unbiased;
    the last two cancel the interactions of pairs of groups within a pair of orderings, so they
    reach a given error with fewer evaluations (``benchmarks/bench_shapley.py``).

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        n_samples: The number of orderings per example (``"antithetic"``: even; ``"stratified"``: a
            multiple of twice the number of feature groups).
        sampler: ``"random"``, ``"antithetic"`` or ``"stratified"``.
        return_stderr: Also return the standard error of each value: the standard deviation of the
            independent units' estimates (an ordering, a pair, a block) over the square root of their
            number.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None, generator=None)``; it returns attributions shaped like ``inputs`` (with
        ``return_stderr``, ``(attributions, stderr)`` of the same shape).

    References:
        - Mitchell, Cooper, Frank and Holmes, "Sampling Permutations for Shapley Value Estimation",
          JMLR 2022. https://arxiv.org/abs/2104.12199
        - Castro, Gómez and Tejada, "Polynomial calculation of the Shapley value based on sampling",
          Computers & Operations Research 2009. https://doi.org/10.1016/j.cor.2008.04.004
        - Štrumbelj and Kononenko, "Explaining prediction models and individual predictions with feature
          contributions", Knowledge and Information Systems 2014.
          https://doi.org/10.1007/s10115-013-0679-x

    Example:
        >>> svs = pa.shapley_value_sampling(model, n_samples=4)
        >>> svs(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)
    check_count("n_samples", n_samples)
    if sampler not in SAMPLERS:
        raise ArgumentError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "antithetic" and n_samples % 2:
        raise ArgumentError(f"sampler='antithetic' draws orderings in pairs: n_samples must be even, got {n_samples}")

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "shapley_value_sampling"
        )
        n_f, s = mask.n_features, n_samples
        if sampler == "stratified" and s % (2 * n_f):
            raise ArgumentError(
                f"sampler='stratified' draws blocks of 2 x {n_f} orderings ({n_f} feature groups): n_samples must "
                f"be a multiple of {2 * n_f}, got {s}"
            )
        perms, units = orderings(n_f, s, sampler, generator, call.device)
        if return_stderr and int(units.max()) < 1 and n_f > 1:
            raise ArgumentError(
                f"return_stderr needs at least two independent draws; n_samples={s} with sampler={sampler!r} "
                "makes one: "
                f"raise n_samples (random: 2, antithetic: 4, stratified: {4 * n_f})"
            )
        ranks = torch.empty_like(perms).scatter_(1, perms, torch.arange(n_f, device=call.device).expand(s, n_f))

        # rows: the empty and the full coalition once, then each distinct inner coalition (an
        # ordering's first k groups, 0 < k < n_f) once: orderings share many (all F singletons
        # and all F leave-one-outs among them), and the estimate reads each coalition's value
        firsts = ranks[:, None, :] < torch.arange(1, n_f, device=call.device)[None, :, None]  # (s, inner, n_f)
        distinct, where = torch.unique(firsts.reshape(-1, n_f).to(torch.uint8), dim=0, return_inverse=True)
        distinct = distinct.bool()

        def present(p: Tensor, i: Tensor, ids: Tensor) -> Tensor:
            k = (p - 2).clamp(min=0)
            inside = distinct.index_select(0, k).gather(1, ids) if len(distinct) else ids < 0
            return torch.where((p >= 2)[:, None], inside, (p == 1)[:, None].expand_as(ids))

        sums = OrderingSums(perms, units if return_stderr else None)
        with evaluating(f):
            result = evaluate(
                f,
                call,
                coalition_rows(call, base, mask, present),
                2 + len(distinct),
                batch_size,
                show_progress,
                "Shapley Value Sampling attribution",
                whole=None,
            )
        _stream(sums, result.values, where)
        shared_mask(mask, result.whole)
        per_feature = sums.total().permute(0, 2, 1) / s  # (N, K, F)
        attrs = call.restore(squeeze_outputs(mask.spread(per_feature), result.shape, result.whole))
        if not return_stderr:
            return attrs
        spread = mask.spread(sums.stderr().permute(0, 2, 1))
        return attrs, call.restore(squeeze_outputs(spread, result.shape, result.whole))

    return Attributor(
        attribute, f, per_example=FEATURE_PER_EXAMPLE, random=True, returns_delta=return_stderr,
        name="shapley_value_sampling",
    )


def _stream(sums: OrderingSums, values: Tensor, where: Tensor) -> None:
    """Hand ``sums`` the rows of every ordering in its order (``values``: the empty and full
    coalitions, then the distinct inner ones; ``where``: each ordering step's distinct coalition)."""
    n, k = values.shape[1], values.shape[2]
    sums(0, n, values[:2].reshape(-1, k))
    step = max(1, STREAM_ROWS // n)
    for a in range(0, len(where), step):
        rows = values.index_select(0, where[a : a + step] + 2)
        sums((2 + a) * n, n, rows.reshape(-1, k))


def shapley_values(
    f: Forward, *, batch_size: int | None = None, show_progress: bool = False, max_features: int = 14
) -> Attributor[FeatureCall]:
    """Exact Shapley values from all ``2^F`` coalitions of the ``F`` feature groups.

    The cost doubles with every group: past ``max_features`` groups it raises and points to
    :func:`shapley_value_sampling` or a coarser ``feature_mask``. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None, feature_mask=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        max_features: Refuse more feature groups than this (the cost is ``2^F`` evaluations).

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Shapley, "A Value for n-Person Games", Contributions to the Theory of Games II, 1953.
          https://doi.org/10.1515/9781400881970-018
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> groups = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
        >>> pa.shapley_values(model)(x, target=y, feature_mask=groups).shape
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
            dtype=v.dtype,
            device=call.device,
        )
        phi = []
        for g in range(n_f):
            without = subsets[(subsets & bit[g]) == 0]
            w = weight[size[without]][:, None, None]
            phi.append(((v[without + bit[g]] - v[without]) * w).sum(0))  # (N, K)
        per_feature = torch.stack(phi, -1)  # (N, K, F)
        return call.restore(squeeze_outputs(mask.spread(per_feature), result.shape, result.whole))

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, name="shapley_values")


def _real(values: Tensor) -> Tensor:
    """Shapley values average marginal changes: integer outputs (counts) become float64."""
    return values if values.is_floating_point() else values.double()
