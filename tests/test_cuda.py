"""Device tests: every method family on a GPU gives the CPU's numbers, on the GPU.

They run where CUDA is present and skip otherwise. ``PYATTRIB_TEST_DEVICE=cpu`` runs the
same code paths on the CPU (a smoke test of this file where no GPU is lent).
"""

from __future__ import annotations

import os

import pytest
import torch
from captum.attr import IntegratedGradients

import pyattrib as pa

from . import models

DEVICE = os.environ.get("PYATTRIB_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
on_device = pytest.mark.skipif(DEVICE is None, reason="needs a CUDA device")


PATCHES = (torch.arange(8)[:, None] // 4 * 2 + torch.arange(8)[None, :] // 4).expand(1, 3, 8, 8)

# name -> (attributor for a model, keyword arguments of the call); deterministic methods
DETERMINISTIC = {
    "saliency": (lambda m: pa.saliency(m), {}),
    "input_x_gradient": (lambda m: pa.input_x_gradient(m), {}),
    "integrated_gradients": (lambda m: pa.integrated_gradients(m, n_steps=16), {}),
    "deep_lift": (lambda m: pa.deep_lift(m), {}),
    "guided_backprop": (lambda m: pa.guided_backprop(m), {}),
    "deconvolution": (lambda m: pa.deconvolution(m), {}),
    "lrp": (lambda m: pa.lrp(m), {}),
    "layer_gradcam": (lambda m: pa.layer_gradcam(m, m[3]), {}),
    "layer_integrated_gradients": (lambda m: pa.layer_integrated_gradients(m, m[0], n_steps=16), {}),
    "layer_conductance": (lambda m: pa.layer_conductance(m, m[3], n_steps=16), {}),
    "neuron_gradient": (lambda m: pa.neuron_gradient(m, m[3]), {"neuron_selector": (1, 2, 2)}),
    "occlusion": (lambda m: pa.occlusion(m, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2)), {}),
    "feature_ablation": (lambda m: pa.feature_ablation(m), {"feature_mask": PATCHES}),
    "shapley_values": (lambda m: pa.shapley_values(m), {"feature_mask": PATCHES}),
    # the CAM family and PAIR's path methods (the principal components' sign rule is the same on every device)
    "grad_cam_plus_plus": (lambda m: pa.grad_cam_plus_plus(m, m[3]), {}),
    "layer_cam": (lambda m: pa.layer_cam(m, m[3], aug_smooth=True), {}),
    "eigen_cam": (lambda m: pa.eigen_cam(m, m[3]), {}),
    "kpca_cam": (lambda m: pa.kpca_cam(m, m[3]), {}),
    "score_cam": (lambda m: pa.score_cam(m, m[3], batch_size=16), {}),
    "ablation_cam": (lambda m: pa.ablation_cam(m, m[3], batch_size=16), {}),
    "full_grad": (lambda m: pa.full_grad(m), {}),
    "blur_ig": (lambda m: pa.blur_ig(m, max_sigma=3.0, n_steps=8), {}),
    "guided_ig": (lambda m: pa.guided_ig(m, n_steps=8), {}),
    "xrai": (lambda m: pa.xrai(m, n_steps=8, min_pixel_diff=2), {}),
}


@on_device
@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_method_on_device_matches_cpu(name):
    make, kw = DETERMINISTIC[name]
    x = torch.randn(4, 3, 8, 8)
    if not name.startswith("neuron"):  # neuron methods explain one unit, not a target output
        kw = {**kw, "target": torch.tensor([0, 1, 2, 3])}
    cpu = make(models.relu_cnn())(x, **kw)
    on = {k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    out = make(models.relu_cnn().to(DEVICE))(x.to(DEVICE), **on)
    assert out.device.type == DEVICE and out.dtype == cpu.dtype
    torch.testing.assert_close(out.cpu(), cpu, atol=1e-4, rtol=1e-3)


@on_device
@pytest.mark.parametrize(
    "make, masked",
    [
        (lambda m: pa.smoothgrad(pa.saliency(m), stdevs=0.1), False),
        (lambda m: pa.shapley_value_sampling(m, n_samples=4), True),
        (lambda m: pa.kernel_shap(m, n_samples=40), True),
        (lambda m: pa.lime(m, n_samples=40, interpretable_model="linear"), True),
    ],
    ids=["smoothgrad", "shapley_value_sampling", "kernel_shap", "lime"],
)
def test_random_methods_draw_on_the_inputs_device(make, masked):
    """Random methods draw from a generator on the inputs' device, and the same seed gives
    the same result."""
    model, x = models.relu_cnn().to(DEVICE), torch.randn(3, 3, 8, 8, device=DEVICE)
    kw = {"feature_mask": PATCHES.to(DEVICE)} if masked else {}
    runs = [make(model)(x, target=1, generator=torch.Generator(device=DEVICE).manual_seed(0), **kw) for _ in range(2)]
    assert runs[0].device.type == DEVICE and torch.isfinite(runs[0]).all()
    torch.testing.assert_close(runs[0], runs[1])


@on_device
def test_shapley_sampling_is_efficient_on_device():
    model, x = models.relu_cnn().to(DEVICE), torch.randn(3, 3, 8, 8, device=DEVICE)
    attr = pa.shapley_value_sampling(model, n_samples=3)(
        x, target=1, feature_mask=PATCHES.to(DEVICE), generator=torch.Generator(device=DEVICE).manual_seed(0)
    )
    with torch.no_grad():
        rise = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    per_patch = attr[:, 0, ::4, ::4]  # one element of each 4x4 patch holds the patch's value
    torch.testing.assert_close(per_patch.sum((1, 2)), rise, atol=1e-4, rtol=1e-4)


@on_device
def test_integrated_gradients_on_device_matches_captum():
    model = models.cnn().to(DEVICE)
    x, target = torch.randn(4, 3, 8, 8, device=DEVICE), [0, 1, 2, 3]
    ours = pa.integrated_gradients(model, n_steps=10)(x, target=torch.tensor(target, device=DEVICE))
    theirs = IntegratedGradients(model).attribute(x, target=target, n_steps=10)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)


@on_device
def test_compiled_attribution_on_device_matches_eager():
    model, x = models.relu_cnn().to(DEVICE), torch.randn(4, 3, 8, 8, device=DEVICE)
    target = torch.tensor([0, 1, 2, 3], device=DEVICE)
    torch._dynamo.reset()
    for make in (lambda: pa.saliency(model), lambda: pa.layer_gradcam(model, model[3])):
        compiled = torch.compile(make(), fullgraph=True)
        torch.testing.assert_close(compiled(x, target=target), make()(x, target=target), atol=1e-5, rtol=1e-4)


@on_device
def test_patching_on_device_matches_cpu():
    """Activation patching, AtP* and EAP-IG on a GPT-2 on the device: the CPU's numbers, every
    tensor they make on the device."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=60, n_positions=16, bos_token_id=0,
                                  eos_token_id=0, attn_implementation="eager")  # fmt: skip
    model = transformers.GPT2LMHeadModel(cfg).eval()
    clean = torch.randint(1, 60, (3, 8))
    corrupted = clean.clone()
    corrupted[:, 2] = torch.tensor([4, 9, 11])
    metric = pa.patching.logit_diff(5, 7)
    sites = {"resid": pa.patching.positions(model.transformer.h, to_input=True), "q": pa.patching.queries(model)}
    calls = {
        "patch": lambda m: pa.patching.activation_patching(m, sites, metric),
        "atp*": lambda m: pa.patching.attribution_patching(
            m, sites, metric, score="effect", qk_fix=True, grad_drop=True
        ),  # fmt: skip
        "eap-ig": lambda m: (
            lambda c, x: pa.patching.edge_attribution_patching(m, metric, method="eap-ig", n_steps=3)(c, x).scores
        ),  # fmt: skip
    }
    want = {k: make(model)(clean, corrupted) for k, make in calls.items()}
    model.to(DEVICE)
    for k, make in calls.items():
        got = make(model)(clean.to(DEVICE), corrupted.to(DEVICE))
        for a, b in zip(pytree_leaves(got), pytree_leaves(want[k])):
            assert a.device.type == torch.device(DEVICE).type
            torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=1e-4)


def pytree_leaves(value):
    return list(value.values()) if isinstance(value, dict) else [value]


@on_device
def test_metrics_on_device_match_cpu():
    """Quantus's catalogue on the device: the CPU's numbers for the deterministic metrics; the
    random ones draw from a generator on the device (whose stream is not the CPU's), every
    tensor on the inputs' device."""
    model, x = models.relu_cnn(), torch.rand(4, 3, 8, 8)
    target = torch.tensor([0, 1, 2, 0])
    attr = pa.saliency(model)(x, target=target)

    def run(device):
        m, xs, t, a = model.to(device), x.to(device), target.to(device), attr.to(device)
        sal = pa.saliency(m)
        return {
            "pixel_flipping": pa.metrics.pixel_flipping(m, features_in_step=16)(xs, a, target=t),
            "estimate": pa.metrics.faithfulness_estimate(m, features_in_step=16)(xs, a, target=t),
            "sufficiency": pa.metrics.sufficiency(m)(xs, a),
            "non_sensitivity": pa.metrics.non_sensitivity(m, features_in_step=16)(xs, a, target=t),
            "continuity": pa.metrics.continuity(sal, n_steps=3)(xs, target=t),
            "focus": pa.metrics.focus()(a, torch.tensor([[1, 0, 0, 1]] * 4, dtype=torch.bool, device=device)),
            "efficient_mprt": pa.metrics.efficient_mprt(m, lambda mm: pa.saliency(mm))(xs, target=t),
            "evaluate": torch.tensor(pa.metrics.evaluate(m, xs, t, attributors={"s": sal},
                                                         metrics={"g": pa.metrics.sparseness()}).scores["s"]["g"]),
        }  # fmt: skip

    cpu, device = run("cpu"), run(DEVICE)
    for name, value in cpu.items():
        got = device[name]
        if name != "evaluate":
            assert got.device.type == torch.device(DEVICE).type, name
        torch.testing.assert_close(got.cpu().double(), value.double(), atol=1e-4, rtol=1e-3, equal_nan=True)
    for metric in (lambda m: pa.metrics.region_perturbation(m, patch_size=4, order="random"),
                   lambda m: pa.metrics.faithfulness_correlation(m, n_samples=8, subset_size=16),
                   lambda m: pa.metrics.sensitivity_n(m, sizes=[4, 16], n_samples=8)):  # fmt: skip
        m = model.to(DEVICE)
        out = metric(m)(x.to(DEVICE), attr.to(DEVICE), target=target.to(DEVICE),
                        generator=torch.Generator(device=DEVICE).manual_seed(0))  # fmt: skip
        assert out.device.type == torch.device(DEVICE).type
    model.to("cpu")
