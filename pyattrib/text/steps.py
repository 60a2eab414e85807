"""Step scores: what the model does at each generated step, returned beside the attributions.

For answer token ``y_t`` with the model's next-token distribution ``p_t = p(. | x, y_<t)``:
``"probability"`` ``p_t(y_t)``, ``"log_probability"`` ``log p_t(y_t)``, ``"entropy"``
``-sum_v p_t(v) log p_t(v)``, ``"contrast_prob_diff"`` ``p_t(y_t) - p_t(f_t)`` for the foil
``f_t`` (needs ``contrast=``), ``"kl_divergence"`` ``KL(p_t || q_t)`` with ``q_t`` the
distribution after a contrast prompt (needs ``contrast_prompt=``), or a callable
``(log_probs (T, V), answer (T,)) -> (T,)``. All read one teacher-forced forward of the prompt and
the answer (and one of the contrast prompt for the KL divergence): the perturbation, attention and
gradient x activation methods' own forward of the unperturbed prompt, one more for IG and gradient
SHAP (which never run the model at the plain input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError

StepScore = str | Callable[[Tensor, Tensor], Tensor]
NAMES = ("probability", "log_probability", "entropy", "contrast_prob_diff", "kl_divergence")


def check_steps(step_scores: Sequence[StepScore] | None) -> list[StepScore]:
    """The requested step scores, checked by name (callables pass)."""
    steps = list(step_scores or ())
    for s in steps:
        if not callable(s) and s not in NAMES:
            raise ArgumentError(f"step_scores: unknown score {s!r}; choose from {list(NAMES)} or pass a callable")
    return steps


def scores_of(
    steps: list[StepScore],
    log_probs: Tensor,
    answer: Tensor,
    foil: Tensor | None = None,
    contrast_log_probs: Tensor | None = None,
) -> dict[str, Tensor]:
    """Each requested score per answer token ``(T,)`` from the answer positions' log-probabilities
    ``(T, V)`` (and the foils', or the contrast prompt's log-probabilities, where asked)."""
    out: dict[str, Tensor] = {}
    chosen = log_probs.gather(1, answer[:, None])[:, 0]
    for s in steps:
        if callable(s):
            out[getattr(s, "__name__", "custom")] = s(log_probs, answer).reshape(-1)
        elif s == "probability":
            out[s] = chosen.exp()
        elif s == "log_probability":
            out[s] = chosen
        elif s == "entropy":
            out[s] = -(log_probs.exp() * log_probs).sum(-1)
        elif s == "contrast_prob_diff":
            if foil is None:
                raise ArgumentError("step_scores 'contrast_prob_diff' needs contrast= (the foil tokens)")
            out[s] = chosen.exp() - log_probs.gather(1, foil[:, None])[:, 0].exp()
        else:  # kl_divergence
            if contrast_log_probs is None:
                raise ArgumentError("step_scores 'kl_divergence' needs contrast_prompt= (the prompt to compare with)")
            out[s] = (log_probs.exp() * (log_probs - contrast_log_probs)).sum(-1)
    return out


def answer_log_probs(forcing: Any, prompt: dict[str, Tensor], answer: Tensor) -> Tensor:
    """``(T, V)``: the log-probabilities at the positions that predict each answer token, from one
    teacher-forced forward (a model that is not causal: one forward per answer prefix)."""
    ids = prompt["input_ids"][0]
    answer = answer.to(ids.device)
    if forcing.seq2seq:  # encoder-decoder: the answer after the decoder's start token
        decoder = torch.cat([answer.new_tensor([forcing.decoder_start]), answer[:-1]])[None]
        with torch.no_grad():
            mask = torch.ones_like(ids[None])
            out = forcing.model(input_ids=ids[None], attention_mask=mask, decoder_input_ids=decoder)
        return forcing.log_softmax(out)[0]
    traits = forcing.probe(torch.cat([ids, answer]))
    extra = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        if traits.causal:
            log_p = forcing.log_softmax(forcing.model(**forcing.plain(torch.cat([ids, answer])[None]), **extra))[0]
            return log_p[len(ids) - 1 : len(ids) - 1 + len(answer)]
        rows = [forcing.log_softmax(forcing.model(**forcing.plain(torch.cat([ids, answer[:t]])[None]), **extra))[0, -1]
                for t in range(len(answer))]  # fmt: skip
    return torch.stack(rows)
