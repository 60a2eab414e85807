"""Gradient attribution of an LLM's answer to its prompt's tokens, at the embedding layer, one row per
answer token from one batched pass."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.errors import ArgumentError
from ..layer import layer_gradient_x_activation, layer_integrated_gradients
from ..lrp_rules import layer_lrp
from .embeddings import input_embeddings
from .forcing import TOKEN_BUDGET, TeacherForcing, heads_at, logits_of, read
from .inputs import TextTokenInput
from .prompts import _device, _local_generate, _pad_id, _Prompts
from .steps import StepScore, check_steps


def llm_gradient_attribution(
    model: nn.Module,
    tokenizer: Any,
    layer_method: Callable[..., Any] = layer_integrated_gradients,
    layer: nn.Module | None = None,
    *,
    reduce: Reduce = "sum",
    batch_size: int | None = None,
    **options: Any,
) -> Attributor:
    """Gradient attribution of an LLM's answer to the prompt's tokens, at the embedding layer.

    ``layer_method`` is ``pa.layer_integrated_gradients`` (default), ``pa.layer_gradient_shap``,
    ``pa.layer_gradient_x_activation`` or ``pa.layer_lrp`` (with ``composite="attnlrp"`` or
    ``"cp_lrp"``: relevance propagation, which explains each answer token's logit), applied at
    ``layer`` (default: the model's input embeddings) with ``options``. For every answer token :math:`y_t` it attributes
    :math:`\\log p(y_t \\mid x, y_{<t})` to the prompt's token embeddings, summed over the
    embedding dimension: ``token_attr[t]``; ``seq_attr`` is their sum.

    All answer tokens are attributed in ONE call of the layer method, not one attribution per
    token: row ``t`` of its batch is ``prompt + y_{<t}``, padded so that every row ends at the
    position that predicts :math:`y_t`, and with left padding only that position's vocabulary
    logits are computed (``logits_to_keep=1``; the vocabulary projection is most of a small
    LM's cost). A model that is not causal or ignores its attention mask gets one call per
    answer token on unpadded rows (Captum's way). ``batch_size`` bounds the rows (path points x
    answer tokens) per forward (default: about 8k tokens).

    Call as ``(inputs, target=None, *, gen_args=None, contrast=None, step_scores=None,
    contrast_prompt=None, attribute_target=False, baselines=None, **call)`` with
    :class:`TextTokenInput` inputs (one or a list); ``contrast`` and ``step_scores`` as in
    :func:`llm_attribution` (a foil makes every row's output ``log p(y_t) - log p(f_t)``).
    ``attribute_target=True`` makes the answer's own earlier tokens features too (target-side,
    or prefix, attribution, inseq's option of that name): their embeddings move along the path
    with the prompt's, toward the input's ``baselines`` id, and ``result.target_attr[t, j]`` is
    answer token ``j``'s attribution to token ``t`` (zero for ``j >= t``, which ``t`` cannot see).
    The reference of a token is its input's ``baselines`` id (skip tokens keep theirs);
    ``baselines`` given here are in the input's feature space, as Captum's: rows of 0/1 (0 =
    baseline token), several rows for ``layer_gradient_shap``'s distribution. Returns
    :class:`LLMAttributionResult` (or a list).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        tokenizer: A Hugging Face tokenizer of the model.
        layer_method: ``pa.layer_integrated_gradients`` (default), ``pa.layer_gradient_shap``, ``pa.layer_lrp`` or
            ``pa.layer_gradient_x_activation``.
        layer: The embedding layer; default ``model.get_input_embeddings()``.
        reduce: How a token's attribution is read from its embedding's: ``"sum"`` over the embedding
            dimension (Captum's), ``"norm"`` (the L2 norm, unsigned: inseq's default aggregation), or a
            function of a ``(..., dim)`` tensor returning ``(...)``.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        **options: Configuration of ``layer_method`` (e.g. ``n_steps``).

    Returns:
        Attributor: call it as ``(inputs, target=None, *, gen_args=None, **call)``; it returns an
        ``LLMAttributionResult`` (a list of them for a list of prompts): ``inputs`` a
        ``TextTokenInput`` or a list of them, ``target`` the answer (a string or token ids; ``None``
        generates it with ``gen_args``).

    References:
        - Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
          https://arxiv.org/abs/1703.01365

    Example:
        >>> grad = pa.text.llm_gradient_attribution(lm, tokenizer, n_steps=8)
        >>> result = grad(pa.text.TextTokenInput("the cat sat", tokenizer, skip_tokens=["[CLS]"]), target="on the mat")
        >>> result.token_attr.shape[0] == len(result.output_tokens)
        True
    """
    reducer = _reducer(reduce)
    forcing = TeacherForcing(model, _pad_id(tokenizer), None)
    embeddings = input_embeddings(model, layer)

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None, contrast: Any = None,
                  step_scores: Sequence[StepScore] | None = None, contrast_prompt: Any = None,
                  attribute_target: bool = False, **call: Any):  # fmt: skip
        device, steps = _device(model), check_steps(step_scores)
        prompts = _Prompts(inputs, target, gen_args, tokenizer, _local_generate(model, tokenizer), contrast)
        prompts.check_context(model, device)
        if isinstance(call.get("baselines"), (tuple, list)) and len(call["baselines"]) == 1:
            call["baselines"] = call["baselines"][0]  # Captum passes a 1-tuple for its one input
        attrs, prefixes = [], []
        known: dict[int, Tensor] = {}  # step-score distributions read from the method's own forward
        for p, (inp, answer) in enumerate(zip(prompts.inputs, prompts.answers)):
            # gradient x activation runs the model at the plain input only: its rows' logits are the
            # step scores' distributions (IG and gradient SHAP never run it there: one forward more)
            at_input = inspect.unwrap(layer_method) is layer_gradient_x_activation
            tap: list[Tensor] | None = [] if steps and at_input else None
            foil = None if prompts.foils is None else prompts.foils[p].to(device)
            if not isinstance(inp, TextTokenInput):
                raise ArgumentError(f"llm_gradient_attribution attributes token inputs; got {type(inp).__name__}. "
                                    "Use TextTokenInput, or llm_attribution for templates and images")  # fmt: skip
            answer = answer.to(device)
            if forcing.seq2seq:
                per_token = _seq2seq_rows(model, forcing, layer_method, embeddings, inp, answer, batch_size, options,
                                          call, foil, attribute_target, reducer, tap)  # fmt: skip
                if tap:
                    known[p] = torch.cat(tap)
                width = inp.n_itp_features
                attrs.append(torch.cat([per_token[:, :width].sum(0, keepdim=True), per_token[:, :width]]))
                prefixes.append(per_token[:, width:].cpu() if attribute_target else None)
                continue
            traits = forcing.probe(torch.cat([inp.to_model_input().to(device).reshape(-1), answer]))
            padded = traits.causal and traits.masked
            # padded: one call over all answer tokens; else Captum's way, a call per answer token
            groups = [range(len(answer))] if padded else [range(t, t + 1) for t in range(len(answer))]
            per_token = torch.cat([_attribute_rows(model, forcing, layer_method, embeddings, padded, inp, answer,
                                                   list(g), batch_size, options, call, foil, attribute_target, reducer,
                                                   tap) for g in groups])  # fmt: skip
            if tap:
                known[p] = torch.cat(tap)
            width = inp.n_itp_features
            attrs.append(torch.cat([per_token[:, :width].sum(0, keepdim=True), per_token[:, :width]]))
            prefixes.append(per_token[:, width:].cpu() if attribute_target else None)
        scores = prompts.step_scores(forcing, steps, contrast_prompt, device, known)
        return prompts.results(attrs, True, scores, prefixes)

    return Attributor(attribute, model, per_example=(), name="text.llm_gradient_attribution")


def _answer_log_prob(
    model: nn.Module, keys: tuple[str, ...], last_only: bool, tap: list[Tensor] | None = None, logit: bool = False
) -> Callable[..., Tensor]:
    def answer_log_prob(x: Tensor, ids: Tensor, refs: Tensor, feature_at: Tensor, *extra: Tensor) -> Tensor:
        """``log p(token | prompt[:end])`` per row, where the prompt keeps the features whose entry of
        ``x`` is 1 and puts reference ids elsewhere (Captum's TextTokenInput rule); ``feature_at``
        maps each column to its feature (-1: not a feature); ``extra`` is the model's keyword
        tensors, then the read positions and tokens."""
        *model_args, ends, tokens, foils = extra
        kwargs = dict(zip(keys, model_args))
        if last_only:
            kwargs["logits_to_keep"] = 1  # type: ignore[assignment]
        logits = logits_of(model(input_ids=_given(x, ids, refs, feature_at), **kwargs))
        return _read_rows(logits, ends - (ids.shape[1] - logits.shape[1]), tokens, foils, tap, logit)

    return answer_log_prob


def _given(x: Tensor, ids: Tensor, refs: Tensor, feature_at: Tensor) -> Tensor:
    """The ids the model is given: a feature's own where its indicator in ``x`` is 1, else its reference."""
    keep = torch.where(feature_at >= 0, x.gather(1, feature_at.clamp(min=0)) == 1, True)
    return torch.where(keep, ids, refs)


def _read_rows(
    logits: Tensor, at: Tensor, tokens: Tensor, foils: Tensor, tap: list[Tensor] | None, logit: bool = False
) -> Tensor:
    """Row ``r``'s score at position ``at[r]`` (a foil's contrast where given; the logit itself with
    ``logit``), the distributions kept in ``tap`` for the step scores."""
    chosen = logits[torch.arange(len(logits), device=logits.device), at]
    if tap is not None:
        tap.append(chosen.detach().float().log_softmax(-1))
    return read(chosen, tokens, foils if foils.numel() else None, logit)


def _attribute_rows(
    model: nn.Module,
    forcing: TeacherForcing,
    layer_method: Callable[..., Any],
    embeddings: nn.Module,
    padded: bool,
    inp: TextTokenInput,
    answer: Tensor,
    ts: list[int],
    batch_size: int | None,
    options: dict,
    call: dict,
    foil: Tensor | None = None,
    attribute_target: bool = False,
    reducer: Callable[[Tensor], Tensor] = lambda a: a.sum(-1),
    tap: list[Tensor] | None = None,
) -> Tensor:
    """Per-token attributions ``(len(ts), n_features)`` from one layer-method call over rows
    ``prompt + answer[:t]``. The method's inputs are the rows' feature indicators (ones; its
    baselines, zeros by default, are in that space as Captum's), the model gets ids from them.
    ``attribute_target``: the answer's tokens are features too, after the prompt's
    (``(len(ts), n_features + len(answer))``; zero where row ``t`` has no token ``j >= t``)."""
    device = answer.device
    prompt = inp.to_model_input().to(device).reshape(-1)
    reference = inp.to_model_input(torch.zeros_like(inp.to_tensor())).to(device).reshape(-1)
    cols = torch.arange(len(prompt), device=device)
    if inp.itp_mask is not None:
        cols = cols[inp.itp_mask[0].to(device)]
    if padded:
        rows, starts = forcing.padded([torch.cat([prompt, answer[:t]]) for t in ts])
        refs = forcing.padded([torch.cat([reference, answer[:t]]) for t in ts])[0]["input_ids"]
        keys: tuple[str, ...] = forcing.padded_keys
    else:  # one row
        rows = forcing.plain(torch.cat([prompt, answer[: ts[0]]])[None])
        starts, refs = [0], torch.cat([reference, answer[: ts[0]]])[None]
        keys = ("attention_mask",) if forcing.masks else ()
    ids = rows["input_ids"]
    columns = torch.tensor(starts, device=device)[:, None] + cols  # (rows, features)
    feature_at = torch.full_like(ids, -1).scatter(1, columns, cols.new_tensor(range(len(cols))).expand_as(columns))
    if attribute_target:  # answer token j (at len(prompt) + j) is feature len(cols) + j in the rows that hold it
        j = torch.arange(len(answer), device=device)
        held = j[None, :] < torch.tensor(ts, device=device)[:, None]
        at = (torch.tensor(starts, device=device)[:, None] + len(prompt) + j).clamp(max=ids.shape[1] - 1)
        first = columns[:, :1]  # rows without token j write the first feature's own entry back
        feature_at = feature_at.scatter(
            1, torch.where(held, at, first), torch.where(held, len(cols) + j, feature_at.gather(1, first))
        )
        refs = torch.where((feature_at >= len(cols)), torch.full_like(refs, inp.baselines), refs)
        columns = torch.cat([columns, torch.where(held, at, -1)], 1)
    ends = torch.tensor(starts, device=device) + len(prompt) - 1 + torch.tensor(ts, device=device)
    foils = foil[ts] if foil is not None else answer.new_zeros((len(ts), 0))  # none: an empty row each
    extra = (ids, refs, feature_at, *(rows[k] for k in keys), ends, answer[ts], foils)
    # rows end where they are read with left padding (and always unpadded): only the last logits are needed
    last_only = forcing.keep_logits and (forcing.left or not padded)
    fn = _answer_log_prob(model, keys, last_only, tap, _explains_logits(layer_method))
    return _run_rows(layer_method, fn, embeddings, batch_size, options, call, extra, columns, reducer)


def _run_rows(
    layer_method: Callable[..., Any], fn: Callable[..., Tensor], embeddings: nn.Module, batch_size: int | None,
    options: dict, call: dict, extra: tuple, columns: Tensor, reducer: Callable[[Tensor], Tensor],
) -> Tensor:  # fmt: skip
    """The layer method at ``embeddings`` over ``fn`` (rows of feature indicators, all ones), each
    position's attribution reduced over the embedding and read at ``columns`` (-1: none, zero)."""
    factory = dict(options)
    if "batch_size" in inspect.signature(layer_method).parameters:
        factory["batch_size"] = batch_size or max(1, TOKEN_BUDGET // extra[0].shape[1])
    attributor = layer_method(fn, embeddings, **factory)
    x = torch.ones(columns.shape, device=columns.device)
    per_row = reducer(attributor(x, **call, additional_forward_args=extra).detach()).float()  # (rows, width)
    return torch.where(columns >= 0, per_row.gather(1, columns.clamp(min=0)), 0.0)


def _seq2seq_log_prob(
    model: nn.Module, embeddings: nn.Module, source: int, tap: list[Tensor] | None = None, logit: bool = False
) -> Callable[..., Tensor]:
    def answer_log_prob(x: Tensor, ids: Tensor, refs: Tensor, feature_at: Tensor, ends: Tensor, tokens: Tensor,
                        foils: Tensor) -> Tensor:  # fmt: skip
        """``log p(token | prompt, answer[:t])`` per row: one call of the embedding layer over the
        prompt's ids (the encoder's) and the decoder's, the model given both as embeddings."""
        embedded = embeddings(_given(x, ids, refs, feature_at))
        with heads_at(model, ends) as positions:
            logits = logits_of(model(inputs_embeds=embedded[:, :source], decoder_inputs_embeds=embedded[:, source:]))
        return _read_rows(logits, positions(), tokens, foils, tap, logit)

    return answer_log_prob


def _seq2seq_rows(
    model: nn.Module, forcing: TeacherForcing, layer_method: Callable[..., Any], embeddings: nn.Module,
    inp: TextTokenInput, answer: Tensor, batch_size: int | None, options: dict, call: dict, foil: Tensor | None,
    attribute_target: bool, reducer: Callable[[Tensor], Tensor], tap: list[Tensor] | None = None,
) -> Tensor:  # fmt: skip
    """An encoder-decoder model: row ``t`` is the prompt (encoder) and ``start + answer[:-1]``
    (decoder), read at decoder position ``t`` (the decoder is causal: later tokens do not reach
    it), so every row holds the same ids. Answer token ``j`` (decoder position ``j + 1``) is
    feature ``n_features + j`` with ``attribute_target``."""
    if forcing.decoder_start is None:
        raise ArgumentError("the encoder-decoder model's config has no decoder_start_token_id; set it")
    device, n = answer.device, len(answer)
    prompt = inp.to_model_input().to(device).reshape(-1)
    reference = inp.to_model_input(torch.zeros_like(inp.to_tensor())).to(device).reshape(-1)
    decoder = torch.cat([answer.new_tensor([forcing.decoder_start]), answer[:-1]])
    cols = torch.arange(len(prompt), device=device)
    if inp.itp_mask is not None:
        cols = cols[inp.itp_mask[0].to(device)]
    ids = torch.cat([prompt, decoder]).expand(n, -1)
    feature_at = torch.full_like(ids[0], -1)
    feature_at[cols] = torch.arange(len(cols), device=device)
    refs = torch.cat([reference, decoder])
    columns = cols.expand(n, -1)
    if attribute_target:
        j = torch.arange(n - 1, device=device)
        feature_at[len(prompt) + 1 + j] = len(cols) + j
        refs[len(prompt) + 1 + j] = inp.baselines
        held = j[None, :] < torch.arange(n, device=device)[:, None]
        answer_at = torch.where(held, len(prompt) + 1 + j, -1)
        columns = torch.cat([columns, answer_at, answer_at.new_full((n, 1), -1)], 1)
    ends = torch.arange(n, device=device)
    foils = foil if foil is not None else answer.new_zeros((n, 0))
    extra = (ids, refs.expand(n, -1), feature_at.expand(n, -1), ends, answer, foils)
    fn = _seq2seq_log_prob(model, embeddings, len(prompt), tap, _explains_logits(layer_method))
    return _run_rows(layer_method, fn, embeddings, batch_size, options, call, extra, columns, reducer)


Reduce = Literal["sum", "norm"] | Callable[[Tensor], Tensor]


def _explains_logits(layer_method: Callable[..., Any]) -> bool:
    """Relevance propagation explains a token's logit (it starts there), the other methods its
    log-probability."""
    return inspect.unwrap(layer_method) is layer_lrp


def _reducer(reduce: Reduce) -> Callable[[Tensor], Tensor]:
    """A token's attribution from its embedding's ``(..., dim)``: the sum, the L2 norm, or the user's."""
    if callable(reduce):
        return reduce
    if reduce == "sum":
        return lambda a: a.sum(-1)
    if reduce == "norm":
        return lambda a: torch.linalg.vector_norm(a, dim=-1)
    raise ArgumentError(f"reduce must be 'sum', 'norm' or a function of a (..., dim) tensor; got {reduce!r}")
