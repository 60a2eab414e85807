"""Captum's ``Lime`` and ``KernelShap``.

With Captum's sampling they are :func:`pyattrib.lime` and :func:`pyattrib.kernel_shap` with
the core's Captum options: samples drawn in Captum's order from the global generator
(``pyattrib._core.random.captum_coalitions``), feature ids shifted to start at 0
(``feature_ids="shift"``), Captum's kernel width (``sqrt(2)`` times pyattrib's),
``perturbations_per_eval`` as rows; so a seeded run gives Captum's numbers. ``Lime`` given
its own ``perturb_func`` or ``similarity_func`` (callbacks only Captum's protocol can call)
runs through ``LimeBase``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa

from .._core.perturb import FeatureMask
from .._core.random import captum_coalitions
from ._base import native, per_eval
from .lime_base import LimeBase, _evaluator, _SkLearnModel, bernoulli_sample, exp_kernel_similarity, from_binary_sample


class _FromCaptumModel:
    """A Captum ``Model`` (``fit(DataLoader)``, ``representation()``) as the scikit-learn-like
    regressor :func:`pyattrib.lime` fits: refitted in place, as Captum does."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __sklearn_clone__(self) -> _FromCaptumModel:
        return self

    def fit(self, x: Any, y: Any, sample_weight: Any) -> _FromCaptumModel:
        data = TensorDataset(*(torch.as_tensor(a, dtype=torch.float32) for a in (x, y, sample_weight)))
        self.model.fit(DataLoader(data, batch_size=len(data)))
        self.coef_ = self.model.representation().detach().reshape(-1).cpu().numpy()
        return self


