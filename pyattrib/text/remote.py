"""Models behind an API: what :func:`pyattrib.text.remote_llm_attribution` needs of a provider."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any


class RemoteLLMProvider(ABC):
    """A language model served remotely that reports log-probabilities of given text.

    Example:
        >>> class Scored(pa.text.RemoteLLMProvider):
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer):
        ...         return [-len(input_prompt) / 10] * len(tokenizer.tokenize(target_str))
        ...     def generate(self, prompt, **gen_args):
        ...         return "blue"
        ...
        >>> Scored().generate("the sky is")
        'blue'
    """

    api_url: str

    @abstractmethod
    def generate(self, prompt: str, **gen_args: Any) -> str:
        """The model's continuation of ``prompt``."""

    @abstractmethod
    def get_logprobs(self, input_prompt: str, target_str: str, tokenizer: Any = None) -> list[float]:
        """``log p(t_i | input_prompt, t_<i)`` for each token ``t_i`` of ``target_str`` (one per token)."""


class VLLMProvider(RemoteLLMProvider):
    """A vLLM server through its OpenAI-compatible API (needs the ``openai`` package).

    Log-probabilities come from one completion request of ``prompt + target`` with
    ``prompt_logprobs=0`` (vLLM returns the log-probability of every prompt token), of which
    the target's last tokens are kept. ``model_name=None`` takes the server's first model; the
    key is ``$OPENAI_API_KEY`` or ``"EMPTY"``.

    Args:
        api_url: The server's OpenAI-compatible address, e.g. ``http://localhost:8000/v1``.
        model_name: The served model's name; ``None`` takes the server's first model.

    Example:
        >>> provider = pa.text.VLLMProvider("http://localhost:8000/v1", model_name="my-model")  # no request yet
        >>> provider.model_name
        'my-model'
    """

    def __init__(self, api_url: str, model_name: str | None = None) -> None:
        try:
            from openai import OpenAI
        except ImportError as e:
            raise ImportError("VLLMProvider needs the openai package: pip install openai") from e
        if not api_url.strip():
            raise ValueError("API URL is required: pass the vLLM server's address, e.g. http://host:8000/v1")
        self.api_url = api_url
        try:
            self.client = OpenAI(base_url=api_url, api_key=os.getenv("OPENAI_API_KEY", "EMPTY"))
            if model_name is None:
                models = self.client.models.list().data
                if not models:
                    raise ValueError("No models available from the vLLM API at " + api_url)
                model_name = models[0].id
        except ConnectionError as e:
            raise ConnectionError(f"Failed to connect to vLLM API: {e}") from e
        self.model_name = model_name

    def generate(self, prompt: str, **gen_args: Any) -> str:
        args = {k: v for k, v in gen_args.items() if k not in ("do_sample", "max_new_tokens")}
        args.setdefault("max_tokens", gen_args.get("max_new_tokens", 25))  # Hugging Face's name for it
        try:
            response = self.client.completions.create(model=self.model_name, prompt=prompt, **args)
        except ConnectionError as e:
            raise ConnectionError(f"Failed to connect to vLLM API: {e}") from e
        if not getattr(response, "choices", None):
            raise KeyError("API response missing expected 'choices' data")
        return response.choices[0].text

    def get_logprobs(self, input_prompt: str, target_str: str, tokenizer: Any = None) -> list[float]:
        if tokenizer is None:
            raise ValueError("Tokenizer is required to count the target's tokens; pass tokenizer=")
        if not target_str:
            raise ValueError("Target string cannot be empty")
        n = len(tokenizer.encode(target_str, add_special_tokens=False))
        try:
            response = self.client.completions.create(
                model=self.model_name, prompt=input_prompt + target_str, temperature=0.0, max_tokens=1,
                extra_body={"prompt_logprobs": 0},
            )  # fmt: skip
        except ConnectionError as e:
            raise ConnectionError(f"Failed to connect to vLLM API when getting logprobs: {e}") from e
        choices = getattr(response, "choices", None)
        if not choices:
            raise KeyError("API response missing expected 'choices' data")
        per_token = getattr(choices[0], "prompt_logprobs", None)
        if not per_token:
            raise KeyError("API response missing 'prompt_logprobs' data (is this a vLLM server?)")
        scores = []
        for entry in per_token[-n:]:
            if not entry:
                raise ValueError("Empty probability data in API response")
            try:
                scores.append(next(iter(entry.values()))["logprob"])
            except (KeyError, IndexError, StopIteration) as e:
                raise IndexError(f"Unexpected format in log probability data: {e!r}") from e
        if len(scores) != n:
            raise ValueError(f"Not enough logprobs received: expected {n}, got {len(scores)}")
        return scores
