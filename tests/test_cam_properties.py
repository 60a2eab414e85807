"""What the maths of the CAMs gives (hypothesis properties), and the dense and detection targets,
which work with every pyattrib method and equal pytorch-grad-cam's target objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib.compat import grad_cam as compat

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils import model_targets as ref_targets  # noqa: E402


def gap_linear(seed: int, nonnegative_head: bool) -> nn.Module:
    """Convolution features, then global average pooling and a linear head: the gradient at the
    features is the head's row divided by h*w, the same at every position."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)
    )
    if nonnegative_head:
        model[4].weight.data.abs_()
    return model.eval()


@given(st.integers(0, 10_000))
def test_layer_cam_equals_grad_cam_when_gradients_are_nonnegative(seed):
    model = gap_linear(seed, nonnegative_head=True)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    want = pa.grad_cam(model, model[1])(x, target=1)
    torch.testing.assert_close(pa.layer_cam(model, model[1])(x, target=1), want, atol=1e-5, rtol=0)


@given(st.integers(0, 10_000))
def test_hires_cam_equals_grad_cam_when_the_gradient_is_spatially_constant(seed):
    model = gap_linear(seed, nonnegative_head=False)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    for make in (pa.hires_cam, pa.grad_cam):
        m = make(model, model[1], normalize=False, resize=False)(x, target=2)
        assert m.shape == (2, 8, 8)
    torch.testing.assert_close(
        pa.hires_cam(model, model[1], normalize=False)(x, target=2),
        pa.grad_cam(model, model[1], normalize=False)(x, target=2),
        atol=1e-6,
        rtol=1e-5,
    )


@given(st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_normalised_maps_do_not_change_when_the_score_is_scaled(seed, c):
    model = gap_linear(seed, nonnegative_head=False)
    scaled = gap_linear(seed, nonnegative_head=False)
    scaled[4].weight.data.mul_(c)
    scaled[4].bias.data.mul_(c)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    for make in (pa.grad_cam, pa.layer_cam, pa.xgrad_cam, pa.hires_cam):
        torch.testing.assert_close(
            make(scaled, scaled[1])(x, target=0), make(model, model[1])(x, target=0), atol=2e-5, rtol=0
        )


@given(st.integers(0, 10_000))
def test_svd_projection_has_a_fixed_sign_and_ignores_channel_order(seed):
    a = torch.randn(3, 5, 4, 4, generator=torch.Generator().manual_seed(seed))
    m = pa.cam.svd_projection(a)
    flat = m.flatten(1)
    assert (flat.gather(1, flat.abs().argmax(1, keepdim=True)) > 0).all()
    torch.testing.assert_close(pa.cam.svd_projection(a[:, torch.randperm(5)]), m, atol=1e-4, rtol=0)
    torch.testing.assert_close(pa.cam.svd_projection(2.0 * a), 2.0 * m, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kernel", ["sigmoid", "rbf", "poly", "linear", "cosine"])
def test_kernel_projection_equals_scikit_learn_kernel_pca(kernel):
    from sklearn.decomposition import KernelPCA

    a = torch.randn(2, 6, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = pa.cam.kernel_projection(a, kernel)
    for i in range(2):
        pts = a[i].reshape(6, -1).T.numpy()
        pts = pts - pts.mean(0)
        want = KernelPCA(n_components=1, kernel=kernel).fit_transform(pts)[:, 0].reshape(5, 5)
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-8)


class Segmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.classify = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.classify(self.body(x))


def test_segmentation_target_with_any_method_and_as_pytorch_grad_cam():
    model = Segmenter().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(8, 8)
    mask[2:5, 3:7] = 1
    target = pa.segmentation_target(2, mask)
    xi = x.clone().requires_grad_()
    (model(xi)[:, 2] * mask).sum().backward()
    torch.testing.assert_close(pa.saliency(model, abs=False)(x, target=target), xi.grad)
    ig = pa.integrated_gradients(model)(x, target=target)
    assert ig.shape == x.shape
    ref = pgc.GradCAM(model, [model.body])
    want = ref(x, targets=[ref_targets.SemanticSegmentationTarget(2, mask.numpy())] * 2)
    ref.activations_and_grads.release()
    np.testing.assert_allclose(pa.grad_cam(model, model.body)(x, target=target).numpy(), want, atol=2e-5)
    ours = [compat.utils.model_targets.SemanticSegmentationTarget(2, mask.numpy())] * 2
    np.testing.assert_allclose(compat.GradCAM(model, [model.body])(x, targets=ours), want, atol=2e-5)


class Detector(nn.Module):
    """Fixed boxes, labels and per-image scores from the features (a stand-in for a detector)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 4.0, 8.0, 8.0], [1.0, 1.0, 5.0, 6.0]])
        self.labels = torch.tensor([1, 2, 1])

    def forward(self, x):
        f = self.backbone(x)
        out = []
        for img in f:
            scores = torch.stack([img[:, 0:4, 0:4].mean(), img[:, 4:, 4:].mean(), img[:, 1:5, 1:6].mean()]).sigmoid()
            out.append({"boxes": self.boxes, "labels": self.labels, "scores": scores})
        return out


def test_box_score_target_with_any_method_and_as_pytorch_grad_cam():
    model = Detector().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    refs = np.array([[0.0, 0.0, 4.0, 4.5], [1.0, 1.0, 5.0, 6.0]], dtype=np.float32)
    target = pa.box_score_target([1, 1], refs)
    detections = model(x)
    want_scores = torch.stack([
        (pa.cam.targets.box_iou(torch.tensor(refs[:1]), model.boxes[:1])[0, 0] + d["scores"][0])
        + (1.0 + d["scores"][2]) for d in detections
    ])  # fmt: skip
    torch.testing.assert_close(target(detections), want_scores)
    xi = x.clone().requires_grad_()
    target(model(xi)).sum().backward()
    torch.testing.assert_close(pa.saliency(model, abs=False)(x, target=target), xi.grad)
    ref_target = ref_targets.FasterRCNNBoxScoreTarget([1, 1], list(refs))
    ref = pgc.EigenGradCAM(model, [model.backbone])
    ref_maps = ref(x, targets=[ref_target] * 2)
    ref.activations_and_grads.release()
    ours = compat.EigenGradCAM(model, [model.backbone])(
        x, targets=[compat.utils.model_targets.FasterRCNNBoxScoreTarget([1, 1], list(refs))] * 2
    )
    np.testing.assert_allclose(ours, ref_maps, atol=2e-5)
    layer = pa.layer_cam(model, model.backbone)(x, target=target)
    assert layer.shape == (2, 8, 8) and float(layer.max()) > 0


def test_example_targets_follow_their_examples_through_expanded_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3)).eval()
    x = torch.randn(4, 5)
    classes = [2, 0, 1, 2]
    per_example = pa.ExampleTargets([lambda o, c=c: o[c] for c in classes])
    for method in (
        pa.integrated_gradients(model, n_steps=8),
        pa.feature_ablation(model),
        pa.smoothgrad(pa.saliency(model), n_samples=3),
    ):
        kwargs = {"generator": torch.Generator().manual_seed(0)} if method.random else {}
        a = method(x, target=per_example, **kwargs)
        kwargs = {"generator": torch.Generator().manual_seed(0)} if method.random else {}
        torch.testing.assert_close(a, method(x, target=classes, **kwargs))
    with pytest.raises(ValueError, match="one per example"):
        pa.saliency(model)(x, target=pa.ExampleTargets([lambda o: o[0]]))
