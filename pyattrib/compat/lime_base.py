"""Captum's ``LimeBase``: the callback protocol of its surrogate methods.

Per sample, a user ``perturb_func`` (or generator) draws a point, ``from_interp_rep_transform``
/ ``to_interp_rep_transform`` map it between the input and the interpretable space,
``similarity_func`` weighs it, and a ``Model`` with ``fit(DataLoader)`` and
``representation()`` is trained on the samples. The samples are evaluated
``perturbations_per_eval`` at a time through pyattrib's target and forward-argument handling.
Captum's default callbacks (``bernoulli_sample``, ``from_binary_sample``,
``exp_kernel_similarity``) live here too; ``pyattrib.compat.lime`` runs them natively.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from pyattrib._core.inputs import ForwardArgs
from pyattrib._core.perturb import forward_versions
from pyattrib._core.targets import as_target

from .._core.progress import progress
from ..lime import similarity_kernel
from ._base import PerturbationAttribution


class _SkLearnModel:
    """Captum's interpretable ``Model`` protocol over a scikit-learn regressor: ``fit`` takes
    a DataLoader of ``(interpretable inputs, outputs, weights)``; ``representation()`` is
    the ``(1, F)`` coefficients."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name, self.kwargs = name, kwargs
        self.coef: Tensor | None = None

    def fit(self, data: DataLoader) -> None:
        import sklearn.linear_model

        x, y, w = (torch.cat(parts).cpu().numpy() for parts in zip(*data))
        model = getattr(sklearn.linear_model, self.name)(**self.kwargs).fit(x, y, sample_weight=w)
        self.coef = torch.as_tensor(model.coef_, dtype=torch.float32).reshape(1, -1)
        # Captum's wrapper stores the fit in a freshly built nn.Linear, which draws its initial
        # weights from the global RNG; draw the same, so a seeded run continues as Captum's does
        torch.nn.Linear(self.coef.shape[1], 1)

    def representation(self) -> Tensor:
        assert self.coef is not None, "fit the model first"
        return self.coef

    @functools.cached_property
    def estimator(self) -> Any:
        """The scikit-learn regressor itself, for :func:`pyattrib.lime` (one object: compat's cache key)."""
        import sklearn.linear_model

        return getattr(sklearn.linear_model, self.name)(**self.kwargs)


def exp_kernel_similarity(distance_mode: str = "cosine", kernel_width: float = 1.0) -> Callable[..., float]:
    """``exp(-d^2 / (2 width^2))`` with ``d`` the cosine or Euclidean distance between the
    flattened original and perturbed inputs (Captum's ``get_exp_kernel_similarity_function``)."""
    if distance_mode not in ("cosine", "euclidean"):
        raise ValueError("distance_mode must be either cosine or euclidean.")
    batched = similarity_kernel(distance_mode, kernel_width * math.sqrt(2))  # the same kernel, for all rows at once

    def similarity(original: Any, perturbed: Any, _interpretable: Any, **kwargs: Any) -> float:
        a, b = _flat(original), _flat(perturbed)
        if distance_mode == "cosine":
            d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)
        else:
            d = torch.norm(a - b)
        return math.exp(-(float(d) ** 2) / (2 * kernel_width**2))

    similarity.batched = batched  # type: ignore[attr-defined]
    return similarity


def _flat(x: Any) -> Tensor:
    return torch.cat([t.reshape(-1).float() for t in (x if isinstance(x, tuple) else (x,))])


def bernoulli_sample(original: Any, **kwargs: Any) -> Tensor:
    """One interpretable sample: each of ``num_interp_features`` kept with probability 1/2."""
    device = (original[0] if isinstance(original, tuple) else original).device
    return torch.bernoulli(torch.full((1, int(kwargs["num_interp_features"])), 0.5)).to(device).long()


def from_binary_sample(sample: Tensor, original: Any, **kwargs: Any) -> Any:
    """Inputs where the sample keeps a feature group, baselines elsewhere."""
    masks, baselines = kwargs["feature_mask"], kwargs["baselines"]
    if isinstance(masks, Tensor):
        keep = sample[0][masks].bool()
        return keep.to(original.dtype) * original + (~keep).to(original.dtype) * baselines
    kept = (sample[0][m].bool() for m in masks)
    return tuple(k.to(x.dtype) * x + (~k).to(x.dtype) * b for k, x, b in zip(kept, original, baselines))


