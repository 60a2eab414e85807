"""Agreement with Captum 0.9.0 for the gradient and path methods and the noise tunnel."""

import pytest
import torch
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from torch import nn

import pyattrib as pa

from . import models
from .cases import cases

CASES = cases() + [c for c in cases(torch.float64) if c.name in ("mlp-per-example", "multi-input-mixed-baselines-args")]
IDS = [
    f"{c.name}-{str(c.model.fc.weight.dtype if hasattr(c.model, 'fc') else next(c.model.parameters()).dtype)[6:]}"
    for c in CASES
]


def close(ours, theirs, atol=1e-5, rtol=1e-4):
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b.detach(), atol=atol, rtol=rtol)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_saliency_and_input_x_gradient(case):
    kw = case.call_kwargs()
    for abs_ in (True, False):
        close(
            pa.saliency(case.model, abs=abs_)(case.inputs, **kw),
            Saliency(case.model).attribute(case.inputs, abs=abs_, **kw),
        )
    close(pa.input_x_gradient(case.model)(case.inputs, **kw), InputXGradient(case.model).attribute(case.inputs, **kw))


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients(case, method):
    kw = case.call_kwargs()
    ours, delta = pa.integrated_gradients(case.model, n_steps=20, method=method, return_delta=True)(
        case.inputs, case.baselines, **kw
    )
    theirs, their_delta = IntegratedGradients(case.model).attribute(
        case.inputs, case.baselines, n_steps=20, method=method, return_convergence_delta=True, **kw
    )
    close(ours, theirs)
    torch.testing.assert_close(delta, their_delta, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_integrated_gradients_not_multiplied_and_chunked(case):
    kw = case.call_kwargs()
    theirs = IntegratedGradients(case.model, multiply_by_inputs=False).attribute(
        case.inputs, case.baselines, n_steps=16, internal_batch_size=7, **kw
    )
    ours = pa.integrated_gradients(case.model, n_steps=16, multiply_by_inputs=False, batch_size=7)(
        case.inputs, case.baselines, **kw
    )
    close(ours, theirs)


@pytest.mark.parametrize("case", CASES[:4], ids=IDS[:4])
def test_trapezoid_is_captum_rescaled(case):
    # Captum's trapezoid weights are 1/n (summing to (n-1)/n); ours are the textbook
    # 1/(n-1), so ours = Captum * n / (n-1) exactly.
    n = 10
    ours = pa.integrated_gradients(case.model, n_steps=n, method="riemann_trapezoid")(
        case.inputs, case.baselines, **case.call_kwargs()
    )
    theirs = IntegratedGradients(case.model).attribute(
        case.inputs, case.baselines, n_steps=n, method="riemann_trapezoid", **case.call_kwargs()
    )
    close(ours, theirs * n / (n - 1))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_same_noise_as_captum(case, kind):
    # With the global RNG, our noise is drawn exactly as Captum draws it, so same seed
    # gives the same result: this pins down layout, expansion and aggregation.
    kw = case.call_kwargs()
    n_inputs = len(case.inputs) if isinstance(case.inputs, tuple) else 1
    stdevs = (0.3, 0.2)[:n_inputs] if n_inputs > 1 else 0.3
    torch.manual_seed(11)
    theirs = NoiseTunnel(Saliency(case.model)).attribute(case.inputs, nt_type=kind, nt_samples=6, stdevs=stdevs, **kw)
    torch.manual_seed(11)
    ours = pa.noise_tunnel(pa.saliency(case.model), kind=kind, n_samples=6, stdevs=stdevs)(case.inputs, **kw)
    close(ours, theirs)


@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_smoothgrad_of_ig_with_delta(case):
    kw = case.call_kwargs()
    n_inputs = len(case.inputs) if isinstance(case.inputs, tuple) else 1
    stdevs = (0.1,) * n_inputs if n_inputs > 1 else 0.1
    torch.manual_seed(3)
    theirs, their_delta = NoiseTunnel(IntegratedGradients(case.model)).attribute(
        case.inputs,
        baselines=case.baselines,
        nt_samples=4,
        stdevs=stdevs,
        n_steps=12,
        return_convergence_delta=True,
        **kw,
    )
    torch.manual_seed(3)
    ours, delta = pa.smoothgrad(
        pa.integrated_gradients(case.model, n_steps=12, return_delta=True), n_samples=4, stdevs=stdevs
    )(case.inputs, case.baselines, **kw)
    close(ours, theirs)
    n = delta.shape[0]
    torch.testing.assert_close(delta, their_delta.reshape(n, 4).mean(1), atol=1e-4, rtol=1e-3)


def _linear(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Linear(6, 3).to(dtype).eval()


@pytest.mark.parametrize("stdevs", [0.0, 0.5])
def test_gradient_shap_exact_on_linear_model(stdevs):
    # On a linear model the gradient is constant, so E[(x + eps - b) w] = (x - E b) w
    # exactly when averaged over the same draws; compare against the analytic answer
    # and Captum's on a large sample.
    model = _linear(torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    refs = torch.randn(10, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    ours = pa.gradient_shap(model, n_samples=4000, stdevs=stdevs)(x, refs, target=1, generator=gen)
    expected = (x - refs.mean(0)) * model.weight[1].detach()
    tol = 0.08 if stdevs else 0.05
    torch.testing.assert_close(ours, expected, atol=tol, rtol=0)
    theirs = GradientShap(model).attribute(x, refs, target=1, n_samples=4000, stdevs=stdevs)
    torch.testing.assert_close(ours, theirs, atol=2 * tol, rtol=0)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.name in ("mlp-per-example", "multi-input-mixed-baselines-args", "grid-tuple-target", "cnn")],
)
def test_gradient_shap_matches_captum_in_expectation(case):
    kw = case.call_kwargs()
    xs = case.inputs if isinstance(case.inputs, tuple) else (case.inputs,)
    g = torch.Generator().manual_seed(1)
    refs = tuple(torch.randn(8, *x.shape[1:], generator=g).to(x.dtype) * 0.5 for x in xs)
    refs = refs if isinstance(case.inputs, tuple) else refs[0]
    torch.manual_seed(0)
    theirs, their_delta = GradientShap(case.model).attribute(
        case.inputs, refs, n_samples=3000, stdevs=0.05, return_convergence_delta=True, **kw
    )
    ours, delta = pa.gradient_shap(case.model, n_samples=3000, stdevs=0.05, batch_size=2000, return_delta=True)(
        case.inputs, refs, generator=torch.Generator().manual_seed(5), **kw
    )
    ours_t = ours if isinstance(ours, tuple) else (ours,)
    theirs_t = theirs if isinstance(theirs, tuple) else (theirs,)
    for a, b in zip(ours_t, theirs_t):
        scale = b.abs().mean() + 1e-3
        assert ((a - b).abs().mean() / scale) < 0.12
    n = delta.shape[0]
    # both deltas are completeness errors averaged over the same distribution
    assert (delta - their_delta.reshape(n, -1).mean(1)).abs().max() < 0.05 + 0.1 * their_delta.abs().max()


@pytest.mark.parametrize("view", [False, True])
def test_model_with_its_own_forward_gets_standard_gradient_rows(view):
    """A model with its own ``forward`` may ``.view`` across channels and space: it gets
    standard rows, one call per chunk (no try-and-retry), and Captum's numbers."""
    model = models.LayoutRecorder(view=view).eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = pa.integrated_gradients(model, n_steps=8, batch_size=10)(x, target=[0, 2, 1])
    assert len(model.seen) == 3 and not any(model.seen)  # 24 rows in chunks of 10
    assert ours.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    close(ours, IntegratedGradients(model).attribute(x, target=[0, 2, 1], n_steps=8))
    model.seen.clear()
    sal = pa.saliency(model)(x, target=1)
    assert model.seen == [False] and sal.is_contiguous()
    close(sal, Saliency(model).attribute(x, target=1, abs=True))


def test_stock_cnn_gradient_rows_are_channels_last_and_agree_with_float64():
    """A stock ``nn.Sequential`` CNN gets channels-last rows; the result differs from a
    float64 run by no more than the standard layout's does (float rounding only)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4),
    ).eval()  # fmt: skip
    seen = []
    hook = model[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last))
    )
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    try:
        fast = pa.integrated_gradients(model, n_steps=16)(x, target=[0, 1, 2, 3])
    finally:
        hook.remove()
    assert seen and all(seen)
    standard = IntegratedGradients(model).attribute(x, target=[0, 1, 2, 3], n_steps=16)
    exact = pa.integrated_gradients(model.double(), n_steps=16)(x.double(), target=[0, 1, 2, 3])
    model.float()
    scale = exact.abs().max()
    assert (fast.double() - exact).abs().max() <= 4 * (standard.double() - exact).abs().max() + 1e-6 * scale


def test_cnn_without_max_pooling_differentiates_standard_rows_and_perturbs_channels_last():
    """The layout rule: channels-last gradient rows only pay through CPU max pooling's
    backward; forward-only rows gain from channels-last convolutions alone."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()  # fmt: skip
    seen = []
    hook = model[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last) and not a[0].is_contiguous())
    )
    x = torch.randn(2, 3, 8, 8)
    try:
        pa.integrated_gradients(model, n_steps=4)(x, target=0)
        assert seen and not any(seen)
        seen.clear()
        pa.occlusion(model, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4))(x, target=0)
        assert seen and all(seen)
    finally:
        hook.remove()
