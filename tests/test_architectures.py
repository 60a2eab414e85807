"""Real architectures (ResNet-18, MobileNetV2, EfficientNet, ViT, BERT, GPT-2, LSTM) against
Captum 0.9, and the properties where pyattrib deliberately differs. Marked slow: skip them
locally with ``-m 'not slow'``; CI runs them."""

from __future__ import annotations

import captum.attr as C
import pytest
import torch
from torch import nn

import pyattrib as pa

from . import architectures as A

pytestmark = pytest.mark.slow

X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
B = 0.1 * torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
T = [1, 4, 7]
NEURON = (0, 1, 1)  # channel 0 at (1, 1) of the first block's output
MASK = (torch.arange(16).reshape(4, 4).repeat_interleave(8, 0).repeat_interleave(8, 1))[None, None]  # 8x8 patches


def rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.detach(), theirs.detach()
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12))


def first_block(name: str, m: nn.Module) -> nn.Module:
    return m.layer2 if name == "resnet18" else (m.patch if name == "vit" else m.features[1])


VISION_CASES = {
    "saliency": (lambda m, layer: pa.saliency(m)(X, target=T), lambda m, layer: C.Saliency(m).attribute(X, target=T)),
    "integrated_gradients": (
        lambda m, layer: pa.integrated_gradients(m)(X, B, target=T),
        lambda m, layer: C.IntegratedGradients(m).attribute(X, B, target=T),
    ),
    "guided_backprop": (
        lambda m, layer: pa.guided_backprop(m)(X, target=T),
        lambda m, layer: C.GuidedBackprop(m).attribute(X, target=T),
    ),
    "layer_gradcam": (
        lambda m, layer: pa.layer_gradcam(m, layer)(X, target=T),
        lambda m, layer: C.LayerGradCam(m, layer).attribute(X, target=T),
    ),
    "layer_integrated_gradients": (
        lambda m, layer: pa.layer_integrated_gradients(m, layer)(X, B, target=T),
        lambda m, layer: C.LayerIntegratedGradients(m, layer).attribute(X, B, target=T),
    ),
    "input_x_gradient": (
        lambda m, layer: pa.input_x_gradient(m)(X, target=T),
        lambda m, layer: C.InputXGradient(m).attribute(X, target=T),
    ),
    "deconvolution": (
        lambda m, layer: pa.deconvolution(m)(X, target=T),
        lambda m, layer: C.Deconvolution(m).attribute(X, target=T),
    ),
    "guided_gradcam": (
        lambda m, layer: pa.guided_gradcam(m, layer)(X, target=T),
        lambda m, layer: C.GuidedGradCam(m, layer).attribute(X, target=T),
    ),
    "layer_conductance": (
        lambda m, layer: pa.layer_conductance(m, layer, n_steps=16)(X, B, target=T),
        lambda m, layer: C.LayerConductance(m, layer).attribute(X, B, target=T, n_steps=16),
    ),
    "layer_gradient_x_activation": (
        lambda m, layer: pa.layer_gradient_x_activation(m, layer)(X, target=T),
        lambda m, layer: C.LayerGradientXActivation(m, layer).attribute(X, target=T),
    ),
    "neuron_integrated_gradients": (
        lambda m, layer: pa.neuron_integrated_gradients(m, layer, n_steps=16)(X, B, neuron_selector=NEURON),
        lambda m, layer: C.NeuronIntegratedGradients(m, layer).attribute(X, NEURON, B, n_steps=16),
    ),
    "feature_ablation": (
        lambda m, layer: pa.feature_ablation(m)(X, B, target=T, feature_mask=MASK),
        lambda m, layer: C.FeatureAblation(m).attribute(X, B, target=T, feature_mask=MASK),
    ),
    "occlusion": (
        lambda m, layer: pa.occlusion(m, sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8))(X, target=T),
        lambda m, layer: C.Occlusion(m).attribute(X, sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8), target=T),
    ),
}


