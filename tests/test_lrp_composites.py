"""Zennit's composites (EpsilonPlusFlat, EpsilonGammaBox, EpsilonAlpha2Beta1), its canonizers
(batch norms merged, ResNet's residual sums) and the rules they need (flat, z^B box, z+,
alpha-beta, generalized gamma): equal to Zennit 0.5.1 itself on a CNN and on torchvision's
ResNet-18, and to the rules' formulas written out by hand on a small MLP."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib.lrp_rules import alpha_beta, epsilon, flat, gamma, z_box, z_plus


def _require_zennit() -> None:
    """Zennit 0.5.1, the reference (it imports torchvision, which tests/conftest.py serves)."""
    if os.environ.get("PYATTRIB_REQUIRE_REFS"):
        import zennit  # noqa: F401
    else:
        pytest.importorskip("zennit")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)).eval()


def _by_hand(model, x, target, first, middle, last):
    """Relevance at the input, layer by layer, each rule's formula written out (no autograd)."""
    a0 = x
    a1 = torch.relu(model[0](a0))
    a2 = torch.relu(model[2](a1))
    out = model[4](a2)
    relevance = torch.zeros_like(out)
    relevance[torch.arange(len(x)), target] = out[torch.arange(len(x)), target]
    for layer, a, rule in ((model[4], a2, last), (model[2], a1, middle), (model[0], a0, first)):
        relevance = rule(a, layer.weight, layer.bias, relevance)
    return relevance


def _stable(z, eps=1e-9):
    return z + eps * torch.where(z >= 0, 1.0, -1.0)


def eps_rule(eps):
    return lambda a, w, b, r: a * ((r / _stable(a @ w.T + b, eps)) @ w)


def gamma_rule(g):
    return lambda a, w, b, r: eps_rule(1e-9)(a, w + g * w.clamp(min=0), b, r)


def _signed(a, w, b):
    """``a``, ``w``, ``b`` split by sign."""
    return a.clamp(min=0), a.clamp(max=0), w.clamp(min=0), w.clamp(max=0), b.clamp(min=0), b.clamp(max=0)


def z_plus_rule(a, w, b, r):
    ap, an, wp, wn, bp, _ = _signed(a, w, b)
    c = r / _stable(ap @ wp.T + bp + an @ wn.T, 1e-6)
    return ap * (c @ wp) + an * (c @ wn)


def generalized_gamma_rule(g):
    def rule(a, w, b, r):
        ap, an, _, _, _, _ = _signed(a, w, b)
        up, down = (lambda t: t + g * t.clamp(min=0)), (lambda t: t + g * t.clamp(max=0))
        out = a @ w.T + b
        c_pos = (out > 0) * r / _stable(ap @ up(w).T + up(b) + an @ down(w).T, 1e-6)
        c_neg = (out < 0) * r / _stable(ap @ down(w).T + down(b) + an @ up(w).T, 1e-6)
        return ap * (c_pos @ up(w)) + an * (c_pos @ down(w)) + ap * (c_neg @ down(w)) + an * (c_neg @ up(w))

    return rule


def flat_rule(a, w, b, r):
    return torch.ones_like(a) * ((r / _stable(torch.ones_like(a) @ torch.ones_like(w).T, 1e-6)) @ torch.ones_like(w))


def box_rule(low, high):
    def rule(a, w, b, r):
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        lo, hi = torch.full_like(a, low), torch.full_like(a, high)
        c = r / _stable(a @ w.T - lo @ wp.T - hi @ wn.T, 1e-6)  # the bias cancels (Zennit's)
        return a * (c @ w) - lo * (c @ wp) - hi * (c @ wn)

    return rule


def alpha_beta_rule(alpha, beta):
    def rule(a, w, b, r):
        ap, an, wp, wn, bp, bn = _signed(a, w, b)
        c_pos = r / _stable(ap @ wp.T + bp + an @ wn.T, 1e-6)  # the positive contributions' share
        c_neg = r / _stable(ap @ wn.T + bn + an @ wp.T, 1e-6)  # the negative ones'
        return alpha * (ap * (c_pos @ wp) + an * (c_pos @ wn)) - beta * (ap * (c_neg @ wn) + an * (c_neg @ wp))

    return rule


