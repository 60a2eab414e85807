"""Max-sensitivity of an explanation (Yeh et al., 2019, https://arxiv.org/abs/1901.09392)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core import random
from .._core.attributor import bind_baselines, call_on_copies
from .._core.capture import LayerValue
from .._core.errors import ArgumentError, check_batch_size, check_count, renamed
from .._core.inputs import TensorOrTuple, as_tuple, restore


@renamed(n_perturb_samples="n_samples")
def sensitivity_max(
    attributor: Callable[..., Any],
    *,
    perturb_func: Callable[..., TensorOrTuple] | None = None,
    perturb_radius: float = 0.02,
    n_samples: int = 10,
    norm_ord: str | float = "fro",
    batch_size: int | None = None,
) -> Callable[..., Tensor]:
    r"""Max-sensitivity: the largest relative change of an explanation under small input noise.

    .. math::
        \mathrm{SENS}_{\max}(\Phi, x) = \max_{\lVert \tilde x - x \rVert_\infty \le r}
        \frac{\lVert \Phi(\tilde x) - \Phi(x) \rVert}{\lVert \Phi(x) \rVert}

    estimated over ``n_samples`` draws of :math:`\tilde x = x + U(-r, r)` per
    example (``r = perturb_radius``), or of ``perturb_func(inputs[, perturb_radius])``
    (Captum's protocol). The norm is ``norm_ord`` over all attribution elements of an
    example (``"fro"``: the 2-norm); a zero :math:`\lVert\Phi(x)\rVert` counts as 1.

    ``attributor`` is any pyattrib attributor (``sensitivity_max(smoothgrad(ig))`` works) or
    any callable ``(inputs, **kwargs) -> attributions``. All perturbed copies go to it in
    one call of ``N * n_samples`` rows (its own ``batch_size`` bounds the memory),
    or in calls of at most ``batch_size`` rows (whole samples of the batch); its
    per-example arguments (target, baselines, ...) follow their example. Call as
    ``(inputs, *args, generator=None, **attributor_kwargs)``; returns shape ``(N,)``.
    Noise comes from ``generator``, which a random attributor receives too.

    Args:
        attributor: Any attributor, or a callable ``(inputs, **kwargs) -> attributions``.
        perturb_func: ``perturb_func(inputs[, perturb_radius]) -> perturbed inputs`` (Captum's
            protocol); default uniform noise in the ``perturb_radius`` ball.
        perturb_radius: The radius ``r`` of the uniform noise (L-infinity ball).
        n_samples: Random perturbations drawn per example.
        norm_ord: The norm over an example's attribution elements (``"fro"``: the 2-norm).
        batch_size: The most rows per call of the attributor (whole samples of the batch); ``None``: all
            at once.

    Returns:
        A function ``(inputs, *args, generator=None, **attributor_kwargs) -> Tensor`` of one score per
        example, shape ``(N,)``.

    References:
        - Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
          Explanations", NeurIPS 2019. https://arxiv.org/abs/1901.09392

    Example:
        >>> sens = pa.metrics.sensitivity_max(pa.saliency(model), n_samples=4)
        >>> sens(x, target=y, generator=generator).shape
        torch.Size([4])
    """
    check_count("n_samples", n_samples)
    check_batch_size(batch_size)
    if not callable(attributor):
        raise TypeError("sensitivity_max takes an attributor, e.g. pa.metrics.sensitivity_max(pa.saliency(model))")
    if norm_ord != "fro" and not isinstance(norm_ord, (int, float)):
        raise ArgumentError(f"norm_ord must be 'fro' or a number (2, 1, float('inf'), ...), got {norm_ord!r}")
    order = 2 if norm_ord == "fro" else norm_ord
    radius_arg = perturb_func is not None and len(inspect.signature(perturb_func).parameters) > 1

    def measure(inputs: TensorOrTuple, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
        kwargs = bind_baselines(args, kwargs)
        if getattr(attributor, "random", False):
            kwargs["generator"] = generator
        xs, was_tuple = as_tuple(inputs)
        n, total = xs[0].shape[0], n_samples
        per = total if batch_size is None else max(1, min(total, batch_size // n))
        with torch.no_grad():
            plain = attributor(inputs, **kwargs)
            if getattr(attributor, "returns_delta", False):
                plain = plain[0]
            plain_flat = _flat(LayerValue.of(plain, n, "the attributor").leaves, n)
            scale = torch.linalg.vector_norm(plain_flat, order, dim=1)
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            worst = torch.full((n,), -torch.inf, device=scale.device, dtype=scale.dtype)
            for start in range(0, total, per):
                c = min(per, total - start)
                copies = _perturbed([x.repeat_interleave(c, 0) for x in xs], was_tuple, generator)
                attrs, _, _ = call_on_copies(attributor, copies, was_tuple, kwargs, n, c)
                change = torch.cat([a.reshape(n, c, -1) for a in attrs], 2) - plain_flat[:, None]
                worst = torch.maximum(worst, (torch.linalg.vector_norm(change, order, dim=2) / scale[:, None]).amax(1))
        return worst

    def _perturbed(expanded: list[Tensor], was_tuple: bool, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        if perturb_func is None:
            r = perturb_radius
            return tuple(x + (2 * random.uniform(x.shape, x, generator) - 1) * r for x in expanded)
        given = restore(expanded, was_tuple)
        out = perturb_func(given, perturb_radius) if radius_arg else perturb_func(given)
        copies, _ = as_tuple(out, "perturbed inputs")
        if len(copies) != len(expanded) or any(c.shape != x.shape for c, x in zip(copies, expanded)):
            raise ArgumentError(
                "perturb_func must return perturbed inputs with the shapes of the inputs it was given: "
                f"{[tuple(x.shape) for x in expanded]}"
            )
        return copies

    return measure


def _flat(attrs: Sequence[Tensor], n: int) -> Tensor:
    return torch.cat([a.reshape(n, -1) for a in attrs], 1)
