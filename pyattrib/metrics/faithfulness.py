"""Faithfulness by ordered removal: take features away (or put them back) in the order of their
attributions and watch the model's output. Pixel flipping, region perturbation, selectivity,
faithfulness estimate and monotonicity (Arya et al.). Each a transform ``metric(model, ...)``
returning ``measure(inputs, attributions, *, target=None, additional_forward_args=None)``.

Every step of every example is one perturbed row; all rows run through the model in batched
forwards of at most ``batch_size`` rows (:mod:`pyattrib.metrics._perturbed`). Attributions are
ranked over the inputs' elements (channels apart); attributions with one channel serve every
channel. Ties are ranked by position.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._core import random
from .._core.errors import ArgumentError, check_count
from .._core.perturb import FeatureMask
from .._core.targets import TargetLike
from ._perturbed import (
    Fill,
    Setting,
    ascending,
    check_options,
    fill_rows,
    need_generator,
    pearson,
    setting,
)

Measure = Callable[..., Tensor]
ORDERS = ("morf", "lerf", "random")


def _steps(s: Setting, features_in_step: int) -> int:
    return math.ceil(s.x.shape[1] / features_in_step)


def ranked_rows(
    s: Setting, ranks: Tensor, fill: Callable[..., Tensor], per_step: int, *, cumulative: bool = True,
    insert: bool = False, repeats: int = 1,
) -> Callable[[Tensor, Tensor], Tensor]:  # fmt: skip
    """Rows that replace (``insert``: keep) the elements whose rank (``(N, D)``, 0 first) is below
    ``(t + 1) * per_step`` at step ``t = p // repeats`` (not ``cumulative``: only the ``per_step``
    of step ``t``); ``repeats`` copies of each step differ only in their ``fill(p, i)``."""

    def rows(p: Tensor, i: Tensor) -> Tensor:
        r, top = ranks.index_select(0, i), ((torch.div(p, repeats, rounding_mode="floor") + 1) * per_step)[:, None]
        chosen = r < top if cumulative else (r < top) & (r >= top - per_step)
        x, f = s.x.index_select(0, i), fill(p, i)
        return torch.where(chosen, x, f) if insert else torch.where(chosen, f, x)

    return rows


def step_sums(s: Setting, ranks: Tensor, per_step: int, n_steps: int) -> Tensor:
    """``(N, n_steps)``: the summed attribution of the elements each step of ``per_step`` takes
    (ranks ``[t * per_step, (t + 1) * per_step)``)."""
    sums = torch.zeros(s.n, -(-s.x.shape[1] // per_step), dtype=s.a.dtype, device=s.a.device)
    return sums.scatter_add_(1, torch.div(ranks, per_step, rounding_mode="floor"), s.a)[:, :n_steps]


def pixel_flipping(
    model: Callable[..., Any],
    *,
    features_in_step: int = 1,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Pixel flipping: replace the inputs' elements by a baseline, ``features_in_step`` at a time
    in descending order of attribution, cumulatively, and record the selected output after each
    step: :math:`y_t = f(x^{(t)})_c`, :math:`t = 1 \ldots \lceil D / k \rceil`. A faithful
    explanation makes the curve fall fast; ``torch.trapezoid(scores, dim=1)`` is Quantus's
    ``return_auc_per_sample`` (unit spacing).

    Args:
        model: The model (or any function of the inputs returning one row of outputs per example).
        features_in_step: Elements replaced per step (``k``).
        baselines: The replacement: ``"black"`` (the example's smallest value, Quantus's default),
            ``"white"``, ``"mean"``, ``"uniform"``, a number, or a tensor of the inputs' shape.
        abs: Rank by magnitude.
        softmax: Score the softmax of the model's output (Quantus's default for this metric: on).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None) -> (N, S)``.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> pa.metrics.pixel_flipping(model)(x, attr, target=y).shape
        torch.Size([4, 8])

    References:
        - Bach et al., "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by
          Layer-Wise Relevance Propagation", PLOS ONE 2015. https://doi.org/10.1371/journal.pone.0130140
    """
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Tensor:
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="pixel_flipping")  # fmt: skip
        rows = ranked_rows(s, ascending(s.a, descending=True), fill_rows(s, baselines), features_in_step)
        return s.outputs(rows, _steps(s, features_in_step), batch_size, show_progress, "pixel flipping").to(s.x.dtype)

    return measure