CASES = {
    "flat first, epsilon": (flat(), epsilon(1e-6), epsilon(1e-6), flat_rule, eps_rule(1e-6), eps_rule(1e-6)),
    "box first, gamma": (z_box(-3.0, 3.0), gamma(0.25), epsilon(1e-6), box_rule(-3.0, 3.0), gamma_rule(0.25),
                         eps_rule(1e-6)),
    "alpha2-beta1, z+": (alpha_beta(2, 1), z_plus(), alpha_beta(2, 1), alpha_beta_rule(2, 1), z_plus_rule,
                         alpha_beta_rule(2, 1)),
    "generalized gamma": (gamma(0.25, generalized=True), gamma(0.5, generalized=True), epsilon(1e-6),
                          generalized_gamma_rule(0.25), generalized_gamma_rule(0.5), eps_rule(1e-6)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_rules_equal_their_formulas_written_out(case):
    ours_first, ours_middle, ours_last, first, middle, last = CASES[case]
    model = _mlp()
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 0, 1])
    got = pa.lrp(model, rules={model[0]: ours_first, model[2]: ours_middle, model[4]: ours_last})(x, target=target)
    with torch.no_grad():
        expected = _by_hand(model, x, target, first, middle, last)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_alpha_beta_needs_alpha_minus_beta_one():
    with pytest.raises(ArgumentError, match="alpha - beta must be 1"):
        alpha_beta(2, 2)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 10)).eval()  # fmt: skip


@pytest.mark.parametrize(
    "name, rules",
    [
        ("epsilon_plus_flat", lambda m, x: {m[0]: flat(), nn.Conv2d: z_plus(), nn.Linear: epsilon(1e-6)}),
        ("epsilon_gamma_box", lambda m, x: {m[0]: z_box(float(x.min()), float(x.max())),
                                            nn.Conv2d: gamma(0.25, generalized=True), nn.Linear: epsilon(1e-6)}),
        ("epsilon_alpha2_beta1", lambda m, x: {nn.Conv2d: alpha_beta(2, 1), nn.Linear: epsilon(1e-6)}),
    ],
)  # fmt: skip
def test_named_composites_are_their_rule_maps(name, rules):
    model = _cnn()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    got = pa.lrp(model, composite=name)(x, target=1)
    torch.testing.assert_close(got, pa.lrp(model, rules=rules(model, x))(x, target=1), atol=1e-6, rtol=1e-5)
    assert got.abs().sum() > 0


def test_composites_as_objects_and_on_a_layer():
    model = _cnn()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    boxed = pa.lrp(model, composite=pa.lrp_rules.epsilon_gamma_box(0.0, 1.0))(x, target=2)
    by_rules = pa.lrp(model, rules={model[0]: z_box(0.0, 1.0), nn.Conv2d: gamma(0.25, generalized=True),
                                    nn.Linear: epsilon(1e-6)})  # fmt: skip
    torch.testing.assert_close(boxed, by_rules(x, target=2), atol=1e-6, rtol=1e-5)
    layer = pa.layer_lrp(model, model[2], composite="epsilon_plus_flat")(x, target=2)
    assert layer.shape == (3, 4, 4, 4)
    # relevance conserved up to what the layers' biases take: epsilon_plus_flat on a bias-free CNN
    bias_free = _cnn()
    for m in bias_free:
        if getattr(m, "bias", None) is not None:
            m.bias = None
    relevance = pa.lrp(bias_free, composite="epsilon_plus_flat")(x, target=2)
    with torch.no_grad():
        logit = bias_free(x)[:, 2]
    torch.testing.assert_close(relevance.sum((1, 2, 3)), logit, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"])
def test_composites_on_the_resnet_of_the_architecture_matrix(name):
    """Batch norms folded into their convolutions (the canonizer), residual sums split, the
    composite's rules elsewhere: the same as its rule map, and the relevance measured against the
    logit (biases, folded norms included, take a share: not conserved exactly)."""
    from . import architectures

    model = architectures.resnet18().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got, lost = pa.lrp(model, composite=name, fold_batchnorm=True, return_delta=True)(x, target=3)
    composite = {"epsilon_plus_flat": pa.lrp_rules.epsilon_plus_flat, "epsilon_gamma_box": pa.lrp_rules.epsilon_gamma_box,
                 "epsilon_alpha2_beta1": pa.lrp_rules.epsilon_alpha2_beta1}[name]()  # fmt: skip
    by_map = pa.lrp(model, rules=composite.rules(model, (x,)), fold_batchnorm=True)(x, target=3)
    torch.testing.assert_close(got, by_map, atol=1e-6, rtol=1e-5)
    assert torch.isfinite(got).all() and torch.isfinite(lost).all() and got.abs().sum() > 0


def _zennit(model, composite, x, target):
    """Zennit's relevance at the input, its output relevance the target's logit (pa.lrp's start)."""
    from zennit.attribution import Gradient

    with Gradient(model=model, composite=composite) as attributor:
        out = model(x)
        start = torch.zeros_like(out)
        rows = torch.arange(len(x))
        start[rows, target] = out[rows, target].detach()
        return attributor(x, start)[1]


def _zennit_composites(x):
    from zennit import composites

    box = {"low": torch.full_like(x, -4.0), "high": torch.full_like(x, 4.0)}
    return {
        "epsilon_plus_flat": (composites.EpsilonPlusFlat, {}, pa.lrp_rules.epsilon_plus_flat()),
        "epsilon_alpha2_beta1": (composites.EpsilonAlpha2Beta1, {}, pa.lrp_rules.epsilon_alpha2_beta1()),
        "epsilon_gamma_box": (composites.EpsilonGammaBox, box, pa.lrp_rules.epsilon_gamma_box(-4.0, 4.0)),
    }


@pytest.mark.parametrize("name", ["epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_gamma_box"])
def test_composites_equal_zennit_on_a_cnn(name):
    """Batch norm, leaky ReLU, max and adaptive average pooling: each treated as Zennit's base map
    treats it (passed, passed, by the gradient, in proportion)."""
    _require_zennit()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.LeakyReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(6, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 10)).eval()  # fmt: skip
    with torch.no_grad():
        model[3].running_mean.uniform_(-0.5, 0.5)
        model[3].running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 2, 3])
    make, options, ours = _zennit_composites(x)[name]
    expected = _zennit(model, make(**options), x, target)
    got = pa.lrp(model, composite=ours)(x, target=target)
    torch.testing.assert_close(got, expected, atol=1e-6 * float(expected.abs().max()), rtol=1e-4)


