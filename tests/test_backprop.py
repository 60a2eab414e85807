"""DeepLift(+SHAP), guided backprop, deconvolution, Guided Grad-CAM: Captum agreement,
completeness, and the cases where module hooks fail."""

import sys

import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GuidedBackprop,
    GuidedGradCam,
    LayerDeepLift,
    LayerDeepLiftShap,
    NeuronDeconvolution,
    NeuronDeepLift,
    NeuronDeepLiftShap,
    NeuronGuidedBackprop,
)
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib import testing as T

from . import models
from .test_reference_layer import close

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _setups():
    g = torch.Generator().manual_seed(5)
    two = models.two_inputs()
    cnn = models.module_cnn()
    return {
        "mlp-relu": dict(
            model=models.mlp(act=nn.ReLU),
            layer=None,
            x=torch.randn(5, 6, generator=g),
            b=torch.randn(5, 6, generator=g),
            target=[0, 1, 2, 1, 0],
            args=None,
        ),
        "mlp-sigmoid": dict(
            model=models.mlp(act=nn.Sigmoid), layer=None, x=torch.randn(5, 6, generator=g), b=0.3, target=1, args=None
        ),
        "pool-cnn": dict(
            model=models.pool_cnn(),
            layer=None,
            x=torch.randn(3, 1, 8, 8, generator=g),
            b=0.1 * torch.randn(3, 1, 8, 8, generator=g),
            target=[0, 2, 1],
            args=None,
        ),
        "multi-input": dict(
            model=two,
            layer=two.mix,
            x=(torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)),
            b=(0.2, torch.zeros(1, 3)),
            target=1,
            args=(torch.rand(4, generator=g) + 0.5, 0.1),
        ),
        "module-cnn": dict(
            model=cnn, layer=cnn.conv2, x=torch.randn(3, 3, 8, 8, generator=g), b=None, target=[3, 0, 1], args=None
        ),
    }


SETUPS = _setups()
DEEPLIFT_SETUPS = ["mlp-relu", "mlp-sigmoid", "multi-input", "pool-cnn", "module-cnn"]
POOLED = {"pool-cnn", "module-cnn"}  # max-pool networks: Captum's delta need not be zero there


def kw(s):
    return {"target": s["target"], "additional_forward_args": s["args"]}


@pytest.mark.parametrize("name", DEEPLIFT_SETUPS)
@pytest.mark.parametrize("batch_size", [None, 4])
def test_deep_lift_matches_captum(name, batch_size):
    s = SETUPS[name]
    ours, delta = pa.deep_lift(s["model"], batch_size=batch_size, return_delta=True)(s["x"], s["b"], **kw(s))
    theirs, their_delta = DeepLift(s["model"]).attribute(s["x"], s["b"], return_convergence_delta=True, **kw(s))
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-5, rtol=1e-4)
    assert name in POOLED or delta.abs().max() < 1e-5
    # not multiplied: the multipliers themselves
    close(
        pa.deep_lift(s["model"], multiply_by_inputs=False)(s["x"], s["b"], **kw(s)),
        DeepLift(s["model"], multiply_by_inputs=False).attribute(s["x"], s["b"], **kw(s)),
    )


@pytest.mark.parametrize("name", DEEPLIFT_SETUPS)
def test_deep_lift_shap_matches_captum(name):
    s = SETUPS[name]
    xs = s["x"] if isinstance(s["x"], tuple) else (s["x"],)
    g = torch.Generator().manual_seed(2)
    refs = tuple(torch.randn(5, *x.shape[1:], generator=g) for x in xs)
    refs = refs if isinstance(s["x"], tuple) else refs[0]
    ours, delta = pa.deep_lift_shap(s["model"], batch_size=6, return_delta=True)(s["x"], refs, **kw(s))
    theirs, their_delta = DeepLiftShap(s["model"]).attribute(s["x"], refs, return_convergence_delta=True, **kw(s))
    assert name in POOLED or delta.abs().max() < 1e-5
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta.reshape(delta.shape[0], -1).mean(1), atol=1e-5, rtol=1e-4)


