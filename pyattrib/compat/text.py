"""Captum's LLM classes over :mod:`pyattrib.text`: ``LLMAttribution(FeatureAblation(model), tokenizer)``.

The wrapped Captum-style method keeps its own configuration and ``attribute`` arguments
(``n_samples``, ``perturbations_per_eval``, ``n_steps``...); the LLM class turns it into a
transform over the prompt's features, so the numbers follow its rules exactly as Captum's do.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch

from .._core.errors import ArgumentError
from ..text import llm as text_llm
from ..text import prompts as text_prompts
from ..text.inputs import ImageMaskInput, TextTemplateInput, TextTokenInput
from ..text.llm_gradient import llm_gradient_attribution
from ..text.remote import RemoteLLMProvider
from ._base import Attribution
from .layer import LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients
from .lime import KernelShap, Lime
from .perturbation import FeatureAblation, ShapleyValues, ShapleyValueSampling


def _as_transform(attr_method: Attribution, *extra: Any) -> Callable[..., Any]:
    """A pyattrib-style transform ``(f, *extra, **options) -> attributor`` that runs a copy of
    ``attr_method`` (its configuration kept) on the forward function ``f``."""

    def transform(f: Callable[..., Any], *_: Any, **options: Any) -> Callable[..., Any]:
        method = copy.copy(attr_method)
        method.forward_func, method._transforms = f, {}
        method._flat_outputs = False  # the native layout: llm_attribution reads (prompts, tokens, features)

        def attributor(inputs: Any, *args: Any, **call: Any) -> Any:
            return method.attribute(inputs, *args, **call)

        return attributor

    transform.__name__ = "lime" if isinstance(attr_method, Lime) else type(attr_method).__name__
    return transform


def _check(attr_method: Any, supported: tuple[type, ...], who: str) -> None:
    if not isinstance(attr_method, supported):
        names = ", ".join(c.__name__ for c in supported)
        raise ArgumentError.also(TypeError)(  # Captum asserts
            f"{who} wraps one of {names} (from pyattrib.compat); got {type(attr_method).__name__}"
        )


class LLMAttribution(Attribution):
    """Captum's ``LLMAttribution`` over :func:`pyattrib.text.llm_attribution`.

    Args:
        attr_method: The compat attribution it runs (e.g. a ``FeatureAblation`` or
            ``LayerIntegratedGradients`` instance).
        tokenizer: A Hugging Face tokenizer of the model.
        attr_target: ``"log_prob"`` or ``"prob"``: what is attributed.

    Example:
        >>> from pyattrib.compat import FeatureAblation, LLMAttribution
        >>> llm = LLMAttribution(FeatureAblation(lm), tokenizer)
        >>> result = llm.attribute(pa.text.TextTemplateInput("{} is {}", ["sky", "blue"]), target="today")
        >>> result.seq_attr.shape
        torch.Size([2])
    """

    SUPPORTED_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)
    SUPPORTED_PER_TOKEN_ATTR_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues)
    SUPPORTED_INPUTS = (TextTemplateInput, TextTokenInput, ImageMaskInput)

    def __init__(self, attr_method: Attribution, tokenizer: Any, attr_target: str = "log_prob") -> None:
        _check(attr_method, self.SUPPORTED_METHODS, type(self).__name__)
        super().__init__(attr_method.forward_func)
        self.model: Any = attr_method.forward_func
        self.attr_method, self.tokenizer, self.attr_target = attr_method, tokenizer, attr_target
        self.include_per_token_attr = isinstance(attr_method, self.SUPPORTED_PER_TOKEN_ATTR_METHODS)
        self._attribute = self._build()

    @property
    def device(self) -> torch.device:
        return text_prompts._device(self.model)

    def _build(self) -> Callable[..., Any]:
        return text_llm.llm_attribution(self.model, self.tokenizer, _as_transform(self.attr_method),
                                        attr_target=self.attr_target)  # fmt: skip

    def attribute(
        self, inp: Any, target: Any = None, num_trials: int = 1, gen_args: dict | None = None,
        use_cached_outputs: bool = True, _inspect_forward: Callable[..., Any] | None = None,
        forward_in_tokens: bool = True, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Captum's arguments; ``use_cached_outputs`` and ``forward_in_tokens`` choose how Captum
        decodes, and pyattrib's scores equal its exact token-by-token decoding either way."""
        if _inspect_forward is not None:
            raise ArgumentError("_inspect_forward is not supported: prompts are scored in batches, not one by one")
        return self._attribute(inp, target, gen_args=gen_args, num_trials=num_trials, **kwargs)