@pytest.mark.parametrize("method", list(VISION_CASES))
@pytest.mark.parametrize("name", list(A.VISION))
def test_vision_models_match_captum(name, method):
    m = A.VISION[name]()
    ours, theirs = VISION_CASES[method]
    layer = first_block(name, m)
    # perturbation outputs are differences of near-equal logits: batch composition rounding shows
    tol = 1e-3 if method in ("occlusion", "feature_ablation") else 1e-4
    assert rel(ours(m, layer), theirs(m, layer)) < tol


@pytest.mark.parametrize("name", list(A.VISION))
def test_deep_lift_is_batch_independent_on_every_vision_model(name):
    m = A.VISION[name]()
    together = pa.deep_lift(m)(X, B, target=T)
    for i in range(3):
        alone = pa.deep_lift(m)(X[i : i + 1], B[i : i + 1], target=T[i])
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_deep_lift_conserves_on_relu6_hardswish_and_residual_models(name):
    """Rescale rules on ReLU, ReLU6 and Hardswish (Captum treats ReLU6/Hardswish as linear),
    and exact max pooling: attributions sum to f(x) - f(x')."""
    m = A.VISION[name]()
    _, delta = pa.deep_lift(m, exact_max_pool=True, return_delta=True)(X, B, target=T)
    with torch.no_grad():
        gap = (m(X) - m(B)).gather(1, torch.tensor(T)[:, None]).squeeze(1)
    assert float(delta.abs().max()) < 1e-3 * float(gap.abs().max())


def test_deep_lift_where_captum_cannot():
    """ResNet reuses one in-place ReLU per block: Captum's module hooks raise there."""
    m = A.resnet18()
    with pytest.raises(RuntimeError):
        C.DeepLift(m).attribute(X, B, target=T)
    attr, delta = pa.deep_lift(m, exact_max_pool=True, return_delta=True)(X, B, target=T)
    with torch.no_grad():
        gap = (m(X) - m(B)).gather(1, torch.tensor(T)[:, None]).squeeze(1)
    # completeness: the attributions of the shared in-place ReLUs' inputs add up to f(x) - f(x')
    torch.testing.assert_close(attr.flatten(1).sum(1), gap, rtol=1e-3, atol=1e-3 * float(gap.abs().max()))
    assert float(delta.abs().max()) < 1e-3 * float(gap.abs().max())


def test_lrp_names_modules_without_rules_and_takes_rules_for_them():
    m = A.mobilenet_v2()
    with pytest.raises(ValueError, match=r"no rule for 8 module\(s\): features.0.2 \(ReLU6\).*nn.ReLU6"):
        pa.lrp(m)(X, target=1)
    rules = {nn.ReLU6: pa.lrp_rules.identity(), nn.Hardswish: pa.lrp_rules.identity()}
    assert torch.isfinite(pa.lrp(m, rules=rules)(X, target=1)).all()


def test_lrp_in_place_activation_with_a_rule():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 2)).eval()
    x = torch.randn(3, 4)
    ours = pa.lrp(m, rules={nn.ReLU: pa.lrp_rules.identity()})(x, target=0)
    torch.testing.assert_close(ours, pa.lrp(m)(x, target=0))


