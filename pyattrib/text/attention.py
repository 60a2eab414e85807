r"""Attention-based attribution of an answer: the attention weights themselves, and their rollout.

One teacher-forced forward of ``prompt + answer`` (a causal model), with every attention module's
weights ``A_l`` (``(H, S, S)``; eager attention, which returns them) read by the capture
combinator. For answer token ``y_t``, predicted at position ``p_t``, the attribution of prompt
feature ``j`` is row ``p_t`` of

- ``"raw"``: the weights averaged over the heads (``heads``) and over the layers (``layers``),
  or the last layer's;
- ``"rollout"`` (Abnar & Zuidema, 2020): :math:`\tilde A_L \cdots \tilde A_1` with
  :math:`\tilde A_l = \mathrm{rownorm}(\tfrac12 \bar A_l + \tfrac12 I)`, the head-averaged weights
  mixed with the residual connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.capture import Layers
from .._core.errors import ArgumentError
from .._core.state import evaluating
from .forcing import TeacherForcing
from .inputs import TextTokenInput
from .llm import _device, _ids, _local_generate, _pad_id, _Prompts
from .steps import StepScore, check_steps


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The innermost modules whose class name ends in ``Attention`` (GPT-2's ``GPT2Attention``,
    Llama's ``LlamaAttention``, BERT's ``BertSelfAttention``...), in order."""
    found = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    return [m for m in found if not any(c is not m and type(c).__name__.endswith("Attention") for c in m.modules())]


def attention_weights(model: nn.Module, modules: Sequence[nn.Module], kwargs: dict[str, Any]) -> Tensor:
    """``(L, N, H, S, S)``: each module's attention weights in one forward of ``model(**kwargs)``."""
    seen: list[Tensor | None] = []

    def read(j: int, value: Any) -> None:
        weights = value[1] if isinstance(value, tuple) and len(value) > 1 else None
        seen.append(weights if isinstance(weights, Tensor) else None)

    with torch.no_grad(), Layers(model, list(modules), False).hooked(read):
        model(**kwargs)
    if not seen or any(w is None for w in seen):
        raise ArgumentError(
            "the model's attention does not return its weights (SDPA or flash attention computes them "
            "implicitly): load it with attn_implementation='eager', or call model.set_attn_implementation('eager')"
        )
    return torch.stack([w.float() for w in seen if w is not None])


def rollout(weights: Tensor) -> Tensor:
    """Attention rollout of head-averaged weights ``(L, S, S)``: ``(S, S)``."""
    eye = torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
    out = eye
    for a in weights:
        mixed = 0.5 * a + 0.5 * eye
        out = (mixed / mixed.sum(-1, keepdim=True)) @ out
    return out


def attention_attribution(
    model: nn.Module,
    tokenizer: Any,
    *,
    method: Literal["raw", "rollout"] = "raw",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    last_layer: bool = False,
) -> Attributor:
    """Attention-based attribution of an LLM's answer to its prompt's tokens.

    ``method="raw"``: the attention weights from the position that predicts each answer token,
    averaged over ``heads`` (default all) and ``layers`` (default all; ``last_layer=True``: the
    last of them only); ``"rollout"``: attention rollout through ``layers`` (Abnar & Zuidema).
    The model must run eager attention (its weights are read); an SDPA model gets an error
    saying how to switch. Call as ``(inputs, target=None, *, gen_args=None, step_scores=None,
    contrast_prompt=None)`` with :class:`TextTokenInput` inputs (one or a list); returns an
    ``LLMAttributionResult`` (``token_attr[t]``: answer token ``t``'s row; ``seq_attr``: their sum).

    Args:
        model: A causal language model (Hugging Face) with eager attention; left exactly as found.
        tokenizer: Its tokenizer.
        method: ``"raw"`` or ``"rollout"``.
        layers: Which attention layers (indices in forward order; default all).
        heads: Which heads (default all).
        last_layer: With ``"raw"``, only the last of ``layers``.

    Returns:
        Attributor: call it as ``(inputs, target=None, *, gen_args=None, step_scores=None,
        contrast_prompt=None)``; it returns an ``LLMAttributionResult`` (a list for a list of inputs).

    References:
        - Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
          https://arxiv.org/abs/2005.00928

    Example:
        >>> import copy
        >>> eager = copy.deepcopy(lm)
        >>> eager.set_attn_implementation("eager")  # the weights are read: eager attention
        >>> attn = pa.text.attention_attribution(eager, tokenizer, method="rollout")
        >>> result = attn(pa.text.TextTokenInput("the cat sat", tokenizer), target="on the mat")
        >>> result.token_attr.shape[0] == len(result.output_tokens)
        True
    """
    if method not in ("raw", "rollout"):
        raise ArgumentError(f"method={method!r}; choose 'raw' or 'rollout'")
    modules = attention_modules(model)
    if not modules:
        raise ArgumentError("no attention module found (a module class named ...Attention); is it a transformer?")
    chosen = list(range(len(modules))) if layers is None else list(layers)
    if any(not 0 <= i < len(modules) for i in chosen) or not chosen:
        raise ArgumentError(f"layers must be indices of the model's {len(modules)} attention layers; got {layers}")
    forcing = TeacherForcing(model, _pad_id(tokenizer), None)

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None,
                  step_scores: Sequence[StepScore] | None = None, contrast_prompt: Any = None) -> Any:  # fmt: skip
        device, steps = _device(model), check_steps(step_scores)
        prompts = _Prompts(inputs, target, gen_args, tokenizer, _local_generate(model, tokenizer))
        attrs = []
        for inp, answer in zip(prompts.inputs, prompts.answers):
            if not isinstance(inp, TextTokenInput):
                raise ArgumentError(f"attention attributes the prompt's tokens: give TextTokenInput, not "
                                    f"{type(inp).__name__}")  # fmt: skip
            prompt = _ids(inp.to_model_input(), tokenizer, device)["input_ids"][0]
            seq = torch.cat([prompt, answer.to(device)])
            with evaluating(model):
                weights = attention_weights(model, modules, forcing.plain(seq[None]))[chosen, 0]  # (L, H, S, S)
            weights = weights if heads is None else weights[:, list(heads)]
            per_layer = weights.mean(1)
            if method == "rollout":
                mixed = rollout(per_layer)
            else:
                mixed = per_layer[-1] if last_layer else per_layer.mean(0)
            rows = mixed[len(prompt) - 1 : len(prompt) - 1 + len(answer)]  # the positions predicting the answer
            cols = torch.arange(len(prompt), device=device)
            if inp.itp_mask is not None:
                cols = cols[inp.itp_mask[0].to(device)]
            per_token = rows[:, cols].cpu()
            attrs.append(torch.cat([per_token.sum(0, keepdim=True), per_token]))
        return prompts.results(attrs, True, prompts.step_scores(forcing, steps, contrast_prompt, device))

    return Attributor(attribute, model, per_example=(), name="text.attention_attribution")
