"""Teacher forcing: the log-probability of each answer token, for many (prompt, answer) pairs.

The fast way needs two properties of the model, which :func:`probe` checks once per model
(three small forwards) instead of assuming them:

- *causal*: the logits at position :math:`i` see only tokens :math:`\\le i`, so ONE forward of
  ``prompt + answer`` gives :math:`\\log p(y_t \\mid x, y_{<t})` for every :math:`t`;
- *masked*: padded positions are ignored (``attention_mask``; left padding also needs
  ``position_ids``), so prompts of different lengths share one padded batch.

A model without them (an encoder without a causal mask, a wrapper that drops the mask) is
scored exactly as Captum does it: one unpadded sequence per answer prefix (per pair when the
model is causal), sequences of equal length batched together.
"""

from __future__ import annotations

import inspect
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError
from .._core.targets import model_output

TOKEN_BUDGET = 1 << 13  # tokens per model forward when no batch size is given: bounds activation memory


def accepts(model: nn.Module, name: str) -> bool:
    params = inspect.signature(model.forward).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def logits_of(output: Any) -> Tensor:
    try:  # the one rule every method reads outputs by; a language model's mapping must name its logits
        logits = model_output(output, named_logits=True)
    except TypeError:
        logits = None
    if not isinstance(logits, Tensor) or logits.dim() not in (3, 4):
        raise ArgumentError(
            "the model returned no logits: it must return (batch, sequence, vocab) logits or an output with .logits, "
            "as transformers' *ForCausalLM models do"
        )
    return logits[:, 0] if logits.dim() == 4 else logits


class Traits(NamedTuple):
    causal: bool
    masked: bool


_traits: weakref.WeakKeyDictionary[nn.Module, Traits] = weakref.WeakKeyDictionary()