class SkipNet(nn.Module):
    """Bias-free conv + identity skip: LRP-epsilon conserves exactly once sums split relevance."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.relu1, self.relu2, self.head = nn.ReLU(), nn.ReLU(), nn.Linear(3 * 8 * 8, 2, bias=False)

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        h = h + self.relu2(self.conv2(h))
        return self.head(h.flatten(1))


def test_lrp_residual_sums_conserve_relevance():
    m, x = SkipNet().eval(), torch.rand(2, 3, 8, 8)
    _, lost = pa.lrp(m, return_delta=True)(x, target=0)
    with torch.no_grad():
        f = m(x)[:, 0]
    assert float((lost.abs() / f.abs()).max()) < 1e-4
    _, plain = pa.lrp(m, return_delta=True, split_sums=False)(x, target=0)  # the plain gradient at the sum
    assert float((plain.abs() / f.abs()).max()) > 1e-2
    _, captum_lost = C.LRP(m).attribute(x, target=0, return_convergence_delta=True)
    assert float((captum_lost.detach().abs() / f.abs()).max()) > 1e-2  # Captum 0.9 does not conserve there either


def test_reused_module_is_an_error_for_layer_and_neuron_methods():
    m = A.resnet18()
    relu = m.layer1[0].relu  # runs twice per block
    for attributor in (
        pa.layer_activation(m, relu),
        pa.layer_integrated_gradients(m, relu),
        pa.neuron_gradient(m, relu),
    ):
        kwargs = {"neuron_selector": (0, 1, 1)} if "neuron" in attributor.name else {}
        kwargs = {"target": 1} if attributor.name == "layer_integrated_gradients" else kwargs
        with pytest.raises(RuntimeError, match="ran 2 times in one forward pass"):
            attributor(X, **kwargs)


# -- text ---------------------------------------------------------------------------

IDS = torch.randint(1, 50, (3, 9), generator=torch.Generator().manual_seed(2))  # in every vocabulary


def logits(model: nn.Module):
    return lambda ids: model(ids).logits


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_bert_layer_integrated_gradients_matches_captum(attn):
    m = A.bert(attn)
    emb = m.bert.embeddings
    ours = pa.layer_integrated_gradients(m, emb)(IDS, IDS * 0, target=[0, 1, 2])  # ModelOutput: .logits
    theirs = C.LayerIntegratedGradients(logits(m), emb).attribute(IDS, IDS * 0, target=[0, 1, 2])
    assert rel(ours, theirs) < 1e-4


def test_bert_deep_lift_batch_independent_and_eager_equals_sdpa():
    eager, sdpa = A.bert("eager"), A.bert("sdpa")
    sdpa.load_state_dict(eager.state_dict())
    emb = eager.bert.embeddings.word_embeddings
    together = pa.layer_deep_lift(eager, emb)(IDS, IDS * 0, target=[0, 1, 2])
    alone = pa.layer_deep_lift(eager, emb)(IDS[:1], IDS[:1] * 0, target=0)
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-6)
    other = pa.layer_deep_lift(sdpa, sdpa.bert.embeddings.word_embeddings)(IDS, IDS * 0, target=[0, 1, 2])
    torch.testing.assert_close(together, other, rtol=1e-4, atol=1e-5)


def test_gpt2_next_token_attribution_matches_captum():
    m = A.gpt2()
    emb = m.transformer.wte
    target = [(8, 5), (8, 7), (8, 11)]  # (position, token) in the (N, T, vocab) logits
    ours = pa.layer_integrated_gradients(m, emb, n_steps=16)(IDS, IDS * 0, target=target)
    theirs = C.LayerIntegratedGradients(logits(m), emb).attribute(IDS, IDS * 0, target=target, n_steps=16)
    assert rel(ours, theirs) < 1e-4


class FromEmbeddings(nn.Module):
    """A Hugging Face model fed ``inputs_embeds``, returning its logits."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, emb):
        return self.hf(inputs_embeds=emb).logits


def text_model(name: str):
    """(model for pyattrib, the same returning a tensor for Captum, the model fed embeddings,
    the word-embedding layer, targets): BERT classes, GPT-2 (position, token), LSTM classes."""
    if name == "lstm":
        m = A.lstm()
        return m, m, A.AfterEmbedding(m).eval(), m.embedding, [0, 1, 2]
    family, attn = name.split("-")
    m = A.bert(attn) if family == "bert" else A.gpt2(attn)
    emb = m.bert.embeddings.word_embeddings if family == "bert" else m.transformer.wte
    target = [0, 1, 2] if family == "bert" else [(8, 5), (8, 7), (8, 11)]
    return m, logits(m), FromEmbeddings(m).eval(), emb, target