class Lime(LimeBase):
    """Captum's ``Lime``: binary samples over feature groups (``feature_mask``), the other
    groups at ``baselines``; one surrogate per example when the model returns one output per
    example, one for the whole batch when it returns a scalar.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        interpretable_model: A Captum ``Model`` (``fit(DataLoader)``, ``representation()``); default
            Captum's ``SkLearnLasso(alpha=0.01)``.
        similarity_func: Captum's per-sample similarity (default ``exp_kernel_similarity()``: the native
            path); another one runs Captum's per-sample protocol.
        perturb_func: Captum's sampler (default ``bernoulli_sample``: the native path); another one runs
            Captum's per-sample protocol.

    Example:
        >>> from pyattrib.compat import Lime
        >>> Lime(model).attribute(x[:1], target=0, n_samples=20).shape
        torch.Size([1, 8])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any = None,
        similarity_func: Callable[..., Any] | None = None,
        perturb_func: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            forward_func,
            interpretable_model if interpretable_model is not None else _SkLearnModel("Lasso", alpha=0.01),
            similarity_func or exp_kernel_similarity(),
            perturb_func or bernoulli_sample,
            True,
            from_binary_sample,
            None,
        )

    def attribute(  # type: ignore[override]
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, n_samples: int = 25, perturbations_per_eval: int = 1,
        return_input_shape: bool = True, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        batched = getattr(self.similarity_func, "batched", None)
        if self.perturb_func is not bernoulli_sample or batched is None:  # callbacks only LimeBase calls
            return self._explain(
                inputs, baselines, target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
                return_input_shape, show_progress,
            )  # fmt: skip
        model = self.interpretable_model
        own = isinstance(model, _SkLearnModel)
        return self._native(
            pa.lime, "bernoulli", own, inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, n_samples=n_samples, return_input_shape=return_input_shape,
            show_progress=show_progress, similarity_func=batched,
            interpretable_model=model.estimator if own else _FromCaptumModel(model),
        )  # fmt: skip

    def _native(
        self, transform: Callable[..., Any], kind: str, own_model: bool, inputs: Any, baselines: Any, target: Any,
        additional_forward_args: Any, feature_mask: Any, perturbations_per_eval: int, **options: Any,
    ) -> Any:  # fmt: skip
        """The native transform with Captum's draws and feature ids. A Captum ``Model`` draws from
        the global generator itself when it fits, so then each example is its own call (Captum's
        order: an example's samples, its fit, the next example)."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        _warn_if_shifted(feature_mask)
        n, ppe = xs[0].shape[0], perturbations_per_eval
        whole = n > 1 and (ppe > 1 or not own_model) and self._whole(xs, target, additional_forward_args, ppe)
        config = native(
            perturbations_per_eval=per_eval(perturbations_per_eval, inputs), feature_ids="shift",
            perturb_func=captum_coalitions(kind, fit_draws=own_model), **options,
        )  # fmt: skip
        data = {"baselines": baselines, "target": target, "additional_forward_args": additional_forward_args,
                "feature_mask": feature_mask}  # fmt: skip
        if own_model or whole or n == 1:
            return self._run(transform, config, inputs, **data)
        one = [(_example(inputs, i, n), {k: _example(v, i, n) for k, v in data.items()}) for i in range(n)]
        return _cat([self._run(transform, config, x, **d) for x, d in one])

    def _whole(self, xs: tuple[Tensor, ...], target: Any, additional_forward_args: Any, per_eval: int) -> bool:
        """Captum's test forward: one value for the whole batch (one surrogate), or one per example
        (one surrogate each, with Captum's warning)."""
        test = _evaluator(self.forward_func, xs, target, additional_forward_args, xs[0].device, check=False)([xs])
        if test.numel() == 1:
            assert per_eval == 1, (
                "Perturbations per eval must be 1 when forward function returns single value per batch!"
            )
            return True
        if test.numel() != xs[0].shape[0]:
            raise AssertionError(
                "Invalid number of outputs, forward function should return a scalar per example or a scalar per "
                "input batch."
            )
        warnings.warn(
            "You are providing multiple inputs for Lime / Kernel SHAP attributions: one interpretable model is "
            "trained per example.",
            stacklevel=3,
        )
        return False

    def _explain(
        self, inputs: Any, baselines: Any, target: Any, additional_forward_args: Any, feature_mask: Any,
        n_samples: int, perturbations_per_eval: int, return_input_shape: bool, show_progress: bool, **extra: Any,
    ) -> Any:  # fmt: skip
        was_tuple = isinstance(inputs, tuple)
        xs = inputs if was_tuple else (inputs,)
        bases = _as_tuple(baselines, default=tuple(False if x.dtype == torch.bool else 0 for x in xs))
        masks, n_f = feature_groups(feature_mask, xs)
        n = xs[0].shape[0]
        one = (lambda t: t) if was_tuple else (lambda t: t[0])

        def fit(x: tuple[Tensor, ...], tgt: Any, args: Any, b: tuple[Any, ...], m: tuple[Tensor, ...]) -> Tensor:
            return LimeBase.attribute(
                self, one(x), target=tgt, additional_forward_args=args, n_samples=n_samples,
                perturbations_per_eval=perturbations_per_eval, show_progress=show_progress, baselines=one(b),
                feature_mask=one(m), num_interp_features=n_f, **extra,
            )  # fmt: skip

        if n > 1 and not self._whole(xs, target, additional_forward_args, perturbations_per_eval):
            results = []
            for i in range(n):
                x = tuple(t[i : i + 1] for t in xs)
                tgt, args, b, m = (_example(a, i, n) for a in (target, additional_forward_args, bases, masks))
                coef = fit(x, tgt, args, b, m)
                results.append(_spread(x, m, coef, was_tuple) if return_input_shape else coef.reshape(1, -1))
            return _cat(results)
        coef = fit(xs, target, additional_forward_args, bases, masks)
        if not return_input_shape:
            return coef
        attrs = _spread(xs, masks, coef, True)
        if n > 1:  # one surrogate for the whole batch: one row of attributions
            attrs = tuple(a[:1] for a in attrs)
        return attrs if was_tuple else attrs[0]


class KernelShap(Lime):
    """Captum's ``KernelShap``: Lime with the Shapley kernel. Coalition sizes ``k`` are drawn
    with ``p(k) ~ (F-1) / (k (F-k))`` and a uniform coalition of that size, after the full
    and the empty coalition, which get weight 1e6; a weighted linear regression (:func:`pyattrib.kernel_shap`
    with Captum's draws).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import KernelShap
        >>> KernelShap(model).attribute(x[:1], target=0, n_samples=20).shape
        torch.Size([1, 8])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(forward_func, _SkLearnModel("LinearRegression"))

    def attribute(  # type: ignore[override]
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, n_samples: int = 25, perturbations_per_eval: int = 1,
        return_input_shape: bool = True, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        return self._native(
            pa.kernel_shap, "shapley_kernel", True, inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, n_samples=n_samples, return_input_shape=return_input_shape,
            show_progress=show_progress,
        )  # fmt: skip


def _warn_if_shifted(feature_mask: Any) -> None:
    """Captum's warning for a mask whose smallest id is not 0 (its ids are shifted)."""
    if feature_mask is not None:
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        if min(int(m.min()) for m in masks if m.numel()) != 0:
            warnings.warn("Minimum element in feature mask is not 0, shifting indices to start at 0.", stacklevel=4)


def feature_groups(feature_mask: Any, xs: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], int]:
    """Captum's feature groups (the core's ``FeatureMask`` with ``ids_rule="shift"``): one per input
    element by default, ids running across inputs; a given mask shifted to start at 0 (warned)."""
    _warn_if_shifted(feature_mask)
    groups = FeatureMask(feature_mask, xs, ids_rule="shift")
    return tuple(groups.ids), groups.n_features


def _cat(results: list[Any]) -> Any:
    """Per-example results (tensors, or tuples of them) joined along the batch."""
    return tuple(torch.cat(p) for p in zip(*results)) if isinstance(results[0], tuple) else torch.cat(results)


def _as_tuple(value: Any, default: tuple[Any, ...]) -> tuple[Any, ...]:
    if value is None:
        return default
    return tuple(value) if isinstance(value, tuple) else (value,)


def _example(value: Any, i: int, n: int) -> Any:
    """Example ``i`` of a per-example tensor or list (also inside a tuple); anything else as is."""
    if value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    picked = tuple(v[i : i + 1] if isinstance(v, (Tensor, list)) and len(v) == n else v for v in items)
    return picked if isinstance(value, tuple) else picked[0]


def _spread(xs: tuple[Tensor, ...], masks: tuple[Tensor, ...], coef: Tensor, was_tuple: bool) -> Any:
    """Each element gets its feature group's coefficient (float32, the inputs' shape)."""
    coef = coef.reshape(-1).to(xs[0].device)
    attrs = tuple(
        torch.zeros_like(x, dtype=torch.float) + coef.float()[m.long()] if x.numel() else torch.zeros_like(x).float()
        for x, m in zip(xs, masks)
    )
    return attrs if was_tuple else attrs[0]
