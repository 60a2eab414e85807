r"""Which parts of a prompt made a language model produce its answer.

For a prompt :math:`x` and an answer :math:`y_1..y_T` the explained outputs are the answer's
log-probabilities under teacher forcing,

.. math:: \log p(y_t \mid x, y_{<t}) \quad (t = 1..T), \qquad \log p(y \mid x) = \sum_t \log p(y_t \mid x, y_{<t}),

(or their exps, ``attr_target="prob"``). All of them come from ONE forward of the sequence
``prompt + answer``: a causal model's logits at position :math:`i` see only tokens
:math:`\le i`, so this equals decoding the answer token by token (Captum's way, one forward
per answer token). Perturbed prompts of all perturbations, and of several prompts, go
through the model together in padded batches (an attention mask; left padding with position
ids when the model takes them, so only the answer's logits are computed, else right padding).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError
from ..layer import layer_integrated_gradients
from ..perturbation import feature_ablation
from .inputs import InterpretableInput, TextTokenInput
from .result import LLMAttributionResult

DEFAULT_GEN_ARGS = {"max_new_tokens": 25, "do_sample": False, "temperature": None, "top_p": None}
TOKEN_BUDGET = 1 << 13  # tokens per model forward when batch_size is None: bounds activation memory
WHOLE_ANSWER_ONLY = ("lime", "kernel_shap")  # they fit one surrogate: no per-token rows (as Captum)


def _device(model: nn.Module) -> torch.device:
    return getattr(model, "device", None) or next(model.parameters()).device


def _accepts(model: nn.Module, name: str) -> bool:
    params = inspect.signature(model.forward).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _ids(model_input: Any, tokenizer: Any, device: torch.device) -> dict[str, Tensor]:
    """A prompt (str, ids or a processor's mapping) as a mapping with (1, L) ``input_ids``."""
    if isinstance(model_input, str):
        model_input = torch.as_tensor(tokenizer.encode(model_input, return_tensors="pt"))
    if isinstance(model_input, Tensor):
        return {"input_ids": model_input.reshape(1, -1).to(device)}
    if isinstance(model_input, Mapping) and "input_ids" in model_input:
        return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in model_input.items()}
    raise ArgumentError(
        "the input's to_model_input() must give a str, ids or a mapping with input_ids; "
        f"got {type(model_input).__name__}"
    )


def logits_of(output: Any) -> Tensor:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, Tensor):
        logits = output
    if not isinstance(logits, Tensor) or logits.dim() not in (3, 4):
        raise ArgumentError(
            "the model returned no logits: it must return (batch, sequence, vocab) logits or an output with .logits, "
            "as transformers' *ForCausalLM models do"
        )
    return logits[:, 0] if logits.dim() == 4 else logits