TEXT_CASES = {
    "saliency": (
        lambda m, e, layer, t: pa.saliency(e)(layer(IDS).detach(), target=t),
        lambda m, e, layer, t: C.Saliency(e).attribute(layer(IDS).detach(), target=t),
    ),
    "integrated_gradients": (
        lambda m, e, layer, t: pa.integrated_gradients(e, n_steps=16)(layer(IDS).detach(), target=t),
        lambda m, e, layer, t: C.IntegratedGradients(e).attribute(layer(IDS).detach(), target=t, n_steps=16),
    ),
    "layer_gradient_x_activation": (
        lambda m, e, layer, t: pa.layer_gradient_x_activation(m, layer)(IDS, target=t),
        lambda m, e, layer, t: C.LayerGradientXActivation(m, layer).attribute(IDS, target=t),
    ),
    "feature_ablation": (
        lambda m, e, layer, t: pa.feature_ablation(m)(IDS, 0, target=t),
        lambda m, e, layer, t: C.FeatureAblation(m).attribute(IDS, 0, target=t),
    ),
    "occlusion": (
        lambda m, e, layer, t: pa.occlusion(m, sliding_window_shapes=(3,))(IDS, 0, target=t),
        lambda m, e, layer, t: C.Occlusion(m).attribute(IDS, (3,), baselines=0, target=t),
    ),
}


@pytest.mark.parametrize("method", list(TEXT_CASES))
@pytest.mark.parametrize("name", ["bert-eager", "bert-sdpa", "gpt2-eager", "gpt2-sdpa", "lstm"])
def test_text_models_match_captum(name, method):
    """Hugging Face outputs are read as ``.logits`` by pyattrib (Captum gets a wrapper);
    token ids go to perturbation and layer methods, embeddings to input-gradient methods."""
    m, tensor_out, embedded, layer, target = text_model(name)
    ours, theirs = TEXT_CASES[method]
    assert rel(ours(m, embedded, layer, target), theirs(tensor_out, embedded, layer, target)) < 1e-4


def test_lstm_layer_and_neuron_methods():
    m = A.lstm()
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(3))
    ours = pa.layer_integrated_gradients(m, m.embedding)(ids, ids * 0, target=[0, 1, 2])
    theirs = C.LayerIntegratedGradients(m, m.embedding).attribute(ids, ids * 0, target=[0, 1, 2])
    assert rel(ours, theirs) < 1e-4
    out, (h, c) = pa.layer_activation(m, m.lstm)(ids)  # a tuple-valued layer, batch in dim 1 for h, c
    assert out.shape == (3, 7, 16) and h.shape == (1, 3, 16)


def test_tuple_valued_layer_with_callable_neurons_multi_target_and_noise():
    """On ``nn.LSTM``'s ``(out, (h, c))``: a callable neuron selector reads the tuple, and
    multi_target, smoothgrad and sensitivity_max keep each leaf in its own layout (the
    target dimension next to the batch, which is dimension 1 for ``h`` and ``c``)."""
    m = A.lstm()
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(3))
    emb = m.embedding(ids).detach()
    body = A.AfterEmbedding(m).eval()
    lstm = m.lstm

    pick = lambda value: value[1][0][0, :, 2]  # noqa: E731  unit 2 of the final hidden state h
    ours = pa.neuron_integrated_gradients(body, lstm, n_steps=16)(emb, neuron_selector=pick)
    # the neuron as a model of its own (Captum's neuron methods cannot clone a nested tuple here)
    theirs = C.IntegratedGradients(lambda e: pick(lstm(e))).attribute(emb, n_steps=16)
    assert rel(ours, theirs) < 1e-4

    layer_ig = pa.layer_integrated_gradients(m, lstm, n_steps=8)
    (out, (h, c)) = pa.multi_target(layer_ig, [0, 2])(ids)
    assert out.shape == (3, 2, 7, 16) and h.shape == (1, 3, 2, 16) and c.shape == (1, 3, 2, 16)
    for j, t in enumerate([0, 2]):
        one_out, (one_h, one_c) = layer_ig(ids, target=t)
        torch.testing.assert_close(out[:, j], one_out)
        torch.testing.assert_close(h[:, :, j], one_h)
        torch.testing.assert_close(c[:, :, j], one_c)

    noisy = pa.smoothgrad(pa.layer_gradient_x_activation(body, lstm), n_samples=4, stdevs=0.1)
    s_out, (s_h, _) = noisy(emb, target=1, generator=torch.Generator().manual_seed(0))
    assert s_out.shape == (3, 7, 16) and s_h.shape == (1, 3, 16)
    sens = pa.metrics.sensitivity_max(pa.layer_gradient_x_activation(body, lstm), n_samples=3)
    assert sens(emb, target=1).shape == (3,)


class MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.att, self.head = nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.att(x, x, x, need_weights=False)  # (out, None)
        return self.head(out.mean(1))


def test_none_leaves_in_layer_values_pass_through():
    """``nn.MultiheadAttention`` returns ``(out, None)``: the None comes back as None (Captum raises)."""
    m, x = MHA().eval(), torch.randn(2, 5, 8)
    (attr, none), delta = pa.layer_integrated_gradients(m, m.att, return_delta=True)(x, target=1)
    assert none is None and attr.shape == (2, 5, 8) and float(delta.abs().max()) < 1e-4
    out, none = pa.layer_activation(m, m.att)(x)
    torch.testing.assert_close(out, m.att(x, x, x, need_weights=False)[0])
    assert none is None


# ---- compat is Captum where the native DeepLift deliberately differs (captum_nonlinearities) ----

# ResNet-18: Captum raises (an in-place ReLU reused); MobileNetV3: hard-swish and a hard-sigmoid gate
DEEP_LIFT_VISION = {
    **{n: A.VISION[n] for n in ("mobilenet_v2", "efficientnet_b0", "vit")},
    "mobilenet_v3": A.mobilenet_v3,
}


@pytest.mark.parametrize("name", list(DEEP_LIFT_VISION))
def test_compat_deep_lift_is_captum_on_relu6_hardswish_silu_gelu_models(name):
    import pyattrib.compat as P

    m = DEEP_LIFT_VISION[name]()
    layer = first_block(name, m)
    assert rel(P.DeepLift(m).attribute(X, B, target=T), C.DeepLift(m).attribute(X, B, target=T)) < 1e-4
    ours = P.LayerDeepLift(m, layer).attribute(X, B, target=T)
    theirs = C.LayerDeepLift(m, layer).attribute(X, B, target=T)
    assert rel(ours, theirs) < 1e-4
    ours = P.NeuronDeepLift(m, layer).attribute(X, NEURON, B)
    assert rel(ours, C.NeuronDeepLift(m, layer).attribute(X, NEURON, B)) < 1e-4


@pytest.mark.parametrize("name", ["bert-eager", "gpt2-eager"])
def test_compat_layer_deep_lift_is_captum_on_bert_and_gpt2(name):
    import pyattrib.compat as P

    class Logits(nn.Module):  # Captum's DeepLift hooks a module: the model returning its logits
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model(ids).logits

    m, _, _, layer, target = text_model(name)
    ours = P.LayerDeepLift(m, layer).attribute(IDS, IDS * 0, target=target)
    theirs = C.LayerDeepLift(Logits(m), layer).attribute(IDS, IDS * 0, target=target)
    assert rel(ours, theirs) < 1e-4


def test_compat_lrp_is_captum_on_resnet18():
    """Captum's tensor hooks on ResNet-18's skip connections (captum_hooks); Captum refuses the other
    vision models (no rule for ReLU6, SiLU, LayerNorm) and the text models."""
    import pyattrib.compat as P

    m = A.VISION["resnet18"]()
    assert rel(P.LRP(m).attribute(X, target=T), C.LRP(m).attribute(X, target=T)) < 1e-4
    for layer in (m.layer2[0].conv2, m.layer2[1].conv1):  # the second reads a block's output, also its skip
        for to_input in (False, True):
            ours = P.LayerLRP(m, layer).attribute(X, target=T, attribute_to_layer_input=to_input)
            assert rel(ours, C.LayerLRP(m, layer).attribute(X, target=T, attribute_to_layer_input=to_input)) < 1e-4
