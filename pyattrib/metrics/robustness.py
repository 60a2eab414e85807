"""Robustness (Quantus's category): average sensitivity, the local Lipschitz estimate,
continuity, consistency and relative input, output and representation stability. Each a
transform of an attributor returning ``measure(inputs, *, generator=None,
**attributor_kwargs) -> (N,)``; the metric calls the attributor on the inputs and on every
perturbed copy (see :mod:`pyattrib.metrics._robust`). Max-sensitivity is
:func:`max_sensitivity` (Quantus's defaults) and :func:`pyattrib.metrics.sensitivity_max`
(Captum's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_tuple
from ._perturbed import predicted_classes
from ._robust import Measure, _norm, gaussian_noise, robustness, uniform_noise
from .explanations import check_normalise, flat


def _relative_change(a: Tensor, at: Tensor, x: Tensor, xt: Tensor, out: Any, seen: Any) -> Tensor:
    return _norm(a - at) / _norm(a)


def avg_sensitivity(
    attributor: Callable[..., Any],
    *,
    n_samples: int = 200,
    radius: float = 0.2,
    model: Callable[..., Any] | None = None,
    nan_when_prediction_changes: bool = False,
    abs: bool = False,
    normalise: bool | str = False,
    batch_size: int | None = None,
) -> Measure:
    r"""Average sensitivity: the mean relative change of an explanation under uniform input noise,
    :math:`\mathbb{E}_{\tilde x}\, \lVert \Phi(\tilde x) - \Phi(x) \rVert_2 / \lVert \Phi(x) \rVert_2`,
    :math:`\tilde x = x + U(-r, r)` per element, over ``n_samples`` copies.

    Args:
        attributor: Any attributor.
        n_samples: Perturbed copies per example.
        radius: The noise bound ``r`` (Quantus's ``lower_bound``).
        model: The model, needed for ``nan_when_prediction_changes``.
        nan_when_prediction_changes: Leave out copies whose predicted class changed.
        abs: Compare magnitudes.
        normalise: Divide explanations by their largest magnitude (True), per batch (``"batch"``), or not.
        batch_size: The most rows per call of the attributor (whole copies of the batch; default about
            2^16 input elements).

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.avg_sensitivity(pa.saliency(model), n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
          Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392
    """

    return robustness(attributor, _relative_change, uniform_noise(-radius, radius), n_samples, reduce="mean", abs=abs,
                      normalise=normalise, model=model, nan_when_prediction_changes=nan_when_prediction_changes,
                      batch_size=batch_size, name="avg_sensitivity")  # fmt: skip


def local_lipschitz_estimate(
    attributor: Callable[..., Any],
    *,
    n_samples: int = 200,
    std: float = 0.1,
    model: Callable[..., Any] | None = None,
    nan_when_prediction_changes: bool = False,
    abs: bool = False,
    normalise: bool | str = "batch",
    batch_size: int | None = None,
) -> Measure:
    r"""Local Lipschitz estimate: the largest ratio of explanation change to input change under
    Gaussian noise, :math:`\max_{\tilde x} \lVert \Phi(x) - \Phi(\tilde x) \rVert_2 /
    (\lVert x - \tilde x \rVert_2 + 10^{-10})`, :math:`\tilde x = x + \mathcal N(0, \sigma^2)`.

    Args:
        attributor: Any attributor.
        n_samples: Perturbed copies per example.
        std: The noise's standard deviation.
        model: The model, needed for ``nan_when_prediction_changes``.
        nan_when_prediction_changes: Leave out copies whose predicted class changed.
        abs: Compare magnitudes.
        normalise: ``"batch"`` (Quantus's: each call's explanations by their largest magnitude), True, False.
        batch_size: The most rows per call of the attributor.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.local_lipschitz_estimate(pa.saliency(model), n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Alvarez-Melis and Jaakkola, "On the Robustness of Interpretability Methods", 2018.
          https://arxiv.org/abs/1806.08049
    """

    def score(a: Tensor, at: Tensor, x: Tensor, xt: Tensor, out: Any, seen: Any) -> Tensor:
        return _norm(a - at) / (_norm(x - xt) + 1e-10)

    return robustness(attributor, score, gaussian_noise(std), n_samples, reduce="max", abs=abs, normalise=normalise,
                      model=model, nan_when_prediction_changes=nan_when_prediction_changes, batch_size=batch_size,
                      name="local_lipschitz_estimate")  # fmt: skip


def translated(x: Tensor, shift: int, fill: Tensor) -> Tensor:
    """Images ``(N, C, H, W)`` moved ``shift`` pixels along the width (right for positive), the
    uncovered columns filled with ``fill`` (``(N, 1, 1, 1)``)."""
    w = x.shape[-1]
    source = torch.arange(w, device=x.device) - shift
    inside = (source >= 0) & (source < w)
    moved = x.index_select(-1, source.clamp(0, w - 1))
    return torch.where(inside, moved, fill.expand_as(x))


def continuity(
    attributor: Callable[..., Any],
    *,
    n_steps: int = 28,
    model: Callable[..., Any] | None = None,
    nan_when_prediction_changes: bool = False,
    abs: bool = True,
    normalise: bool | str = "batch",
    batch_size: int | None = None,
) -> Measure:
    r"""Continuity: the largest ratio of explanation change (L1) to input change (L2) over
    horizontal translations of the images, :math:`\max_t \lVert \Phi(x) - \Phi(x_t) \rVert_1 /
    (\lVert x - x_t \rVert_2 + 10^{-9})`. As in Quantus, translation ``k`` of ``n_steps`` moves
    the image by :math:`-W + k \lfloor (2W + 1) / n_{steps} \rfloor` pixels, uncovered columns
    filled with the image's smallest value. Images only, ``(N, C, H, W)``.

    Args:
        attributor: Any attributor.
        n_steps: The number of translations.
        model: The model, needed for ``nan_when_prediction_changes``.
        nan_when_prediction_changes: Leave out translations that change the predicted class.
        abs: Compare magnitudes (Quantus's default).
        normalise: ``"batch"`` (Quantus's), True or False.
        batch_size: The most rows per call of the attributor.

    Returns:
        ``measure(inputs, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.continuity(pa.saliency(cnn), n_steps=4)
        >>> metric(images, target=0).shape
        torch.Size([2])

    References:
        - Montavon, Samek and Müller, "Methods for Interpreting and Understanding Deep Neural Networks",
          Digital Signal Processing 2018. https://arxiv.org/abs/1706.07979
    """
    check_count("n_steps", n_steps)

    def move(x: Tensor, k: int) -> Tensor:
        if x.dim() != 4:
            raise ArgumentError(f"continuity translates images (N, C, H, W); got inputs of shape {tuple(x.shape)}")
        w = x.shape[-1]
        shift = -w + (k + 1) * ((2 * w + 1) // n_steps)
        return translated(x, shift, x.reshape(x.shape[0], -1).amin(1).reshape(-1, 1, 1, 1))

    def score(a: Tensor, at: Tensor, x: Tensor, xt: Tensor, out: Any, seen: Any) -> Tensor:
        return _norm(a - at, 1) / (_norm(x - xt) + 1e-9)

    return robustness(attributor, score, move, n_steps, reduce="max", abs=abs, normalise=normalise, model=model,
                      nan_when_prediction_changes=nan_when_prediction_changes, batch_size=batch_size,
                      name="continuity", random_noise=False)  # fmt: skip


def _relative(h: Tensor, ht: Tensor, eps: float) -> Tensor:
    """:math:`\\lVert (h - \\tilde h) / h \\rVert_2` per row, zeros in ``h`` replaced by ``eps``."""
    return _norm((h - ht) / (h + (h == 0) * eps))


def _stability(kind: str, eps: float) -> Callable[..., Tensor]:
    def score(a: Tensor, at: Tensor, x: Tensor, xt: Tensor, out: Any, seen: Any) -> Tensor:
        top = _relative(a.double(), at.double(), eps)
        if kind == "input":
            bottom = _relative(x.double(), xt.double(), eps)
        elif kind == "output":
            bottom = _norm(out - seen)
        else:
            bottom = _relative(out, seen, eps)
        return top / (bottom + (bottom == 0) * eps)

    return score


def relative_stability(
    attributor: Callable[..., Any],
    model: Callable[..., Any],
    *,
    of: str = "input",
    layers: Sequence[nn.Module] | None = None,
    n_samples: int = 200,
    low: float = 0.02,
    high: float = 0.2,
    eps: float = 1e-6,
    nan_when_prediction_changes: bool = True,
    abs: bool = False,
    normalise: bool | str = False,
    batch_size: int | None = None,
) -> Measure:
    r"""Relative stability (Agarwal et al.): the largest relative change of the explanation over
    the relative change of the input (``of="input"``, RIS), of the model's output logits
    (``"output"``, ROS) or of internal representations (``"representation"``, RRS), over
    copies :math:`\tilde x = x + U(\mathrm{low}, \mathrm{high})` that keep the predicted class:

    .. math:: \max_{\tilde x} \frac{\lVert (\Phi(x) - \Phi(\tilde x)) / \Phi(x) \rVert_2}
              {\max(\lVert (h(x) - h(\tilde x)) / h(x) \rVert_2, \epsilon)}

    (ROS: the plain :math:`\lVert h(x) - h(\tilde x) \rVert_2` below; zeros divided by are
    replaced by :math:`\epsilon`). Quantus 0.6 takes a ``max`` that NaN propagates through, so
    one copy that changes the class makes the whole score NaN; pyattrib takes the maximum
    over the copies that keep it, as the paper defines (a test shows both).

    Args:
        attributor: Any attributor.
        model: The model (its predictions, logits or layers).
        of: ``"input"``, ``"output"`` or ``"representation"``.
        layers: For ``"representation"``: the modules whose outputs are compared, flattened and joined
            (default, as Quantus: every submodule that is not an ``nn.Sequential``).
        n_samples: Perturbed copies per example.
        low: The smallest noise added.
        high: The largest noise added.
        eps: Stands in for zeros in divisions.
        nan_when_prediction_changes: Leave out copies whose predicted class changed (the paper's).
        abs: Compare magnitudes.
        normalise: True, False (Quantus's) or ``"batch"``.
        batch_size: The most rows per call of the attributor.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.relative_stability(pa.saliency(model), model, of="output", n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Agarwal et al., "Rethinking Stability for Attribution-based Explanations", 2022.
          https://arxiv.org/abs/2203.06877
    """
    if of not in ("input", "output", "representation"):
        raise ArgumentError(f"of={of!r}; choose 'input', 'output' or 'representation'")
    representation = None
    if of == "representation":
        if not isinstance(model, nn.Module):
            raise ArgumentError("of='representation' reads the model's layers: pass an nn.Module")
        chosen = list(layers) if layers is not None else [
            m for m in model.modules() if m is not model and not isinstance(m, nn.Sequential)
        ]  # fmt: skip
        hidden = Layers(model, chosen, to_input=False)

        def representation(x: Any) -> Tensor:
            values = hidden.capture((x,), (), x.shape[0])
            return torch.cat([leaf.reshape(x.shape[0], -1) for v in values for leaf in v.leaves], 1)

    return robustness(attributor, _stability(of, eps), uniform_noise(low, high), n_samples, reduce="max", abs=abs,
                      normalise=normalise, model=model, nan_when_prediction_changes=nan_when_prediction_changes,
                      outputs=of != "input", representation=representation, batch_size=batch_size,
                      name="relative_stability")  # fmt: skip


def consistency(
    attributor: Callable[..., Any], model: Callable[..., Any], *, n: int = 5, abs: bool = True,
    normalise: bool | str = "batch",
) -> Measure:  # fmt: skip
    r"""Consistency: of the other examples of the batch whose explanation falls in the same
    discrete class, the share the model predicts the same class for. An explanation's discrete
    class is the sign pattern of its first ``n`` rows (its first ``n`` entries along the first
    axis of an example: Quantus's ``top_n_sign``, which for an image with at most ``n``
    channels is the sign of every element).

    Args:
        attributor: Any attributor.
        model: The model (its predicted classes).
        n: The rows whose signs make the discrete class.
        abs: Take magnitudes first (Quantus's default; the signs are then all non-negative).
        normalise: ``"batch"`` (Quantus's), True or False; signs do not depend on it.

    Returns:
        ``measure(inputs, **attributor_kwargs) -> (N,)``.

    Example:
        >>> pa.metrics.consistency(pa.saliency(model), model)(x, target=y).shape
        torch.Size([4])

    References:
        - Dasgupta, Frost and Moshkovitz, "Framework for Evaluating Faithfulness of Local
          Explanations", ICML 2022. https://arxiv.org/abs/2202.00734
    """
    check_count("n", n)
    check_normalise(normalise)

    def measure(inputs: Any, **kwargs: Any) -> Tensor:
        (x,), _ = as_tuple(inputs)
        with torch.no_grad():
            raw = attributor(x, **kwargs)
            a = flat(raw, abs, normalise).reshape(raw.shape)[:, :n].reshape(x.shape[0], -1)
        classes = predicted_classes(model, x)
        signs = torch.sign(a)
        same_label = (signs[None] == signs[:, None]).all(-1)
        same_label.fill_diagonal_(False)
        same_class = classes[None] == classes[:, None]
        return ((same_label & same_class).sum(1) / (same_label.sum(1) + 1e-9)).to(x.dtype)

    return measure


def relative_input_stability(attributor: Callable[..., Any], model: Callable[..., Any], **options: Any) -> Measure:
    """Relative input stability (RIS): :func:`relative_stability` with ``of="input"``.

    Args:
        attributor: Any attributor.
        model: The model (its predicted classes).
        **options: The options of :func:`relative_stability`.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.relative_input_stability(pa.saliency(model), model, n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Agarwal et al., "Rethinking Stability for Attribution-based Explanations", 2022.
          https://arxiv.org/abs/2203.06877
    """
    return relative_stability(attributor, model, of="input", **options)


def relative_output_stability(attributor: Callable[..., Any], model: Callable[..., Any], **options: Any) -> Measure:
    """Relative output stability (ROS): :func:`relative_stability` with ``of="output"`` (logits).

    Args:
        attributor: Any attributor.
        model: The model (its logits and predicted classes).
        **options: The options of :func:`relative_stability`.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.relative_output_stability(pa.saliency(model), model, n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Agarwal et al., "Rethinking Stability for Attribution-based Explanations", 2022.
          https://arxiv.org/abs/2203.06877
    """
    return relative_stability(attributor, model, of="output", **options)


def relative_representation_stability(attributor: Callable[..., Any], model: nn.Module, **options: Any) -> Measure:
    """Relative representation stability (RRS): :func:`relative_stability` with
    ``of="representation"`` (``layers=`` chooses the modules read).

    Args:
        attributor: Any attributor.
        model: The model (its layers and predicted classes).
        **options: The options of :func:`relative_stability`.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.relative_representation_stability(pa.saliency(model), model, n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Agarwal et al., "Rethinking Stability for Attribution-based Explanations", 2022.
          https://arxiv.org/abs/2203.06877
    """
    return relative_stability(attributor, model, of="representation", **options)


def max_sensitivity(
    attributor: Callable[..., Any],
    *,
    n_samples: int = 200,
    radius: float = 0.2,
    model: Callable[..., Any] | None = None,
    nan_when_prediction_changes: bool = False,
    abs: bool = False,
    normalise: bool | str = False,
    batch_size: int | None = None,
) -> Measure:
    r"""Max-sensitivity with Quantus's defaults and options: the largest relative change of an
    explanation under uniform input noise, :math:`\max_{\tilde x} \lVert \Phi(\tilde x) - \Phi(x)
    \rVert_2 / \lVert \Phi(x) \rVert_2`, :math:`\tilde x = x + U(-r, r)`. The same quantity as
    :func:`sensitivity_max` (Captum's defaults and protocol).

    Args:
        attributor: Any attributor.
        n_samples: Perturbed copies per example.
        radius: The noise bound ``r``.
        model: The model, needed for ``nan_when_prediction_changes``.
        nan_when_prediction_changes: Leave out copies whose predicted class changed.
        abs: Compare magnitudes.
        normalise: True, False or ``"batch"``.
        batch_size: The most rows per call of the attributor.

    Returns:
        ``measure(inputs, *, generator, **attributor_kwargs) -> (N,)``.

    Example:
        >>> metric = pa.metrics.max_sensitivity(pa.saliency(model), n_samples=4)
        >>> metric(x, target=y, generator=generator).shape
        torch.Size([4])

    References:
        - Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
          Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392
    """
    return robustness(attributor, _relative_change, uniform_noise(-radius, radius), n_samples, reduce="max", abs=abs,
                      normalise=normalise, model=model, nan_when_prediction_changes=nan_when_prediction_changes,
                      batch_size=batch_size, name="max_sensitivity")  # fmt: skip
