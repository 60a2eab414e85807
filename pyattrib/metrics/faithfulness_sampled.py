"""Faithfulness by random subsets, segments and neighbours: faithfulness correlation,
SensitivityN, monotonicity correlation (Nguyen and Martínez), IROF and sufficiency. Each a
transform ``metric(model, ...)`` returning ``measure(inputs, attributions, *, target=None,
additional_forward_args=None, ...)``; random draws come from the ``generator`` given at call
time (one is required), so a score can be reproduced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core import random
from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_args, as_tuple
from .._core.targets import TargetLike
from ._perturbed import (
    Fill,
    Setting,
    ascending,
    check_options,
    fill_rows,
    need_generator,
    pearson,
    predicted_classes,
    setting,
)
from .explanations import check_normalise, flat
from .faithfulness import ranked_rows, region_ranks, regions_of, step_sums
from .randomisation import spearman_or_nan

Measure = Callable[..., Tensor]


def random_subsets(
    n: int, n_samples: int, d: int, size: int, like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``(n_samples, N, size)``: for every sample and example, ``size`` distinct element indices
    out of ``d``, drawn uniformly (the ``size`` smallest of ``d`` uniform keys)."""
    keys = random.uniform((n_samples, n, d), like, generator)
    return keys.topk(size, dim=2, largest=False, sorted=False).indices


