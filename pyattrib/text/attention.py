r"""Attention-based attribution of an answer: the attention weights themselves, and their rollout.

One teacher-forced forward of ``prompt + answer`` (a causal model), with every attention module's
weights ``A_l`` (``(H, S, S)``; eager attention, which returns them) read by the capture
combinator. For answer token ``y_t``, predicted at position ``p_t``, the attribution of prompt
feature ``j`` is row ``p_t`` of

- ``"raw"``: the weights averaged over the heads (``heads``) and over the layers (``layers``),
  or the last layer's;
- ``"rollout"`` (Abnar & Zuidema, 2020): :math:`\tilde A_L \cdots \tilde A_1` with
  :math:`\tilde A_l = \mathrm{rownorm}(\tfrac12 \bar A_l + \tfrac12 I)`, the head-averaged weights
  mixed with the residual connection;
- ``"value_zeroing"`` (Mohebbi et al., 2023): per layer, token ``i``'s change when token
  ``j``'s value vector is zeroed, ``1 - cos``, rows normalised; rolled out over the layers (the
  last layer's alone with ``last_layer=True``). Each layer is rerun on copies of its own input
  inside the one forward (any stack of layers whose attention has a value projection:
  ``v_proj``, ``value``, or GPT-2's fused ``c_attn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.capture import Layers
from .._core.errors import ArgumentError
from .._core.state import evaluating
from .forcing import TeacherForcing, accepts
from .inputs import TextTokenInput
from .prompts import _device, _ids, _local_generate, _pad_id, _Prompts
from .steps import StepScore, check_steps


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The innermost modules whose class name ends in ``Attention`` (GPT-2's ``GPT2Attention``,
    Llama's ``LlamaAttention``, BERT's ``BertSelfAttention``...), in order."""
    found = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    return [m for m in found if not any(c is not m and type(c).__name__.endswith("Attention") for c in m.modules())]


def attention_weights(
    model: nn.Module, modules: Sequence[nn.Module], kwargs: dict[str, Any]
) -> tuple[Tensor, Any]:
    """``(L, N, H, S, S)``: each module's attention weights in one forward of ``model(**kwargs)``,
    and that forward's output."""
    seen: list[Tensor | None] = []

    def read(j: int, value: Any) -> None:
        weights = value[1] if isinstance(value, tuple) and len(value) > 1 else None
        seen.append(weights if isinstance(weights, Tensor) else None)

    with torch.no_grad(), Layers(model, list(modules), False).hooked(read):
        output = model(**kwargs)
    if not seen or any(w is None for w in seen):
        raise ArgumentError(
            "the model's attention does not return its weights (SDPA or flash attention computes them "
            "implicitly): load it with attn_implementation='eager', or call model.set_attn_implementation('eager')"
        )
    return torch.stack([w.float() for w in seen if w is not None]), output


def _block_of(model: nn.Module, module: nn.Module) -> nn.Module:
    """The layer of the stack (the outermost child of an ``nn.ModuleList``: T5's block, not the
    sub-layer in the block's own list) that holds ``module``."""
    parents = {id(c): m for m in model.modules() for c in m.children()}
    current, found = module, None
    while id(current) in parents:
        parent = parents[id(current)]
        if isinstance(parent, nn.ModuleList):
            found = current
        current = parent
    if found is None:
        raise ArgumentError("value zeroing needs the attention inside a stack of layers (an nn.ModuleList)")
    return found


def _value_of(attention: nn.Module) -> tuple[nn.Module, int | None]:
    """The attention's value projection, and the width of the value slice when it is fused with
    the queries and keys (GPT-2's ``c_attn``: the last third)."""
    for name in ("v_proj", "value", "v"):
        sub = getattr(attention, name, None)
        if isinstance(sub, nn.Module):
            return sub, None
    fused = getattr(attention, "c_attn", None)
    if isinstance(fused, nn.Module) and not getattr(attention, "is_cross_attention", False):
        return fused, int(cast(Any, attention).embed_dim)
    raise ArgumentError(f"value zeroing: no value projection (v_proj, value, or GPT-2's c_attn) in "
                        f"{type(attention).__name__}")  # fmt: skip


