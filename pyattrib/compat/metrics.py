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
    unless ``max_examples_per_batch`` is given."""
    n = as_tuple(inputs)[0][0].shape[0]
    rows = max_examples_per_batch if max_examples_per_batch is not None else n * n_perturb_samples
    measure = metrics.infidelity(
        forward_func, perturb_func, n_perturb_samples=n_perturb_samples, batch_size=rows, normalize=normalize
    )
    return measure(inputs, attributions, baselines, target=target, additional_forward_args=additional_forward_args)


def infidelity_perturb_func_decorator(multiply_by_inputs: bool = True) -> Callable[[Callable], Callable]:
    """Captum's decorator: :func:`pyattrib.metrics.perturbations_from`."""
    return lambda perturb_func: metrics.perturbations_from(perturb_func, multiply_by_inputs)


def default_perturb_func(inputs: TensorOrTuple, perturb_radius: float = 0.02) -> tuple[Tensor, ...]:
    """Captum's default for sensitivity_max: uniform noise in ``[-r, r]``, drawn from the global
    generator as float32 on the CPU (Captum's draws), then moved to the inputs' device."""
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
    """Captum's ``sensitivity_max``: :func:`pyattrib.metrics.sensitivity_max`."""
    measure = metrics.sensitivity_max(
        explanation_func, perturb_func=perturb_func, perturb_radius=perturb_radius,
        n_perturb_samples=n_perturb_samples, norm_ord=norm_ord, batch_size=max_examples_per_batch,
    )  # fmt: skip
    return measure(inputs, **kwargs)
