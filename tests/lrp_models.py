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
                                       bos_token_id=0, eos_token_id=0, attn_implementation="eager")  # fmt: skip
    if kind == "bert":
        return transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=16, num_labels=3,
                                       attn_implementation="eager")  # fmt: skip
    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                                    attn_implementation="eager")  # fmt: skip


def model(kind: str, state: dict | None = None, cls: type | None = None):
    import transformers

    torch.manual_seed(0)
    classes = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM,
               "bert": transformers.BertForSequenceClassification}  # fmt: skip
    built = (cls or classes[kind])(config(kind))
    if state is not None:
        built.load_state_dict(state)
    return built.eval()


def logits(model, output):
    """The explained scores: a language model's at the last position, a classifier's own."""
    out = output.logits
    return out[:, -1] if out.dim() == 3 else out


def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(1))