@pytest.mark.parametrize("name", ["epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_gamma_box"])
def test_canonized_resnet_equals_zennit(name):
    """torchvision's ResNet-18 under Zennit's ResNetCanonizer (batch norms merged into their
    convolutions, each residual sum a module distributing in proportion) and under
    ``fold_batchnorm=True`` (folded functionally; sums split by ``split_sums``): the same relevance."""
    _require_zennit()
    import torchvision
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([3, 5])
    make, options, ours = _zennit_composites(x)[name]
    got = pa.lrp(model, composite=ours, fold_batchnorm=True)(x, target=target)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # folded functionally
    expected = _zennit(model, make(canonizers=[ResNetCanonizer()], **options), x, target)
    torch.testing.assert_close(got, expected, atol=1e-5 * float(expected.abs().max()), rtol=1e-4)


@pytest.mark.parametrize("composite", ["epsilon_gamma_box", "epsilon_alpha2_beta1", "attnlrp"])
def test_composites_compose_with_vmap(composite):
    """The rules' pullbacks run inside the backward; under torch.func.vmap of the attributor they
    go through torch.func, and each example's relevance is the batched call's row."""
    model = _cnn() if composite != "attnlrp" else nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3)).eval()
    x = torch.rand(3, *((1, 8, 8) if composite != "attnlrp" else (6,)), generator=torch.Generator().manual_seed(4))
    chosen = pa.lrp_rules.epsilon_gamma_box(0.0, 1.0) if composite == "epsilon_gamma_box" else composite
    explain = pa.lrp(model, composite=chosen)
    per_example = torch.func.vmap(lambda xi: explain(xi[None], target=1)[0])(x)
    torch.testing.assert_close(per_example, explain(x, target=1), atol=1e-6, rtol=1e-5)


# left out, conservative only where each output has contributions of both signs (as in Zennit):
# z+ (an output with no positive contribution loses its relevance) and alpha-beta (the missing
# group's share, beta R or alpha R, is created or lost)
CONSERVATIVE = {"epsilon": epsilon(1e-6), "gamma": gamma(0.25), "generalized gamma": gamma(0.25, generalized=True),
                "flat": flat(), "box": z_box(-3.0, 3.0)}  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(CONSERVATIVE)))
def test_each_rule_conserves_relevance_on_bias_free_layers(seed, name):
    """Layer by layer, each rule hands on the relevance it receives, up to what its stabiliser
    absorbs (``eps`` of ``z``): on a bias-free ReLU net the input's relevance sums to the logit.
    (With biases each rule but flat and the box gives the biases their share: see the guide.)"""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 16, bias=False), nn.ReLU(),
                          nn.Linear(16, 4, bias=False)).eval()  # fmt: skip
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(seed)).clamp(-3.0, 3.0)
    relevance, lost = pa.lrp(model, rules={nn.Linear: CONSERVATIVE[name]}, return_delta=True)(x, target=0)
    with torch.no_grad():
        logit = model(x)[:, 0]
    assert torch.all(lost.abs() <= 1e-3 * logit.abs() + 1e-5), (name, lost, logit)
