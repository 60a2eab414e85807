"""Subword tokens merged into words: WordPiece (the real MiniLM tokenizer), byte-level BPE and
SentencePiece (tokenizers trained here with the ``tokenizers`` package), and the aggregation of an
attribution's both axes over words, spans and the whole sequence."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.text import TextTokenInput, aggregate, llm_attribution, word_spans  # noqa: E402
from pyattrib.text.aggregate import word_names  # noqa: E402

CORPUS = ["the tokenization of unbelievable words", "words are tokenized", "the cat sat on the mat"] * 20


def _trained(kind: str):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if kind == "bpe":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        alphabet = []
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "<s>"],
                                                        initial_alphabet=alphabet))  # fmt: skip
    return tok


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_bpe_and_sentencepiece_pieces_merge_into_the_words(kind):
    text = "the tokenization of unbelievable words"
    pieces = _trained(kind).encode(text).tokens
    assert len(pieces) > len(text.split())  # the small vocabulary splits words into pieces
    assert pieces[0].startswith("Ġ" if kind == "bpe" else "▁")
    spans = word_spans(pieces)
    assert word_names(pieces, spans) == text.split()
    assert [i for a, b in spans for i in range(a, b)] == list(range(len(pieces)))


def test_wordpiece_of_the_real_tokenizer(tokenizer):
    text = "tokenization of unbelievable words"
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode(text))
    assert any(p.startswith("##") for p in pieces)
    spans = word_spans(pieces)
    assert word_names(pieces, spans) == ["[CLS]", *text.split(), "[SEP]"]


def test_aggregate_over_words_spans_and_sequences(gpt2, tokenizer):
    inp = TextTokenInput("tokenization of unbelievable words", tokenizer)
    result = llm_attribution(gpt2, tokenizer, pa.feature_ablation)(inp, target="the tokenization works",
                                                                   step_scores=["log_probability"])  # fmt: skip
    src = word_spans(result.input_tokens)
    tgt = word_spans(result.output_pieces)
    words = aggregate(result)
    assert words.input_tokens == ["[CLS]", "tokenization", "of", "unbelievable", "words", "[SEP]"]
    assert words.output_tokens == ["the", "tokenization", "works"]
    expected = torch.stack([torch.stack([result.token_attr[ta:tb, sa:sb].sum() for sa, sb in src]) for ta, tb in tgt])
    torch.testing.assert_close(words.token_attr, expected)
    torch.testing.assert_close(words.seq_attr, torch.stack([result.seq_attr[a:b].sum() for a, b in src]))
    torch.testing.assert_close(words.step_scores["log_probability"],
                               torch.stack([result.step_scores["log_probability"][a:b].sum() for a, b in tgt]))  # fmt: skip
    mean = aggregate(result, reduce="mean")
    torch.testing.assert_close(mean.seq_attr, torch.stack([result.seq_attr[a:b].mean() for a, b in src]))
    biggest = aggregate(result, reduce="absmax", target="tokens")
    for w, (a, b) in enumerate(src):
        block = result.seq_attr[a:b]
        assert biggest.seq_attr[w] == block[block.abs().argmax()]
    whole = aggregate(result, source="sequence", target="sequence")
    torch.testing.assert_close(whole.token_attr, result.token_attr.sum().reshape(1, 1))
    n = len(result.input_tokens)
    halves = aggregate(result, source=[(0, 2), (2, n)], target="tokens")
    torch.testing.assert_close(halves.seq_attr, torch.stack([result.seq_attr[:2].sum(), result.seq_attr[2:].sum()]))
    with pytest.raises(ArgumentError, match="cover"):
        aggregate(result, source=[(0, 2), (3, n)])
    with pytest.raises(ArgumentError, match="reduce"):
        aggregate(result, reduce="max")
