"""The CAM family (pyattrib.cam) against pytorch-grad-cam 1.5.7, the library that defines it: the
native transforms, and the drop-in classes of pyattrib.compat.grad_cam, on a CNN with BatchNorm,
a ResNet, a ViT with a class token and a Swin-style channels-last model."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
import torch

import pyattrib as pa
from pyattrib.cam._engine import cam_transform
from pyattrib.compat import grad_cam as compat

from .cam_models import cases, cnn
from .test_model_state import assert_same, snapshot

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import pytorch_grad_cam as pgc
else:
    pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.ablation_layer import AblationLayerVit  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CASES = cases()
REF_RESHAPE = {  # the reference needs the layout spelled out; pyattrib reads it from the shape
    "vit": lambda t: t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2),
    "swin": lambda t: t.permute(0, 3, 1, 2),
}
GRADIENT = ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM",
            "EigenGradCAM"]  # fmt: skip
ACTIVATION = ["EigenCAM", "KPCA_CAM"]
PERTURBATION = ["ScoreCAM", "AblationCAM"]
NATIVE = {"GradCAM": pa.grad_cam, "GradCAMPlusPlus": pa.grad_cam_plus_plus, "XGradCAM": pa.xgrad_cam,
          "HiResCAM": pa.hires_cam, "GradCAMElementWise": pa.grad_cam_elementwise, "LayerCAM": pa.layer_cam,
          "EigenGradCAM": pa.eigen_grad_cam, "EigenCAM": pa.eigen_cam, "KPCA_CAM": pa.kpca_cam,
          "ScoreCAM": pa.score_cam, "AblationCAM": pa.ablation_cam}  # fmt: skip
EIGEN = {"EigenCAM", "EigenGradCAM"}


def reference(name, model, layers, x, targets=None, reshape=None, **call):
    kwargs = {"ablation_layer": AblationLayerVit()} if name == "AblationCAM" and reshape is not None else {}
    cam = getattr(pgc, name)(model, layers, reshape_transform=reshape, **kwargs)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        out = cam(x, targets=targets, **call)
    cam.activations_and_grads.release()
    return out


def close(a, b, atol=2e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=atol)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", GRADIENT + ACTIVATION + PERTURBATION)
@pytest.mark.parametrize("target", [None, 1])
def test_every_cam_equals_pytorch_grad_cam(case, name, target):
    model, layer, x = CASES[case]
    targets = None if target is None else [ClassifierOutputTarget(target)] * len(x)
    want = reference(name, model, [layer], x, targets, REF_RESHAPE.get(case))
    # the drop-in class, with pytorch-grad-cam's call and its reshape transform
    got = getattr(compat, name)(model, [layer], reshape_transform=REF_RESHAPE.get(case))(x, targets=targets)
    assert got.dtype == np.float32 and got.shape == x.shape[:1] + x.shape[2:]
    close(got, want)
    # the native transform reads the layout itself (no reshape_transform for ViT or Swin)
    # (Ablation-CAM: only where the layer's minimum is 0, see test_ablation_cam_fill_value_drift_is_compat_only)
    if name not in EIGEN and not (name == "AblationCAM" and case in ("vit", "swin")):
        close(NATIVE[name](model, layer)(x, target=target), want)


@pytest.mark.parametrize("name", ["GradCAM", "LayerCAM", "ScoreCAM", "AblationCAM", "HiResCAM"])
@pytest.mark.parametrize("case", ["cnn", "vit"])
def test_eigen_smooth_equals_pytorch_grad_cam(name, case):
    model, layer, x = CASES[case]
    want = reference(name, model, [layer], x, None, REF_RESHAPE.get(case), eigen_smooth=True)
    warns = pytest.warns(UserWarning, match="faithfulness") if name == "HiResCAM" else contextlib.nullcontext()
    with warns:
        close(getattr(compat, name)(model, [layer], REF_RESHAPE.get(case))(x, eigen_smooth=True), want)


def test_native_eigen_maps_equal_the_reference_given_its_svd_sign():
    model, layer, x = CASES["resnet"]
    for name, rule in [("EigenCAM", pa.cam.gradient.EIGEN_CAM), ("EigenGradCAM", pa.cam.gradient.EIGEN_GRAD_CAM)]:
        want = reference(name, model, [layer], x)
        close(cam_transform(model, layer, rule, name, svd_sign="numpy")(x), want)


@pytest.mark.parametrize("name", ["GradCAMPlusPlus", "ScoreCAM"])
def test_several_layers_and_aug_smooth_equal_pytorch_grad_cam(name):
    model, _, x = CASES["resnet"]
    layers = [model.layer3[-1], model.layer4[-1]]
    close(getattr(compat, name)(model, layers)(x), reference(name, model, layers, x))
    want = reference(name, model, layers[1:], x, [ClassifierOutputTarget(2)] * 2, aug_smooth=True)
    close(NATIVE[name](model, layers[1], aug_smooth=True)(x, target=2), want)


def test_full_grad_equals_pytorch_grad_cam_where_its_layers_run_in_module_order():
    model, _, x = CASES["cnn"]
    for es in (False, True):
        want = reference("FullGrad", model, [], x, eigen_smooth=es)
        close(pa.full_grad(model, eigen_smooth=es, svd_sign="numpy")(x), want)


def test_full_grad_on_a_resnet_pairs_each_bias_with_its_own_gradient():
    """pytorch-grad-cam pairs the biases (module order) with the gradients (run order); in a
    ResNet block the downsample branch runs first, so its terms mix layers. The compat class
    reproduces that; the native transform pairs each layer with its own gradient, checked here
    against tensor hooks on every layer's output."""
    model, _, x = CASES["resnet"]
    want = reference("FullGrad", model, [], x)
    close(compat.FullGrad(model, [])(x), want)
    native = pa.full_grad(model, normalize=False)(x, target=3)
    assert not np.allclose(pa.full_grad(model)(x).numpy(), want, atol=1e-3)  # the two pairings differ here

    grads = {}
    layers = pa.cam.full_grad.__globals__["bias_layers"](model)

    def keep(mod, inputs, out):
        out.register_hook(lambda g: grads.__setitem__(mod, g))

    hooks = [m.register_forward_hook(keep) for m in layers]
    xi = x.clone().requires_grad_()
    model(xi)[:, 3].sum().backward()
    for h in hooks:
        h.remove()
    model.zero_grad(set_to_none=True)
    scale = pa.cam._engine.scale
    up = lambda t: torch.nn.functional.interpolate(scale(t.flatten(0, 1))[:, None], size=x.shape[-2:], mode="bilinear")  # noqa: E731
    expected = up((x * xi.grad).abs()).reshape(*x.shape).sum(1)
    for m in layers:
        bias = pa.cam.full_grad.__globals__["effective_bias"](m).detach()
        g = grads[m]
        expected = expected + up((bias[None, :, None, None] * g).abs()).reshape(len(x), -1, *x.shape[-2:]).sum(1)
    close(native, expected, atol=1e-4)


