"""Captum's layer-attribution classes (``captum.attr.Layer*``) over pyattrib's layer transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

import pyattrib as pa

from ._base import GradientAttribution, LayerAttribution, native, per_eval


class LayerActivation(LayerAttribution):
    """Captum's ``LayerActivation`` over :func:`pyattrib.layer_activation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import LayerActivation
        >>> LayerActivation(model, layer).attribute(x).shape
        torch.Size([4, 16])
    """

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, additional_forward_args: Any = None, attribute_to_layer_input: bool = False
    ) -> Any:
        return self._run(
            pa.layer_activation, {"attribute_to_layer_input": attribute_to_layer_input}, inputs,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerGradientXActivation(LayerAttribution, GradientAttribution):
    """Captum's ``LayerGradientXActivation`` over :func:`pyattrib.layer_gradient_x_activation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        memory_efficient: Captum's flag; accepted and unused (pyattrib's layer gradients are always
            taken in one pass).

    Example:
        >>> from pyattrib.compat import LayerGradientXActivation
        >>> LayerGradientXActivation(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: Any, device_ids: Any = None, multiply_by_inputs: bool = True,
        memory_efficient: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False, grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(multiply_by_inputs=self._multiply_by_inputs, attribute_to_layer_input=attribute_to_layer_input)
        return self._run(
            pa.layer_gradient_x_activation, config, inputs, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerGradCam(LayerAttribution, GradientAttribution):
    """Captum's ``LayerGradCam`` over :func:`pyattrib.layer_gradcam`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import LayerGradCam
        >>> LayerGradCam(cnn, conv).attribute(images, target=0).shape
        torch.Size([2, 1, 8, 8])
    """

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False, relu_attributions: bool = False, attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            relu_attributions=relu_attributions, attr_dim_summation=attr_dim_summation,
            attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.layer_gradcam, config, inputs, target=target, additional_forward_args=additional_forward_args
        )


class InternalInfluence(LayerAttribution, GradientAttribution):
    """Captum's ``InternalInfluence`` over :func:`pyattrib.internal_influence`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import InternalInfluence
        >>> InternalInfluence(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
        attribute_to_layer_input: bool = False, grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, internal_batch_size=internal_batch_size,
            attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.internal_influence, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerConductance(LayerAttribution, GradientAttribution):
    """Captum's ``LayerConductance`` over :func:`pyattrib.layer_conductance`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import LayerConductance
        >>> LayerConductance(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    _has_delta = True

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
        return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, internal_batch_size=internal_batch_size,
            return_convergence_delta=return_convergence_delta, attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.layer_conductance, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerIntegratedGradients(LayerAttribution, GradientAttribution):
    """Captum's ``LayerIntegratedGradients`` over :func:`pyattrib.layer_integrated_gradients`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import LayerIntegratedGradients
        >>> LayerIntegratedGradients(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    _has_delta = True

    def __init__(
        self, forward_func: Callable[..., Any], layer: Any, device_ids: Any = None, multiply_by_inputs: bool = True
    ) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
        return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, multiply_by_inputs=self._multiply_by_inputs,
            internal_batch_size=internal_batch_size, return_convergence_delta=return_convergence_delta,
            attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.layer_integrated_gradients, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerGradientShap(LayerAttribution, GradientAttribution):
    """Captum's ``LayerGradientShap`` over :func:`pyattrib.layer_gradient_shap` (one delta per sample).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import LayerGradientShap
        >>> LayerGradientShap(model, layer).attribute(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 16])
    """

    _has_delta = True

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: Any = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, baselines: Any, n_samples: int = 5, stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None, additional_forward_args: Any = None, return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_samples=n_samples, stdevs=stdevs, multiply_by_inputs=self._multiply_by_inputs,
            return_convergence_delta=return_convergence_delta, delta_per_sample=True,
            attribute_to_layer_input=attribute_to_layer_input, captum_rng=True,
        )  # fmt: skip
        return self._run(
            pa.layer_gradient_shap, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerDeepLift(LayerAttribution, GradientAttribution):
    """Captum's ``LayerDeepLift`` over :func:`pyattrib.layer_deep_lift`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import LayerDeepLift
        >>> LayerDeepLift(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    _has_delta = True

    def __init__(self, model: nn.Module, layer: nn.Module, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, layer)
        self.model = model
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None, grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            multiply_by_inputs=self._multiply_by_inputs, custom_attribution_func=custom_attribution_func,
            return_convergence_delta=return_convergence_delta, attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.layer_deep_lift, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerDeepLiftShap(LayerDeepLift):
    """Captum's ``LayerDeepLiftShap`` over :func:`pyattrib.layer_deep_lift_shap` (one delta per pair).

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import LayerDeepLiftShap
        >>> LayerDeepLiftShap(model, layer).attribute(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 16])
    """

    def attribute(  # type: ignore[override]  # Captum's LayerDeepLiftShap: baselines required
        self, inputs: Any, baselines: Any, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            multiply_by_inputs=self._multiply_by_inputs, custom_attribution_func=custom_attribution_func,
            return_convergence_delta=return_convergence_delta, attribute_to_layer_input=attribute_to_layer_input,
            delta_per_sample=True,
        )  # fmt: skip
        return self._run(
            pa.layer_deep_lift_shap, config, inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class LayerFeatureAblation(LayerAttribution):
    """Captum's ``LayerFeatureAblation`` over :func:`pyattrib.layer_feature_ablation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import LayerFeatureAblation
        >>> LayerFeatureAblation(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, layer_baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        layer_mask: Any = None, attribute_to_layer_input: bool = False, perturbations_per_eval: int = 1,
    ) -> Any:  # fmt: skip
        config = native(
            perturbations_per_eval=per_eval(perturbations_per_eval, inputs),
            attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(
            pa.layer_feature_ablation, config, inputs, baselines=layer_baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=layer_mask,
        )  # fmt: skip


class LayerFeaturePermutation(LayerFeatureAblation):
    """Captum's ``LayerFeaturePermutation`` over :func:`pyattrib.layer_feature_permutation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation.

    Example:
        >>> from pyattrib.compat import LayerFeaturePermutation
        >>> LayerFeaturePermutation(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: nn.Module, device_ids: Any = None,
        perm_func: Callable[..., Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(forward_func, layer, device_ids)
        self.perm_func = perm_func

    def attribute(  # type: ignore[override]
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None, layer_mask: Any = None,
        perturbations_per_eval: int = 1,
    ) -> Any:  # fmt: skip
        config = native(perm_func=self.perm_func, perturbations_per_eval=per_eval(perturbations_per_eval, inputs))
        return self._run(
            pa.layer_feature_permutation, config, inputs, target=target,
            additional_forward_args=additional_forward_args, feature_mask=layer_mask,
        )  # fmt: skip


class LayerLRP(LayerAttribution, GradientAttribution):
    """Captum's ``LayerLRP`` over :func:`pyattrib.lrp_rules.layer_lrp`; rules from each module's ``rule``.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.

    Example:
        >>> from pyattrib.compat import LayerLRP
        >>> LayerLRP(model, layer).attribute(x, target=y).shape
        torch.Size([4, 16])
    """

    _has_delta = True

    def __init__(self, model: nn.Module, layer: Any) -> None:
        from .lrp_rules import check_rules

        super().__init__(model, layer)
        self.model = model
        check_rules(model)

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, attribute_to_layer_input: bool = False, verbose: bool = False,
    ) -> Any:  # fmt: skip
        from .lrp_rules import rules_of

        config = native(
            rules=rules_of(self.model), return_convergence_delta=return_convergence_delta,
            attribute_to_layer_input=attribute_to_layer_input,
        )  # fmt: skip
        return self._run(pa.layer_lrp, config, inputs, target=target, additional_forward_args=additional_forward_args)
