"""pyattrib.text: interpretable inputs and LLM attribution, against Captum 0.9 on a tiny GPT-2 with a real tokenizer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

transformers = pytest.importorskip("transformers")
from captum.attr import (  # noqa: E402
    FeatureAblation,
    KernelShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    ShapleyValues,
)
from captum.attr import TextTemplateInput as CaptumTemplate  # noqa: E402
from captum.attr import TextTokenInput as CaptumTokens  # noqa: E402

import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402
from pyattrib.text import (  # noqa: E402
    ProductBaselines,
    TextTemplateInput,
    TextTokenInput,
    llm_attribution,
    llm_gradient_attribution,
)

transformers.logging.set_verbosity_error()


TEMPLATE, VALUES = "{} lives in {} and likes {}", ["Dave", "Paris", "cheese"]


def _close(ours, theirs, atol=1e-5):
    torch.testing.assert_close(ours.seq_attr.float(), theirs.seq_attr.float(), atol=atol, rtol=1e-4)
    if theirs.token_attr is None:
        assert ours.token_attr is None
    else:
        torch.testing.assert_close(ours.token_attr.float(), theirs.token_attr.float(), atol=atol, rtol=1e-4)
    assert ours.output_tokens == theirs.output_tokens and ours.input_tokens == theirs.input_tokens


@pytest.mark.parametrize(
    "method,captum_method", [(pa.feature_ablation, FeatureAblation), (pa.shapley_values, ShapleyValues)]
)
@pytest.mark.parametrize("attr_target", ["log_prob", "prob"])
def test_template_input_matches_captum(gpt2, tokenizer, method, captum_method, attr_target):
    ours = llm_attribution(gpt2, tokenizer, method, attr_target=attr_target)(
        TextTemplateInput(TEMPLATE, VALUES), "the city of light"
    )
    # Captum's default cached decoding disagrees with a plain forward on transformers 5 (see README); its exact path:
    theirs = LLMAttribution(captum_method(gpt2), tokenizer, attr_target=attr_target).attribute(
        CaptumTemplate(TEMPLATE, VALUES), target="the city of light", use_cached_outputs=False
    )
    _close(ours, theirs)


def test_dict_template_with_baselines_and_mask_matches_captum(gpt2, tokenizer):
    values = {"name": "Dave", "city": "Paris", "food": "cheese"}
    baselines, mask = {"name": "Sarah", "city": "Rome", "food": "fish"}, {"name": 0, "city": 1, "food": 1}
    template = "{name} lives in {city} and likes {food}"
    ours = llm_attribution(gpt2, tokenizer)(TextTemplateInput(template, values, baselines, mask), target="yes")
    theirs = LLMAttribution(FeatureAblation(gpt2), tokenizer).attribute(
        CaptumTemplate(template, values, baselines, mask), target="yes", use_cached_outputs=False
    )
    _close(ours, theirs)
    assert ours.seq_attr[1] == ours.seq_attr[2]  # one group, one attribution


@pytest.mark.parametrize("skip", [None, ["[CLS]"], ["[CLS]", "[SEP]"]])
def test_token_input_with_skip_tokens_and_generation_match_captum(gpt2, tokenizer, skip):
    text = "hello there my old friend"
    ours = llm_attribution(gpt2, tokenizer)(
        TextTokenInput(text, tokenizer, skip_tokens=skip), target=torch.tensor([2129, 2024, 2017])
    )
    theirs = LLMAttribution(FeatureAblation(gpt2), tokenizer).attribute(
        CaptumTokens(text, tokenizer, skip_tokens=skip),
        target=torch.tensor([2129, 2024, 2017]),
        use_cached_outputs=False,
    )
    _close(ours, theirs)
    gen = {"max_new_tokens": 3, "do_sample": False}
    ours = llm_attribution(gpt2, tokenizer)(TextTokenInput(text, tokenizer, skip_tokens=skip), gen_args=gen)
    theirs = LLMAttribution(FeatureAblation(gpt2), tokenizer).attribute(
        CaptumTokens(text, tokenizer, skip_tokens=skip), gen_args=gen, use_cached_outputs=False
    )
    _close(ours, theirs)


def test_kernel_shap_attributes_the_whole_answer_only(gpt2, tokenizer):
    ours = llm_attribution(gpt2, tokenizer, pa.kernel_shap, n_samples=300)(TextTemplateInput(TEMPLATE, VALUES), "ok",
                                                                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    theirs = LLMAttribution(KernelShap(gpt2), tokenizer).attribute(CaptumTemplate(TEMPLATE, VALUES), "ok", n_samples=40,
                                                                   use_cached_outputs=False)  # fmt: skip
    assert (
        ours.token_attr is None and theirs.token_attr is None and ours.seq_attr.shape == theirs.seq_attr.shape == (3,)
    )
    # with 3 features KernelSHAP's regression recovers the exact Shapley values from enough samples
    exact = llm_attribution(gpt2, tokenizer, pa.shapley_values)(TextTemplateInput(TEMPLATE, VALUES), "ok").seq_attr
    torch.testing.assert_close(ours.seq_attr, exact, atol=5e-3, rtol=0.1)


def test_shapley_sampling_converges_to_exact_shapley(gpt2, tokenizer):
    inp = TextTemplateInput(TEMPLATE, VALUES)
    sampled = llm_attribution(gpt2, tokenizer, pa.shapley_value_sampling, n_samples=60)(inp, "the city",
                                                                                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    exact = llm_attribution(gpt2, tokenizer, pa.shapley_values)(inp, "the city")
    torch.testing.assert_close(sampled.token_attr, exact.token_attr, atol=0.02, rtol=0.1)


@pytest.mark.parametrize("layer_method,captum_method,options", [
    (pa.layer_integrated_gradients, LayerIntegratedGradients, {"n_steps": 12}),
    (pa.layer_gradient_x_activation, LayerGradientXActivation, {}),
])  # fmt: skip
@pytest.mark.parametrize("skip", [None, ["[CLS]"]])
def test_gradient_attribution_matches_captum(gpt2, tokenizer, layer_method, captum_method, options, skip):
    text = "the cat sat on the mat"
    ours = llm_gradient_attribution(gpt2, tokenizer, layer_method, **options)(
        TextTokenInput(text, tokenizer, skip_tokens=skip), target="and slept"
    )
    theirs = LLMGradientAttribution(captum_method(gpt2, gpt2.transformer.wte), tokenizer).attribute(
        CaptumTokens(text, tokenizer, skip_tokens=skip), target="and slept", **options
    )
    _close(ours, theirs, atol=1e-6)


def test_gradient_attribution_same_with_right_padding_and_small_batches(gpt2, tokenizer):
    class RightPadded(nn.Module):  # no position_ids: rows are right-padded, all logits computed
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    inp = TextTokenInput("the cat sat on the mat", tokenizer)
    whole = llm_gradient_attribution(gpt2, tokenizer, n_steps=6)(inp, "and slept well")
    chunked = llm_gradient_attribution(gpt2, tokenizer, n_steps=6, batch_size=4)(inp, "and slept well")
    right = llm_gradient_attribution(RightPadded(gpt2), tokenizer, layer=gpt2.transformer.wte, n_steps=6)(
        inp, "and slept well"
    )
    for other in (chunked, right):
        torch.testing.assert_close(other.token_attr, whole.token_attr, atol=1e-5, rtol=1e-4)
    assert whole.token_attr.shape == (3, len(inp.values)) and whole.token_attr.abs().sum() > 0


class EncoderLM(nn.Module):
    """A language model WITHOUT a causal mask that ignores attention masks: every logit sees the
    whole sequence, so neither one teacher-forced forward nor padding is valid for it."""

    def __init__(self, vocab_size: int, d: int = 16) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = nn.Embedding(vocab_size, d)
        self.trans = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, vocab_size)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return transformers.modeling_outputs.CausalLMOutput(logits=self.head(self.trans(self.emb(input_ids))))


@pytest.fixture(scope="module")
def encoder_lm(tokenizer):
    return EncoderLM(tokenizer.vocab_size).eval()


@pytest.mark.parametrize("method,captum_method", [(pa.feature_ablation, FeatureAblation),
                                                  (pa.shapley_values, ShapleyValues)])  # fmt: skip
def test_non_causal_model_is_scored_the_exact_way(encoder_lm, tokenizer, method, captum_method):
    prompts = [TextTemplateInput(TEMPLATE, VALUES), TextTokenInput("a longer one", tokenizer, skip_tokens=["[CLS]"])]
    ours = llm_attribution(encoder_lm, tokenizer, method, batch_size=3)(prompts, ["the city", "is here and now"])
    for inp, result, target in zip([CaptumTemplate(TEMPLATE, VALUES),
                                    CaptumTokens("a longer one", tokenizer, skip_tokens=["[CLS]"])],
                                   ours, ["the city", "is here and now"]):  # fmt: skip
        theirs = LLMAttribution(captum_method(encoder_lm), tokenizer).attribute(
            inp, target=target, use_cached_outputs=False
        )
        _close(result, theirs)
    # a causal model's one-forward shortcut would give other numbers on this model: the probe caught it
    from pyattrib.text.forcing import TeacherForcing

    assert TeacherForcing(encoder_lm, 0, None).probe(torch.arange(5, 12)) == (False, False)


def test_non_causal_model_gradient_attribution_matches_captum(encoder_lm, tokenizer):
    inp = "the cat sat on the mat"
    ours = llm_gradient_attribution(encoder_lm, tokenizer, layer=encoder_lm.emb, n_steps=8)(
        TextTokenInput(inp, tokenizer), "and slept"
    )
    theirs = LLMGradientAttribution(LayerIntegratedGradients(encoder_lm, encoder_lm.emb), tokenizer).attribute(
        CaptumTokens(inp, tokenizer), target="and slept", n_steps=8
    )
    _close(ours, theirs, atol=1e-6)


def test_gradient_shap_baselines_in_feature_space(gpt2, tokenizer):
    inp = TextTokenInput("the cat sat on the mat", tokenizer, skip_tokens=["[CLS]"])
    refs = torch.tensor([[1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0]])
    shap = llm_gradient_attribution(gpt2, tokenizer, pa.layer_gradient_shap, n_samples=40)
    got = shap(inp, "and slept", baselines=refs, generator=torch.Generator().manual_seed(0))
    assert got.token_attr.shape == (2, 7) and torch.isfinite(got.token_attr).all()
    # a reference that keeps a token gives it no attribution: with only all-kept rows, everything is 0
    kept = shap(inp, "and slept", baselines=torch.ones(1, 7), generator=torch.Generator().manual_seed(0))
    assert kept.token_attr.abs().max() == 0 and got.token_attr.abs().max() > 0
    with pytest.raises(ArgumentError, match=r"baselines has shape \(1, 3\)"):
        shap(inp, "and slept", baselines=torch.ones(1, 3))


def test_several_prompts_in_one_call_equal_one_call_each(gpt2, tokenizer):
    prompts = [
        TextTemplateInput(TEMPLATE, VALUES),
        TextTokenInput("a much longer prompt than the other one", tokenizer),
    ]
    targets = ["the city", "is here and now"]
    llm = llm_attribution(gpt2, tokenizer, batch_size=5)
    together = llm(prompts, targets)
    for prompt, target, result in zip(prompts, targets, together):
        alone = llm(prompt, target)
        torch.testing.assert_close(result.token_attr, alone.token_attr, atol=2e-5, rtol=1e-4)

    class RightPadded(nn.Module):  # a model without position_ids: right padding, same numbers
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    right = llm_attribution(RightPadded(gpt2), tokenizer)(prompts, targets)
    for a, b in zip(right, together):
        torch.testing.assert_close(a.token_attr, b.token_attr, atol=2e-5, rtol=1e-4)


def test_text_transforms_return_attributors(gpt2, tokenizer):
    """llm_attribution and llm_gradient_attribution give attributors like every other transform: their
    call signature and the transform's docstring are what inspect and help() show, and a Captum-style
    call (.attribute) gets pyattrib's pointer to the direct call."""
    import inspect

    cases = ((llm_attribution, llm_attribution(gpt2, tokenizer), TextTemplateInput(TEMPLATE, VALUES)),
             (llm_gradient_attribution, llm_gradient_attribution(gpt2, tokenizer, n_steps=4),
              TextTokenInput("the cat sat", tokenizer)))  # fmt: skip
    for transform, attributor, prompt in cases:
        assert isinstance(attributor, pa.Attributor)
        assert list(inspect.signature(attributor).parameters)[:3] == ["inputs", "target", "gen_args"]
        assert inspect.cleandoc(transform.__doc__) in attributor.__doc__
        with pytest.raises(AttributeError, match="called directly"):
            getattr(attributor, "attribute")  # noqa: B009
        result = attributor(prompt, "the city")
        assert result.token_attr.shape[0] == len(result.output_tokens)


