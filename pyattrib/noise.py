"""Noise tunnel: average any attributor over Gaussian perturbations of its inputs.

``noise_tunnel(attributor, kind=...)`` returns an attributor with the same call
signature, so it wraps any method (and any wrapper) and can be stacked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import random
from ._core.attributor import Attributor, bind_baselines, call_on_copies, checked_transform
from ._core.budget import rows_per_chunk
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import as_tuple, distribution_baselines, restore
from ._core.paths import per_input_stdevs

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
Stdevs = float | tuple[float, ...]


@checked_transform  # smoothgrad & co. pass their keywords on: Captum's names are caught here
def noise_tunnel(
    attributor: Attributor,
    *,
    kind: str = "smoothgrad",
    n_samples: int = 5,
    stdevs: Stdevs = 1.0,
    draw_baseline_from_distrib: bool = False,
    batch_size: int | None = None,
    delta_per_sample: bool = False,
    captum_draws: bool = False,
) -> Attributor:
    r"""Smooth an attributor over noisy copies of the input (SmoothGrad and kin).

    With ``A_s = A(x + eps_s)``, ``eps_s ~ N(0, stdevs^2)``, ``s = 1..n_samples``:

    - ``smoothgrad`` (Smilkov et al., 2017): :math:`\frac1S\sum_s A_s`
    - ``smoothgrad_sq``: :math:`\frac1S\sum_s A_s^2`
    - ``vargrad`` (Adebayo et al., 2018): :math:`\frac1S\sum_s A_s^2 - (\frac1S\sum_s A_s)^2`

    The noisy copies go to ``attributor`` in one call with ``N * samples`` rows
    (example-major: row ``i * S + s``), in chunks of at most ``batch_size`` rows (at least
    one sample for all examples per chunk; with ``None``, the budget rule of
    ``batch_size`` in README). Per-example targets, baselines and additional
    args follow their example. ``draw_baseline_from_distrib=True`` reads ``baselines`` as
    reference samples and gives each noisy copy one drawn at random. If the inner
    attributor returns ``(attributions, delta)``, the result's delta is the per-example
    mean of the inner deltas (with ``delta_per_sample=True``, the ``N * n_samples`` inner
    deltas themselves, example-major within each chunk of samples: Captum's layout). All
    noise comes from ``generator=`` (passed on to random inner attributors), drawn before
    any evaluation, so results do not depend on ``batch_size``.

    ``captum_draws=True`` draws as Captum's ``NoiseTunnel`` does, so a seed gives Captum's
    numbers: noise chunk by chunk of samples, just before each chunk is evaluated (every input's
    noise, a std of 0 included), and reference indices from NumPy's global generator, one draw
    per input for a full chunk, reused by every full chunk, and one for the last partial chunk.
    Results then depend on ``batch_size``, as Captum's do on ``nt_samples_batch_size``.

    Args:
        attributor: The attributor to wrap; the result has the same call signature.
        kind: ``"smoothgrad"`` (mean), ``"smoothgrad_sq"`` (mean of squares) or ``"vargrad"`` (variance)
            over the noisy samples.
        n_samples: The number of random samples per example.
        stdevs: Standard deviation of the Gaussian noise added to the inputs (one per input tensor, or
            one for all).
        draw_baseline_from_distrib: Draw each sample's baseline from the given baselines (for
            distribution methods).
        batch_size: The most rows (noisy samples x examples) per call of the wrapped attributor.
        delta_per_sample: Report Captum's delta per random sample instead of one per example.
        captum_draws: Draw the noise in Captum's order from the global generator (compat sets it).

    Returns:
        Attributor: the wrapped attributor's call signature plus ``generator=`` for the noise;
        attributions shaped like the wrapped attributor's.

    References:
        - Smilkov, Thorat, Kim, Viégas and Wattenberg, "SmoothGrad: removing noise by adding noise",
          2017. https://arxiv.org/abs/1706.03825
        - Hooker, Erhan, Kindermans and Kim, "A Benchmark for Interpretability Methods in Deep Neural
          Networks", NeurIPS 2019. https://arxiv.org/abs/1806.10758
        - Adebayo, Gilmer, Goodfellow and Kim, "Local Explanation Methods for Deep Neural Networks Lack
          Sensitivity to Parameter Values", 2018. https://arxiv.org/abs/1810.03307

    Example:
        >>> sg = pa.noise_tunnel(pa.saliency(model), kind="vargrad", n_samples=4, stdevs=0.1)
        >>> sg(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    if kind not in KINDS:
        raise ArgumentError(f"unknown noise tunnel kind {kind!r}; choose one of {', '.join(KINDS)}")
    check_count("n_samples", n_samples)
    check_batch_size(batch_size)
    if not isinstance(attributor, Attributor):
        raise TypeError("noise_tunnel wraps a pyattrib attributor, e.g. pa.saliency(model)")

    def attribute(inputs: Any, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Any:
        kwargs = bind_baselines(args, kwargs)
        xs, was_tuple = as_tuple(inputs)
        n, s = xs[0].shape[0], n_samples
        stds = per_input_stdevs(stdevs, len(xs))
        per_chunk = max(1, min(s, rows_per_chunk(batch_size, xs, n) // n))
        if captum_draws:
            draws = _CaptumDraws(xs, stds, kwargs.get("baselines") if draw_baseline_from_distrib else None, generator)
        noise = [
            random.normal((n * s, *x.shape[1:]), sd, x, generator) if sd and not captum_draws else None
            for x, sd in zip(xs, stds)
        ]
        drawn = None
        if draw_baseline_from_distrib and not captum_draws:
            refs = distribution_baselines(kwargs.get("baselines"), xs, was_tuple)
            pick = random.integers(refs[0].shape[0], (n * s,), xs[0], generator)
            drawn = tuple(r.index_select(0, pick) for r in refs)
        if attributor.random:
            kwargs["generator"] = generator

        needs_sum, needs_square = kind != "smoothgrad_sq", kind != "smoothgrad"
        sums: list[Tensor] | None = None
        squares: list[Tensor] | None = None
        deltas: list[Tensor] = []
        for s0 in range(0, s, per_chunk):
            c = min(per_chunk, s - s0)
            rows = (
                torch.arange(n, device=xs[0].device)[:, None] * s + torch.arange(s0, s0 + c, device=xs[0].device)
            ).reshape(-1)
            if captum_draws:
                noisy, drawn_rows = draws.chunk(c, per_chunk, was_tuple)
            else:
                noisy, drawn_rows = tuple(_noisy(x, e, s, s0, c) for x, e in zip(xs, noise)), {}
            if drawn is not None:
                drawn_rows["baselines"] = restore([d.index_select(0, rows) for d in drawn], was_tuple)
            parts, structure, delta = call_on_copies(attributor, noisy, was_tuple, kwargs, n, c, per_copy=drawn_rows)
            del noisy
            if delta is not None:
                deltas.append(delta)
            if needs_sum:
                sums = _added(sums, [p.sum(1) for p in parts])
            if needs_square:
                squares = _added(squares, [(p * p).sum(1) for p in parts])
        assert sums is not None or squares is not None  # needs_sum or needs_square is always set
        if kind == "smoothgrad":
            result = [t / s for t in sums or []]
        elif kind == "smoothgrad_sq":
            result = [t / s for t in squares or []]
        else:
            result = [q / s - (m / s) ** 2 for q, m in zip(squares or [], sums or [])]
        result = structure.layout([t.contiguous() for t in result])
        if attributor.returns_delta:
            if delta_per_sample:
                return result, torch.cat([d.reshape(-1) for d in deltas])
            return result, torch.cat(deltas, 1).mean(1)
        return result

    return attributor.with_fn(attribute, random=True, name=f"{kind}({attributor.name})")


def smoothgrad(attributor: Attributor, *, n_samples: int = 5, stdevs: Stdevs = 1.0, **kwargs: Any) -> Attributor:
    """``noise_tunnel(attributor, kind="smoothgrad", ...)``: the mean over noisy inputs.

    Args:
        attributor: The attributor to wrap; the result has the same call signature.
        n_samples: The number of random samples per example.
        stdevs: Standard deviation of the Gaussian noise added to the inputs (one per input tensor, or
            one for all).
        **kwargs: Further configuration of :func:`pyattrib.noise_tunnel`
            (``draw_baseline_from_distrib``, ``batch_size``).

    Returns:
        Attributor: the wrapped attributor's call signature plus ``generator=`` for the noise;
        attributions shaped like the wrapped attributor's.

    References:
        - Smilkov, Thorat, Kim, Viégas and Wattenberg, "SmoothGrad: removing noise by adding noise",
          2017. https://arxiv.org/abs/1706.03825

    Example:
        >>> pa.smoothgrad(pa.integrated_gradients(model), n_samples=4, stdevs=0.1)(x, target=y).shape
        torch.Size([4, 8])
    """
    return noise_tunnel(attributor, kind="smoothgrad", n_samples=n_samples, stdevs=stdevs, **kwargs)


def smoothgrad_sq(attributor: Attributor, *, n_samples: int = 5, stdevs: Stdevs = 1.0, **kwargs: Any) -> Attributor:
    r"""``noise_tunnel(attributor, kind="smoothgrad_sq", ...)``: the mean of squares.

    .. math:: \phi^{sq}(x) = \frac{1}{n} \sum_{k=1}^{n} \phi(x + \epsilon_k)^2,\ \epsilon_k \sim N(0, \sigma^2)

    Args:
        attributor: The attributor to wrap; the result has the same call signature.
        n_samples: The number of random samples per example.
        stdevs: Standard deviation of the Gaussian noise added to the inputs (one per input tensor, or
            one for all).
        **kwargs: Further configuration of :func:`pyattrib.noise_tunnel`
            (``draw_baseline_from_distrib``, ``batch_size``).

    Returns:
        Attributor: the wrapped attributor's call signature plus ``generator=`` for the noise;
        attributions shaped like the wrapped attributor's.

    References:
        - Hooker, Erhan, Kindermans and Kim, "A Benchmark for Interpretability Methods in Deep Neural
          Networks", NeurIPS 2019. https://arxiv.org/abs/1806.10758

    Example:
        >>> pa.smoothgrad_sq(pa.saliency(model), n_samples=4, stdevs=0.1)(x, target=y).shape
        torch.Size([4, 8])
    """
    return noise_tunnel(attributor, kind="smoothgrad_sq", n_samples=n_samples, stdevs=stdevs, **kwargs)


def vargrad(attributor: Attributor, *, n_samples: int = 5, stdevs: Stdevs = 1.0, **kwargs: Any) -> Attributor:
    """``noise_tunnel(attributor, kind="vargrad", ...)``: the variance over noisy inputs.

    Args:
        attributor: The attributor to wrap; the result has the same call signature.
        n_samples: The number of random samples per example.
        stdevs: Standard deviation of the Gaussian noise added to the inputs (one per input tensor, or
            one for all).
        **kwargs: Further configuration of :func:`pyattrib.noise_tunnel`
            (``draw_baseline_from_distrib``, ``batch_size``).

    Returns:
        Attributor: the wrapped attributor's call signature plus ``generator=`` for the noise;
        attributions shaped like the wrapped attributor's.

    References:
        - Adebayo, Gilmer, Goodfellow and Kim, "Local Explanation Methods for Deep Neural Networks Lack
          Sensitivity to Parameter Values", 2018. https://arxiv.org/abs/1810.03307

    Example:
        >>> pa.vargrad(pa.saliency(model), n_samples=4, stdevs=0.1)(x, target=y).shape
        torch.Size([4, 8])
    """
    return noise_tunnel(attributor, kind="vargrad", n_samples=n_samples, stdevs=stdevs, **kwargs)


def _noisy(x: Tensor, noise: Tensor | None, s: int, s0: int, c: int) -> Tensor:
    """Rows ``i * c + k`` of the chunk: ``x_i`` plus the noise of sample ``s0 + k``. The
    noise was drawn for this call and each sample is used once, so the input is added in
    place: a chunk of all samples costs no copy beyond the noise itself."""
    if noise is None:
        return x.repeat_interleave(c, 0)
    chunk = noise.view(x.shape[0], s, *x.shape[1:])[:, s0 : s0 + c]
    return chunk.add_(x.unsqueeze(1)).reshape(x.shape[0] * c, *x.shape[1:])


class _CaptumDraws:
    """Captum's NoiseTunnel draws (see ``captum_draws``): noise per chunk from torch's generator,
    reference indices per input from NumPy's global one (a full chunk's once, the last one's after
    its noise). Rows are example-major within the chunk (``i * c + k``)."""

    def __init__(self, xs: tuple[Tensor, ...], stds: tuple[float, ...], refs: Any, generator: Any) -> None:
        self.xs, self.stds, self.generator = xs, stds, generator
        self.refs = None if refs is None else (refs if isinstance(refs, tuple) else (refs,))
        self.full: list[Any] | None = None

    def _picks(self, rows: int) -> list[Any]:
        import numpy as np

        assert self.refs is not None
        return [np.random.choice(r.shape[0], rows).tolist() if isinstance(r, Tensor) else None for r in self.refs]

    def chunk(self, c: int, per_chunk: int, was_tuple: bool) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
        n = self.xs[0].shape[0]
        if self.refs is not None and self.full is None:
            self.full = self._picks(n * per_chunk)
        noisy = []
        for x, sd in zip(self.xs, self.stds):
            std = torch.tensor(sd, device=x.device).repeat((n * c, *x.shape[1:]))
            noisy.append(x.repeat_interleave(c, 0) + torch.normal(0, std, generator=self.generator))
        if self.refs is None:
            return tuple(noisy), {}
        picks = self.full if c == per_chunk else self._picks(n * c)
        assert picks is not None
        chosen = [r[p] if p is not None else r for r, p in zip(self.refs, picks)]
        return tuple(noisy), {"baselines": restore(chosen, was_tuple)}


def _added(total: list[Tensor] | None, part: list[Tensor]) -> list[Tensor]:
    """Running per-input sums over chunks of samples."""
    return part if total is None else [a + b for a, b in zip(total, part)]