def value_zeroing(
    model: nn.Module, modules: Sequence[nn.Module], kwargs: dict[str, Any], batch_size: int | None = None,
    values_length: int | None = None, min_score: float = 0.0,
) -> Tensor:  # fmt: skip
    """``(L, S, S)``: for each layer, how much zeroing token ``j``'s value vector changes token
    ``i``'s output of that layer, ``1 - cos(x_i, x_i^{(-j)})``, rows normalised to sum to 1
    (Mohebbi et al., 2023). Each layer is rerun on ``S`` copies of its input, copy ``j`` with value
    ``j`` zeroed, ``batch_size`` copies at a time (default all: memory grows with ``S^2``).
    ``values_length``: cross-attention, whose values are another sequence's (the encoder's), of
    that length: ``(L, S, values_length)``; the layer's other batched inputs are copied too.
    Distances below ``min_score`` count as zero before the rows are normalised."""
    blocks = [_block_of(model, m) for m in modules]
    values = [_value_of(m) for m in modules]
    out: list[Tensor] = []

    def first(x: Any) -> Tensor:
        return x[0] if isinstance(x, tuple) else x

    def call(j: int, forward: Any, args: tuple, kw: dict[str, Any]) -> Any:
        result = forward(*args, **kw)
        hidden = args[0] if args else kw["hidden_states"]
        size = values_length or hidden.shape[1]
        module, width = values[j]
        rest = {k: v for k, v in kw.items() if k != "hidden_states"}
        step = size if batch_size is None else max(1, batch_size)
        parts = []
        for start in range(0, size, step):
            rows = torch.arange(start, min(start + step, size), device=hidden.device)
            copies = hidden.expand(len(rows), *hidden.shape[1:])

            def copied(x: Any, n: int = len(rows)) -> Any:  # the encoder's states and the like, one per copy
                return x.expand(n, *x.shape[1:]) if isinstance(x, Tensor) and x.dim() >= 3 and x.shape[0] == 1 else x

            def zero(_: int, value: Tensor, rows: Tensor = rows) -> Tensor:
                value = value.clone()
                cols = slice(value.shape[-1] - width, None) if width else slice(None)
                value[torch.arange(len(rows), device=rows.device), rows, cols] = 0
                return value

            with Layers(model, [module], False).hooked(zero):
                more, named = [copied(a) for a in args[1:]], {k: copied(v) for k, v in rest.items()}
                rerun = forward(copies, *more, **named) if args else forward(hidden_states=copies, **named)
            parts.append(first(rerun))
        changed = torch.cat(parts)
        original = first(result)[0]
        distance = 1 - torch.nn.functional.cosine_similarity(changed.float(), original.float()[None], dim=-1)
        distance = distance.T.clamp(min=0)  # (i, j): token i's change when value j is zeroed
        distance = torch.where(distance < min_score, 0.0, distance)
        out.append(distance / distance.sum(-1, keepdim=True).clamp(min=1e-12))
        return result

    with torch.no_grad(), Layers(model, blocks, False).around(call):
        model(**kwargs)
    return torch.stack(out)


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
    method: Literal["raw", "rollout", "value_zeroing"] = "raw",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    last_layer: bool = False,
    batch_size: int | None = None,
    min_score: float = 0.0,
) -> Attributor:
    """Attention-based attribution of an LLM's answer to its prompt's tokens.

    ``method="raw"``: the attention weights from the position that predicts each answer token,
    averaged over ``heads`` (default all) and ``layers`` (default all; ``last_layer=True``: the
    last of them only); ``"rollout"``: attention rollout through ``layers`` (Abnar & Zuidema);
    ``"value_zeroing"``: value zeroing (Mohebbi et al.), rolled out (see the module).
    The model must run eager attention (its weights are read); an SDPA model gets an error
    saying how to switch. Call as ``(inputs, target=None, *, gen_args=None, step_scores=None,
    contrast_prompt=None, attribute_target=False)`` with :class:`TextTokenInput` inputs (one or a
    list); returns an ``LLMAttributionResult`` (``token_attr[t]``: answer token ``t``'s row;
    ``seq_attr``: their sum; with ``attribute_target=True``, ``target_attr[t, j]``: the weight on
    answer token ``j < t``). An encoder-decoder model (T5, BART) takes ``"raw"`` (its decoder's
    cross-attention to the prompt, self-attention to the answer; ``layers`` index the decoder's
    layers) and ``"value_zeroing"`` (zeroing the prompt's values in the cross-attention, the
    answer's in the self-attention; averaged over the layers or the last one, no rollout).

    Args:
        model: A causal language model or an encoder-decoder model (Hugging Face) with eager attention;
            left exactly as found.
        tokenizer: Its tokenizer.
        method: ``"raw"``, ``"rollout"`` or ``"value_zeroing"``.
        layers: Which attention layers (indices in forward order; default all).
        heads: Which heads (default all).
        last_layer: With ``"raw"``, only the last of ``layers``.
        batch_size: With ``"value_zeroing"``, the copies of a layer's input rerun at once (default all:
            memory grows with the square of the sequence's length).
        min_score: With ``"value_zeroing"``, distances below it count as zero before each row is
            normalised (inseq's is ``1e-5``; 0 keeps every one).

    Returns:
        Attributor: call it as ``(inputs, target=None, *, gen_args=None, step_scores=None,
        contrast_prompt=None)``; it returns an ``LLMAttributionResult`` (a list for a list of inputs).

    References:
        - Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
          https://arxiv.org/abs/2005.00928
        - Mohebbi, Zuidema, Chrupała and Alishahi, "Quantifying Context Mixing in Transformers", EACL 2023.
          https://arxiv.org/abs/2301.12971

    Example:
        >>> import copy
        >>> eager = copy.deepcopy(lm)
        >>> eager.set_attn_implementation("eager")  # the weights are read: eager attention
        >>> attn = pa.text.attention_attribution(eager, tokenizer, method="rollout")
        >>> result = attn(pa.text.TextTokenInput("the cat sat", tokenizer), target="on the mat")
        >>> result.token_attr.shape[0] == len(result.output_tokens)
        True
    """
    if method not in ("raw", "rollout", "value_zeroing"):
        raise ArgumentError(f"method={method!r}; choose 'raw', 'rollout' or 'value_zeroing'")
    forcing = TeacherForcing(model, _pad_id(tokenizer), None)
    if forcing.seq2seq and method == "rollout":
        raise ArgumentError("method='rollout' follows one stack of self-attention; an encoder-decoder model (T5, "
                            "BART) takes method='raw' or 'value_zeroing' (its cross-attention)")  # fmt: skip
    modules = [] if forcing.seq2seq else attention_modules(model)
    if not modules and not forcing.seq2seq:
        raise ArgumentError("no attention module found (a module class named ...Attention); is it a transformer?")
    chosen = list(range(len(modules))) if layers is None else list(layers)
    if not forcing.seq2seq and (any(not 0 <= i < len(modules) for i in chosen) or not chosen):
        raise ArgumentError(f"layers must be indices of the model's {len(modules)} attention layers; got {layers}")

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None,
                  step_scores: Sequence[StepScore] | None = None, contrast_prompt: Any = None,
                  attribute_target: bool = False) -> Any:  # fmt: skip
        device, steps = _device(model), check_steps(step_scores)
        prompts = _Prompts(inputs, target, gen_args, tokenizer, _local_generate(model, tokenizer))
        attrs: list[Tensor] = []
        prefixes: list[Tensor | None] = []
        known: dict[int, Tensor] = {}
        for p, (inp, answer) in enumerate(zip(prompts.inputs, prompts.answers)):
            if not isinstance(inp, TextTokenInput):
                raise ArgumentError(f"attention attributes the prompt's tokens: give TextTokenInput, not "
                                    f"{type(inp).__name__}")  # fmt: skip
            prompt = _ids(inp.to_model_input(), tokenizer, device)["input_ids"][0]
            cols = torch.arange(len(prompt), device=device)
            if inp.itp_mask is not None:
                cols = cols[inp.itp_mask[0].to(device)]
            if forcing.seq2seq and method == "value_zeroing":
                per_token, prefix = _cross_value_zeroing(model, forcing, prompt, answer.to(device), cols, layers,
                                                         last_layer, batch_size, min_score,
                                                         attribute_target)  # fmt: skip
                attrs.append(torch.cat([per_token.sum(0, keepdim=True), per_token]))
                prefixes.append(prefix)
                continue
            if forcing.seq2seq:
                per_token, prefix, known[p] = _cross_attention(model, forcing, prompt, answer.to(device), cols,
                                                               layers, heads)  # fmt: skip
                attrs.append(torch.cat([per_token.sum(0, keepdim=True), per_token]))
                prefixes.append(prefix if attribute_target else None)
                continue
            seq = torch.cat([prompt, answer.to(device)])
            kwargs = {**forcing.plain(seq[None]), **({"use_cache": False} if accepts(model, "use_cache") else {})}
            with evaluating(model):
                if method == "value_zeroing":
                    per_layer = value_zeroing(model, [modules[i] for i in chosen], kwargs, batch_size,
                                              min_score=min_score)  # fmt: skip
                else:
                    weights, output = attention_weights(model, modules, kwargs)
                    weights = weights[chosen, 0]  # (L, H, S, S)
                    # the step scores' distributions come from this same forward
                    known[p] = TeacherForcing.log_softmax(output)[0, len(prompt) - 1 : len(seq) - 1]
                    per_layer = (weights if heads is None else weights[:, list(heads)]).mean(1)
            if method == "rollout" or (method == "value_zeroing" and not last_layer):
                mixed = rollout(per_layer)
            else:
                mixed = per_layer[-1] if last_layer else per_layer.mean(0)
            rows = mixed[len(prompt) - 1 : len(prompt) - 1 + len(answer)]  # the positions predicting the answer
            per_token = rows[:, cols].cpu()
            attrs.append(torch.cat([per_token.sum(0, keepdim=True), per_token]))
            # answer token j sits at len(prompt) + j; the causal mask leaves zeros where j >= t
            prefixes.append(rows[:, len(prompt) :].cpu() if attribute_target else None)
        scores = prompts.step_scores(forcing, steps, contrast_prompt, device, known)
        return prompts.results(attrs, True, scores, prefixes)

    return Attributor(attribute, model, per_example=(), name="text.attention_attribution")


