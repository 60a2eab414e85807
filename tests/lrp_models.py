"""The tiny transformers of the LXT comparison (``tools/lxt_reference.py`` builds them in LXT's
environment and stores their weights in the fixture, so both sides run the same numbers whatever
each transformers version's initialisation does)."""

from __future__ import annotations

import torch

VOCAB, LENGTH = 128, 8


def config(kind: str):
    import transformers

    if kind == "gpt2":
        return transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=16,
                                       attn_implementation="eager")  # fmt: skip
    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                                    attn_implementation="eager")  # fmt: skip


def model(kind: str, state: dict | None = None):
    import transformers

    torch.manual_seed(0)
    built = (transformers.GPT2LMHeadModel if kind == "gpt2" else transformers.LlamaForCausalLM)(config(kind))
    if state is not None:
        built.load_state_dict(state)
    return built.eval()


def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(1))