def test_custom_attribution_func():
    s = SETUPS["mlp-relu"]

    def squared(multipliers, inputs, baselines):
        return tuple(m * (x - b) ** 2 for m, x, b in zip(multipliers, inputs, baselines))

    close(
        pa.deep_lift(s["model"], custom_attribution_func=squared)(s["x"], s["b"], target=1),
        DeepLift(s["model"]).attribute(s["x"], s["b"], target=1, custom_attribution_func=squared),
    )


@pytest.mark.parametrize("name", ["multi-input", "mlp-relu", "module-cnn"])
def test_layer_and_neuron_deep_lift_match_captum(name):
    s = SETUPS[name]
    m = s["model"]
    # a linear/conv layer: on a nonlinearity module, Captum reads the gradient at the layer
    # input before that module's own rule is applied (its totals do not conserve there)
    layer = [mod for mod in m.modules() if isinstance(mod, (nn.Linear, nn.Conv2d))][-1 if name == "multi-input" else 1]
    close(
        pa.layer_deep_lift(m, layer)(s["x"], s["b"], **kw(s)),
        LayerDeepLift(m, layer).attribute(s["x"], s["b"], **kw(s)),
    )
    close(
        pa.layer_deep_lift(m, layer, attribute_to_layer_input=True)(s["x"], s["b"], **kw(s)),
        LayerDeepLift(m, layer).attribute(s["x"], s["b"], attribute_to_layer_input=True, **kw(s)),
    )
    xs = s["x"] if isinstance(s["x"], tuple) else (s["x"],)
    refs = tuple(torch.randn(3, *x.shape[1:], generator=torch.Generator().manual_seed(0)) for x in xs)
    refs = refs if isinstance(s["x"], tuple) else refs[0]
    close(
        pa.layer_deep_lift_shap(m, layer)(s["x"], refs, **kw(s)),
        LayerDeepLiftShap(m, layer).attribute(s["x"], refs, **kw(s)),
    )
    out = pa.layer_activation(m, layer)(s["x"], additional_forward_args=s["args"])
    sel = tuple([1] * (out.dim() - 1))
    args = s["args"]
    close(
        pa.neuron_deep_lift(m, layer)(s["x"], s["b"], neuron_selector=sel, additional_forward_args=args),
        NeuronDeepLift(m, layer).attribute(s["x"], sel, s["b"], additional_forward_args=args),
    )
    close(
        pa.neuron_deep_lift_shap(m, layer)(s["x"], refs, neuron_selector=sel, additional_forward_args=args),
        NeuronDeepLiftShap(m, layer).attribute(s["x"], sel, refs, additional_forward_args=args),
    )


@pytest.mark.parametrize("name", ["module-cnn", "pool-cnn", "mlp-relu", "multi-input"])
def test_guided_family_matches_captum(name):
    s = SETUPS[name]
    m = s["model"]
    close(pa.guided_backprop(m)(s["x"], **kw(s)), GuidedBackprop(m).attribute(s["x"], **kw(s)))
    close(pa.deconvolution(m, batch_size=2)(s["x"], **kw(s)), Deconvolution(m).attribute(s["x"], **kw(s)))
    layer = s["layer"] or [mod for mod in m.modules() if isinstance(mod, (nn.Linear, nn.Conv2d))][1]
    args = s["args"]
    value = pa.layer_activation(m, layer)(s["x"], additional_forward_args=args)
    sel = tuple([1] + [0] * (value.dim() - 2))
    close(
        pa.neuron_guided_backprop(m, layer)(s["x"], neuron_selector=sel, additional_forward_args=args),
        NeuronGuidedBackprop(m, layer).attribute(s["x"], sel, additional_forward_args=args),
    )
    close(
        pa.neuron_deconvolution(m, layer)(s["x"], neuron_selector=sel, additional_forward_args=args),
        NeuronDeconvolution(m, layer).attribute(s["x"], sel, additional_forward_args=args),
    )


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_guided_gradcam_matches_captum(mode):
    s = SETUPS["module-cnn"]
    m = s["model"]
    for to_input in (False, True):
        close(
            pa.guided_gradcam(m, m.conv2, interpolate_mode=mode, attribute_to_layer_input=to_input)(
                s["x"], target=s["target"]
            ),
            GuidedGradCam(m, m.conv2).attribute(
                s["x"], target=s["target"], interpolate_mode=mode, attribute_to_layer_input=to_input
            ),
        )