def faithfulness_estimate(
    model: Callable[..., Any],
    *,
    features_in_step: int = 1,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Faithfulness estimate: the Pearson correlation, per example, between the attributions of
    each group of ``features_in_step`` elements (in descending order) and the drop of the output
    when that group alone is replaced by the baseline:
    :math:`\rho\big(\sum_{i \in G_t} a_i,\; f(x)_c - f(x_{G_t \leftarrow b})_c\big)_t`.

    Args:
        model: The model.
        features_in_step: Elements per group (``k``).
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Use magnitudes.
        softmax: Score the softmax of the model's output (Quantus's default: off).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None) -> (N,)``.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> pa.metrics.faithfulness_estimate(model)(x, attr, target=y).shape
        torch.Size([4])

    References:
        - Alvarez-Melis and Jaakkola, "Towards Robust Interpretability with Self-Explaining Neural
          Networks", NeurIPS 2018. https://arxiv.org/abs/1806.07538
    """
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Tensor:
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="faithfulness_estimate")  # fmt: skip
        ranks, n_steps = ascending(s.a, descending=True), _steps(s, features_in_step)
        rows = ranked_rows(s, ranks, fill_rows(s, baselines), features_in_step, cumulative=False)
        y, out = s.with_original(rows, n_steps, batch_size, show_progress, "estimate")
        drops = y[:, None] - out
        return pearson(step_sums(s, ranks, features_in_step, n_steps), drops).to(s.x.dtype)

    return measure


def monotonicity(
    model: Callable[..., Any],
    *,
    features_in_step: int = 1,
    baselines: Fill = "black",
    abs: bool = True,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Monotonicity (Arya et al.): start from the baseline and put the inputs' elements back,
    ``features_in_step`` at a time in ascending order of attribution; the explanation is
    monotonic where the selected output never falls: :math:`f(x^{(t+1)})_c \ge f(x^{(t)})_c`
    for all :math:`t`.

    Quantus 0.6 replaces the elements of its all-baseline copy by the baseline again, so its
    copies never change and every explanation scores True (a test shows it); pyattrib puts the
    input's values back, as the paper does.

    Args:
        model: The model.
        features_in_step: Elements put back per step.
        baselines: The starting point (see :func:`pixel_flipping`).
        abs: Rank by magnitude (Quantus's default).
        softmax: Score probabilities (Quantus's default).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None) -> (N,)`` bool.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> pa.metrics.monotonicity(model)(x, attr, target=y).dtype
        torch.bool

    References:
        - Arya et al., "One Explanation Does Not Fit All: A Toolkit and Taxonomy of AI Explainability
          Techniques", 2019. https://arxiv.org/abs/1909.03012
    """
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Tensor:
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax,
                    name="monotonicity")  # fmt: skip
        rows = ranked_rows(s, ascending(s.a), fill_rows(s, baselines), features_in_step, insert=True)
        curve = s.outputs(rows, _steps(s, features_in_step), batch_size, show_progress, "monotonicity")
        return (curve.diff(dim=1) >= 0).all(1)

    return measure


