"""The call signatures of attributors, as types a static checker and an IDE read.

A transform returns ``Attributor[C]``, where ``C`` is one of these protocols: mypy, pyright and
jedi then see the attributor's call as ``C.__call__`` (its arguments, their types and defaults),
and mypy checks that the method's own function has that signature. Each protocol is one call
shape shared by a family of methods; ``tests/test_typing.py`` checks every transform's runtime
signature against the protocol it declares.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .inputs import BaselineLike, TensorOrTuple
from .targets import TargetLike

Generator = torch.Generator | None


class InputCall(Protocol):
    """Gradients, CAMs, LRP: ``(inputs, *, target, additional_forward_args)``."""

    def __call__(
        self, inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Any: ...


class ActivationCall(Protocol):
    """A layer's activations: ``(inputs, *, additional_forward_args)``."""

    def __call__(self, inputs: TensorOrTuple, *, additional_forward_args: Any = None) -> Any: ...


class BaselineCall(Protocol):
    """Path and reference methods: ``(inputs, baselines=None, *, target, additional_forward_args)``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any: ...


class DistributionCall(Protocol):
    """Expectations over a distribution of baselines (DeepLiftSHAP): ``baselines`` required."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any: ...


class SampledDistributionCall(Protocol):
    """Random draws from a distribution of baselines (GradientSHAP): ``baselines`` required, ``generator``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        generator: Generator = None,
    ) -> Any: ...


class FeatureCall(Protocol):
    """Perturbation of feature groups:
    ``(inputs, baselines=None, *, target, additional_forward_args, feature_mask)``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Any: ...


class SampledFeatureCall(Protocol):
    """Sampled perturbation of feature groups (LIME, Kernel SHAP, Shapley sampling): ``FeatureCall``
    and ``generator``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: Generator = None,
    ) -> Any: ...


class PermutationCall(Protocol):
    """Permutation within the batch: ``(inputs, *, target, additional_forward_args, feature_mask, generator)``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: Generator = None,
    ) -> Any: ...


class NeuronCall(Protocol):
    """A neuron's gradient methods: ``(inputs, *, neuron_selector, additional_forward_args)``."""

    def __call__(self, inputs: TensorOrTuple, *, neuron_selector: Any, additional_forward_args: Any = None) -> Any: ...


class NeuronBaselineCall(Protocol):
    """A neuron's path and reference methods:
    ``(inputs, baselines=None, *, neuron_selector, additional_forward_args)``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        neuron_selector: Any,
        additional_forward_args: Any = None,
    ) -> Any: ...


class NeuronDistributionCall(Protocol):
    """A neuron's DeepLiftSHAP: ``baselines`` required."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike,
        *,
        neuron_selector: Any,
        additional_forward_args: Any = None,
    ) -> Any: ...


class NeuronSampledDistributionCall(Protocol):
    """A neuron's GradientSHAP: ``baselines`` required, ``generator``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike,
        *,
        neuron_selector: Any,
        additional_forward_args: Any = None,
        generator: Generator = None,
    ) -> Any: ...


class NeuronFeatureCall(Protocol):
    """A neuron's feature ablation: ``NeuronBaselineCall`` and ``feature_mask``."""

    def __call__(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        neuron_selector: Any,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Any: ...