def test_ablation_cam_fill_value_drift_is_compat_only():
    """Ablating a layer whose minimum is not 0 (a convolution before its BatchNorm):
    pytorch-grad-cam writes min - 1e7 into a shared tensor and reads the minimum again for each
    row, so the fill drifts by -1e7 per row; compat reproduces it, native uses min - 1e7."""
    model, _, x = CASES["cnn"]
    layer = model.features[4]
    want = reference("AblationCAM", model, [layer], x)
    close(compat.AblationCAM(model, [layer])(x), want)
    native = pa.ablation_cam(model, layer)(x, target=1)
    # native: each channel set to min(A) - 1e7 alone, one forward per channel, by hand
    with torch.no_grad():
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
        y = model(x)[:, 1]
        h.remove()
        a = acts["a"]
        weights = torch.zeros(a.shape[:2])
        for i in range(len(x)):
            for c in range(a.shape[1]):
                v = a[i : i + 1].clone()
                v[0, c] = a[i].min() - 1e7
                h = layer.register_forward_hook(lambda m, inp, o, v=v: v)
                weights[i, c] = (y[i] - model(x[i : i + 1])[0, 1]) / y[i]
                h.remove()
    scale = pa.cam._engine.scale
    m = scale(scale(torch.relu((weights[:, :, None, None] * a).sum(1)))[:, None])[:, 0]
    up = torch.nn.functional.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear")[:, 0]
    close(native, scale(up), atol=1e-5)


def test_vit_and_swin_layouts_are_read_without_a_reshape_transform():
    for case in ("vit", "swin"):
        model, layer, x = CASES[case]
        explicit = pa.grad_cam(model, layer, reshape_transform=REF_RESHAPE[case])(x, target=0)
        torch.testing.assert_close(pa.grad_cam(model, layer)(x, target=0), explicit)
    model, layer, x = CASES["vit"]
    torch.testing.assert_close(
        pa.layer_cam(model, layer, reshape_transform=pa.cam.vit_reshape(4, 4))(x, target=0),
        pa.layer_cam(model, layer)(x, target=0),
    )


