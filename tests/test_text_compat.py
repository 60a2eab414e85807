"""pyattrib.compat's LLM classes against Captum 0.9's, on local tiny Llama and GPT-2 models."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
import captum.attr as captum  # noqa: E402

import pyattrib as pa  # noqa: E402
from pyattrib import compat  # noqa: E402
from pyattrib.text import RemoteLLMProvider, TextTemplateInput, llm_attribution, remote_llm_attribution  # noqa: E402

transformers.logging.set_verbosity_error()
TEMPLATE, VALUES = "{} b {} {} e {}", ["a", "c", "d", "f"]


@pytest.fixture(scope="module")
def llama(tokenizer):
    """The model of Captum's test_llm_attr_hf_compatibility.py (a tiny random Llama), built locally."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return transformers.LlamaForCausalLM(config).eval()


def _close(ours, theirs, atol=2e-5):
    torch.testing.assert_close(ours.seq_attr, theirs.seq_attr, atol=atol, rtol=1e-4)
    if theirs.token_attr is None:
        assert ours.token_attr is None
    else:
        torch.testing.assert_close(ours.token_attr, theirs.token_attr, atol=atol, rtol=1e-4)
    assert ours.input_tokens == theirs.input_tokens and ours.output_tokens == theirs.output_tokens


@pytest.mark.parametrize("name,kwargs", [("FeatureAblation", {}), ("ShapleyValues", {}),
                                         ("ShapleyValueSampling", {"n_samples": 3})])  # fmt: skip
def test_llm_attribution_on_llama_matches_captum(llama, tokenizer, name, kwargs):
    torch.manual_seed(3)
    ours = compat.LLMAttribution(getattr(compat, name)(llama), tokenizer).attribute(
        compat.TextTemplateInput(TEMPLATE, VALUES), "m n o p q", use_cached_outputs=False, **kwargs
    )
    torch.manual_seed(3)  # Shapley sampling: both draw their permutations from torch's global generator
    theirs = captum.LLMAttribution(getattr(captum, name)(llama), tokenizer).attribute(
        captum.TextTemplateInput(TEMPLATE, VALUES), "m n o p q", use_cached_outputs=False, **kwargs
    )
    assert ours.seq_attr.shape == (4,) and ours.token_attr.shape == (len(ours.output_tokens), 4)
    if name != "ShapleyValueSampling":
        _close(ours, theirs)


@pytest.mark.parametrize("name,options", [("LayerIntegratedGradients", {"n_steps": 10}),
                                          ("LayerGradientXActivation", {})])  # fmt: skip
def test_llm_gradient_attribution_matches_captum(gpt2, tokenizer, name, options):
    text = "the cat sat on the mat"
    ours = compat.LLMGradientAttribution(getattr(compat, name)(gpt2, gpt2.transformer.wte), tokenizer).attribute(
        compat.TextTokenInput(text, tokenizer, skip_tokens=["[CLS]"]), "and slept", **options
    )
    theirs = captum.LLMGradientAttribution(getattr(captum, name)(gpt2, gpt2.transformer.wte), tokenizer).attribute(
        captum.TextTokenInput(text, tokenizer, skip_tokens=["[CLS]"]), "and slept", **options
    )
    _close(ours, theirs, atol=1e-6)


def test_llm_gradient_shap_feature_space_baselines_in_distribution(gpt2, tokenizer):
    inp_text, refs = "the cat sat", (torch.tensor([[1, 0, 1, 0, 1]]),)
    ours = compat.LLMGradientAttribution(compat.LayerGradientShap(gpt2, gpt2.transformer.wte), tokenizer).attribute(
        compat.TextTokenInput(inp_text, tokenizer), "and", baselines=refs, n_samples=200
    )
    theirs = captum.LLMGradientAttribution(captum.LayerGradientShap(gpt2, gpt2.transformer.wte), tokenizer).attribute(
        captum.TextTokenInput(inp_text, tokenizer), "and", baselines=refs, n_samples=200
    )
    # kept tokens (1) never move, so they get exactly 0 in both; the others agree in expectation
    assert (ours.seq_attr[[0, 2, 4]] == 0).all() and (theirs.seq_attr[[0, 2, 4]] == 0).all()
    torch.testing.assert_close(ours.seq_attr, theirs.seq_attr, atol=0.05, rtol=0.2)


class LocalProvider(RemoteLLMProvider):
    """A provider whose log-probabilities come from a local model: remote attribution must then
    equal local attribution."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.calls = model, tokenizer, 0

    def generate(self, prompt, **gen_args):
        raise AssertionError("not used")

    def get_logprobs(self, input_prompt, target_str, tokenizer=None):
        self.calls += 1
        ids = tokenizer.encode(input_prompt, return_tensors="pt")
        answer = torch.tensor(tokenizer.encode(target_str, add_special_tokens=False))
        with torch.no_grad():
            logits = self.model(torch.cat([ids, answer[None]], 1)).logits[0, ids.shape[1] - 1 : -1]
        return logits.log_softmax(-1).gather(1, answer[:, None])[:, 0].tolist()


def test_remote_attribution_equals_local(gpt2, tokenizer):
    provider = LocalProvider(gpt2, tokenizer)
    inp = TextTemplateInput("{} lives in {} and likes {}", ["Dave", "Paris", "cheese"])
    remote = remote_llm_attribution(provider, tokenizer, pa.shapley_values)(inp, "the city")
    local = llm_attribution(gpt2, tokenizer, pa.shapley_values)(inp, "the city")
    torch.testing.assert_close(remote.token_attr, local.token_attr, atol=1e-5, rtol=1e-4)
    assert provider.calls == 2**3  # one request per coalition
    via_compat = compat.RemoteLLMAttribution(compat.ShapleyValues(compat.RemoteLLMAttribution.placeholder_model),
                                             tokenizer, provider).attribute(inp, "the city")  # fmt: skip
    torch.testing.assert_close(via_compat.token_attr, local.token_attr, atol=1e-5, rtol=1e-4)


def test_bad_input(gpt2, tokenizer):
    with pytest.raises(TypeError, match="LLMAttribution wraps one of FeatureAblation"):
        compat.LLMAttribution(compat.Saliency(gpt2), tokenizer)
    with pytest.raises(TypeError, match="LLMGradientAttribution wraps one of LayerIntegratedGradients"):
        compat.LLMGradientAttribution(compat.FeatureAblation(gpt2), tokenizer)
    with pytest.raises(NotImplementedError):
        compat.LLMAttribution(compat.FeatureAblation(gpt2), tokenizer).attribute_future()
    with pytest.raises(ValueError, match="one per target token"):

        class Short(LocalProvider):
            def get_logprobs(self, input_prompt, target_str, tokenizer=None):
                return [0.0]

        remote_llm_attribution(Short(gpt2, tokenizer), tokenizer)(TextTemplateInput("{} x", ["a"]), "the city")