WORDS = ["red", "blue", "cat", "dog", "runs", "sleeps", "big"]


@settings(max_examples=6, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS), min_size=2, max_size=4), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)
)
def test_token_rows_sum_to_the_sequence_attribution(gpt2, tokenizer, words, answer):
    # log p(answer) is the sum of the per-token log-probs and these methods are linear in the output
    template = " ".join(["{}"] * len(words))
    for method in (pa.feature_ablation, pa.shapley_values):
        result = llm_attribution(gpt2, tokenizer, method)(TextTemplateInput(template, words), " ".join(answer))
        torch.testing.assert_close(result.token_attr.sum(0), result.seq_attr, atol=1e-4, rtol=1e-4)


@settings(max_examples=6, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS + ["[SEP]"]), min_size=1, max_size=5),
    st.sampled_from([["[CLS]"], ["[CLS]", "[SEP]"], ["red"]]),
)
def test_skip_tokens_are_never_features(tokenizer, words, skip):
    text = " ".join(words)
    ids = tokenizer.encode(text)
    skip_ids = set(tokenizer.convert_tokens_to_ids(skip))
    if all(i in skip_ids for i in ids):
        return
    inp = TextTokenInput(text, tokenizer, skip_tokens=skip)
    assert not set(tokenizer.convert_tokens_to_ids(inp.values)) & skip_ids
    assert inp.n_itp_features == sum(i not in skip_ids for i in ids)
    removed = inp.to_model_input(torch.zeros(1, inp.n_itp_features))[0].tolist()
    assert [r for r, i in zip(removed, ids) if i in skip_ids] == [i for i in ids if i in skip_ids]


