r"""Which parts of a prompt made a language model produce its answer.

For a prompt :math:`x` and an answer :math:`y_1..y_T` the explained outputs are the answer's
log-probabilities under teacher forcing,

.. math:: \log p(y_t \mid x, y_{<t}) \quad (t = 1..T), \qquad \log p(y \mid x) = \sum_t \log p(y_t \mid x, y_{<t}),

(or their exps, ``attr_target="prob"``). For a causal model that honours its attention mask
all of them come from ONE forward of ``prompt + answer`` (Captum decodes the answer token by
token, one forward per token per perturbation), and perturbed prompts of all perturbations,
and of several prompts, go through the model together in padded batches. Both properties
are checked on the model first (:mod:`pyattrib.text.forcing`); without them the scores are
computed the exact, slower way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.errors import ArgumentError
from ..perturbation import feature_ablation
from .forcing import TeacherForcing, read
from .inputs import InterpretableInput
from .prompts import _device, _ids, _local_generate, _pad_id, _Prompts
from .steps import StepScore, check_steps

WHOLE_ANSWER_ONLY = ("lime", "kernel_shap")  # they fit one surrogate: no per-token rows (as Captum)


# prompts, answers, foils, the answers' tokens as given to the model (perturbed) -> (n, T)
Scorer = Callable[[list[Any], list[Tensor], "list[Tensor] | None", "list[Tensor] | None"], Tensor]


def _answer_reference(inp: InterpretableInput, tokenizer: Any) -> int:
    """What a removed answer token becomes: the input's ``baselines`` id where it is a token id
    (:class:`TextTokenInput`), else the tokenizer's unknown token (inseq's reference)."""
    own = getattr(inp, "baselines", None)
    if isinstance(own, int):
        return own
    unk = getattr(tokenizer, "unk_token_id", None)
    return unk if isinstance(unk, int) else _pad_id(tokenizer)


def _perturbed_answer(answer: Tensor, keep: Tensor, reference: int) -> Tensor:
    """The answer as the model is given it: tokens whose ``keep`` is not 1 become ``reference``."""
    return torch.where(keep.to(answer.device) == 1, answer, torch.full_like(answer, reference))


def _perturbation_attribution(
    scorer: Scorer,
    tokenizer: Any,
    generate: Callable[[InterpretableInput, dict], Tensor],
    method: Callable[..., Any],
    attr_target: str,
    batch_size: int | None,
    options: dict,
    device: Callable[[], torch.device],
    model: nn.Module | None = None,
    forcing: TeacherForcing | None = None,
) -> Callable[..., Any]:
    """The attribute function shared by local and remote LLMs: ``scorer`` gives the answers'
    log-probabilities for a batch of perturbed prompts."""
    if attr_target not in ("log_prob", "prob"):
        raise ArgumentError(f"attr_target must be 'log_prob' or 'prob'; got {attr_target!r}")
    if not callable(method):
        raise ArgumentError("method must be a perturbation transform such as pa.feature_ablation")
    per_token = getattr(method, "__name__", "") not in WHOLE_ANSWER_ONLY

    def attribute(inputs: Any, target: Any = None, *, gen_args: dict | None = None, num_trials: int = 1,
                  contrast: Any = None, step_scores: Sequence[StepScore] | None = None, contrast_prompt: Any = None,
                  attribute_target: bool = False, **call: Any):  # fmt: skip
        steps = check_steps(step_scores)
        if attribute_target and not per_token:
            raise ArgumentError(f"attribute_target gives each answer token its earlier tokens' attributions; "
                                f"{getattr(method, '__name__', method)} fits the whole answer only: use "
                                "feature_ablation or a Shapley method")  # fmt: skip
        prompts = _Prompts(inputs, target, gen_args, tokenizer, generate, contrast)
        if model is not None:
            prompts.check_context(model, device())
        widths = [inp.n_itp_features for inp in prompts.inputs]
        lengths = [len(a) for a in prompts.answers]
        # attribute_target: answer token j is feature widths[p] + j, replaced by the answer's reference id
        features = [w + (n if attribute_target else 0) for w, n in zip(widths, lengths)]
        references = [_answer_reference(inp, tokenizer) for inp in prompts.inputs]

        # with step scores, the unperturbed prompt's rows are read from the one forward that gives the
        # step scores their distributions (known[p]): the scores cost no extra pass
        known: dict[int, Tensor] = {}

        def answer_scores(keep: Tensor, which: Tensor) -> Tensor:
            rows = which.tolist()
            unperturbed = [bool((k[: features[p]] == 1).all()) for k, p in zip(keep, rows)]
            whole = [bool(steps) and forcing is not None and u for u in unperturbed]
            tokens = torch.zeros(len(rows), max(lengths), device=keep.device)
            rest = [i for i, w in enumerate(whole) if not w]
            if rest:
                batch = [prompts.inputs[rows[i]].to_model_input(keep[i, : widths[rows[i]]][None]) for i in rest]
                foils = None if prompts.foils is None else [prompts.foils[rows[i]] for i in rest]
                given = None
                if attribute_target:
                    given = [_perturbed_answer(prompts.answers[rows[i]], keep[i, widths[rows[i]] : features[rows[i]]],
                                               references[rows[i]]) for i in rest]  # fmt: skip
                got = scorer(batch, [prompts.answers[rows[i]] for i in rest], foils, given).to(keep.device)
                tokens[rest, : got.shape[1]] = got.float()
            for i in (i for i, w in enumerate(whole) if w):
                p = rows[i]
                if p not in known:
                    known[p] = prompts.log_probs(cast(TeacherForcing, forcing), p, device())
                foil = None if prompts.foils is None else prompts.foils[p].to(known[p].device)
                tokens[i, : lengths[p]] = read(known[p], prompts.answers[p].to(known[p].device), foil).to(keep.device)
            scores = torch.cat([tokens.sum(1, keepdim=True), tokens], dim=1) if per_token else tokens.sum(1)
            return scores.exp() if attr_target == "prob" else scores

        attributor = method(answer_scores, batch_size=batch_size, **options)
        ones = torch.ones(len(prompts.inputs), max(features), device=device())
        which = torch.arange(len(prompts.inputs), device=device())
        total: Any = 0
        with torch.no_grad():
            for _ in range(num_trials):
                total = total + attributor(ones, 0.0, additional_forward_args=(which,), **call)
        attr = (total / num_trials).float()  # (P, 1 + T_max, F) or (P, F)
        attrs = [(a if per_token else a[None])[: 1 + lengths[p], : widths[p]] for p, a in enumerate(attr)]
        prefixes = [a[1 : 1 + lengths[p], widths[p] : features[p]].cpu() if attribute_target else None
                    for p, a in enumerate(attr)]  # fmt: skip
        scores = prompts.step_scores(forcing, steps, contrast_prompt, device(), known)
        return prompts.results(attrs, per_token, scores, prefixes)

    return attribute


def llm_attribution(
    model: nn.Module,
    tokenizer: Any,
    method: Callable[..., Any] = feature_ablation,
    *,
    attr_target: str = "log_prob",
    batch_size: int | None = None,
    **options: Any,
) -> Attributor:
    """Perturbation attribution of an LLM's answer to the features of its prompt(s).

    ``method`` is a perturbation transform (``pa.feature_ablation``, ``pa.shapley_value_sampling``,
    ``pa.shapley_values``, ``pa.lime``, ``pa.kernel_shap``) configured by ``options``. A feature
    is removed by putting its baseline in the prompt. The explained outputs are the answer's
    total and per-token log-probabilities (``attr_target="prob"``: their exps), all from one
    teacher-forced forward per perturbed prompt; perturbed prompts go through the model in
    padded batches of ``batch_size`` rows (default: about 8k tokens per forward).

    Call as ``(inputs, target=None, *, gen_args=None, num_trials=1, contrast=None,
    step_scores=None, contrast_prompt=None, attribute_target=False, **call)``: ``inputs`` is one
    interpretable input or a list; ``target`` the answer (str or token ids; one per prompt for a
    list) or None to generate it with ``model.generate(**gen_args)``; ``contrast`` a foil as long as the answer (str or
    ids): each answer token's score becomes ``log p(y_t) - log p(f_t)`` in the answer's context
    (contrastive explanations, Yin & Neubig 2022); ``step_scores`` names scores returned per
    answer token in ``result.step_scores`` (``"probability"``, ``"log_probability"``,
    ``"entropy"``, ``"contrast_prob_diff"``, ``"kl_divergence"`` against ``contrast_prompt``, or
    callables ``(log_probs, answer) -> (T,)``; see ``pyattrib.text.steps``), read from the forward
    that scores the unperturbed prompt (no extra pass); ``attribute_target=True`` makes the
    answer's tokens features too (target side: removed, a token becomes the input's ``baselines``
    id where that is a token id, else the unknown token), ``result.target_attr[t, j]`` answer token
    ``j``'s attribution to token ``t`` (per-token methods only); ``call`` goes to
    the method (``generator=``, ``feature_mask=``...). Returns an :class:`LLMAttributionResult`
    (a list for a list of inputs).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        tokenizer: A Hugging Face tokenizer of the model.
        method: A perturbation transform: ``pa.feature_ablation`` (default),
            ``pa.shapley_value_sampling``, ``pa.shapley_values``, ``pa.lime`` or ``pa.kernel_shap``.
        attr_target: ``"log_prob"`` (attribute the answer's log-probabilities) or ``"prob"`` (their
            exps).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        **options: Configuration of ``method`` (e.g. ``n_samples``).

    Returns:
        Attributor: call it as ``(inputs, target=None, *, gen_args=None, **call)``; it returns an
        ``LLMAttributionResult`` (a list of them for a list of prompts): ``inputs`` an interpretable
        input or a list of them, ``target`` the answer (a string or token ids; ``None`` generates it
        with ``gen_args``).

    References:
        - Ribeiro, Singh and Guestrin, "\"Why Should I Trust You?\": Explaining the Predictions of Any
          Classifier", KDD 2016. https://arxiv.org/abs/1602.04938
        - Castro, Gómez and Tejada, "Polynomial calculation of the Shapley value based on sampling",
          Computers & Operations Research 2009. https://doi.org/10.1016/j.cor.2008.04.004
        - Yin and Neubig, "Interpreting Language Models with Contrastive Explanations", EMNLP 2022.
          https://arxiv.org/abs/2202.10419

    Example:
        >>> llm = pa.text.llm_attribution(lm, tokenizer, pa.feature_ablation)
        >>> result = llm(pa.text.TextTemplateInput("{} lives in {}", ["dave", "paris"]), target="and works")
        >>> result.seq_attr.shape, result.token_attr.shape
        (torch.Size([2]), torch.Size([2, 2]))
    """
    forcing = TeacherForcing(model, _pad_id(tokenizer), batch_size)

    def scorer(model_inputs: list[Any], answers: list[Tensor], foils: list[Tensor] | None = None,
               given: list[Tensor] | None = None) -> Tensor:  # fmt: skip
        device = _device(model)
        return forcing([_ids(m, tokenizer, device) for m in model_inputs], answers, foils, given)

    attribute = _perturbation_attribution(scorer, tokenizer, _local_generate(model, tokenizer), method, attr_target,
                                          batch_size, options, lambda: _device(model), model, forcing)  # fmt: skip
    return Attributor(attribute, model, per_example=(), random=True, name="text.llm_attribution")


def remote_llm_attribution(
    provider: Any,
    tokenizer: Any,
    method: Callable[..., Any] = feature_ablation,
    *,
    attr_target: str = "log_prob",
    device: torch.device | str = "cpu",
    **options: Any,
) -> Attributor:
    """:func:`llm_attribution` for a model behind an API that returns log-probabilities.

    ``provider`` has ``get_logprobs(input_prompt, target_str, tokenizer) -> list[float]`` (one
    per target token) and, to generate answers, ``generate(prompt, **gen_args) -> str`` (e.g.
    :class:`pyattrib.text.VLLMProvider`). Each perturbed prompt is sent as text (token inputs
    are decoded); the provider must return exactly one log-probability per answer token.
    Attributions are on ``device``.

    Args:
        provider: Has ``get_logprobs(prompt, target, tokenizer) -> list[float]`` (one per answer token)
            and, to generate answers, ``generate(prompt, **gen_args) -> str`` (e.g.
            :class:`VLLMProvider`).
        tokenizer: A Hugging Face tokenizer of the model.
        method: A perturbation transform: ``pa.feature_ablation`` (default),
            ``pa.shapley_value_sampling``, ``pa.shapley_values``, ``pa.lime`` or ``pa.kernel_shap``.
        attr_target: ``"log_prob"`` (attribute the answer's log-probabilities) or ``"prob"`` (their
            exps).
        device: Where the attributions are put.
        **options: Configuration of ``method``.

    Returns:
        Attributor: call it as ``(inputs, target=None, *, gen_args=None, **call)``; it returns an
        ``LLMAttributionResult`` (a list of them for a list of prompts): ``inputs`` an interpretable
        input or a list of them, ``target`` the answer (a string or token ids; ``None`` generates it
        with ``gen_args``).

    Example:
        >>> class Scored(pa.text.RemoteLLMProvider):
        ...     def get_logprobs(self, input_prompt, target_str, tokenizer):
        ...         return [-len(input_prompt) / 10] * len(tokenizer.tokenize(target_str))
        ...     def generate(self, prompt, **gen_args):
        ...         return "blue"
        ...
        >>> remote = pa.text.remote_llm_attribution(Scored(), tokenizer)
        >>> result = remote(pa.text.TextTemplateInput("the {} is {}", ["sky", "blue"]), target="today")
        >>> result.seq_attr.shape
        torch.Size([2])
    """

    def scorer(model_inputs: list[Any], answers: list[Tensor], foils: list[Tensor] | None = None,
               given: list[Tensor] | None = None) -> Tensor:  # fmt: skip
        if given is not None:
            raise ArgumentError("attribute_target perturbs the answer the model is given, which a remote provider "
                                "does not take; use llm_attribution on the model")  # fmt: skip
        if foils is not None:
            raise ArgumentError("contrast needs each foil's log-probability in the target's context, which a "
                                "remote provider does not return; use llm_attribution on the model")  # fmt: skip
        out = torch.zeros(len(answers), max(len(a) for a in answers))
        for r, (m, a) in enumerate(zip(model_inputs, answers)):
            prompt = tokenizer.decode(m.flatten()) if isinstance(m, Tensor) else m
            scores = provider.get_logprobs(input_prompt=prompt, target_str=tokenizer.decode(a), tokenizer=tokenizer)
            if len(scores) != len(a):
                raise ValueError(
                    f"the provider returned {len(scores)} log-probabilities for a target of {len(a)} tokens; "
                    "get_logprobs must return one per target token"
                )
            out[r, : len(a)] = torch.as_tensor(scores, dtype=torch.float32)
        return out

    def generate(inp: InterpretableInput, gen_args: dict) -> Tensor:
        if not callable(getattr(provider, "generate", None)):
            raise ArgumentError("target is None but the provider has no generate(); pass the answer as target=")
        prompt = inp.to_model_input()
        prompt = tokenizer.decode(prompt.flatten()) if isinstance(prompt, Tensor) else prompt
        text = provider.generate(prompt, **gen_args)
        return torch.as_tensor(tokenizer.encode(text, add_special_tokens=False), dtype=torch.long)

    attribute = _perturbation_attribution(scorer, tokenizer, generate, method, attr_target, None, options,
                                          lambda: torch.device(device))  # fmt: skip
    return Attributor(attribute, provider, per_example=(), random=True, name="text.remote_llm_attribution")
