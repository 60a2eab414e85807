"""LRP: Captum agreement, conservation, rules checked by hand, model untouched."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LRP, LayerLRP
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib.lrp_rules import alpha1_beta0, epsilon, gamma, identity, z_plus

from . import models
from .test_reference_layer import close

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize(
    "make", [lambda: models.mlp(act=nn.ReLU), models.module_cnn, models.pool_cnn], ids=["mlp", "cnn", "pool-cnn"]
)
def test_lrp_epsilon_matches_captum(make):
    m = make()
    x = torch.randn(
        4, *((6,) if isinstance(m, nn.Sequential) else ((3, 8, 8) if isinstance(m, models.ModuleCNN) else (1, 8, 8)))
    )
    ours, delta = pa.lrp(m, return_delta=True, batch_size=3)(x, target=[0, 1, 2, 1])
    theirs, their_delta = LRP(m).attribute(x, target=[0, 1, 2, 1], return_convergence_delta=True)
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta.detach(), atol=1e-5, rtol=1e-4)


def test_rules_by_instance_and_type_match_captum():
    m = models.mlp(act=nn.ReLU)
    twin = models.mlp(act=nn.ReLU)
    twin[0].rule, twin[2].rule, twin[4].rule = GammaRule(), Alpha1_Beta0_Rule(), EpsilonRule(0.1)
    x = torch.randn(5, 6)
    theirs = LRP(twin).attribute(x, target=2)
    close(pa.lrp(m, rules={m[0]: gamma(), m[2]: alpha1_beta0(), m[4]: epsilon(0.1)})(x, target=2), theirs)
    # a type rule applies to every instance unless an instance rule overrides it
    twin2 = models.mlp(act=nn.ReLU)
    for layer in (twin2[0], twin2[2]):
        layer.rule = GammaRule()
    twin2[4].rule = EpsilonRule(0.1)
    close(pa.lrp(m, rules={nn.Linear: gamma(), m[4]: epsilon(0.1)})(x, target=2), LRP(twin2).attribute(x, target=2))


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_lrp_matches_captum(to_input):
    m = models.module_cnn()
    x = torch.randn(3, 3, 8, 8)
    close(
        pa.layer_lrp(m, m.conv2, attribute_to_layer_input=to_input)(x, target=[1, 0, 3]),
        LayerLRP(m, m.conv2).attribute(x, target=[1, 0, 3], attribute_to_layer_input=to_input),
    )


@given(seed=st.integers(0, 10_000), n=st.integers(1, 4))
def test_epsilon_conserves_relevance_without_bias(seed, n):
    torch.manual_seed(seed)
    m = (
        nn.Sequential(
            nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False)
        )
        .double()
        .eval()
    )
    x = torch.randn(n, 5, dtype=torch.float64)
    relevance, delta = pa.lrp(m, return_delta=True)(x, target=1)
    out = m(x)[:, 1].detach()
    assert (delta.abs() <= 1e-6 * (1 + out.abs())).all()
    torch.testing.assert_close(relevance.sum(1), out)


def test_rules_by_hand_on_one_layer():
    # one linear layer: R_i = x_i * w'_i * f(x) / z'(x) for the rule's weights w' (and bias)
    w = torch.tensor([[1.0, -2.0, 0.5]])
    b = torch.tensor([0.3])
    layer = nn.Linear(3, 1)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    m = nn.Sequential(layer).eval()
    x = torch.tensor([[1.0, 2.0, -1.0]])
    f = float(m(x))
    for rule, wp, bp in [
        (epsilon(0.0), w, b),
        (gamma(0.5), w + 0.5 * w.clamp(min=0), b),
        (alpha1_beta0(), w.clamp(min=0), b),
    ]:
        z = float(x @ wp.T + bp)
        expected = x * wp * f / z
        torch.testing.assert_close(pa.lrp(m, rules={nn.Linear: rule})(x, target=0), expected)
    # z+ (Zennit's, general in the input's sign): x+ w+ + x- w-, with b+ in the denominator
    xp, xn, wp, wn = x.clamp(min=0), x.clamp(max=0), w.clamp(min=0), w.clamp(max=0)
    contribution = xp * wp + xn * wn
    expected = contribution * f / float(contribution.sum() + b.clamp(min=0))
    torch.testing.assert_close(pa.lrp(m, rules={nn.Linear: z_plus()})(x, target=0), expected)


def test_identity_rule_passes_relevance():
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(3, 4)
    with_bn = pa.layer_lrp(m, m[1], attribute_to_layer_input=True, rules={nn.BatchNorm1d: identity()})(x, target=0)
    after_bn = pa.layer_lrp(m, m[1], rules={nn.BatchNorm1d: identity()})(x, target=0)
    torch.testing.assert_close(with_bn, after_bn)


def test_model_untouched_and_reused_module():
    class Reused(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.act(self.lin(self.act(self.lin(x)))))

    m = Reused().eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(3, 4)
    relevance = pa.lrp(m, rules={nn.Linear: gamma()})(x, target=0)
    assert torch.isfinite(relevance).all()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not any("forward" in mod.__dict__ for mod in m.modules())
    with pytest.raises(IndexError):
        pa.lrp(m)(x, target=5)
    assert not any("forward" in mod.__dict__ for mod in m.modules())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_fold_batchnorm_equals_lrp_on_the_prefolded_model():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Linear(5, 2),
    )
    with torch.no_grad():  # non-trivial running statistics
        for bn in (m[1], m[5]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    # the same function with each batch norm folded into the layer before it, by hand
    fused = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.ReLU(), nn.Linear(5, 2)
    ).eval()
    with torch.no_grad():
        for layer, bn, target in ((m[0], m[1], fused[0]), (m[4], m[5], fused[3])):
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            target.weight.copy_(layer.weight * s.reshape(-1, *[1] * (layer.weight.dim() - 1)))
            target.bias.copy_((layer.bias - bn.running_mean) * s + bn.bias)
        fused[5].load_state_dict(m[7].state_dict())
    x = torch.randn(3, 3, 6, 6)
    torch.testing.assert_close(m(x), fused(x), atol=1e-5, rtol=1e-5)
    for rule in (epsilon(1e-6), gamma(0.25), z_plus()):
        ours = pa.lrp(m, fold_batchnorm=True, rules={nn.Conv2d: rule, nn.Linear: rule})(x, target=1)
        reference = pa.lrp(fused, rules={nn.Conv2d: rule, nn.Linear: rule})(x, target=1)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not any("forward" in mod.__dict__ for mod in m.modules())
    # without folding, gamma acts on the unfolded weights and the batch norm gets its own
    # rule, so the result differs (LRP-epsilon alone is invariant to folding)
    g = {nn.Conv2d: gamma(0.25), nn.Linear: gamma(0.25)}
    assert not torch.allclose(pa.lrp(m, rules=g)(x, target=1), pa.lrp(fused, rules=g)(x, target=1), atol=1e-4)


class _FunctionalCNN(nn.Module):
    """``models.module_cnn`` written with F.conv2d / F.linear on its own parameters."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.p = nn.ParameterDict(
            {k.replace(".", "_"): nn.Parameter(v.detach().clone()) for k, v in twin.named_parameters()}
        )

    def forward(self, x):
        p = self.p
        h = F.max_pool2d(F.relu(F.conv2d(x, p["conv1_weight"], p["conv1_bias"], padding=1)), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, p["conv2_weight"], bias=p["conv2_bias"], padding=1)), 2)
        h = F.relu(F.linear(h.flatten(1), p["fc_weight"], p["fc_bias"]))
        return F.linear(h, weight=p["out_weight"], bias=p["out_bias"])


def test_functional_layers_get_the_rules_of_their_module_type():
    twin = models.module_cnn()
    functional = _FunctionalCNN(twin).eval()
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(functional(x), twin(x))
    close(pa.lrp(functional)(x, target=[1, 0, 3]), LRP(twin).attribute(x, target=[1, 0, 3]))
    for layer in (twin.fc, twin.out):
        layer.rule = GammaRule()
    close(pa.lrp(functional, rules={nn.Linear: gamma()})(x, target=1), LRP(twin).attribute(x, target=1))
    # the type rule reaches F.linear: gamma differs from the default epsilon
    assert not torch.allclose(
        pa.lrp(functional, rules={nn.Linear: gamma()})(x, target=1), pa.lrp(functional)(x, target=1)
    )