def test_product_baselines_and_callable_template(gpt2, tokenizer):
    import random

    random.seed(0)
    baselines = ProductBaselines({"name": ["Sarah", "Tom"], ("city", "food"): [("Rome", "fish"), ("Oslo", "rice")]})
    drawn = baselines()
    assert drawn["name"] in ("Sarah", "Tom") and (drawn["city"], drawn["food"]) in (("Rome", "fish"), ("Oslo", "rice"))
    inp = TextTemplateInput(lambda name, city, food: f"{name} in {city} eats {food}",
                            {"name": "Dave", "city": "Paris", "food": "cheese"}, baselines=baselines)  # fmt: skip
    assert inp.to_model_input() == "Dave in Paris eats cheese"
    assert inp.to_model_input(torch.tensor([[1.0, 0.0, 1.0]])).startswith("Dave in ")
    result = llm_attribution(gpt2, tokenizer)(inp, "yes", num_trials=2)
    assert result.seq_attr.shape == (3,) and torch.isfinite(result.seq_attr).all()


def test_result_plots_and_html(gpt2, tokenizer):
    result = llm_attribution(gpt2, tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "the city")
    figure, ax = result.plot_token_attr()
    assert [t.get_text() for t in ax.get_xticklabels()] == VALUES and len(ax.texts) == 2 * 3
    figure, ax = result.plot_seq_attr()
    assert len(ax.patches) == 2 * 3
    page = str(result.to_html())
    assert page.count('<mark class="pa-tok"') == 3 * (1 + 2) and "the city" in page
    assert result.seq_attr_dict == dict(zip(VALUES, result.seq_attr.tolist()))