class _PlaceholderModel:
    """Stands in for the model of a remote LLM's attribution method (it only carries a device)."""

    def __init__(self) -> None:
        self.device: torch.device | str = torch.device("cpu")

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return 0


class RemoteLLMAttribution(LLMAttribution):
    """Captum's ``RemoteLLMAttribution`` over :func:`pyattrib.text.remote_llm_attribution`.

    Args:
        attr_method: The compat attribution it runs (e.g. a ``FeatureAblation`` or
            ``LayerIntegratedGradients`` instance).
        tokenizer: A Hugging Face tokenizer of the model.
        provider: A :class:`~pyattrib.text.RemoteLLMProvider` (e.g. :class:`~pyattrib.text.VLLMProvider`).
        attr_target: ``"log_prob"`` or ``"prob"``: what is attributed.

    Example:
        >>> class Scored(pa.text.RemoteLLMProvider):
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer):
        ...         return [-len(input_prompt) / 10] * len(tokenizer.tokenize(target_str))
        ...     def generate(self, prompt, **gen_args):
        ...         return "blue"
        ...
        >>> from pyattrib.compat import FeatureAblation, RemoteLLMAttribution
        >>> llm = RemoteLLMAttribution(FeatureAblation(lm), tokenizer, Scored())
        >>> result = llm.attribute(pa.text.TextTemplateInput("the {} is {}", ["sky", "blue"]), target="today")
        >>> result.seq_attr.shape
        torch.Size([2])
    """

    placeholder_model = _PlaceholderModel()

    def __init__(
        self, attr_method: Attribution, tokenizer: Any, provider: RemoteLLMProvider, attr_target: str = "log_prob"
    ) -> None:
        self.provider = provider
        super().__init__(attr_method, tokenizer, attr_target)

    @property
    def device(self) -> torch.device:
        return torch.device(getattr(self.model, "device", "cpu"))

    def _build(self) -> Callable[..., Any]:
        return text_llm.remote_llm_attribution(self.provider, self.tokenizer, _as_transform(self.attr_method),
                                               attr_target=self.attr_target, device=self.device)  # fmt: skip


class LLMGradientAttribution(Attribution):
    """Captum's ``LLMGradientAttribution`` over :func:`pyattrib.text.llm_gradient_attribution`.

    Args:
        attr_method: The compat attribution it runs (e.g. a ``FeatureAblation`` or
            ``LayerIntegratedGradients`` instance).
        tokenizer: A Hugging Face tokenizer of the model.

    Example:
        >>> from pyattrib.compat import LayerIntegratedGradients, LLMGradientAttribution
        >>> lig = LayerIntegratedGradients(lm, lm.get_input_embeddings())
        >>> llm = LLMGradientAttribution(lig, tokenizer)
        >>> prompt = pa.text.TextTokenInput("the sky", tokenizer, skip_tokens=["[CLS]"])
        >>> result = llm.attribute(prompt, target="is blue", n_steps=4)
        >>> result.token_attr.shape[0]
        2
    """

    SUPPORTED_METHODS = (LayerIntegratedGradients, LayerGradientShap, LayerGradientXActivation)
    SUPPORTED_INPUTS = (TextTokenInput,)

    def __init__(self, attr_method: Attribution, tokenizer: Any) -> None:
        _check(attr_method, self.SUPPORTED_METHODS, type(self).__name__)
        super().__init__(attr_method.forward_func)
        self.model: Any = attr_method.forward_func
        self.attr_method, self.tokenizer = attr_method, tokenizer
        layer = cast(Any, attr_method).layer
        self._attribute = llm_gradient_attribution(
            cast(Any, self.model),
            tokenizer,
            _as_transform(attr_method),
            layer=layer[0] if isinstance(layer, list) else layer,
        )

    @property
    def device(self) -> torch.device:
        return text_prompts._device(self.model)

    def attribute(self, inp: Any, target: Any = None, gen_args: dict | None = None, **kwargs: Any) -> Any:
        return self._attribute(inp, target, gen_args=gen_args, **kwargs)
