"""Subword tokens merged into words, spans or whole sequences, on both axes of an attribution.

Tokenizers mark where a word goes on differently: WordPiece marks the pieces that continue a
word (``"##ing"``), byte-level BPE the pieces that start one after a space (``"Ġcat"``), and
SentencePiece those that start one (``"▁cat"``). :func:`word_spans` reads the marks of the token
strings themselves (no tokenizer needed, nothing inverted); special tokens (``[CLS]``,
``<s>``, ``<|endoftext|>``...) are words of their own. :func:`aggregate` reduces an
:class:`LLMAttributionResult`'s prompt features and answer tokens over such spans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import torch
from torch import Tensor

from .._core.errors import ArgumentError
from .result import LLMAttributionResult

Spans = Literal["words", "tokens", "sequence"] | Sequence[tuple[int, int]]
SPECIAL = re.compile(r"^(\[[A-Z]+\]|<\|?[^<>\s]+\|?>)$")
MARKS = {"wordpiece": "##", "bpe": "Ġ", "sentencepiece": "▁"}


def scheme_of(pieces: Sequence[str]) -> str:
    """``"wordpiece"``, ``"bpe"`` or ``"sentencepiece"``, by the marks the pieces carry (``"plain"``:
    none, every piece a word).

    Args:
        pieces: The token strings.

    Returns:
        The scheme's name.

    Example:
        >>> from pyattrib.text.aggregate import scheme_of
        >>> scheme_of(["the", "cat", "##s"]), scheme_of(["the", "Ġcat"]), scheme_of(["▁the", "▁cat"])
        ('wordpiece', 'bpe', 'sentencepiece')
    """
    for name, mark in MARKS.items():
        if any(p.startswith(mark) and len(p) > len(mark) or p == mark and name != "wordpiece" for p in pieces):
            return name
    return "plain"


def word_spans(pieces: Sequence[str], scheme: str = "auto") -> list[tuple[int, int]]:
    """``(start, end)`` of each word of ``pieces``, token strings of one tokenizer.

    Args:
        pieces: The token strings (``tokenizer.convert_ids_to_tokens(ids)``).
        scheme: ``"wordpiece"``, ``"bpe"``, ``"sentencepiece"``, ``"plain"`` or ``"auto"`` (read from the
            marks).

    Returns:
        The spans, covering the pieces in order.

    Example:
        >>> from pyattrib.text.aggregate import word_spans
        >>> word_spans(["[CLS]", "token", "##ization", "works", "[SEP]"])
        [(0, 1), (1, 3), (3, 4), (4, 5)]
    """
    scheme = scheme_of(pieces) if scheme == "auto" else scheme
    if scheme not in (*MARKS, "plain"):
        raise ArgumentError(f"scheme={scheme!r}; choose 'wordpiece', 'bpe', 'sentencepiece', 'plain' or 'auto'")
    spans: list[tuple[int, int]] = []
    for i, piece in enumerate(pieces):
        special = bool(SPECIAL.match(piece))
        if scheme == "wordpiece":
            starts = not piece.startswith("##")
        elif scheme == "plain":
            starts = True
        else:
            starts = piece.startswith(MARKS[scheme])
        previous_special = bool(spans) and bool(SPECIAL.match(pieces[i - 1]))
        if not spans or starts or special or previous_special:
            spans.append((i, i + 1))
        else:
            spans[-1] = (spans[-1][0], i + 1)
    return spans


def word_names(pieces: Sequence[str], spans: Sequence[tuple[int, int]], scheme: str = "auto") -> list[str]:
    """Each span's text: its pieces joined, marks removed.

    Args:
        pieces: The token strings.
        spans: ``(start, end)`` per word.
        scheme: As in :func:`word_spans`.

    Returns:
        One name per span.

    Example:
        >>> from pyattrib.text.aggregate import word_names
        >>> word_names(["Ġthe", "Ġtoken", "ization"], [(0, 1), (1, 3)])
        ['the', 'tokenization']
    """
    scheme = scheme_of(pieces) if scheme == "auto" else scheme
    names = []
    for a, b in spans:
        parts = list(pieces[a:b])
        if scheme == "wordpiece":
            parts = [p[2:] if p.startswith("##") else p for p in parts]
        elif scheme in MARKS:
            parts = [p.replace(MARKS[scheme], " ") for p in parts]
        names.append("".join(parts).strip() or "".join(pieces[a:b]))
    return names


def _reduce(t: Tensor, spans: Sequence[tuple[int, int]], dim: int, how: str) -> Tensor:
    parts = []
    for a, b in spans:
        block = t.narrow(dim, a, b - a)
        if how == "sum":
            parts.append(block.sum(dim, keepdim=True))
        elif how == "mean":
            parts.append(block.mean(dim, keepdim=True))
        else:  # absmax: the value of largest magnitude, its sign kept
            parts.append(block.gather(dim, block.abs().argmax(dim, keepdim=True)))
    return torch.cat(parts, dim)


def _spans(spans: Spans, pieces: Sequence[str], scheme: str, axis: str) -> list[tuple[int, int]]:
    n = len(pieces)
    if spans == "tokens":
        return [(i, i + 1) for i in range(n)]
    if spans == "sequence":
        return [(0, n)]
    if spans == "words":
        return word_spans(pieces, scheme)
    given = [tuple(s) for s in spans]
    flat = [i for a, b in given for i in range(a, b)]
    if flat != list(range(n)) or any(b <= a for a, b in given):
        raise ArgumentError(f"{axis} spans must cover its {n} tokens in order, each (start, end) with end > start; "
                            f"got {given}")  # fmt: skip
    return given  # type: ignore[return-value]


def aggregate(
    result: LLMAttributionResult,
    source: Spans = "words",
    target: Spans = "words",
    reduce: Literal["sum", "mean", "absmax"] = "sum",
    scheme: str = "auto",
) -> LLMAttributionResult:
    """The attributions over spans of the prompt's features (``source``) and of the answer's
    tokens (``target``): ``"words"`` (subword pieces merged by the tokenizer's marks),
    ``"tokens"`` (unchanged), ``"sequence"`` (one span) or explicit ``(start, end)`` spans;
    ``reduce`` is ``"sum"``, ``"mean"`` or ``"absmax"`` (the value of largest magnitude).
    ``step_scores`` are reduced over the answer's spans the same way.

    Args:
        result: An attribution of ``llm_attribution`` or ``llm_gradient_attribution``.
        source: The spans of the prompt's features.
        target: The spans of the answer's tokens.
        reduce: How the values of a span become one.
        scheme: The tokenizer's marks (``"auto"``: read from the pieces).

    Returns:
        A new :class:`LLMAttributionResult` over the spans (names joined from the pieces).

    Example:
        >>> tokens = pa.text.TextTokenInput("tokenization helps", tokenizer)
        >>> result = pa.text.llm_attribution(lm, tokenizer)(tokens, target="a lot")
        >>> pa.text.aggregate(result).input_tokens
        ['[CLS]', 'tokenization', 'helps', '[SEP]']
    """
    if reduce not in ("sum", "mean", "absmax"):
        raise ArgumentError(f"reduce={reduce!r}; choose 'sum', 'mean' or 'absmax'")
    inputs = list(result.input_tokens)
    outputs = list(result.output_pieces or result.output_tokens)
    src, tgt = _spans(source, inputs, scheme, "source"), _spans(target, outputs, scheme, "target")
    seq = _reduce(result.seq_attr, src, 0, reduce)
    token = None if result.token_attr is None else _reduce(_reduce(result.token_attr, src, 1, reduce), tgt, 0, reduce)
    scores = result.step_scores
    steps = None if scores is None else {k: _reduce(v, tgt, 0, reduce) for k, v in scores.items()}
    return replace(result, input_tokens=word_names(inputs, src, scheme), output_tokens=word_names(outputs, tgt, scheme),
                   seq_attr=seq, token_attr=token, step_scores=steps, output_pieces=None, inp=None)  # fmt: skip
