"""Captum's input-attribution classes (``captum.attr``) over pyattrib's transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

import pyattrib as pa

from ._base import (
    CAPTUM_SEMANTICS,
    Attribution,
    GradientAttribution,
    native,
    per_eval,
    planned,
)


class Saliency(GradientAttribution):
    """Captum's ``Saliency`` over :func:`pyattrib.saliency`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import Saliency
        >>> Saliency(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    def attribute(self, inputs: Any, target: Any = None, abs: bool = True, additional_forward_args: Any = None) -> Any:
        return self._run(
            pa.saliency, {"abs": abs}, inputs, target=target, additional_forward_args=additional_forward_args
        )


class InputXGradient(GradientAttribution):
    """Captum's ``InputXGradient`` over :func:`pyattrib.input_x_gradient`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import InputXGradient
        >>> InputXGradient(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _multiply_by_inputs = True

    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None) -> Any:
        return self._run(
            pa.input_x_gradient, {}, inputs, target=target, additional_forward_args=additional_forward_args
        )


class IntegratedGradients(GradientAttribution):
    """Captum's ``IntegratedGradients`` over :func:`pyattrib.integrated_gradients`.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import IntegratedGradients
        >>> IntegratedGradients(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _has_delta = True

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        n_steps: int = 50, method: str = "gausslegendre", internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_steps=n_steps, method=method, multiply_by_inputs=self._multiply_by_inputs,
            internal_batch_size=internal_batch_size, return_convergence_delta=return_convergence_delta,
        )  # fmt: skip
        return self._run(
            pa.integrated_gradients, config, inputs,
            baselines=baselines, target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class GradientShap(GradientAttribution):
    """Captum's ``GradientShap`` over :func:`pyattrib.gradient_shap` (one delta per sample).

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import GradientShap
        >>> GradientShap(model).attribute(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 8])
    """

    _has_delta = True

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self, inputs: Any, baselines: Any, n_samples: int = 5, stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None, additional_forward_args: Any = None, return_convergence_delta: bool = False,
    ) -> Any:  # fmt: skip
        config = native(
            n_samples=n_samples, stdevs=stdevs, multiply_by_inputs=self._multiply_by_inputs,
            return_convergence_delta=return_convergence_delta, delta_per_sample=True, captum_rng=True,
        )  # fmt: skip
        return self._run(
            pa.gradient_shap, config, inputs,
            baselines=baselines, target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class NoiseTunnel(Attribution):
    """Captum's ``NoiseTunnel`` over :func:`pyattrib.noise_tunnel`: wraps any compat instance.

    Args:
        attribution_method: The compat attribution to smooth (any compat instance).

    Example:
        >>> from pyattrib.compat import NoiseTunnel, Saliency
        >>> NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=4, target=y).shape
        torch.Size([4, 8])
    """

    def __init__(self, attribution_method: Attribution) -> None:
        if not isinstance(attribution_method, Attribution):
            raise TypeError("NoiseTunnel wraps a pyattrib.compat attribution, e.g. NoiseTunnel(Saliency(model))")
        super().__init__(attribution_method.forward_func)
        self.attribution_method = attribution_method
        self.is_delta_supported = self._has_delta = attribution_method.has_convergence_delta()
        self._multiply_by_inputs = attribution_method.multiplies_by_inputs
        self.is_gradient_method = isinstance(attribution_method, GradientAttribution)

    def attribute(
        self, inputs: Tensor | tuple[Tensor, ...], nt_type: str = "smoothgrad", nt_samples: int = 5,
        nt_samples_batch_size: int | None = None, stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False, **kwargs: Any,
    ) -> Any:  # fmt: skip
        if kwargs.get("return_convergence_delta") and not self.is_delta_supported:
            raise AssertionError(
                f"{type(self.attribution_method).__name__} does not return a convergence delta; "
                "drop return_convergence_delta"
            )
        with planned():
            plan = self.attribution_method.attribute(inputs, **kwargs)
        rows = None if nt_samples_batch_size is None else per_eval(nt_samples_batch_size, inputs)
        config = native(
            nt_type=nt_type, nt_samples=nt_samples, stdevs=stdevs, nt_samples_batch_size=rows, delta_per_sample=True,
            draw_baseline_from_distrib=draw_baseline_from_distrib, captum_draws=CAPTUM_SEMANTICS["captum_draws"],
        )  # fmt: skip
        tunnel = pa.noise_tunnel(plan.attributor, **config)
        return tunnel(plan.inputs, **plan.data)


class DeepLift(GradientAttribution):
    """Captum's ``DeepLift`` over :func:`pyattrib.deep_lift`.

    Args:
        model: The model (an ``nn.Module``).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.
        eps: Denominators smaller than this are treated as zero.

    Example:
        >>> from pyattrib.compat import DeepLift
        >>> DeepLift(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _has_delta = True

    def __init__(self, model: nn.Module, multiply_by_inputs: bool = True, eps: float = 1e-10) -> None:
        super().__init__(model)
        self.model = model
        self._multiply_by_inputs, self.eps = multiply_by_inputs, eps

    def attribute(
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, custom_attribution_func: Callable[..., Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            multiply_by_inputs=self._multiply_by_inputs, eps=self.eps,
            custom_attribution_func=custom_attribution_func, return_convergence_delta=return_convergence_delta,
        )  # fmt: skip
        return self._run(
            pa.deep_lift, config, inputs,
            baselines=baselines, target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class DeepLiftShap(DeepLift):
    """Captum's ``DeepLiftShap`` over :func:`pyattrib.deep_lift_shap` (one delta per pair).

    Args:
        model: The model (an ``nn.Module``).
        multiply_by_inputs: Multiply by ``(x - x')`` (global attribution); ``False`` gives the local
            attribution.

    Example:
        >>> from pyattrib.compat import DeepLiftShap
        >>> DeepLiftShap(model).attribute(x, torch.randn(5, 8), target=y).shape
        torch.Size([4, 8])
    """

    def __init__(self, model: nn.Module, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, multiply_by_inputs)

    def attribute(  # type: ignore[override]  # Captum's DeepLiftShap: baselines required
        self, inputs: Any, baselines: Any, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, custom_attribution_func: Callable[..., Any] | None = None,
    ) -> Any:  # fmt: skip
        config = native(
            multiply_by_inputs=self._multiply_by_inputs, custom_attribution_func=custom_attribution_func,
            return_convergence_delta=return_convergence_delta, delta_per_sample=True,
        )  # fmt: skip
        return self._run(
            pa.deep_lift_shap, config, inputs,
            baselines=baselines, target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class GuidedBackprop(GradientAttribution):
    """Captum's ``GuidedBackprop`` over :func:`pyattrib.guided_backprop`.

    Args:
        model: The model (an ``nn.Module``).

    Example:
        >>> from pyattrib.compat import GuidedBackprop
        >>> GuidedBackprop(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _transform = staticmethod(pa.guided_backprop)

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.model = model

    def attribute(self, inputs: Any, target: Any = None, additional_forward_args: Any = None) -> Any:
        return self._run(self._transform, {}, inputs, target=target, additional_forward_args=additional_forward_args)


class Deconvolution(GuidedBackprop):
    """Captum's ``Deconvolution`` over :func:`pyattrib.deconvolution`.

    Args:
        model: The model (an ``nn.Module``).

    Example:
        >>> from pyattrib.compat import Deconvolution
        >>> Deconvolution(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _transform = staticmethod(pa.deconvolution)


class GuidedGradCam(GradientAttribution):
    """Captum's ``GuidedGradCam`` over :func:`pyattrib.guided_gradcam`.

    Args:
        model: The model (an ``nn.Module``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import GuidedGradCam
        >>> GuidedGradCam(cnn, conv).attribute(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, model: nn.Module, layer: nn.Module, device_ids: Any = None) -> None:
        super().__init__(model)
        self.model, self.layer, self.device_ids = model, layer, device_ids

    def _target(self) -> tuple[Any, ...]:
        return (self.model, self.layer)

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None, interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
    ) -> Any:  # fmt: skip
        config = native(interpolate_mode=interpolate_mode, attribute_to_layer_input=attribute_to_layer_input)
        return self._run(
            pa.guided_gradcam, config, inputs, target=target, additional_forward_args=additional_forward_args
        )


class LRP(GradientAttribution):
    """Captum's ``LRP`` over :func:`pyattrib.lrp_rules.lrp`; rules come from each module's ``rule``
    attribute (``pyattrib.compat.lrp_rules``), as in Captum.

    Args:
        model: The model (an ``nn.Module``).

    Example:
        >>> from pyattrib.compat import LRP
        >>> LRP(model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    _has_delta = True

    def __init__(self, model: nn.Module) -> None:
        from .lrp_rules import check_rules

        super().__init__(model)
        self.model = model
        check_rules(model)

    _multiply_by_inputs = True

    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None,
        return_convergence_delta: bool = False, verbose: bool = False,
    ) -> Any:  # fmt: skip
        from .lrp_rules import rules_of

        config = native(rules=rules_of(self.model), return_convergence_delta=return_convergence_delta)
        return self._run(pa.lrp, config, inputs, target=target, additional_forward_args=additional_forward_args)
