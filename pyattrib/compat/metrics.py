"""Captum's ``captum.metrics`` functions over :mod:`pyattrib.metrics`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import metrics
from .._core.inputs import TensorOrTuple, as_tuple


def infidelity(
    forward_func: Callable[..., Any],
    perturb_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any = None,
    additional_forward_args: Any = None,
    target: Any = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
) -> Tensor:
    """Captum's ``infidelity``: :func:`pyattrib.metrics.infidelity`, all samples in one forward
    unless ``max_examples_per_batch`` is given.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        perturb_func: Captum's sampler: a function or generator of perturbed samples.
        inputs: The inputs.
        attributions: The attributions of ``inputs``.
        baselines: The baselines.
        additional_forward_args: Further arguments of the model.
        target: The output explained.
        n_perturb_samples: Perturbations per example.
        max_examples_per_batch: Captum's chunking knob: examples per forward pass.
        normalize: Rescale the attributions by the optimal factor first.

    Returns:
        Tensor: one score per example.

    Example:
        >>> from pyattrib.compat import infidelity
        >>> noise = lambda x: (0.1 * torch.ones_like(x), x - 0.1)
        >>> attr = pa.saliency(model)(x, target=y)
        >>> infidelity(model, noise, x, attr, target=y).shape
        torch.Size([4])
    """
    n = as_tuple(inputs)[0][0].shape[0]
    rows = max_examples_per_batch if max_examples_per_batch is not None else n * n_perturb_samples
    measure = metrics.infidelity(
        forward_func, perturb_func, n_samples=n_perturb_samples, batch_size=rows, normalize=normalize
    )
    return measure(inputs, attributions, baselines, target=target, additional_forward_args=additional_forward_args)


def infidelity_perturb_func_decorator(multiply_by_inputs: bool = True) -> Callable[[Callable], Callable]:
    """Captum's decorator: :func:`pyattrib.metrics.perturbations_from`.

    Args:
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Returns:
        A decorator turning ``perturb(inputs[, baselines]) -> perturbed`` into an infidelity
        perturbation function.

    Example:
        >>> from pyattrib.compat import infidelity_perturb_func_decorator
        >>> perturb = infidelity_perturb_func_decorator(False)(lambda x: x - 0.1)
        >>> perturbations, perturbed = perturb(x)
        >>> perturbations[0].shape if isinstance(perturbations, tuple) else perturbations.shape
        torch.Size([4, 8])
    """
    return lambda perturb_func: metrics.perturbations_from(perturb_func, multiply_by_inputs)


def default_perturb_func(inputs: TensorOrTuple, perturb_radius: float = 0.02) -> tuple[Tensor, ...]:
    """Captum's default for sensitivity_max: uniform noise in ``[-r, r]``, drawn from the global
    generator as float32 on the CPU (Captum's draws), then moved to the inputs' device.

    Args:
        inputs: The inputs.
        perturb_radius: Radius of the uniform noise.

    Returns:
        The perturbed inputs.

    Example:
        >>> from pyattrib.compat import default_perturb_func
        >>> perturbed = default_perturb_func(x, 0.02)
        >>> perturbed[0].shape if isinstance(perturbed, tuple) else perturbed.shape
        torch.Size([4, 8])
    """
    xs, _ = as_tuple(inputs)
    return tuple(x + torch.empty(x.shape).uniform_(-perturb_radius, perturb_radius).to(x.device) for x in xs)


def sensitivity_max(
    explanation_func: Callable[..., Any],
    inputs: TensorOrTuple,
    perturb_func: Callable[..., Any] = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str = "fro",
    max_examples_per_batch: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """Captum's ``sensitivity_max``: :func:`pyattrib.metrics.sensitivity_max`.

    Args:
        explanation_func: The explanation function (e.g. a compat instance's ``attribute``).
        inputs: The inputs.
        perturb_func: Captum's sampler: a function or generator of perturbed samples.
        perturb_radius: Radius of the uniform noise.
        n_perturb_samples: Perturbations per example.
        norm_ord: The norm of the difference of explanations.
        max_examples_per_batch: Captum's chunking knob: examples per forward pass.
        **kwargs: Passed on to the explanation function (or the native class).

    Returns:
        Tensor: one score per example.

    Example:
        >>> from pyattrib.compat import Saliency, sensitivity_max
        >>> sensitivity_max(Saliency(model).attribute, x, target=y).shape
        torch.Size([4])
    """
    measure = metrics.sensitivity_max(
        explanation_func, perturb_func=perturb_func, perturb_radius=perturb_radius,
        n_samples=n_perturb_samples, norm_ord=norm_ord, batch_size=max_examples_per_batch,
    )  # fmt: skip
    return measure(inputs, **kwargs)
