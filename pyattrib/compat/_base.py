"""Captum's base classes, as thin adapters over pyattrib's transforms.

A compat class keeps Captum's constructor and ``attribute`` signature. Its ``attribute``
names one pyattrib transform, the transform's configuration (Captum's call-time options
such as ``n_steps``, mapped onto transform-time ones) and the call's data, and hands them to
:meth:`Attribution._run`, which builds the transform (cached per configuration) and calls it.
Wrappers such as :class:`~pyattrib.compat.NoiseTunnel` ask an inner instance for that plan
instead of the result (:func:`planned`), so the argument mapping lives in one place.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import types
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

import pyattrib as pa
from pyattrib._core.attributor import Attributor
from pyattrib._core.errors import ArgumentError
from pyattrib._core.targets import OutputRows

_planning: contextvars.ContextVar[bool] = contextvars.ContextVar("planning", default=False)


class Plan:
    """What an ``attribute`` call would run: the attributor, its inputs and call data."""

    def __init__(self, attributor: Attributor, inputs: Any, data: dict[str, Any]) -> None:
        self.attributor, self.inputs, self.data = attributor, inputs, data


@contextmanager
def planned() -> Any:
    """Within this block, compat ``attribute`` calls return a :class:`Plan` instead of running."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def captum_method(method: str) -> str:
    """Captum's quadrature names; its trapezoid rule has weights summing to ``(n-1)/n``."""
    return "riemann_trapezoid_captum" if method == "riemann_trapezoid" else method


#: Captum's configuration arguments and pyattrib's names for them: the one mapping every compat
#: class applies, through :func:`native`. A name not listed is the same in both (``n_steps``,
#: ``n_samples``, ``stdevs``, ``multiply_by_inputs``, ``attribute_to_layer_input`` ...).
CAPTUM_ARGS: dict[str, str] = {
    "internal_batch_size": "batch_size",  # rows per evaluation
    "perturbations_per_eval": "batch_size",  # copies of the batch per evaluation, as rows (per_eval)
    "return_convergence_delta": "return_delta",
    "nt_samples": "n_samples",
    "nt_samples_batch_size": "batch_size",
    "nt_type": "kind",
    "baseline": "baselines",
    "additional_args": "additional_forward_args",
}
#: Captum's values that pyattrib spells differently, by Captum's argument name.
CAPTUM_VALUES: dict[str, Callable[[Any], Any]] = {"method": captum_method}


def native(**captum: Any) -> dict[str, Any]:
    """Captum's configuration arguments as pyattrib's: renamed by :data:`CAPTUM_ARGS`, values
    translated by :data:`CAPTUM_VALUES` (``perturbations_per_eval`` arrives as rows, from
    :func:`per_eval`)."""
    out: dict[str, Any] = {}
    for name, value in captum.items():
        key = CAPTUM_ARGS.get(name, name)
        if key in out:
            raise TypeError(f"{name} and another argument both set pyattrib's {key}")
        out[key] = CAPTUM_VALUES[name](value) if name in CAPTUM_VALUES else value
    return out


def per_eval(perturbations_per_eval: int, inputs: Any) -> int:
    """Captum's ``perturbations_per_eval`` (copies of the batch per forward) as rows."""
    if isinstance(perturbations_per_eval, bool) or not isinstance(perturbations_per_eval, int):
        raise ArgumentError.also(TypeError)(  # Captum asserts
            f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}"
        )
    if perturbations_per_eval < 1:
        raise AssertionError("Perturbations per evaluation must be an integer and at least 1.")
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    rows = first.shape[0] if isinstance(first, Tensor) and first.dim() else 1
    return perturbations_per_eval * max(rows, 1)