class LimeBase(PerturbationAttribution):
    """Captum's ``LimeBase``: fit ``interpretable_model`` to samples drawn by ``perturb_func``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        interpretable_model: The surrogate model fitted to the samples (Captum's ``Model`` protocol);
            default a linear regression.
        similarity_func: Captum's per-sample similarity, ``(original, perturbed, interpretable sample,
            **kwargs) -> weight``.
        perturb_func: Captum's sampler: a function or generator of perturbed samples.
        perturb_interpretable_space: ``perturb_func`` returns interpretable samples (else samples in
            input space).
        from_interp_rep_transform: Maps an interpretable sample to the model's input space.
        to_interp_rep_transform: Maps an input-space sample to the interpretable space.

    Example:
        >>> from pyattrib.compat import Lime, LimeBase
        >>> isinstance(Lime(model), LimeBase)
        True
    """

    _multiply_by_inputs = False

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any,
        similarity_func: Callable[..., Any],
        perturb_func: Callable[..., Any],
        perturb_interpretable_space: bool,
        from_interp_rep_transform: Callable[..., Any] | None,
        to_interp_rep_transform: Callable[..., Any] | None,
    ) -> None:
        super().__init__(forward_func)
        self.interpretable_model, self.similarity_func = interpretable_model, similarity_func
        self.perturb_func, self.perturb_interpretable_space = perturb_func, perturb_interpretable_space
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform
        if perturb_interpretable_space:
            assert from_interp_rep_transform is not None, (
                "Must provide transform from interpretable space to original input space when sampling from "
                "interpretable space."
            )
        else:
            assert to_interp_rep_transform is not None, (
                "Must provide transform from original input space to interpretable space"
            )

    _has_future = False

    @torch.no_grad()
    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None, n_samples: int = 50,
        perturbations_per_eval: int = 1, show_progress: bool = False, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Draw ``n_samples`` samples, evaluate them ``perturbations_per_eval`` at a time, fit
        the interpretable model and return its ``representation()``."""
        draw = self._sampler(inputs, kwargs)
        interpretable, weights, outputs, pending = [], [], [], []
        device = (inputs[0] if isinstance(inputs, tuple) else inputs).device
        evaluate = _evaluator(self.forward_func, inputs, target, additional_forward_args, device)
        evals = math.ceil(n_samples / perturbations_per_eval)
        bar = progress(
            None, show_progress, re.sub(r"(?<!^)(?=[A-Z])", " ", type(self).__name__) + " attribution", evals
        )
        for _ in range(n_samples):
            try:
                z, sample = draw()
            except StopIteration:
                warnings.warn("Generator completed prior to given n_samples iterations!", stacklevel=1)
                break
            interpretable.append(z)
            pending.append(sample)
            sim = self.similarity_func(inputs, sample, z, **kwargs)
            weights.append(sim.flatten() if isinstance(sim, Tensor) else torch.tensor([sim], device=device))
            if len(pending) == perturbations_per_eval:
                outputs.append(evaluate(pending))
                pending = []
                bar.update()
        if pending:
            outputs.append(evaluate(pending))
            bar.update()
        bar.close()
        data = TensorDataset(
            torch.cat(interpretable).float(), torch.cat(outputs).float(), torch.cat(weights).float().to(device)
        )
        self.interpretable_model.fit(DataLoader(data, batch_size=len(interpretable)))
        return self.interpretable_model.representation()

    def _sampler(self, inputs: Any, kwargs: dict[str, Any]) -> Callable[[], tuple[Tensor, Any]]:
        """``() -> (interpretable sample, model input)``, from a function or a generator."""
        stream: Iterator[Any] | None = (
            self.perturb_func(inputs, **kwargs) if inspect.isgeneratorfunction(self.perturb_func) else None
        )

        def draw() -> tuple[Tensor, Any]:
            sample = next(stream) if stream is not None else self.perturb_func(inputs, **kwargs)
            if self.perturb_interpretable_space:
                return sample, self.from_interp_rep_transform(sample, inputs, **kwargs)  # type: ignore[misc]
            return self.to_interp_rep_transform(sample, inputs, **kwargs), sample  # type: ignore[misc]

        return draw


def _evaluator(
    forward: Callable[..., Any],
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    device: torch.device,
    check: bool = True,
) -> Callable[[list[Any]], Tensor]:
    """Evaluate a list of samples (each shaped like ``inputs``) in one forward: the selected
    outputs, flattened (with ``check``, exactly one scalar per sample)."""
    n = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
    args, selector = ForwardArgs(additional_forward_args, n), as_target(target, n, device)

    def evaluate(samples: list[Any]) -> Tensor:
        out, index = forward_versions(forward, [s if isinstance(s, tuple) else (s,) for s in samples], n, args)
        if not isinstance(out, Tensor):
            return torch.tensor([out], device=device)
        if selector.selects:
            out = selector.select(out, index)
        assert not check or out.numel() == len(samples), (
            "Number of outputs is not appropriate, must return one output per perturbed input"
        )
        return out.flatten()

    return evaluate


