"""Captum's perturbation classes (``FeatureAblation``, ``FeaturePermutation``, ``Occlusion``,
``ShapleyValueSampling``, ``ShapleyValues``) over pyattrib's transforms, in Captum's layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

import pyattrib as pa

from ._base import (
    PerturbationAttribution,
    native,
    per_eval,
)
from .sparse import is_sparse, rows_permuted, sparse_attribute


class FeatureAblation(PerturbationAttribution):
    """Captum's ``FeatureAblation`` over :func:`pyattrib.feature_ablation` (Captum's layout:
    one attribution row per output value, ``flat_outputs``).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import FeatureAblation
        >>> FeatureAblation(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _flat_outputs = True

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, perturbations_per_eval: int = 1, show_progress: bool = False, **kwargs: Any,
    ) -> Any:  # fmt: skip
        config = native(perturbations_per_eval=per_eval(perturbations_per_eval, inputs), show_progress=show_progress)
        if is_sparse(inputs):
            return sparse_attribute(
                pa.feature_ablation, self.forward_func, config, inputs, baselines, feature_mask,
                target=target, additional_forward_args=additional_forward_args,
            )  # fmt: skip
        return self._run(
            pa.feature_ablation, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        )  # fmt: skip


class FeaturePermutation(FeatureAblation):
    """Captum's ``FeaturePermutation`` over :func:`pyattrib.feature_permutation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation.

    Example:
        >>> from pyattrib.compat import FeaturePermutation
        >>> FeaturePermutation(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    def __init__(self, forward_func: Callable[..., Any], perm_func: Callable[[Tensor, Tensor], Tensor] | None = None):
        super().__init__(forward_func)
        self.perm_func = perm_func

    def attribute(  # type: ignore[override]
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None, feature_mask: Any = None,
        perturbations_per_eval: int = 1, show_progress: bool = False, **kwargs: Any,
    ) -> Any:  # fmt: skip
        config = native(
            perm_func=self.perm_func, perturbations_per_eval=per_eval(perturbations_per_eval, inputs),
            show_progress=show_progress,
        )  # fmt: skip
        if is_sparse(inputs):
            config["perm_func"] = self.perm_func or rows_permuted
            return sparse_attribute(
                pa.feature_permutation, self.forward_func, config, inputs, None, feature_mask,
                target=target, additional_forward_args=additional_forward_args,
            )  # fmt: skip
        return self._run(
            pa.feature_permutation, config, inputs, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        )  # fmt: skip


class Occlusion(FeatureAblation):
    """Captum's ``Occlusion`` over :func:`pyattrib.occlusion`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import Occlusion
        >>> Occlusion(cnn).attribute(images, sliding_window_shapes=(3, 4, 4), target=0).shape
        torch.Size([2, 3, 8, 8])
    """

    _has_future = False

    def attribute(  # type: ignore[override]
        self, inputs: Any, sliding_window_shapes: Any, strides: Any = None, baselines: Any = None,
        target: Any = None, additional_forward_args: Any = None, perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            sliding_window_shapes=sliding_window_shapes, strides=strides,
            perturbations_per_eval=per_eval(perturbations_per_eval, inputs), show_progress=show_progress,
        )  # fmt: skip
        return self._run(
            pa.occlusion, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class ShapleyValueSampling(PerturbationAttribution):
    """Captum's ``ShapleyValueSampling`` over :func:`pyattrib.shapley_value_sampling`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import ShapleyValueSampling
        >>> ShapleyValueSampling(model).attribute(x, target=y, n_samples=2).shape
        torch.Size([4, 8])
    """

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, n_samples: int = 25, perturbations_per_eval: int = 1, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_samples=n_samples, perturbations_per_eval=per_eval(perturbations_per_eval, inputs),
            show_progress=show_progress,
        )  # fmt: skip
        return self._run(
            pa.shapley_value_sampling, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        )  # fmt: skip


class ShapleyValues(PerturbationAttribution):
    """Captum's ``ShapleyValues`` over :func:`pyattrib.shapley_values`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import ShapleyValues
        >>> ShapleyValues(model).attribute(x, target=y, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])).shape
        torch.Size([4, 8])
    """

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, perturbations_per_eval: int = 1, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        config = native(perturbations_per_eval=per_eval(perturbations_per_eval, inputs), show_progress=show_progress)
        return self._run(
            pa.shapley_values, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        )  # fmt: skip