class TeacherForcing:
    """Answer log-probabilities for many (prompt, answer) pairs, in padded batches of ``rows`` at most."""

    def __init__(self, model: nn.Module, pad_id: int, rows: int | None) -> None:
        self.model, self.pad_id, self.rows = model, pad_id, rows
        self.left = _accepts(model, "position_ids")
        self.keep_logits = self.left and _accepts(model, "logits_to_keep")
        self.padded_keys = ("attention_mask", "position_ids") if self.left else ("attention_mask",)

    def __call__(self, prompts: list[dict[str, Tensor]], answers: list[Tensor]) -> Tensor:
        """``(len(prompts), max answer length)`` log-probabilities, 0 past each answer's end."""
        longest = max(p["input_ids"].shape[1] + len(a) for p, a in zip(prompts, answers))
        rows = self.rows or max(1, TOKEN_BUDGET // longest)
        return torch.cat(
            [self._batch(prompts[i : i + rows], answers[i : i + rows]) for i in range(0, len(prompts), rows)]
        )

    def _batch(self, prompts: list[dict[str, Tensor]], answers: list[Tensor]) -> Tensor:
        device = prompts[0]["input_ids"].device
        seqs = [torch.cat([p["input_ids"][0], a.to(device)]) for p, a in zip(prompts, answers)]
        t_max = max(len(a) for a in answers)
        kwargs, starts = self.padded(seqs)
        kwargs.update({k: (torch.cat([p[k] for p in prompts]) if isinstance(prompts[0][k], Tensor) else prompts[0][k])
                       for k in prompts[0] if k not in ("input_ids", "attention_mask")})  # fmt: skip
        if self.keep_logits:
            kwargs["logits_to_keep"] = t_max + 1  # left padding: every answer ends at the last position
        logits = logits_of(self.model(**kwargs))
        offset = kwargs["input_ids"].shape[1] - logits.shape[1]  # positions dropped by logits_to_keep
        out = torch.zeros((len(seqs), t_max), dtype=torch.float32, device=device)
        for r, (p, a) in enumerate(zip(prompts, answers)):
            if len(a) == 0:
                continue
            first = starts[r] + p["input_ids"].shape[1] - 1 - offset  # the position that predicts a[0]
            scores = logits[r, first : first + len(a)].float().log_softmax(-1)
            out[r, : len(a)] = scores.gather(1, a.to(device)[:, None])[:, 0]
        return out

    def padded(self, seqs: list[Tensor]) -> tuple[dict[str, Tensor], list[int]]:
        """Sequences of ids in one padded batch: the model's ``input_ids``, ``attention_mask`` (and
        ``position_ids`` with left padding), and where each sequence starts."""
        width, device = max(len(s) for s in seqs), seqs[0].device
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
        starts = []
        for r, s in enumerate(seqs):
            start = width - len(s) if self.left else 0
            ids[r, start : start + len(s)] = s
            mask[r, start : start + len(s)] = 1
            starts.append(start)
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if self.left:
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        return kwargs, starts


def pretty_tokens(ids: Tensor, tokenizer: Any) -> list[str]:
    """Answer tokens as readable text (no byte-level markers such as 'Ġ'), one per id."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    text = tokenizer.decode(ids)
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        again, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    except (TypeError, KeyError, NotImplementedError, ValueError):
        again, offsets = [], []
    if again == ids:
        return [text[start:end].replace("\n", "\\n").strip() for start, end in offsets]
    return [tokenizer.decode([i]).replace("\n", "\\n").strip() for i in ids]


class _Prompts:
    """Prompts, their answers (given or generated) and the shared machinery of both attributions."""

    def __init__(self, model: nn.Module, tokenizer: Any, inputs: Any, target: Any, gen_args: dict | None) -> None:
        self.many = isinstance(inputs, (list, tuple))
        self.inputs: list[InterpretableInput] = list(inputs) if self.many else [inputs]
        for i, inp in enumerate(self.inputs):
            if not isinstance(inp, InterpretableInput):
                raise ArgumentError(
                    f"inputs[{i}] must be a TextTemplateInput, TextTokenInput or ImageMaskInput; "
                    f"got {type(inp).__name__}"
                )
        targets = list(target) if self.many and isinstance(target, (list, tuple)) else [target] * len(self.inputs)
        if len(targets) != len(self.inputs):
            raise ArgumentError(
                f"target has {len(targets)} entries for {len(self.inputs)} prompts; give one per prompt"
            )
        self.model, self.tokenizer, self.device = model, tokenizer, _device(model)
        if gen_args is not None and any(t is not None for t in targets):
            raise ArgumentError("gen_args is for generating the answer; pass it only when target is None")
        self.answers = [self._answer(inp, t, gen_args) for inp, t in zip(self.inputs, targets)]
        limit = getattr(getattr(model, "config", None), "n_positions", None) or getattr(
            getattr(model, "config", None), "max_position_embeddings", None
        )
        for inp, a in zip(self.inputs, self.answers):
            length = _ids(inp.to_model_input(), tokenizer, self.device)["input_ids"].shape[1] + len(a)
            if limit is not None and length > limit:
                raise ArgumentError(
                    f"prompt + target is {length} tokens, longer than the model's context ({limit}); "
                    "shorten the prompt or the target"
                )

    def _answer(self, inp: InterpretableInput, target: Any, gen_args: dict | None) -> Tensor:
        if isinstance(target, str):
            return torch.tensor(self.tokenizer.encode(target, add_special_tokens=False), dtype=torch.long)
        if isinstance(target, Tensor):
            return target.reshape(-1).long().cpu()
        if target is not None:
            raise ArgumentError(
                f"target must be a str, a tensor of token ids or None (generate); got {type(target).__name__}"
            )
        if not callable(getattr(self.model, "generate", None)):
            raise ArgumentError("target is None but the model has no generate(); pass the answer as target=")
        prompt = _ids(inp.to_model_input(), self.tokenizer, self.device)
        with torch.no_grad():
            out = self.model.generate(**prompt, **(gen_args or DEFAULT_GEN_ARGS))
        return out[0, prompt["input_ids"].shape[1] :].cpu()

    def results(self, attrs: list[Tensor], per_token: bool) -> Any:
        results = []
        for inp, answer, attr in zip(self.inputs, self.answers, attrs):
            attr = inp.format_attr(attr)
            results.append(
                LLMAttributionResult(
                    input_tokens=list(inp.values),
                    output_tokens=pretty_tokens(answer, self.tokenizer),
                    seq_attr=attr[0],
                    token_attr=attr[1:] if per_token else None,
                    inp=inp,
                )
            )
        return results if self.many else results[0]


def _pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0  # any id: padded positions are masked out


def llm_attribution(
    model: nn.Module,
    tokenizer: Any,
    method: Callable[..., Any] = feature_ablation,
    *,
    attr_target: str = "log_prob",
    batch_size: int | None = None,
    **options: Any,
) -> Callable[..., Any]:
    """Perturbation attribution of an LLM's answer to the features of its prompt(s).

    ``method`` is a perturbation transform (``pa.feature_ablation``, ``pa.shapley_value_sampling``,
    ``pa.shapley_values``, ``pa.lime``, ``pa.kernel_shap``) configured by ``options``. A feature
    is removed by putting its baseline in the prompt. The explained outputs are the answer's
    total and per-token log-probabilities (``attr_target="prob"``: their exps), all from one
    teacher-forced forward per perturbed prompt; perturbed prompts go through the model in
    padded batches of ``batch_size`` rows (default: about 8k tokens per forward).

    Call as ``(inputs, target=None, *, gen_args=None, num_trials=1, **call)``: ``inputs`` is one
    interpretable input or a list; ``target`` the answer (str or token ids; one per prompt for a
    list) or None to generate it with ``model.generate(**gen_args)``; ``call`` goes to the
    method (``generator=``, ``feature_mask=``...). Returns an :class:`LLMAttributionResult` (a
    list for a list of inputs).
    """
    if attr_target not in ("log_prob", "prob"):
        raise ArgumentError(f"attr_target must be 'log_prob' or 'prob'; got {attr_target!r}")
    if not callable(method):
        raise ArgumentError("method must be a perturbation transform such as pa.feature_ablation")
    per_token = getattr(method, "__name__", "") not in WHOLE_ANSWER_ONLY
    forcing = TeacherForcing(model, _pad_id(tokenizer), batch_size)

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None, num_trials: int = 1, **call: Any):
        prompts = _Prompts(model, tokenizer, inputs, target, gen_args)
        widths = [inp.n_itp_features for inp in prompts.inputs]
        lengths = [len(a) for a in prompts.answers]
        features = max(widths)

        def answer_scores(keep: Tensor, which: Tensor) -> Tensor:
            batch = [_ids(prompts.inputs[p].to_model_input(k[: widths[p]][None]), tokenizer, prompts.device)
                     for k, p in zip(keep, which.tolist())]  # fmt: skip
            answers = [prompts.answers[p] for p in which.tolist()]
            tokens = forcing(batch, answers)
            scores = torch.cat([tokens.sum(1, keepdim=True), tokens], dim=1) if per_token else tokens.sum(1)
            return scores.exp() if attr_target == "prob" else scores

        attributor = method(answer_scores, batch_size=batch_size, **options)
        ones = torch.ones(len(prompts.inputs), features, device=prompts.device)
        which = torch.arange(len(prompts.inputs), device=prompts.device)
        total = 0
        with torch.no_grad():
            for _ in range(num_trials):
                total = total + attributor(ones, 0.0, additional_forward_args=(which,), **call)
        attr = (total / num_trials).float()  # (P, 1 + T_max, F) or (P, F)
        attrs = [(a if per_token else a[None])[: 1 + lengths[p], : widths[p]] for p, a in enumerate(attr)]
        return prompts.results(attrs, per_token)

    attribute.__doc__ = llm_attribution.__doc__
    return attribute


def llm_gradient_attribution(
    model: nn.Module,
    tokenizer: Any,
    layer_method: Callable[..., Any] = layer_integrated_gradients,
    layer: nn.Module | None = None,
    *,
    batch_size: int | None = None,
    **options: Any,
) -> Callable[..., Any]:
    """Gradient attribution of an LLM's answer to the prompt's tokens, at the embedding layer.

    ``layer_method`` is ``pa.layer_integrated_gradients`` (default), ``pa.layer_gradient_shap`` or
    ``pa.layer_gradient_x_activation``, applied at ``layer`` (default: the model's input
    embeddings) with ``options``. For every answer token :math:`y_t` it attributes
    :math:`\\log p(y_t \\mid x, y_{<t})` to the prompt's token embeddings, summed over the
    embedding dimension: ``token_attr[t]``; ``seq_attr`` is their sum.

    All answer tokens are attributed in ONE call of the layer method, not one attribution per
    token: row ``t`` of its batch is ``prompt + y_{<t}``, left-padded so that every row ends
    at the position that predicts :math:`y_t`, and only that position's vocabulary logits are
    computed (``logits_to_keep=1``; the vocabulary projection is most of a small LM's cost).
    ``batch_size`` bounds the rows (path points x answer tokens) per forward (default: about
    8k tokens). The baseline of a token is its input's ``baselines`` id (skip tokens keep their
    ids).

    Call as ``(inputs, target=None, *, gen_args=None, **call)`` with :class:`TextTokenInput`
    inputs (one or a list); returns :class:`LLMAttributionResult` (or a list).
    """
    embeddings = layer if layer is not None else getattr(model, "get_input_embeddings", lambda: None)()
    if not isinstance(embeddings, nn.Module):
        raise ArgumentError("layer is None and the model has no get_input_embeddings(); pass layer=model.<embedding>")
    forcing = TeacherForcing(model, _pad_id(tokenizer), None)

    def answer_log_prob(ids: Tensor, *extra: Tensor) -> Tensor:
        """``log p(token | ids[:end])`` per row; ``extra`` is the model's keyword tensors, then ends, tokens."""
        *model_args, ends, tokens = extra
        kwargs = dict(zip(forcing.padded_keys, model_args))
        if forcing.keep_logits:
            kwargs["logits_to_keep"] = 1  # left padding: every row's readout is its last position
        logits = logits_of(model(input_ids=ids, **kwargs))
        at = ends - (ids.shape[1] - logits.shape[1])
        scores = logits[torch.arange(len(ids), device=ids.device), at].float().log_softmax(-1)
        return scores.gather(1, tokens[:, None])[:, 0]

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None, **call: Any):
        if "baselines" in call:
            raise ArgumentError("baselines are set on the input: TextTokenInput(..., baselines=<token id or str>)")
        prompts = _Prompts(model, tokenizer, inputs, target, gen_args)
        attrs = []
        for inp, answer in zip(prompts.inputs, prompts.answers):
            if not isinstance(inp, TextTokenInput):
                raise ArgumentError(f"llm_gradient_attribution attributes token inputs; got {type(inp).__name__}. "
                                    "Use TextTokenInput, or llm_attribution for templates and images")  # fmt: skip
            prompt = inp.to_model_input().to(prompts.device).reshape(-1)
            reference = inp.to_model_input(torch.zeros_like(inp.to_tensor())).to(prompts.device).reshape(-1)
            answer = answer.to(prompts.device)
            # row t: prompt + answer[:t], whose last token predicts answer[t]
            rows, starts = forcing.padded([torch.cat([prompt, answer[:t]]) for t in range(len(answer))])
            base, _ = forcing.padded([torch.cat([reference, answer[:t]]) for t in range(len(answer))])
            begin = torch.tensor(starts, device=prompts.device)
            ends = begin + len(prompt) - 1 + torch.arange(len(answer), device=prompts.device)
            extra = (*(rows[k] for k in forcing.padded_keys), ends, answer)
            width = rows["input_ids"].shape[1]
            factory = dict(options)
            if "batch_size" in inspect.signature(layer_method).parameters:
                factory["batch_size"] = batch_size or max(1, TOKEN_BUDGET // width)
            attributor = layer_method(answer_log_prob, embeddings, **factory)
            kwargs = dict(call, additional_forward_args=extra)
            if "baselines" in inspect.signature(attributor).parameters:
                kwargs["baselines"] = base["input_ids"]
            per_row = attributor(rows["input_ids"], **kwargs).detach().sum(-1).float()  # (T, width)
            columns = begin[:, None] + torch.arange(len(prompt), device=prompts.device)
            per_token = per_row.gather(1, columns)
            if inp.itp_mask is not None:
                per_token = per_token[:, inp.itp_mask[0].to(per_token.device)]
            attrs.append(torch.cat([per_token.sum(0, keepdim=True), per_token]))
        return prompts.results(attrs, True)

    attribute.__doc__ = llm_gradient_attribution.__doc__
    return attribute
