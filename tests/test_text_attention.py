"""Attention-based attribution (raw weights, rollout) against the weights the model itself
returns with ``output_attentions=True``, and the error an SDPA model gets."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.text import TextTokenInput, attention_attribution  # noqa: E402


@pytest.fixture(scope="module")
def eager_lm(tokenizer):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=3, n_head=4, n_positions=48,
                                     attn_implementation="eager")  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


def _own_weights(model, tokenizer, text, answer):
    prompt = torch.tensor(tokenizer.encode(text))
    target = torch.tensor(tokenizer.encode(answer, add_special_tokens=False))
    with torch.no_grad():
        out = model(torch.cat([prompt, target])[None], output_attentions=True)
    return torch.stack(out.attentions)[:, 0], len(prompt), len(target)  # (L, H, S, S)


def test_raw_attention_and_rollout_read_the_models_own_weights(eager_lm, tokenizer):
    text, answer = "the cat sat on", "the mat today"
    own, n_prompt, n_answer = _own_weights(eager_lm, tokenizer, text, answer)
    rows = slice(n_prompt - 1, n_prompt - 1 + n_answer)
    inp = TextTokenInput(text, tokenizer)
    raw = attention_attribution(eager_lm, tokenizer)(inp, answer)
    torch.testing.assert_close(raw.token_attr, own.mean(1).mean(0)[rows, :n_prompt])
    torch.testing.assert_close(raw.seq_attr, raw.token_attr.sum(0))
    picked = attention_attribution(eager_lm, tokenizer, layers=[0, 2], heads=[1, 3], last_layer=True)(inp, answer)
    torch.testing.assert_close(picked.token_attr, own[2][[1, 3]].mean(0)[rows, :n_prompt])
    # rollout by its definition: residual-mixed, row-normalised head means, multiplied from the first layer up
    eye = torch.eye(own.shape[-1])
    mixed = [(0.5 * a + 0.5 * eye) / (0.5 * a + 0.5 * eye).sum(-1, keepdim=True) for a in own.mean(1)]
    expected = mixed[2] @ mixed[1] @ mixed[0]
    rolled = attention_attribution(eager_lm, tokenizer, method="rollout")(inp, answer)
    torch.testing.assert_close(rolled.token_attr, expected[rows, :n_prompt])
    assert bool((rolled.token_attr >= 0).all())


def test_attention_needs_eager_attention_and_token_inputs(tokenizer, eager_lm):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=1, n_head=2, n_positions=48,
                                     attn_implementation="sdpa")  # fmt: skip
    sdpa = transformers.GPT2LMHeadModel(config).eval()
    with pytest.raises(ArgumentError, match="attn_implementation='eager'"):
        attention_attribution(sdpa, tokenizer)(TextTokenInput("the cat", tokenizer), "sat")
    with pytest.raises(ArgumentError, match="layers"):
        attention_attribution(eager_lm, tokenizer, layers=[5])
    with pytest.raises(ArgumentError, match="method"):
        attention_attribution(eager_lm, tokenizer, method="flow")
    from pyattrib.text import TextTemplateInput

    with pytest.raises(ArgumentError, match="TextTokenInput"):
        attention_attribution(eager_lm, tokenizer)(TextTemplateInput("{} sat", ["cat"]), "down")


def _zeroed_layer_output(model, ids, layer, j):
    """Block ``layer``'s output with token ``j``'s value vector zeroed in its attention (GPT-2's fused
    c_attn: the last third), by a hook, through the whole model."""
    attn = model.transformer.h[layer].attn

    def zero(module, inputs, output):
        output = output.clone()
        output[:, j, 2 * attn.embed_dim :] = 0
        return output

    handle = attn.c_attn.register_forward_hook(zero)
    try:
        with torch.no_grad():
            return model(ids, output_hidden_states=True, use_cache=False).hidden_states[layer + 1][0]
    finally:
        handle.remove()


def test_value_zeroing_by_hand(eager_lm, tokenizer):
    text, answer = "the cat sat on", "the mat"
    prompt = torch.tensor(tokenizer.encode(text))
    ids = torch.cat([prompt, torch.tensor(tokenizer.encode(answer, add_special_tokens=False))])[None]
    with torch.no_grad():
        plain = eager_lm(ids, output_hidden_states=True, use_cache=False).hidden_states
    per_layer, raw = [], []
    for layer in (0, 1):
        cols = [1 - torch.nn.functional.cosine_similarity(_zeroed_layer_output(eager_lm, ids, layer, j),
                                                           plain[layer + 1][0], dim=-1)
                for j in range(ids.shape[1])]  # fmt: skip
        vz = torch.stack(cols, 1).clamp(min=0)
        raw.append(vz)
        per_layer.append(vz / vz.sum(-1, keepdim=True))
    rows = slice(len(prompt) - 1, ids.shape[1] - 1)
    inp = TextTokenInput(text, tokenizer)
    first = attention_attribution(eager_lm, tokenizer, method="value_zeroing", layers=[0], last_layer=True)(inp, answer)
    torch.testing.assert_close(first.token_attr, per_layer[0][rows, : len(prompt)], atol=1e-5, rtol=1e-4)
    # causal: zeroing a later value changes nothing earlier (1 - cos at float32 rounding, before the
    # rows are normalised: a row of small distances would magnify the rounding of another CPU)
    assert float(raw[0].triu(1).max()) < 1e-6 <= float(raw[0].diagonal().min())
    eye = torch.eye(ids.shape[1])
    mixed = [(0.5 * a + 0.5 * eye) / (0.5 * a + 0.5 * eye).sum(-1, keepdim=True) for a in per_layer]
    both = attention_attribution(eager_lm, tokenizer, method="value_zeroing", layers=[0, 1])(inp, answer)
    torch.testing.assert_close(both.token_attr, (mixed[1] @ mixed[0])[rows, : len(prompt)], atol=1e-5, rtol=1e-4)


def test_value_zeroing_in_chunks_equals_all_at_once(eager_lm, tokenizer):
    inp = TextTokenInput("the cat sat on the mat", tokenizer)
    whole = attention_attribution(eager_lm, tokenizer, method="value_zeroing")(inp, "and slept")
    chunked = attention_attribution(eager_lm, tokenizer, method="value_zeroing", batch_size=3)(inp, "and slept")
    torch.testing.assert_close(chunked.token_attr, whole.token_attr, atol=1e-6, rtol=1e-5)