def test_softmax_module_is_centred_per_example():
    """Captum centres softmax multipliers over the whole batch tensor, so an example's
    attribution depends on the others; pyattrib centres each softmax vector on its own.
    One example at a time both agree; ``captum_softmax=True`` gives Captum's batch numbers."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.Softmax(1)).eval()
    x, b = torch.randn(4, 6), torch.randn(4, 6)
    t = [0, 1, 2, 0]
    ours = pa.deep_lift(m)(x, b, target=t)
    for i in range(4):  # batch independent, and Captum's number for the example alone
        alone = DeepLift(m).attribute(x[i : i + 1], b[i : i + 1], target=t[i])
        close(ours[i : i + 1], alone)
    captum_batch = DeepLift(m).attribute(x, b, target=t)
    assert not torch.allclose(ours, captum_batch, atol=1e-4)  # Captum's batch coupling
    close(pa.deep_lift(m, captum_softmax=True)(x, b, target=t), captum_batch)


@given(
    model=T.mlps(d_in=4, d_out=2, activations=(nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU, nn.LeakyReLU)),
    x=T.batches(4),
    b=T.batches(4, max_batch=1),
    target=st.integers(0, 1),
)
def test_deep_lift_summation_to_delta(model, x, b, target):
    base = b.expand_as(x)
    _, delta = pa.deep_lift(model, return_delta=True)(x, base, target=target)
    with torch.no_grad():
        gap = (model(x) - model(base))[:, target]
    assert (delta.abs() <= 1e-5 * gap.abs() + 1e-12).all()


@pytest.mark.parametrize("make", [pa.deep_lift, pa.layer_deep_lift], ids=["deep_lift", "layer_deep_lift"])
def test_deep_lift_conserves_on_max_pool_networks(make):
    s = SETUPS["pool-cnn"]
    m = s["model"]
    exact = {"exact_max_pool": True, "return_delta": True}
    attributor = make(m, **exact) if make is pa.deep_lift else make(m, m.conv2, **exact)
    attr, delta = attributor(s["x"], s["b"], target=s["target"])
    assert delta.abs().max() < 1e-5 and attr.abs().max() > 1e-3
    _, delta = pa.deep_lift_shap(m, batch_size=5, **exact)(s["x"], torch.randn(4, 1, 8, 8), target=s["target"])
    assert delta.abs().max() < 1e-5


@pytest.mark.parametrize("order", ["relu-pool", "pool-relu"])
def test_max_pool_chains_follow_captum_unless_exact(order):
    # Captum hands the op next to a max pool the pool's ordinary gradient (its hooks share a
    # tensor), so its delta is not zero; the default reproduces that, exact_max_pool conserves.
    torch.manual_seed(0)
    act = [nn.ReLU(), nn.MaxPool2d(2)] if order == "relu-pool" else [nn.MaxPool2d(2), nn.ReLU()]
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), *act, nn.Flatten(), nn.Linear(64, 4)).eval()
    torch.manual_seed(1)
    x, b = torch.randn(2, 3, 8, 8), 0.1 * torch.randn(2, 3, 8, 8)
    b[:, :, :3] = x[:, :, :3]  # rows where input and reference agree: the |dx| < eps fallbacks
    ours, delta = pa.deep_lift(m, return_delta=True)(x, b, target=0)
    theirs, their_delta = DeepLift(m).attribute(x, b, target=0, return_convergence_delta=True)
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-5, rtol=1e-4)
    assert their_delta.abs().max() > 1e-3
    exact, exact_delta = pa.deep_lift(m, return_delta=True, exact_max_pool=True)(x, b, target=0)
    assert exact_delta.abs().max() < 1e-5 and not torch.allclose(exact, theirs)


def test_chained_elementwise_nonlinearities_conserve_where_captum_does_not():
    # Captum's hooks give ReLU the sigmoid's ordinary gradient here too; we keep the chain
    # rule off max-pool networks (README: deliberate differences)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Sigmoid(), nn.Linear(6, 2)).eval()
    x, b = torch.randn(4, 5), torch.randn(4, 5)
    _, delta = pa.deep_lift(m, return_delta=True)(x, b, target=1)
    _, their_delta = DeepLift(m).attribute(x, b, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-5 < 1e-3 < their_delta.abs().max()


def test_functional_max_pool_network_equals_captum_on_module_twin():
    m = models.pool_cnn()

    def functional(x):
        h = F.max_pool2d(F.relu(m.conv1(x)), 2)
        return m.fc(F.max_pool2d(torch.relu(m.conv2(h)), 2).flatten(1))

    s = SETUPS["pool-cnn"]
    close(
        pa.deep_lift(functional)(s["x"], s["b"], target=s["target"]),
        DeepLift(m).attribute(s["x"], s["b"], target=s["target"]),
    )


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
@pytest.mark.parametrize("style", ["functional", "inplace", "reused"])
def test_functional_inplace_and_reused_equal_module_twin(style, act):
    twin, other = models.Functional("module", act).eval(), models.Functional(style, act).eval()
    x, b = torch.randn(4, 6), torch.randn(4, 6)
    for make in (pa.deep_lift, pa.guided_backprop, pa.deconvolution):
        call = (lambda f: f(x, b, target=1)) if make is pa.deep_lift else (lambda f: f(x, target=1))
        torch.testing.assert_close(call(make(other)), call(make(twin)))
    # Captum only sees the module form: our module twin equals Captum
    torch.testing.assert_close(pa.deep_lift(twin)(x, b, target=1), DeepLift(twin).attribute(x, b, target=1))
    if style == "functional":  # Captum silently falls back to plain gradients here
        assert (
            not torch.allclose(DeepLift(other).attribute(x, b, target=1), pa.deep_lift(other)(x, b, target=1))
            or act == "relu"
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gives_finite_attributions(dtype):
    m = models.mlp(act=nn.ReLU).to(dtype)
    x = torch.randn(4, 6).to(dtype)
    b = x.clone()
    b[:, :3] = 0  # many unchanged units: the 0/0 case
    attr, delta = pa.deep_lift(m, return_delta=True)(x, b, target=0)
    assert attr.dtype == dtype and torch.isfinite(attr).all() and torch.isfinite(delta).all()
    assert torch.isfinite(pa.guided_backprop(m)(x, target=0)).all()
    refs = torch.randn(3, 6).to(dtype)
    assert torch.isfinite(pa.deep_lift_shap(m)(x, refs, target=0)).all()


def test_overrides_leave_nothing_behind():
    m = models.Functional("inplace").eval()
    x = torch.randn(2, 6)
    with pytest.raises(IndexError):
        pa.deep_lift(m)(x, target=7)
    # no mode left active: plain autograd gives ordinary gradients again
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(m(xg)[:, 1].sum(), xg)
    torch.testing.assert_close(g, pa.saliency(m, abs=False)(x, target=1))
    assert torch._C._is_torch_function_mode_enabled() is False


def test_deep_lift_composes_with_vmap_and_compile():
    # the |dx| < eps fallbacks and the max-pool hand-off inside torch.func.vmap and torch.compile
    m = models.module_cnn()
    g = torch.Generator().manual_seed(3)
    x, b = torch.randn(3, 3, 8, 8, generator=g), 0.1 * torch.randn(3, 3, 8, 8, generator=g)
    b[:, :, :3] = x[:, :, :3]
    dl = pa.deep_lift(m)
    eager = dl(x, b, target=1)
    close(eager, DeepLift(m).attribute(x, b, target=1))
    per_example = torch.func.vmap(lambda xi, bi: dl(xi[None], bi[None], target=1)[0])(x, b)
    torch.testing.assert_close(per_example, eager, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.compile(lambda x, b: dl(x, b, target=1))(x, b), eager, atol=1e-6, rtol=1e-5)


def _saved_during(m, run):
    """The tensors autograd saves while ``run()`` builds its graph, and the outputs of m[0]."""
    pre_relu, saved = [], []
    handle = m[0].register_forward_hook(lambda mod, args, out: pre_relu.append(out))

    def pack(t):
        saved.append(t)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run()
    finally:
        handle.remove()
    return saved, pre_relu


@pytest.mark.parametrize("make", [pa.guided_backprop, pa.deconvolution])
def test_rules_that_read_only_the_output_do_not_keep_the_relu_input(make):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    saved, pre_relu = _saved_during(m, lambda: make(m)(torch.randn(4, 6), target=1))
    assert pre_relu and not any(s is h for s in saved for h in pre_relu)  # ReLU keeps its output only


def test_in_place_activation_keeps_one_copy_for_deep_lift():
    """An in-place ReLU6 under DeepLift's rule: its input copy is kept and its output
    recomputed in the backward (keeping both cost Captum's memory + 34% on MobileNetV2);
    attributions are unchanged and still conserve."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU6(inplace=True), nn.Linear(16, 3)).eval()
    x, b = torch.randn(4, 6) * 4, torch.randn(4, 6)
    saved, _ = _saved_during(m, lambda: pa.deep_lift(m)(x, b, target=1))
    hidden = [t for t in saved if t.shape == (8, 16)]  # inputs and references stacked
    assert len(hidden) == 2  # the input copy for the rule, and what the last Linear keeps
    attr, delta = pa.deep_lift(m, return_delta=True)(x, b, target=1)
    twin = nn.Sequential(m[0], nn.ReLU6(), m[2]).eval()
    torch.testing.assert_close(attr, pa.deep_lift(twin)(x, b, target=1))
    assert float(delta.abs().max()) < 1e-5


def test_lrp_relu_pass_through_does_not_keep_the_relu_input():
    # LRP's rules run torch.func in the backward, which refuses saved-tensor hooks: record
    # what the forward under its rule context saves
    relevance_rules = sys.modules["pyattrib.lrp_rules"].relevance_rules
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def run():
        with relevance_rules(m, {}):
            m(torch.randn(4, 6, requires_grad=True))

    saved, pre_relu = _saved_during(m, run)
    assert pre_relu and not any(s is h for s in saved for h in pre_relu)


@pytest.mark.parametrize(
    "func, rest, opts",
    [
        (F.relu6, (False,), {}),
        (F.hardtanh, (-0.5, 2.0, False), {}),
        (F.hardtanh, (), {"min_val": -2.0, "max_val": 0.5}),
        (F.hardswish, (False,), {}),
        (F.hardsigmoid, (False,), {}),
        (F.silu, (False,), {}),
        (F.mish, (False,), {}),
        (F.gelu, (), {"approximate": "tanh"}),
        (F.gelu, (), {}),
        (F.leaky_relu, (0.2, False), {}),
        (F.softplus, (2.0, 1.0), {}),
        (F.elu, (0.7, False), {}),
    ],
)
def test_ordinary_gradient_formulas_equal_autograd(func, rest, opts):
    """The ordinary gradient that DeepLift's fallback (|x - x'| < eps) uses comes from aten's
    backward kernel bound to the call's own parameters: equal to autograd's."""
    from pyattrib._core.overrides import _bind

    x, g = torch.randn(64) * 4, torch.randn(64)
    op = _bind(func, rest, opts)
    _, vjp = torch.func.vjp(op, x)
    torch.testing.assert_close(op.formula(g, x), vjp(g)[0])
