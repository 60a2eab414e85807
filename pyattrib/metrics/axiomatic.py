"""Axioms as metrics (Quantus's axiomatic category): completeness, non-sensitivity and input
invariance; and the random-logit test of randomisation. Each a transform returning
``measure(...) -> (N,)``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core import random
from .._core.attributor import call_on_copies
from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_tuple
from .._core.targets import TargetLike
from ._perturbed import Fill, check_options, fill_rows, need_generator, setting
from .explanations import check_normalise, flat
from .faithfulness import ranked_rows

Measure = Callable[..., Tensor]


def completeness(
    model: Callable[..., Any],
    *,
    baselines: Fill = "black",
    rtol: float = 1e-3,
    atol: float = 1e-5,
    softmax: bool = False,
    batch_size: int | None = None,
) -> Measure:
    r"""Completeness: whether the attributions sum to the change of the output from the baseline
    to the input, :math:`\sum_i a_i \approx f(x)_c - f(\bar x)_c` (within ``rtol``, ``atol``).

    Quantus 0.6 tests this with exact float equality on attributions it first divides by
    their largest magnitude, so even exact integrated gradients fail; pyattrib compares the raw
    attributions with a tolerance, as the axiom is stated (a test shows both).

    Args:
        model: The model.
        baselines: The baseline :math:`\bar x` (see :func:`pixel_flipping`; Quantus's default ``"black"``).
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        softmax: Score probabilities (Quantus's default: off).
        batch_size: The most rows per model evaluation.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None) -> (N,)`` bool.

    Example:
        >>> attr = pa.integrated_gradients(model, n_steps=200)(x, target=y)
        >>> pa.metrics.completeness(model, baselines=0.0, atol=1e-3)(x, attr, target=y).all()
        tensor(True)

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365
    """
    check_options(batch_size, baselines)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Tensor:
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=False, softmax=softmax,
                    name="completeness")  # fmt: skip
        fill = fill_rows(s, baselines)
        y, base = s.with_original(lambda p, i: fill(p, i).expand(len(i), s.x.shape[1]), 1, batch_size, False,
                                  "baseline")  # fmt: skip
        change = y - base[:, 0]
        return torch.isclose(s.a.sum(1), change, rtol=rtol, atol=atol)

    return measure


def non_sensitivity(
    model: Callable[..., Any],
    *,
    eps: float = 1e-5,
    features_in_step: int = 1,
    baselines: Fill = "black",
    abs: bool = True,
    normalise: bool | str = "batch",
    softmax: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Measure:
    r"""Non-sensitivity: the number of features that break the dummy axiom, those with zero
    attribution (below ``eps``) whose replacement by the baseline changes the output (by
    ``eps`` or more), plus those with attribution whose replacement does not. Each group of
    ``features_in_step`` elements (in order) is replaced alone; a group counts as zero when
    all its attributions are.

    Args:
        model: The model.
        eps: The threshold for a zero attribution and for an unchanged output.
        features_in_step: Elements per group.
        baselines: The replacement (see :func:`pixel_flipping`).
        abs: Use magnitudes (Quantus's default).
        normalise: ``"batch"`` (Quantus's), True or False: the scale ``eps`` is read on.
        softmax: Score probabilities (Quantus's default).
        batch_size: The most rows per model evaluation.
        show_progress: Show a progress bar.

    Returns:
        ``measure(inputs, attributions, *, target=None, additional_forward_args=None) -> (N,)`` int64.

    Example:
        >>> attr = pa.saliency(model)(x, target=y)
        >>> pa.metrics.non_sensitivity(model)(x, attr, target=y).shape
        torch.Size([4])

    References:
        - Nguyen and Martínez, "On Quantitative Aspects of Model Interpretability", 2020.
          https://arxiv.org/abs/2007.07584
    """
    check_count("features_in_step", features_in_step)
    check_options(batch_size, baselines)
    check_normalise(normalise)

    def measure(
        inputs: Any, attributions: Any, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Tensor:
        s = setting(model, inputs, attributions, target, additional_forward_args, abs=False, softmax=softmax,
                    name="non_sensitivity")  # fmt: skip
        a = flat(s.a, abs, normalise)
        d, k = s.x.shape[1], features_in_step
        groups = torch.arange(d, device=s.x.device) // k
        in_order = torch.arange(d, device=s.x.device).expand(s.n, -1)  # group t: elements t*k .. (t+1)*k - 1
        rows = ranked_rows(s, in_order, fill_rows(s, baselines), k, cumulative=False)
        n_groups = -(-d // k)
        y, out = s.with_original(rows, n_groups, batch_size, show_progress, "non-sensitivity")
        unchanged = (out - y[:, None]).abs() < eps
        zero = torch.ones(s.n, n_groups, dtype=torch.bool, device=a.device).scatter_reduce(
            1, groups.expand(s.n, -1), a < eps, "amin"
        )
        return (unchanged ^ zero).sum(1)

    return measure


def input_invariance(
    explain: Callable[[nn.Module], Callable[..., Any]], model: nn.Module, *, shift: float = -1.0, atol: float = 1e-4
) -> Measure:
    r"""Input invariance: whether the explanation stays the same when the input is shifted by a
    constant and the model's first layer absorbs the shift, so that the model computes the same
    function: :math:`\Phi_{f'}(x + s) \approx \Phi_f(x)` with :math:`f'(x + s) = f(x)`. The first
    module with parameters (``nn.Linear`` or ``nn.Conv*``) of a copy of the model gets the bias
    :math:`b - s\, W \mathbf 1` (exact away from a convolution's zero padding; Quantus takes the
    smallest response of each channel). The user's model is not touched.

    Args:
        explain: ``explain(m)`` builds the attributor for a model ``m``.
        model: The model.
        shift: The constant added to every input element.
        atol: The absolute tolerance of "the same".

    Returns:
        ``measure(inputs, **attributor_kwargs) -> (N,)`` bool.

    Example:
        >>> check = pa.metrics.input_invariance(lambda m: pa.saliency(m), model)
        >>> check(x, target=y).all()
        tensor(True)

    References:
        - Kindermans et al., "The (Un)reliability of Saliency Methods", 2017.
          https://arxiv.org/abs/1711.00867
    """
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))), None)
    if first is None or first.bias is None:
        raise ArgumentError("input_invariance shifts the bias of the model's first Linear or Conv layer; it has none")

    def measure(inputs: Any, **kwargs: Any) -> Tensor:
        (x,), _ = as_tuple(inputs)
        shifted = copy.deepcopy(model)
        layer: Any = dict(zip(model.modules(), shifted.modules()))[first]
        with torch.no_grad():
            layer.bias -= shift * layer.weight.sum(dim=tuple(range(1, layer.weight.dim())))
        a = explain(model)(x, **kwargs)
        b = explain(shifted)(x + shift, **kwargs)
        a, b = (t.detach().reshape(x.shape[0], -1) for t in (a, b))
        return torch.isclose(a, b, rtol=0, atol=atol).all(1)

    return measure


def ssim(a: Tensor, b: Tensor, win_size: int = 7) -> Tensor:
    r"""The structural similarity of each row of two ``(N, D)`` tensors, as scikit-image computes
    it for 1-D signals (uniform window of ``win_size``, reflected edges, sample covariances,
    :math:`K_1 = 0.01`, :math:`K_2 = 0.03`, the data range of the two rows together).

    Args:
        a: ``(N, D)`` values.
        b: ``(N, D)`` values.
        win_size: The window's length (odd).

    Returns:
        Tensor: ``(N,)`` mean SSIM per row.

    Example:
        >>> pa.metrics.ssim(torch.arange(16.0)[None], torch.arange(16.0)[None])
        tensor([1.], dtype=torch.float64)

    References:
        - Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From Error Visibility to
          Structural Similarity", IEEE TIP 2004. https://doi.org/10.1109/TIP.2003.819861
    """
    a, b = a.double(), b.double()
    both = torch.cat([a, b], 1)
    data_range = both.amax(1) - both.amin(1)
    pad = (win_size - 1) // 2

    def mean(t: Tensor) -> Tensor:  # scipy's "reflect": the edge sample repeats (d c b a | a b c d | d c b a)
        padded = torch.cat([t[:, :pad].flip(1), t, t[:, t.shape[1] - pad :].flip(1)], 1)
        return F.avg_pool1d(padded[:, None], win_size, stride=1)[:, 0]

    cov = win_size / (win_size - 1)
    ux, uy = mean(a), mean(b)
    vx, vy = cov * (mean(a * a) - ux * ux), cov * (mean(b * b) - uy * uy)
    vxy = cov * (mean(a * b) - ux * uy)
    c1, c2 = ((0.01 * data_range) ** 2)[:, None], ((0.03 * data_range) ** 2)[:, None]
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s[:, pad : s.shape[1] - pad].mean(1)


def random_logit(
    attributor: Callable[..., Any], *, n_classes: int, abs: bool = False, normalise: bool | str = "batch"
) -> Measure:
    r"""Random logit: the similarity (:func:`ssim`) of each explanation of the target class with the
    explanation of a class drawn uniformly from the other ``n_classes - 1``; a class-sensitive
    method scores low.

    Args:
        attributor: Any attributor taking ``target=``.
        n_classes: The number of classes.
        abs: Compare magnitudes.
        normalise: ``"batch"`` (Quantus's), True or False.

    Returns:
        ``measure(inputs, *, target, generator, attributions=None, **attributor_kwargs) -> (N,)``;
        ``attributions``: the target's explanations when already computed (else the attributor
        computes them).

    Example:
        >>> metric = pa.metrics.random_logit(pa.saliency(model), n_classes=3)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Sixt, Granz and Landgraf, "When Explanations Lie: Why Many Modified BP Attributions Fail",
          ICML 2020. https://arxiv.org/abs/1912.09818
    """
    if n_classes < 2:
        raise ArgumentError("random_logit needs n_classes >= 2")
    check_normalise(normalise)

    def measure(
        inputs: Any, *, target: Tensor, generator: torch.Generator | None = None, attributions: Any = None,
        **kwargs: Any,
    ) -> Tensor:  # fmt: skip
        need_generator(generator, "random_logit", "the other class")
        (x,), _ = as_tuple(inputs)
        y = torch.as_tensor(target, device=x.device).reshape(-1).expand(x.shape[0])
        k = random.integers(n_classes - 1, (x.shape[0],), x, generator)
        other = torch.where(k < y, k, k + 1)  # the k-th of the classes other than y
        with torch.no_grad():
            if attributions is None:  # both classes' explanations in one call: rows 2i, 2i + 1
                both, _, _ = call_on_copies(attributor, (x.repeat_interleave(2, 0),), False, kwargs, len(x), 2,
                                            per_copy={"target": torch.stack([y, other], 1).reshape(-1)})  # fmt: skip
                attributions, theirs = both[0][:, 0], both[0][:, 1]
            else:
                theirs = attributor(x, target=other, **kwargs)
        return ssim(flat(attributions, abs, normalise), flat(theirs, abs, normalise)).to(x.dtype)

    return measure