def subset_rows(s: Setting, subsets: Tensor, fill: Callable[..., Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Rows with the elements ``subsets[p, i]`` (``(S, N, k)``; index ``D`` pads) replaced."""
    d = s.x.shape[1]

    def rows(p: Tensor, i: Tensor) -> Tensor:
        chosen = torch.zeros(len(i), d + 1, dtype=torch.bool, device=s.x.device)
        chosen.scatter_(1, subsets[p, i], True)
        return torch.where(chosen[:, :d], fill(p, i), s.x.index_select(0, i))

    return rows


def subset_sums(s: Setting, subsets: Tensor) -> Tensor:
    """``(N, S)``: each subset's summed attribution (index ``D`` pads with 0)."""
    a = torch.cat([s.a, torch.zeros_like(s.a[:, :1])], 1)
    n_sets, n, k = subsets.shape
    return a.gather(1, subsets.permute(1, 0, 2).reshape(n, n_sets * k)).reshape(n, n_sets, k).sum(2)


def faithfulness_correlation(
    model: Callable[..., Any],
    *,
    n_samples: int = 100,
    subset_size: int = 224,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Faithfulness correlation: over ``n_samples`` random subsets :math:`S` of ``subset_size``
    elements, the Pearson correlation per example between the subset's summed attribution and
    the drop of the output when the subset is replaced by the baseline:
    :math:`\rho\big(\sum_{i \in S} a_i,\; f(x)_c - f(x_{S \leftarrow b})_c\big)`.

    Args:
        model: The model.
        n_samples: Random subsets per example (Quantus's ``nr_runs``).
        subset_size: Elements per subset (``|S|``; at most the number of elements).
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Use magnitudes.
        softmax: Score probabilities (Quantus's default: off).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, generator) -> (N,)``.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> metric = pa.metrics.faithfulness_correlation(model, n_samples=8, subset_size=2)
        >>> metric(x, attr, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based Model Explanations",
          IJCAI 2020. https://arxiv.org/abs/2005.00631
    """
    check_count("n_samples", n_samples)
    check_count("subset_size", subset_size)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        need_generator(generator, "faithfulness_correlation", "random subsets")
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="faithfulness_correlation")  # fmt: skip
        if subset_size > s.x.shape[1]:
            raise ArgumentError(f"subset_size={subset_size} is more than the {s.x.shape[1]} elements of an example")
        subsets = random_subsets(s.n, n_samples, s.x.shape[1], subset_size, s.x, generator)
        rows = subset_rows(s, subsets, fill_rows(s, baselines))
        y, out = s.with_original(rows, n_samples, batch_size, show_progress, "subsets")
        drops = y[:, None] - out
        return pearson(subset_sums(s, subsets), drops).to(s.x.dtype)

    return measure


def sensitivity_n(
    model: Callable[..., Any],
    *,
    sizes: Sequence[int] | None = None,
    n_samples: int = 100,
    protocol: str = "paper",
    features_in_step: int = 1,
    n_max_percentage: float = 0.8,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""SensitivityN: for each subset size :math:`n`, the Pearson correlation per example between
    the summed attribution of random subsets of :math:`n` elements and the drop of the output
    when the subset is replaced by the baseline, over ``n_samples`` subsets (Ancona et al.):
    :math:`\rho_n = \rho\big(\sum_{i \in S} a_i,\; f(x)_c - f(x_{S \leftarrow b})_c\big)_{|S| = n}`.

    ``protocol="quantus"`` computes Quantus 0.6's variant instead: the top-ranked
    ``features_in_step`` elements are removed cumulatively (no random subsets), and at each of
    the first ``int(n_max_percentage * H * W // features_in_step)`` steps the drop is correlated
    with the attribution of that step's elements alone, *across the examples of the batch*: one
    score per step ``(S,)``; a test shows that it differs from the paper's.

    Args:
        model: The model.
        sizes: Subset sizes ``n`` (default: ten sizes spread from 1 to 80% of the elements).
        n_samples: Random subsets per size and example.
        protocol: ``"paper"`` or ``"quantus"``.
        features_in_step: Elements removed per step (``"quantus"`` only).
        n_max_percentage: The share of steps scored (``"quantus"`` only).
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Use magnitudes.
        softmax: Score probabilities (Quantus's default: on).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, generator) ->
        (N, len(sizes))`` (``"quantus"``: ``(S,)``; no generator needed).

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> metric = pa.metrics.sensitivity_n(model, sizes=[1, 2], n_samples=8)
        >>> metric(x, attr, target=y, generator=generator).shape
        torch.Size([4, 2])

    References:
        - Ancona, Ceolini, Öztireli and Gross, "Towards Better Understanding of Gradient-based
          Attribution Methods for Deep Neural Networks", ICLR 2018. https://arxiv.org/abs/1711.06104
    """
    if protocol not in ("paper", "quantus"):
        raise ArgumentError(f"protocol={protocol!r}; choose 'paper' or 'quantus'")
    check_count("n_samples", n_samples)
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="sensitivity_n")  # fmt: skip
        d, fill = s.x.shape[1], fill_rows(s, baselines)
        if protocol == "quantus":
            ranks = ascending(s.a, descending=True)
            n_steps = int(n_max_percentage * np.prod(s.call.inputs[0].shape[2:]) // features_in_step)
            rows = ranked_rows(s, ranks, fill, features_in_step)
            y, out = s.with_original(rows, n_steps, batch_size, show_progress, "sensitivity-n")
            drops = y[:, None] - out
            return pearson(drops.T, step_sums(s, ranks, features_in_step, n_steps).T).to(s.x.dtype)
        need_generator(generator, "sensitivity_n", "random subsets")
        ns = sorted({max(1, round(v)) for v in np.linspace(1, 0.8 * d, 10)}) if sizes is None else list(sizes)
        if not ns or min(ns) < 1 or max(ns) > d:
            raise ArgumentError(f"sizes must lie between 1 and the {d} elements of an example, got {ns}")
        parts = [random_subsets(s.n, n_samples, d, n, s.x, generator) for n in ns]
        subsets = torch.cat([torch.nn.functional.pad(p, (0, max(ns) - p.shape[2]), value=d) for p in parts])
        y, out = s.with_original(subset_rows(s, subsets, fill), len(subsets), batch_size, show_progress, "subsets")
        drops = (y[:, None] - out).reshape(s.n * len(ns), n_samples)  # a row per example and size
        sums = subset_sums(s, subsets).reshape(s.n * len(ns), n_samples)
        return pearson(sums, drops).reshape(s.n, len(ns)).to(s.x.dtype)

    return measure


def monotonicity_correlation(
    model: Callable[..., Any],
    *,
    n_samples: int = 100,
    features_in_step: int = 1,
    eps: float = 1e-5,
    baselines: Fill = "uniform",
    abs: bool = True,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Monotonicity correlation (Nguyen and Martínez): the Spearman correlation per example
    between the attribution of each group of ``features_in_step`` elements (ascending order)
    and the variance its replacement causes, :math:`\mathbb{E}[(f(x_{G \leftarrow b})_c -
    f(x)_c)^2] / f(x)_c^2` over ``n_samples`` draws of the baseline (a fresh U(0, 1) value per
    copy by default; the square of the output divides only where it exceeds ``eps``).

    Args:
        model: The model.
        n_samples: Baseline draws per group.
        features_in_step: Elements per group.
        eps: Outputs smaller in magnitude are not divided by.
        baselines: The replacement (see :func:`pixel_flipping`; Quantus's default ``"uniform"``).
        abs: Use magnitudes (Quantus's default).
        softmax: Score probabilities (Quantus's default).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, generator) -> (N,)``.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> metric = pa.metrics.monotonicity_correlation(model, n_samples=4)
        >>> metric(x, attr, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Nguyen and Martínez, "On Quantitative Aspects of Model Interpretability", 2020.
          https://arxiv.org/abs/2007.07584
    """
    check_count("n_samples", n_samples)
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        if baselines == "uniform":
            need_generator(generator, "monotonicity_correlation", "uniform baselines")
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="monotonicity_correlation")  # fmt: skip
        ranks, n_steps = ascending(s.a), -(-s.x.shape[1] // features_in_step)
        fill: Callable[..., Tensor] = fill_rows(s, baselines)
        if baselines == "uniform":  # one value per copy, drawn step-major, then sample, then example (Quantus's order)
            copies = torch.arange(n_steps * n_samples, device=s.x.device)
            draws = fill(copies, torch.arange(s.n, device=s.x.device).repeat(len(copies)), generator)
            draws = draws.reshape(len(copies), s.n, 1)
            fill = lambda p, i, generator=None: draws[p, i]  # noqa: E731

        rows = ranked_rows(s, ranks, fill, features_in_step, cumulative=False, repeats=n_samples)
        y, out = s.with_original(rows, n_steps * n_samples, batch_size, show_progress, "monotonicity correlation")
        scale = torch.where(y.abs() >= eps, 1 / y.abs(), torch.ones_like(y)) ** 2
        variance = ((out - y[:, None]) ** 2).reshape(s.n, n_steps, n_samples).mean(2) * scale[:, None]
        return spearman_or_nan(step_sums(s, ranks, features_in_step, n_steps), variance).to(s.x.dtype)

    return measure


def irof(
    model: Callable[..., Any],
    *,
    baselines: Fill = "mean",
    abs: bool = False,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""IROF, iterative removal of features: replace an image's segments by the baseline one more
    at a time, in descending order of their mean attribution, and score the area over the curve
    of the selected output relative to the original,
    :math:`\mathrm{AOC} = n - \sum_t \tfrac12 (q_t + q_{t+1})`, :math:`q_t = f(x^{(t)})_c / f(x)_c`
    over the :math:`n` segments (the curve closes at 0 after the last). Segments come from
    ``feature_mask`` (integer ids, ``(N or 1, 1 or C, H, W)``), else from SLIC superpixels of
    each image (scikit-image's ``slic(image, start_label=0)``, as Quantus computes them).

    ``baselines="mean"`` fills each example with its own mean value. Quantus 0.6 fills with the
    mean of the *whole batch as perturbed so far*, so an example's score depends on the other
    examples of its batch; ``baselines="batch_mean"`` reproduces it (a test shows both).

    Args:
        model: The model.
        baselines: The replacement (see :func:`pixel_flipping`), or ``"batch_mean"`` (Quantus's).
        abs: Rank by magnitude.
        softmax: Score probabilities (Quantus's default).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, feature_mask=None)
        -> (N,)``.

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> segments = torch.arange(4).repeat_interleave(16).reshape(1, 1, 8, 8)
        >>> pa.metrics.irof(cnn)(images, attr, target=0, feature_mask=segments).shape
        torch.Size([2])

    References:
        - Rieger and Hansen, "IROF: a low resource evaluation metric for explanation methods", 2020.
          https://arxiv.org/abs/2003.08747
    """
    check_options(batch_size, None if baselines == "batch_mean" else baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Tensor:  # fmt: skip
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="irof")  # fmt: skip
        ids = regions_of(s, slic_segments(s) if feature_mask is None else feature_mask, None)
        ranks, counts = region_ranks(s, ids, "morf", None, by="mean")  # ranks: the step that removes each element
        fill = _batch_mean(s, ranks, int(ids.max()) + 1) if baselines == "batch_mean" else fill_rows(s, baselines)
        rows = ranked_rows(s, ranks, fill, 1)
        y, q = s.with_original(rows, int(counts.max()), batch_size, show_progress, "irof")
        q = q / y[:, None]
        q = torch.where(torch.arange(q.shape[1], device=q.device) < counts[:, None], q, torch.zeros_like(q))
        return (counts - torch.trapezoid(q, dim=1)).to(s.x.dtype)

    return measure


def _batch_mean(s: Setting, ranks: Tensor, n_steps: int) -> Callable[..., Tensor]:
    """Quantus's IROF fill: at step ``t`` the removed elements take the mean of the whole batch after
    steps ``< t``; that mean moves by the values it replaces, so every step's value follows from
    the counts and sums of the elements removed at each step, without running the steps."""
    total = s.x.numel()
    count = torch.zeros(n_steps, dtype=s.x.dtype, device=s.x.device).scatter_add_(
        0, ranks.reshape(-1), torch.ones_like(s.x).reshape(-1)
    )
    removed = torch.zeros_like(count).scatter_add_(0, ranks.reshape(-1), s.x.reshape(-1))
    mu = [float(s.x.double().mean())]
    for c, r in zip(count.tolist()[: n_steps - 1], removed.tolist()):
        mu.append(mu[-1] + (c * mu[-1] - r) / total)
    per_step = torch.tensor(mu, dtype=s.x.dtype, device=s.x.device)

    def fill(p: Tensor, i: Tensor, generator: Any = None) -> Tensor:
        return per_step[ranks.index_select(0, i)]

    return fill


def slic_segments(s: Setting) -> Tensor:
    """``(N, 1, H, W)`` SLIC superpixels of each image (scikit-image), as Quantus segments them."""
    try:
        from skimage.segmentation import slic
    except ImportError:  # pragma: no cover - scikit-image is a test dependency
        raise ArgumentError("irof needs feature_mask= (segment ids) or scikit-image for SLIC superpixels") from None
    (x,) = s.call.inputs if len(s.call.inputs) == 1 else (None,)
    if x is None or x.dim() != 4:
        raise ArgumentError("SLIC superpixels need one image input (N, C, H, W); pass feature_mask= otherwise")
    images = x.detach().cpu().double().numpy()
    segments = [slic(np.moveaxis(img, 0, -1), start_label=0) for img in images]
    return torch.as_tensor(np.stack(segments)[:, None], device=x.device)


def sufficiency(
    model: Callable[..., Any],
    *,
    threshold: float = 0.6,
    abs: bool = True,
    normalise: bool | str = "batch",
) -> Callable[..., Tensor]:
    r"""Sufficiency: of the other examples of the batch whose explanations lie close to an
    example's, the share the model assigns the same class. Distances are standardised Euclidean
    (each element divided by its variance over the batch), divided by the largest distance;
    "close" is at most ``threshold``; an example with no close neighbour scores 0.

    Elements whose attribution does not vary over the batch are left out of the distance (in
    Quantus 0.6 they make every distance NaN, and every score 0).

    Args:
        model: The model (its predicted class, the arg-max of its output, is compared).
        threshold: The largest normalised distance counted as close.
        abs: Use magnitudes (Quantus's default).
        normalise: Divide the attributions by the batch's largest magnitude (``"batch"``, Quantus's),
            each by its own (True), or not (False).

    Returns:
        ``measure(inputs, attributions, *, additional_forward_args=None) -> (N,)``.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> pa.metrics.sufficiency(model)(x, attr).shape
        torch.Size([4])

    References:
        - Dasgupta, Frost and Moshkovitz, "Framework for Evaluating Faithfulness of Local
          Explanations", ICML 2022. https://arxiv.org/abs/2202.00734
    """
    check_normalise(normalise)

    def measure(inputs: Any, attributions: Any, *, additional_forward_args: Any = None) -> Tensor:
        xs, _ = as_tuple(inputs)
        a = flat(attributions, abs, normalise).double()
        if a.shape[0] != xs[0].shape[0]:
            raise ArgumentError(f"attributions explain {a.shape[0]} examples but inputs hold {xs[0].shape[0]}")
        variance = a.var(0)
        a = a * torch.where(variance > 0, variance.rsqrt(), torch.zeros_like(variance))  # constant elements: out
        distance = torch.cdist(a, a)  # float64: the matmul form is exact to ~1e-12 at the threshold
        close = distance <= threshold * distance.amax().clamp_min(torch.finfo(distance.dtype).tiny)
        close.fill_diagonal_(False)
        classes = predicted_classes(model, *xs, *as_args(additional_forward_args))
        same = close & (classes[None] == classes[:, None])
        return (same.sum(1) / close.sum(1).clamp_min(1)).to(xs[0].dtype)

    return measure