def _cross_attention(
    model: nn.Module, forcing: TeacherForcing, prompt: Tensor, answer: Tensor, cols: Tensor,
    layers: Sequence[int] | None, heads: Sequence[int] | None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """An encoder-decoder model: the decoder's cross-attention from the position predicting each
    answer token to the prompt's tokens ``(T, features)``, and its self-attention to the answer's
    earlier tokens ``(T, T)`` (decoder position ``j + 1`` holds answer token ``j``), averaged over
    ``heads`` and ``layers`` (decoder layers); and the forward's log-probabilities ``(T, V)``."""
    if forcing.decoder_start is None:
        raise ArgumentError("the encoder-decoder model's config has no decoder_start_token_id; set it")
    decoder = torch.cat([answer.new_tensor([forcing.decoder_start]), answer[:-1]])
    with torch.no_grad(), evaluating(model):
        out = model(input_ids=prompt[None], decoder_input_ids=decoder[None], output_attentions=True, use_cache=False)
    cross, own = getattr(out, "cross_attentions", None), getattr(out, "decoder_attentions", None)
    if not cross or any(w is None for w in cross) or not own or any(w is None for w in own):
        raise ArgumentError(
            "the model's attention does not return its weights (SDPA or flash attention computes them "
            "implicitly): load it with attn_implementation='eager', or call model.set_attn_implementation('eager')"
        )
    chosen = list(range(len(cross))) if layers is None else list(layers)
    if not chosen or any(not 0 <= i < len(cross) for i in chosen):
        raise ArgumentError(f"layers must be indices of the model's {len(cross)} decoder layers; got {layers}")
    pick = list(heads) if heads is not None else slice(None)
    to_prompt = torch.stack([cross[i][0].float() for i in chosen])[:, pick].mean((0, 1))  # (T, S)
    to_answer = torch.stack([own[i][0].float() for i in chosen])[:, pick].mean((0, 1))  # (T, T)
    prefix = torch.cat([to_answer[:, 1:], to_answer.new_zeros((len(answer), 1))], 1)
    return to_prompt[:, cols].cpu(), prefix.cpu(), TeacherForcing.log_softmax(out)[0]


CROSS = ("encoder_attn", "EncDecAttention", "crossattention", "cross_attn")  # Hugging Face's names for it


def _cross_value_zeroing(
    model: nn.Module, forcing: TeacherForcing, prompt: Tensor, answer: Tensor, cols: Tensor,
    layers: Sequence[int] | None, last_layer: bool, batch_size: int | None, min_score: float,
    attribute_target: bool,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """Value zeroing in an encoder-decoder model's decoder: per decoder layer, zeroing prompt token
    ``j``'s value in the cross-attention (answer token ``j``'s in the self-attention, for the target
    side) and reading each decoder position's change; averaged over ``layers``, or the last of
    them (no rollout: the two sequences do not compose)."""
    if forcing.decoder_start is None:
        raise ArgumentError("the encoder-decoder model's config has no decoder_start_token_id; set it")
    in_decoder = {id(m) for m in attention_modules(cast(Any, model).get_decoder())}
    named = [(n, m) for n, m in model.named_modules() if id(m) in in_decoder]
    cross = [m for n, m in named if any(c in n for c in CROSS)]
    own = [m for n, m in named if not any(c in n for c in CROSS)]
    if not cross:
        raise ArgumentError(f"value zeroing: no cross-attention (a module named one of {list(CROSS)}) in the decoder")
    chosen = list(range(len(cross))) if layers is None else list(layers)
    if not chosen or any(not 0 <= i < len(cross) for i in chosen):
        raise ArgumentError(f"layers must be indices of the model's {len(cross)} decoder layers; got {layers}")
    decoder = torch.cat([answer.new_tensor([forcing.decoder_start]), answer[:-1]])
    kwargs = {"input_ids": prompt[None], "decoder_input_ids": decoder[None], "use_cache": False}

    def mixed(modules: list[nn.Module], length: int | None) -> Tensor:
        per_layer = value_zeroing(model, [modules[i] for i in chosen], kwargs, batch_size, length, min_score)
        return (per_layer[-1] if last_layer else per_layer.mean(0)).cpu()

    with evaluating(model):
        to_prompt = mixed(cross, len(prompt))[:, cols.cpu()]
        prefix = None
        if attribute_target:  # decoder position j + 1 holds answer token j
            to_answer = mixed(own, None)
            prefix = torch.cat([to_answer[:, 1:], to_answer.new_zeros((len(answer), 1))], 1)
    return to_prompt, prefix