def test_model_state_is_left_alone(gpt2, tokenizer):
    gpt2.train()
    try:
        llm_attribution(gpt2, tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "yes")
        llm_gradient_attribution(gpt2, tokenizer, n_steps=4)(TextTokenInput("a b", tokenizer), "yes")
        assert gpt2.training and all(p.grad is None and p.requires_grad for p in gpt2.parameters())
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in gpt2.modules())
    finally:
        gpt2.eval()


def test_bad_input_is_named(gpt2, tokenizer):
    with pytest.raises(ArgumentError, match="template has 3 slots but values has 2"):
        TextTemplateInput(TEMPLATE, ["a", "b"])
    with pytest.raises(ArgumentError, match="baselines has 1 entries for 3 slots"):
        TextTemplateInput(TEMPLATE, VALUES, baselines=["x"])
    with pytest.raises(ArgumentError, match="mask has 2 entries"):
        TextTemplateInput(TEMPLATE, VALUES, mask=[0, 1])
    with pytest.raises(ArgumentError, match=r"skip_tokens \['<s>'\] are not tokens of this tokenizer"):
        TextTokenInput("a b", tokenizer, skip_tokens=["<s>"])  # a GPT/Llama BOS on a BERT tokenizer
    with pytest.raises(ArgumentError, match=r"baselines \['<pad>'\] are not tokens"):
        TextTokenInput("a b", tokenizer, baselines="<pad>")
    with pytest.raises(ArgumentError, match="tokenizer must have encode"):
        TextTokenInput("hi", object())
    with pytest.raises(ArgumentError, match="longer than the model's context"):
        llm_attribution(gpt2, tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "word " * 60)
    with pytest.raises(ArgumentError, match="gen_args is for generating"):
        llm_attribution(gpt2, tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "x", gen_args={"max_new_tokens": 2})
    with pytest.raises(ArgumentError, match="attr_target must be"):
        llm_attribution(gpt2, tokenizer, attr_target="logits")
    with pytest.raises(ArgumentError, match="target has 1 entries for 2 prompts"):
        llm_attribution(gpt2, tokenizer)([TextTemplateInput(TEMPLATE, VALUES)] * 2, ["x"])

    class NoLogits(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(tokenizer.vocab_size, 4)

        def forward(self, input_ids, attention_mask=None):
            return {"hidden": self.embed(input_ids)}

    with pytest.raises(ArgumentError, match="returned no logits"):
        llm_attribution(NoLogits(), tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "x")
    with pytest.raises(ArgumentError, match="attributes token inputs"):
        llm_gradient_attribution(gpt2, tokenizer)(TextTemplateInput(TEMPLATE, VALUES), "x")


class Logits(nn.Module):
    """A transformers classifier returning its logits tensor."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits


@pytest.fixture(scope="module")
def bert(tokenizer):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, num_labels=3)  # fmt: skip
    return Logits(transformers.BertForSequenceClassification(config).eval())


def test_bert_classifier_layer_ig_and_embedding_input_match_captum(bert, tokenizer):
    enc = tokenizer(["a fine day", "the worst film i have seen"], return_tensors="pt", padding=True)
    ids, mask, target = enc["input_ids"], enc["attention_mask"], torch.tensor([0, 2])
    ref = pa.token_reference(ids, tokenizer.pad_token_id, keep=[tokenizer.cls_token_id, tokenizer.sep_token_id])
    words = bert.inner.bert.embeddings.word_embeddings
    layer_ig = pa.layer_integrated_gradients(bert, words, n_steps=16)(ids, ref, target=target,
                                                                      additional_forward_args=(mask,))  # fmt: skip
    theirs = LayerIntegratedGradients(bert, words).attribute(ids, ref, target=target, additional_forward_args=(mask,),
                                                             n_steps=16)  # fmt: skip
    torch.testing.assert_close(layer_ig, theirs, atol=1e-5, rtol=1e-4)

    f = pa.text.embedding_input(bert, words)
    emb, ref_emb = f.embed(ids, mask), f.embed(ref, mask)
    ours = pa.integrated_gradients(f, n_steps=16)(emb, ref_emb, target=target, additional_forward_args=(ids, mask))
    torch.testing.assert_close(ours, layer_ig, atol=1e-5, rtol=1e-4)
    assert "forward" not in vars(words) and words.forward.__func__ is nn.Embedding.forward  # nothing left patched

    # (Captum's configure_interpretable_embedding_layer cannot do this on BERT: the model receives the
    # embeddings in place of its ids, and BertEmbeddings reads their shape as (batch, length))
    with pytest.raises(ArgumentError, match="embeddings has shape"):
        f(emb[:, :2], ids, mask)
    assert "forward" not in vars(words)  # restored after the error too


class TinyVLM(nn.Module):
    """A vision-language model: GPT-2 whose token embeddings are shifted by a projection of the image."""

    def __init__(self, gpt2):
        super().__init__()
        torch.manual_seed(2)
        self.gpt2, self.project = gpt2, nn.Linear(3 * 4 * 4, gpt2.config.n_embd)

    def forward(
        self, input_ids, pixel_values, attention_mask=None, position_ids=None, logits_to_keep=0, use_cache=None
    ):
        shift = self.project(pixel_values.flatten(1))[:, None]
        return self.gpt2(inputs_embeds=self.gpt2.transformer.wte(input_ids) + shift, attention_mask=attention_mask,
                         position_ids=position_ids, logits_to_keep=logits_to_keep)  # fmt: skip


def test_image_mask_input_with_a_vision_language_model_matches_captum(gpt2, tokenizer):
    import numpy as np
    import PIL.Image
    from captum.attr import ImageMaskInput as CaptumImageMask

    from pyattrib.text import ImageMaskInput

    vlm = TinyVLM(gpt2).eval()
    pixels = (np.arange(4 * 4 * 3).reshape(4, 4, 3) * 5).astype("uint8")
    image = PIL.Image.fromarray(pixels)
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])

    def processor(img):
        values = torch.tensor(np.array(img), dtype=torch.float32).permute(2, 0, 1)[None] / 255
        return {"input_ids": tokenizer.encode("what is this", return_tensors="pt"), "pixel_values": values}

    ours = llm_attribution(vlm, tokenizer, batch_size=3)(ImageMaskInput(image, mask, processor_fn=processor),
                                                         "a small picture")  # fmt: skip
    theirs = LLMAttribution(FeatureAblation(vlm), tokenizer).attribute(
        CaptumImageMask(image, mask, processor_fn=processor), "a small picture", use_cached_outputs=False
    )
    _close(ours, theirs)
    assert ours.seq_attr.abs().sum() > 0
    painted = ImageMaskInput(image, mask, processor_fn=processor).format_pixel_attr(ours.seq_attr)
    assert painted.shape == (4, 4) and painted[0, 0] == ours.seq_attr[0] and painted[3, 3] == ours.seq_attr[3]