class TeacherForcing:
    """Answer log-probabilities for many (prompt, answer) pairs, in batches of ``rows`` at most."""

    def __init__(self, model: nn.Module, pad_id: int, rows: int | None) -> None:
        self.model, self.pad_id, self.rows = model, pad_id, rows
        self.left = accepts(model, "position_ids")
        self.keep_logits = accepts(model, "logits_to_keep")
        self.masks = accepts(model, "attention_mask")
        self.padded_keys = ("attention_mask", "position_ids") if self.left else ("attention_mask",)
        config = getattr(model, "config", None)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))  # T5, BART, Marian
        self.decoder_start = getattr(config, "decoder_start_token_id", None)

    def probe(self, seq: Tensor, extra: dict[str, Any] | None = None) -> Traits:
        """Whether the model is causal and honours padding, checked on ``seq`` (1-D ids) once per model.
        ``extra``: the prompt's other model inputs (a batch of 1), such as pixel values."""
        known = _traits.get(self.model)
        if known is not None:
            return known
        if len(seq) < 3:
            return Traits(False, False)  # too short to tell: the exact way is always right
        one = extra or {}
        two = {k: (torch.cat([v, v]) if isinstance(v, Tensor) else v) for k, v in one.items()}
        with torch.no_grad():
            full = self.log_softmax(self.model(**self.plain(seq[None]), **one))
            short = self.log_softmax(self.model(**self.plain(seq[None, :-1]), **one))
            kwargs, starts = self.padded([seq, seq[:-1]])
            padded = self.log_softmax(self.model(**kwargs, **two))
        eps = torch.finfo(full.dtype).eps if full.is_floating_point() else 1e-7
        # float32: ~5e-5 on log-probs of magnitude 10; a non-causal tiny model differs by ~3e-4
        tol = 32 * eps * (1 + float(full.abs().max()))

        def same(a: Tensor, b: Tensor) -> bool:
            return a.shape == b.shape and bool(((a - b).abs() <= tol).all())

        causal = same(full[:, :-1], short)
        masked = self.masks and same(padded[:1], full) and same(padded[1:, starts[1] : starts[1] + len(seq) - 1], short)
        traits = Traits(causal, masked)
        _traits[self.model] = traits
        return traits

    @staticmethod
    def log_softmax(output: Any) -> Tensor:
        return logits_of(output).float().log_softmax(-1)

    def plain(self, ids: Tensor) -> dict[str, Tensor]:
        """Model keywords for unpadded rows of ids."""
        return {"input_ids": ids, **({"attention_mask": torch.ones_like(ids)} if self.masks else {})}

    def padded(self, seqs: list[Tensor], left: bool | None = None) -> tuple[dict[str, Tensor], list[int]]:
        """Sequences of ids in one padded batch: the model's ``input_ids``, ``attention_mask`` (and
        ``position_ids`` with left padding), and where each sequence starts."""
        left = self.left if left is None else left
        width, device = max(len(s) for s in seqs), seqs[0].device
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
        starts = []
        for r, s in enumerate(seqs):
            start = width - len(s) if left else 0
            ids[r, start : start + len(s)] = s
            mask[r, start : start + len(s)] = 1
            starts.append(start)
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if left:
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        return kwargs, starts

    def __call__(
        self, prompts: list[dict[str, Tensor]], answers: list[Tensor], foils: list[Tensor] | None = None,
        given: list[Tensor] | None = None,
    ) -> Tensor:  # fmt: skip
        """``(len(prompts), max answer length)`` log-probabilities, 0 past each answer's end (with
        ``foils``, one per answer and as long: each answer token's log-probability minus its foil's;
        with ``given``, one per answer and as long: the tokens the model sees in the answer's place,
        perturbed, while the answer's own tokens are the ones read)."""
        device = prompts[0]["input_ids"].device
        answers = [a.to(device) for a in answers]
        seen = answers if given is None else [g.to(device) for g in given]
        contrast: list[Tensor | None] = [None] * len(answers) if foils is None else [f.to(device) for f in foils]
        longest = max(p["input_ids"].shape[1] + len(a) for p, a in zip(prompts, answers))
        rows = self.rows or max(1, TOKEN_BUDGET // longest)
        chunks = [slice(i, i + rows) for i in range(0, len(prompts), rows)]
        if self.seq2seq:
            return torch.cat([self.encoder_decoder(prompts[c], answers[c], contrast[c], seen[c]) for c in chunks])
        traits = self.probe(torch.cat([prompts[0]["input_ids"][0], answers[0]]), extras(prompts[:1]))
        if not (traits.causal and traits.masked):
            return self.exact(prompts, answers, traits.causal, rows, contrast, seen)
        return torch.cat([self.batch(prompts[c], answers[c], contrast[c], seen[c]) for c in chunks])

    def encoder_decoder(
        self, prompts: list[dict[str, Tensor]], answers: list[Tensor], foils: list[Tensor | None],
        given: list[Tensor] | None = None,
    ) -> Tensor:  # fmt: skip
        """An encoder-decoder model: the prompts padded as the encoder's input, the answers
        (after the decoder's start token) as the decoder's, one forward; position ``t`` of the
        decoder predicts answer token ``t``."""
        if self.decoder_start is None:
            raise ArgumentError("the encoder-decoder model's config has no decoder_start_token_id; set it")
        encoder, _ = self.padded([p["input_ids"][0] for p in prompts], left=False)
        start = answers[0].new_tensor([self.decoder_start])
        decoder, _ = self.padded([torch.cat([start, a[:-1]]) for a in given or answers], left=False)
        logits = logits_of(self.model(**encoder, decoder_input_ids=decoder["input_ids"],
                                      decoder_attention_mask=decoder["attention_mask"]))  # fmt: skip
        out = torch.zeros((len(answers), max(len(a) for a in answers)), dtype=torch.float32, device=logits.device)
        for r, (a, f) in enumerate(zip(answers, foils)):
            out[r, : len(a)] = read(logits[r, : len(a)], a, f)
        return out

    def batch(
        self, prompts: list[dict[str, Tensor]], answers: list[Tensor], foils: list[Tensor | None] | None = None,
        given: list[Tensor] | None = None,
    ) -> Tensor:  # fmt: skip
        """One padded forward of ``prompt + answer`` per pair."""
        seqs = [torch.cat([p["input_ids"][0], a]) for p, a in zip(prompts, given or answers)]
        t_max = max(len(a) for a in answers)
        kwargs, starts = self.padded(seqs)
        kwargs.update(extras(prompts))
        if self.keep_logits and self.left:
            kwargs["logits_to_keep"] = t_max + 1  # type: ignore[assignment]  # left padding: every answer ends at the last position
        logits = logits_of(self.model(**kwargs))
        offset = kwargs["input_ids"].shape[1] - logits.shape[1]  # positions dropped by logits_to_keep
        out = torch.zeros((len(seqs), t_max), dtype=torch.float32, device=logits.device)
        for r, (p, a, f) in enumerate(zip(prompts, answers, foils or [None] * len(answers))):
            first = starts[r] + p["input_ids"].shape[1] - 1 - offset  # the position that predicts a[0]
            out[r, : len(a)] = read(logits[r, first : first + len(a)], a, f)
        return out

    def exact(
        self, prompts: list[dict[str, Tensor]], answers: list[Tensor], causal: bool, rows: int,
        foils: list[Tensor | None] | None = None, given: list[Tensor] | None = None,
    ) -> Tensor:  # fmt: skip
        """Unpadded forwards: per pair (causal) or per answer prefix, equal lengths batched."""
        seen = given or answers
        out = torch.zeros((len(prompts), max(len(a) for a in answers)), dtype=torch.float32)
        groups: dict[int, list[tuple[int, int, Tensor]]] = defaultdict(list)  # length -> (pair, first token, ids)
        for r, (p, a) in enumerate(zip(prompts, seen)):
            ids = p["input_ids"][0]
            if causal:
                groups[len(ids) + len(a)].append((r, 0, torch.cat([ids, a])))
            else:
                for t in range(len(a)):
                    groups[len(ids) + t].append((r, t, torch.cat([ids, a[:t]])))
        for queries in groups.values():
            for i in range(0, len(queries), rows):
                chunk = queries[i : i + rows]
                kwargs = {**self.plain(torch.stack([q[2] for q in chunk])), **extras([prompts[q[0]] for q in chunk])}
                logits = logits_of(self.model(**kwargs))
                for row, (r, t, _) in enumerate(chunk):
                    a, f = answers[r], (foils or [None] * len(answers))[r]
                    if causal:
                        first = prompts[r]["input_ids"].shape[1] - 1
                        out[r, : len(a)] = read(logits[row, first : first + len(a)], a, f).cpu()
                    else:
                        out[r, t] = read(logits[row, -1:], a[t : t + 1], None if f is None else f[t : t + 1])[0].cpu()
        return out.to(prompts[0]["input_ids"].device)


@contextmanager
def heads_at(model: nn.Module, ends: Tensor) -> Iterator[Callable[[], Tensor]]:
    """Within the block, the model's output head (``get_output_embeddings()``) projects only row
    ``r``'s position ``ends[r]``: the vocabulary logits of the other positions, most of a small
    model's cost, are never formed (``logits_to_keep`` for a model without it). Yields a function
    giving the positions to read in the logits afterwards: zeros where the head ran on the picked
    positions, ``ends`` where it did not run (no such head, or one the forward does not call)."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    ran: list[bool] = []

    def only_ends(_: nn.Module, args: tuple) -> tuple:
        ran.append(True)
        hidden = args[0]
        return (hidden[torch.arange(len(ends), device=hidden.device), ends][:, None], *args[1:])

    handle = head.register_forward_pre_hook(only_ends) if isinstance(head, nn.Module) else None
    try:
        yield lambda: torch.zeros_like(ends) if ran else ends
    finally:
        if handle is not None:
            handle.remove()


def read(logits: Tensor, tokens: Tensor, foils: Tensor | None = None, logit: bool = False) -> Tensor:
    """``log softmax(logits)[i, tokens[i]]`` per position; with ``foils`` the contrast
    ``log p(tokens[i]) - log p(foils[i])`` in the same context (Yin & Neubig, 2022).
    ``logit``: the logits themselves (what relevance propagation explains)."""
    log_p = logits.float() if logit else logits.float().log_softmax(-1)
    score = log_p.gather(1, tokens[:, None])[:, 0]
    return score if foils is None else score - log_p.gather(1, foils[:, None])[:, 0]


def extras(prompts: list[dict[str, Tensor]]) -> dict[str, Any]:
    """The prompts' model inputs other than ids and mask (a processor's pixel values...), batched."""
    first = prompts[0]
    return {k: (torch.cat([p[k] for p in prompts]) if isinstance(first[k], Tensor) else first[k])
            for k in first if k not in ("input_ids", "attention_mask")}  # fmt: skip
