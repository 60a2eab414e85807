"""Captum's neuron-attribution classes (``captum.attr.Neuron*``) over pyattrib's neuron transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

import pyattrib as pa

from .._core.attributor import Attributor
from ._base import GradientAttribution, NeuronAttribution, native, per_eval


class NeuronGradient(NeuronAttribution, GradientAttribution):
    """Captum's ``NeuronGradient`` over :func:`pyattrib.neuron_gradient`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import NeuronGradient
        >>> NeuronGradient(model, layer).attribute(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """

    _transform = staticmethod(pa.neuron_gradient)

    def attribute(
        self, inputs: Any, neuron_selector: Any, additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> Any:  # fmt: skip
        return self._run(
            self._transform, {"attribute_to_neuron_input": attribute_to_neuron_input}, inputs,
            neuron_selector=neuron_selector, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NeuronIntegratedGradients(NeuronAttribution, GradientAttribution):
    """Captum's ``NeuronIntegratedGradients`` over :func:`pyattrib.neuron_integrated_gradients`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import NeuronIntegratedGradients
        >>> NeuronIntegratedGradients(model, layer).attribute(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: nn.Module, device_ids: Any = None,
        multiply_by_inputs: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
        n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, multiply_by_inputs=self._multiply_by_inputs,
            internal_batch_size=internal_batch_size, attribute_to_neuron_input=attribute_to_neuron_input,
        )  # fmt: skip
        return self._run(
            pa.neuron_integrated_gradients, config, inputs, baselines=baselines,
            neuron_selector=neuron_selector, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NeuronConductance(NeuronIntegratedGradients):
    """Captum's ``NeuronConductance`` over :func:`pyattrib.neuron_conductance`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import NeuronConductance
        >>> NeuronConductance(model, layer).attribute(x, neuron_selector=3, target=y).shape
        torch.Size([4, 8])
    """

    def attribute(  # type: ignore[override]
        self, inputs: Any, neuron_selector: Any, baselines: Any = None, target: Any = None,
        additional_forward_args: Any = None, n_steps: int = 50, method: str = "riemann_trapezoid",
        internal_batch_size: int | None = None, attribute_to_neuron_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, multiply_by_inputs=self._multiply_by_inputs,
            internal_batch_size=internal_batch_size, attribute_to_neuron_input=attribute_to_neuron_input,
        )  # fmt: skip
        return self._run(
            pa.neuron_conductance, config, inputs, baselines=baselines, neuron_selector=neuron_selector,
            target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NeuronGradientShap(NeuronIntegratedGradients):
    """Captum's ``NeuronGradientShap`` over :func:`pyattrib.neuron_gradient_shap`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import NeuronGradientShap
        >>> NeuronGradientShap(model, layer).attribute(x, 3, torch.randn(5, 8)).shape
        torch.Size([4, 8])
    """

    def attribute(  # type: ignore[override]
        self, inputs: Any, neuron_selector: Any, baselines: Any, n_samples: int = 5, stdevs: float = 0.0,
        additional_forward_args: Any = None, attribute_to_neuron_input: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_samples=n_samples, stdevs=stdevs, multiply_by_inputs=self._multiply_by_inputs,
            attribute_to_neuron_input=attribute_to_neuron_input, captum_rng=True,
        )  # fmt: skip
        return self._run(
            pa.neuron_gradient_shap, config, inputs, baselines=baselines, neuron_selector=neuron_selector,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NeuronDeepLift(NeuronAttribution, GradientAttribution):
    """Captum's ``NeuronDeepLift`` over :func:`pyattrib.neuron_deep_lift`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import NeuronDeepLift
        >>> NeuronDeepLift(model, layer).attribute(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """

    def __init__(self, model: nn.Module, layer: nn.Module, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, layer)
        self.model = model
        self._multiply_by_inputs = multiply_by_inputs

    _transform: Callable[..., Attributor] = staticmethod(pa.neuron_deep_lift)

    def attribute(
        self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False, custom_attribution_func: Callable[..., Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            multiply_by_inputs=self._multiply_by_inputs, custom_attribution_func=custom_attribution_func,
            attribute_to_neuron_input=attribute_to_neuron_input,
        )  # fmt: skip
        return self._run(
            self._transform, config, inputs, baselines=baselines, neuron_selector=neuron_selector,
            additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NeuronDeepLiftShap(NeuronDeepLift):
    """Captum's ``NeuronDeepLiftShap`` over :func:`pyattrib.neuron_deep_lift_shap`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import NeuronDeepLiftShap
        >>> NeuronDeepLiftShap(model, layer).attribute(x, 3, torch.randn(5, 8)).shape
        torch.Size([4, 8])
    """

    _transform = staticmethod(pa.neuron_deep_lift_shap)


class NeuronGuidedBackprop(NeuronAttribution, GradientAttribution):
    """Captum's ``NeuronGuidedBackprop`` over :func:`pyattrib.neuron_guided_backprop`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import NeuronGuidedBackprop
        >>> NeuronGuidedBackprop(cnn, conv).attribute(images, neuron_selector=(0, 4, 4)).shape
        torch.Size([2, 3, 8, 8])
    """

    _transform = staticmethod(pa.neuron_guided_backprop)

    def __init__(self, model: nn.Module, layer: nn.Module, device_ids: Any = None) -> None:
        super().__init__(model, layer, device_ids)
        self.model = model

    attribute = NeuronGradient.attribute  # the same call, Captum's class hierarchy kept


class NeuronDeconvolution(NeuronGuidedBackprop):
    """Captum's ``NeuronDeconvolution`` over :func:`pyattrib.neuron_deconvolution`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import NeuronDeconvolution
        >>> NeuronDeconvolution(cnn, conv).attribute(images, neuron_selector=(0, 4, 4)).shape
        torch.Size([2, 3, 8, 8])
    """

    _transform = staticmethod(pa.neuron_deconvolution)


class NeuronFeatureAblation(NeuronAttribution):
    """Captum's ``NeuronFeatureAblation`` over :func:`pyattrib.neuron_feature_ablation`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import NeuronFeatureAblation
        >>> NeuronFeatureAblation(model, layer).attribute(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, neuron_selector: Any, baselines: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, attribute_to_neuron_input: bool = False, perturbations_per_eval: int = 1,
    ) -> Any:  # fmt: skip
        config = native(
            perturbations_per_eval=per_eval(perturbations_per_eval, inputs),
            attribute_to_neuron_input=attribute_to_neuron_input,
        )  # fmt: skip
        return self._run(
            pa.neuron_feature_ablation, config, inputs, baselines=baselines, neuron_selector=neuron_selector,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
        )  # fmt: skip
