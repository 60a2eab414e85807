"""Encoder-decoder models (T5, BART; tiny configs, random init) with the perturbation methods,
contrastive targets and step scores: the answer is teacher-forced on the decoder."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import pyattrib as pa  # noqa: E402
from pyattrib.text import TextTemplateInput, llm_attribution  # noqa: E402

TEMPLATE, VALUES = "{} lives in {}", ["Dave", "Paris"]


def _models(vocab):
    torch.manual_seed(0)
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0,
        pad_token_id=0)).eval()  # fmt: skip
    bart = transformers.BartForConditionalGeneration(transformers.BartConfig(
        vocab_size=vocab, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=101, eos_token_id=102, decoder_start_token_id=102)).eval()  # fmt: skip
    return {"t5": t5, "bart": bart}


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_feature_ablation_on_an_encoder_decoder_by_hand(tokenizer, name):
    model = _models(tokenizer.vocab_size)[name]
    target = torch.tensor(tokenizer.encode("the big cat", add_special_tokens=False))
    foil = torch.tensor(tokenizer.encode("a small dog", add_special_tokens=False))
    start = model.config.decoder_start_token_id

    def log_probs(values):
        prompt = torch.tensor(tokenizer.encode(TEMPLATE.format(*values)))[None]
        decoder = torch.cat([torch.tensor([start]), target[:-1]])[None]
        with torch.no_grad():
            return model(input_ids=prompt, decoder_input_ids=decoder).logits[0].log_softmax(-1)

    full = log_probs(VALUES)
    got = llm_attribution(model, tokenizer, pa.feature_ablation)(TextTemplateInput(TEMPLATE, VALUES), target,
                                                                 contrast=foil, step_scores=["log_probability"])  # fmt: skip

    def contrast(lp):
        return lp.gather(1, target[:, None])[:, 0] - lp.gather(1, foil[:, None])[:, 0]

    for f in range(2):
        ablated = list(VALUES)
        ablated[f] = ""
        torch.testing.assert_close(got.token_attr[:, f], contrast(full) - contrast(log_probs(ablated)),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
    torch.testing.assert_close(got.step_scores["log_probability"], full.gather(1, target[:, None])[:, 0])


def test_rollout_says_an_encoder_decoder_takes_raw_attention_or_value_zeroing(tokenizer):
    from pyattrib._core.errors import ArgumentError

    model = _models(tokenizer.vocab_size)["t5"]
    with pytest.raises(ArgumentError, match="encoder-decoder model .* takes method='raw' or 'value_zeroing'"):
        pa.text.attention_attribution(model, tokenizer, method="rollout")


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_gradient_x_embedding_on_an_encoder_decoder_by_hand(tokenizer, name):
    """Source side with a skipped token, target side, one layer-method call: each equals the
    gradient of ``log p(y_t)`` with respect to the encoder's and decoder's input embeddings,
    times those embeddings, summed over the embedding."""
    model = _models(tokenizer.vocab_size)[name]
    inp = pa.text.TextTokenInput(TEMPLATE.format(*VALUES), tokenizer, skip_tokens=["[CLS]"])
    target = torch.tensor(tokenizer.encode("the big cat", add_special_tokens=False))
    got = pa.text.llm_gradient_attribution(model, tokenizer, pa.layer_gradient_x_activation)(
        inp, target, attribute_target=True
    )
    prompt = inp.to_model_input()[0]
    decoder = torch.cat([torch.tensor([model.config.decoder_start_token_id]), target[:-1]])
    embed = model.get_input_embeddings()
    for t in range(len(target)):
        source, answer = embed(prompt)[None].detach().requires_grad_(), embed(decoder)[None].detach().requires_grad_()
        logits = model(inputs_embeds=source, decoder_inputs_embeds=answer).logits[0, t]
        logits.log_softmax(-1)[target[t]].backward()
        by_hand = (source.grad * source)[0].sum(-1)[1:]  # [CLS] is skipped: not a feature
        torch.testing.assert_close(got.token_attr[t], by_hand.detach(), atol=1e-5, rtol=1e-4)
        prefix = (answer.grad * answer)[0].sum(-1)[1:].detach()  # position j + 1 holds answer token j
        torch.testing.assert_close(got.target_attr[t, :t], prefix[:t], atol=1e-5, rtol=1e-4)
        assert got.target_attr[t, t:].abs().max() == 0
    assert got.token_attr.shape == (len(target), len(inp.values))


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_cross_attention_under_sdpa_says_how_to_switch(tokenizer, name):
    from pyattrib._core.errors import ArgumentError

    model = _models(tokenizer.vocab_size)[name]
    model.set_attn_implementation("sdpa")
    with pytest.raises(ArgumentError, match="attn_implementation='eager'"):
        pa.text.attention_attribution(model, tokenizer)(pa.text.TextTokenInput("Dave lives in Paris", tokenizer), "the big cat")