class Attribution:
    """Captum's ``Attribution``: holds ``forward_func``; subclasses define ``attribute``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import Attribution, Saliency
        >>> isinstance(Saliency(model), Attribution)
        True
    """

    #: Captum's ``multiplies_by_inputs``; classes with the constructor flag set it per instance.
    _multiply_by_inputs: bool = False
    #: whether ``attribute`` accepts ``return_convergence_delta``.
    _has_delta: bool = False
    #: Captum's FeatureAblation family lays attributions out as ``(N * K, *input.shape[1:])``
    #: for ``K`` output values per example (see :func:`flat_outputs`).
    _flat_outputs: bool = False

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func
        self._transforms: dict[Any, Attributor] = {}

    attribute: Callable[..., Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("attribute")
        if isinstance(fn, types.FunctionType) and not hasattr(fn, "__wrapped__"):
            # Captum's attribute is decorated, and Captum's own code (its activation store) calls
            # attribute.__wrapped__ to skip the decorator: a copy with the same signature
            twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
            twin.__kwdefaults__, twin.__annotations__, twin.__doc__ = fn.__kwdefaults__, fn.__annotations__, fn.__doc__
            fn.__wrapped__ = twin  # type: ignore[attr-defined]

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return self._has_delta

    # Captum offers attribute_future on its perturbation classes only (not on Occlusion, Lime,
    # KernelShap or DataLoaderAttribution)
    _has_future = False

    def attribute_future(self, *args: Any, **kwargs: Any) -> torch.futures.Future:
        """``attribute`` for a forward function that returns ``torch.futures.Future``s: each
        evaluation's future is waited for, and the attributions come back as a completed future."""
        if not self._has_future:
            raise NotImplementedError(f"{type(self).__name__} has no attribute_future (as in Captum); call attribute")
        resolved = copy.copy(self)
        resolved.forward_func = _waiting(self.forward_func)
        resolved._transforms = {}
        done: torch.futures.Future = torch.futures.Future()
        done.set_result(None)
        result = resolved.attribute(*args, **kwargs)
        return done.then(lambda _: result)  # a torch.Future, the type Captum returns

    def _target(self) -> Any:
        """The first argument of the transform (the forward function, or model and layer)."""
        return (self.forward_func,)

    def _run(self, transform: Callable[..., Attributor], config: dict[str, Any], inputs: Any, **data: Any) -> Any:
        # Captum's semantics where the native default differs: softmax centred over the whole tensor
        config = {**{k: v for k, v in CAPTUM_SEMANTICS.items() if k in _options(transform)}, **config}
        key: Any = (transform, tuple(sorted(config.items())))
        try:
            attributor = self._transforms.get(key)
        except TypeError:  # an unhashable option (e.g. a dict of rules): build afresh
            key, attributor = None, None
        if attributor is None:
            attributor = transform(*self._target(), **config)
            if key is not None:
                self._transforms[key] = attributor
        if "target" in data and not transform.__module__.startswith("pyattrib.text"):
            data = {**data, "target": captum_target(data["target"], inputs)}
        if _planning.get():
            return Plan(attributor, inputs, data)
        result = attributor(inputs, **data)
        return flat_outputs(result, inputs) if self._flat_outputs else result


#: Every place where Captum's semantics differ from pyattrib's native default, as the named
#: option of the core that gives Captum's; compat switches each on (``_run`` passes those a
#: transform accepts). A native improvement missing here is a compat bug.
CAPTUM_SEMANTICS: dict[str, Any] = {
    "captum_softmax": True,  # DeepLift: softmax centred over the whole tensor, not per example
    "captum_nonlinearities": True,  # DeepLift: the rule only in the modules Captum hooks (ReLU, ELU, ...)
    "captum_draws": True,  # noise_tunnel: noise drawn chunk by chunk, reference indices from NumPy
    "flat_metric": True,  # DataLoaderAttribution: the metric's dimensions flattened into one
    "captum_hooks": True,  # LRP: Captum's tensor hooks (input product over all relevance a tensor gets)
}


def flat_outputs(attributions: Any, inputs: Any) -> Any:
    """Captum's shapes for FeatureAblation, FeaturePermutation and Occlusion: one row per output
    value, ``(N * K, *input.shape[1:])`` (``(N, ...)`` for one value per example, ``(K, ...)``
    for a whole-batch output), where pyattrib keeps ``(N, *output_shape, *input.shape[1:])``."""
    if isinstance(attributions, tuple) and isinstance(inputs, (tuple, list)):
        return tuple(a.reshape(-1, *x.shape[1:]) for a, x in zip(attributions, inputs))
    return attributions.reshape(-1, *inputs.shape[1:])


def captum_target(target: Any, inputs: Any) -> Any:
    """Captum's targets where the model's output rows are not the examples (a graph model
    explaining several nodes of one graph): None, or one target per output row, as
    :class:`~pyattrib._core.targets.OutputRows` read only where the output needs it."""
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    n = first.shape[0] if isinstance(first, Tensor) and first.dim() else None
    if target is None:
        return OutputRows(None, only_where_needed=True)
    many = isinstance(target, list) or (isinstance(target, Tensor) and target.dim() > 0 and target.numel() > 1)
    if many and n is not None and len(target) != n:
        return OutputRows(target, only_where_needed=True)
    return target


@functools.cache
def _options(transform: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(transform).parameters)


class GradientAttribution(Attribution):
    """Captum's ``GradientAttribution``: adds ``compute_convergence_delta``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import GradientAttribution, Saliency
        >>> isinstance(Saliency(model), GradientAttribution)
        True
    """

    def compute_convergence_delta(
        self,
        attributions: Tensor | tuple[Tensor, ...],
        start_point: Any,
        end_point: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        """``sum(attributions) - (f(end_point) - f(start_point))`` per example."""
        return pa.convergence_delta(
            self.forward_func, end_point, start_point, attributions,
            target=target, additional_forward_args=additional_forward_args,
        )  # fmt: skip


class PerturbationAttribution(Attribution):
    """Captum's ``PerturbationAttribution``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import PerturbationAttribution, Saliency
        >>> isinstance(Saliency(model), PerturbationAttribution)
        False
    """

    _multiply_by_inputs = True
    _has_future = True


def _waiting(forward: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        if not isinstance(out, torch.futures.Future):
            raise ArgumentError(
                f"attribute_future needs a forward that returns torch.futures.Future, got {type(out).__name__}; "
                "call attribute(...) instead"
            )
        return out.wait()

    return run


class InternalAttribution(Attribution):
    """Captum's ``InternalAttribution``: a forward function and one of its layers.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import InternalAttribution, LayerConductance
        >>> isinstance(LayerConductance(model, layer), InternalAttribution)
        True
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: nn.Module | list[nn.Module], device_ids: Any = None
    ) -> None:
        super().__init__(forward_func)
        self.layer = layer
        self.device_ids = device_ids

    def _target(self) -> tuple[Any, ...]:
        return (self.forward_func, self.layer)


class LayerAttribution(InternalAttribution):
    """Captum's ``LayerAttribution``, with ``interpolate``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import LayerAttribution, LayerGradCam
        >>> cam = LayerGradCam(cnn, conv).attribute(images, target=0)
        >>> LayerAttribution.interpolate(cam, (16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """

    @staticmethod
    def interpolate(
        layer_attribution: Tensor, interpolate_dims: int | tuple[int, ...], interpolate_mode: str = "nearest"
    ) -> Tensor:
        """Upsample layer attributions to ``interpolate_dims`` (:func:`pyattrib.interpolate`)."""
        return pa.interpolate(layer_attribution, interpolate_dims, mode=interpolate_mode)


class NeuronAttribution(InternalAttribution):
    """Captum's ``NeuronAttribution``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        layer: The layer (module) explained, or a list of them where Captum takes one.
        device_ids: Captum's ``DataParallel`` device ids; accepted and unused (pyattrib needs none).

    Example:
        >>> from pyattrib.compat import NeuronAttribution, NeuronGradient
        >>> isinstance(NeuronGradient(model, layer), NeuronAttribution)
        True
    """


def device_of(inputs: Any) -> torch.device:
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    return first.device if isinstance(first, Tensor) else torch.device("cpu")