def test_perturbation_cams_do_not_depend_on_batch_size():
    model, layer, x = CASES["cnn"]
    for cam in (pa.score_cam, pa.ablation_cam):
        ref = cam(model, layer, batch_size=1)(x, target=2)
        for b in (5, 16, None):
            torch.testing.assert_close(cam(model, layer, batch_size=b)(x, target=2), ref, atol=1e-6, rtol=0)


def test_maps_follow_the_input_dtype_and_leave_the_model_as_found():
    model, layer, x = CASES["cnn"]
    model.train()
    model.features[1].eval()  # a BatchNorm the user froze inside a training model
    model.features[0].weight.grad = torch.ones_like(model.features[0].weight)
    before = snapshot(model)
    for make in (pa.grad_cam_plus_plus, pa.score_cam, pa.ablation_cam, pa.eigen_cam):
        out = make(model, layer)(x, target=1)
        assert out.shape == (3, 16, 16) and out.device == x.device
        assert float(out.min()) >= 0 and float(out.max()) <= 1
    pa.full_grad(model)(x)
    compat.ScoreCAM(model, [layer])(x)
    with pytest.raises(pa.cam.reshape.ArgumentError):
        pa.grad_cam(model, model.head[2])(x)  # (N, C): no spatial map
    assert_same(before, snapshot(model))
    model.eval()
    model.features[0].weight.grad = None
    double = cnn().double()
    out = pa.grad_cam(double, double.features[6])(x.double(), target=1)
    assert out.dtype == torch.float64


def test_bad_layers_get_errors_naming_the_fix():
    model, layer, x = CASES["cnn"]
    with pytest.raises(ValueError, match="reshape_transform=pa.cam.vit_reshape"):
        pa.grad_cam(model, model.head[1])(x, target=0)  # Flatten: (N, C)
    unused = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(RuntimeError, match="did not run"):
        pa.score_cam(model, unused)(x, target=0)
    with pytest.raises(ValueError, match="must return \\(N, C, h, w\\)"):
        pa.grad_cam(model, layer, reshape_transform=lambda t: t.flatten(1))(x, target=0)
    with pytest.raises(ValueError, match="images \\(N, C, H, W\\)"):
        pa.grad_cam(model, layer)(x[0], target=0)
    with pytest.raises(ValueError, match="patch tokens do not form"):
        pa.cam.vit_reshape(3, 3)(torch.zeros(1, 17, 4))
    with pytest.raises(ValueError, match="ratio_channels_to_ablate"):
        compat.AblationCAM(model, [layer], ratio_channels_to_ablate=0.5)


class SkipOver(torch.nn.Module):
    """A skip connection over the target layer: what ran before it is read again after it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU())
        self.block = torch.nn.Sequential(torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3))

    def forward(self, x):
        h = self.stem(x)
        return self.head(self.block(h) + h)


def brute_force_ablation(model, layer, x, target):
    """Ablation-CAM's weights, one forward per channel through a forward hook."""
    with torch.no_grad():
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
        y = model(x)[:, target]
        h.remove()
        a = acts["a"]
        w = torch.zeros(a.shape[:2])
        for i in range(len(x)):
            for c in range(a.shape[1]):
                v = a[i : i + 1].clone()
                v[0, c] = 0.0 if a[i].min() == 0 else a[i].min() - 1e7
                h = layer.register_forward_hook(lambda m, inp, o, v=v: v)
                w[i, c] = (y[i] - model(x[i : i + 1])[0, target]) / y[i]
                h.remove()
    return w, a


@pytest.mark.parametrize("model_case", ["skip", "resnet"])
def test_ablation_cam_runs_the_layers_before_once_only_where_that_is_exact(model_case):
    """The layers before the target run on one row when the rest of the model reads only the
    layer's value (a ResNet's last block); a skip connection over the layer is detected and the
    model run in full. Both equal one forward per channel by hand."""
    if model_case == "skip":
        model = SkipOver().eval()
        layer, x = model.block, torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    else:
        model, layer, x = CASES["resnet"]
    w, a = brute_force_ablation(model, layer, x, 1)
    scale = pa.cam._engine.scale
    m = scale(torch.relu((w[:, :, None, None] * a).sum(1)))
    up = torch.nn.functional.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear")[:, 0]
    for b in (None, 5):
        close(pa.ablation_cam(model, layer, batch_size=b)(x, target=1), scale(up), atol=1e-5)