def region_perturbation(
    model: Callable[..., Any],
    *,
    patch_size: int = 8,
    order: str = "morf",
    regions_evaluation: int = 100,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Region perturbation: replace square patches of ``patch_size`` pixels (all channels) by the
    baseline, one more patch per step, in descending (``"morf"``), ascending (``"lerf"``) or
    random order of their summed attributions, and record the drop of the selected output,
    :math:`f(x)_c - f(x^{(t)})_c` for the first ``regions_evaluation`` patches. The image is
    split as Quantus splits it: padded by ``patch_size - H mod patch_size`` rows (half above,
    rounded down) and likewise columns, so border patches are smaller. A ``feature_mask`` at
    call time (``(N or 1, 1 or C, H, W)`` integer ids) gives any regions instead (superpixels).

    Args:
        model: The model.
        patch_size: The side of a patch in pixels.
        order: ``"morf"`` (most relevant first), ``"lerf"`` (least relevant first) or ``"random"``
            (needs a ``generator`` at call time).
        regions_evaluation: The most patches replaced.
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Rank by magnitude.
        softmax: Score probabilities (Quantus's default: on).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, feature_mask=None,
        generator=None) -> (N, R)``.

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> pa.metrics.region_perturbation(cnn, patch_size=4)(images, attr, target=0).shape
        torch.Size([2, 4])

    References:
        - Samek, Binder, Montavon, Lapuschkin and Müller, "Evaluating the Visualization of What a Deep
          Neural Network Has Learned", IEEE TNNLS 2017. https://arxiv.org/abs/1509.06321
    """
    if order not in ORDERS:
        raise ArgumentError(f"order={order!r}; choose 'morf', 'lerf' or 'random'")
    check_count("patch_size", patch_size)
    check_count("regions_evaluation", regions_evaluation)
    return _regions(model, patch_size, order, regions_evaluation, baselines, abs, softmax, batch_size, show_progress,
                    drop=True, name="region_perturbation")  # fmt: skip


def selectivity(
    model: Callable[..., Any],
    *,
    patch_size: int = 8,
    baselines: Fill = "black",
    abs: bool = False,
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Selectivity: replace patches in descending order of their summed attributions, every patch
    of the image one after another (split as in :func:`region_perturbation`), and record the
    selected output :math:`f(x^{(t)})_c` after each; a faithful explanation makes it fall fast
    (``torch.trapezoid(scores, dim=1)``: Quantus's AUC).

    Args:
        model: The model.
        patch_size: The side of a patch in pixels.
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Rank by magnitude.
        softmax: Score probabilities (Quantus's default: on).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None, feature_mask=None)
        -> (N, P)``.

    Example:
        >>> attr = pa.saliency(cnn)(images, target=0)
        >>> pa.metrics.selectivity(cnn, patch_size=4)(images, attr, target=0).shape
        torch.Size([2, 4])

    References:
        - Montavon, Samek and Müller, "Methods for Interpreting and Understanding Deep Neural Networks",
          Digital Signal Processing 2018. https://arxiv.org/abs/1706.07979
    """
    check_count("patch_size", patch_size)
    return _regions(model, patch_size, "morf", None, baselines, abs, softmax, batch_size, show_progress, drop=False,
                    name="selectivity")  # fmt: skip


def patches(shape: tuple[int, ...], patch_size: int, device: torch.device) -> Tensor:
    """``(C * H * W,)`` patch ids of an image of ``shape`` ``(C, H, W)``, padded as Quantus pads."""
    if len(shape) != 3:
        raise ArgumentError(
            f"patches need images of shape (N, C, H, W), got examples of shape {shape}; pass feature_mask= to give "
            "the regions of other inputs"
        )
    c, h, w = shape
    top, left = ((-h) % patch_size) // 2, ((-w) % patch_size) // 2
    rows = (torch.arange(h, device=device) + top) // patch_size
    cols = (torch.arange(w, device=device) + left) // patch_size
    ids = rows[:, None] * ((w + (-w) % patch_size) // patch_size) + cols[None]
    return ids.expand(c, h, w).reshape(-1)


def regions_of(s: Setting, feature_mask: Any, patch_size: int | None) -> Tensor:
    """``(N, D)`` region ids (0 .. F-1) of every element: the patches, or a feature mask (read by
    :class:`pyattrib._core.perturb.FeatureMask`, which renumbers any integer ids)."""
    if feature_mask is None:
        x = s.call.inputs
        if len(x) != 1 or patch_size is None:
            raise ArgumentError("regions of several inputs need feature_mask=")
        return patches(tuple(x[0].shape[1:]), patch_size, s.x.device).expand(s.n, -1)
    mask, everyone = FeatureMask(feature_mask, s.call), torch.arange(s.n, device=s.x.device)
    return torch.cat([mask.rows(j, everyone).reshape(s.n, -1) for j in range(len(s.call.inputs))], 1)


def region_ranks(
    s: Setting, ids: Tensor, order: str, generator: torch.Generator | None, by: str = "sum"
) -> tuple[Tensor, Tensor]:
    """Every element's region's place in the order (``(N, D)``) and each example's number of
    regions (``(N,)``): regions ranked by their summed (``by="mean"``: mean) attribution, or at
    random; regions an example does not have come last."""
    n_regions = int(ids.max()) + 1
    sizes = torch.zeros(s.n, n_regions, device=s.a.device, dtype=s.a.dtype).scatter_add_(1, ids, torch.ones_like(s.a))
    score = torch.zeros_like(sizes).scatter_add_(1, ids, s.a)
    if by == "mean":
        score = score / sizes.clamp_min(1)
    if order == "random":
        need_generator(generator, "order='random'", "a random order of the regions")
        score, order = random.uniform((s.n, n_regions), s.a, generator), "morf"
    last = -torch.inf if order == "morf" else torch.inf
    places = ascending(torch.where(sizes > 0, score, torch.full_like(score, last)), descending=order == "morf")
    return places.gather(1, ids), (sizes > 0).sum(1)


def _regions(model, patch_size, order, regions_evaluation, baselines, abs, softmax, batch_size, show_progress, *,
             drop: bool, name: str) -> Measure:  # fmt: skip
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        feature_mask: Any = None, generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=abs, softmax=softmax, name=name)
        ranks, counts = region_ranks(s, regions_of(s, feature_mask, patch_size), order, generator)
        n_regions = int(counts.max())
        n_steps = n_regions if regions_evaluation is None else min(regions_evaluation, n_regions)
        rows = ranked_rows(s, ranks, fill_rows(s, baselines), 1)
        if not drop:
            return s.outputs(rows, n_steps, batch_size, show_progress, name.replace("_", " ")).to(s.x.dtype)
        y, scores = s.with_original(rows, n_steps, batch_size, show_progress, name.replace("_", " "))
        return (y[:, None] - scores).to(s.x.dtype)

    measure.__qualname__ = f"{name}.<locals>.measure"  # its metric's name (evaluate ranks by it)
    return measure
