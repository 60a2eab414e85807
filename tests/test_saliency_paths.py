"""Blur IG, Guided IG and XRAI against PAIR ``saliency`` 0.2.1 (the library that defines them), given
the same call-model function; and their path integrals' completeness as properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyattrib as pa

from .cam_models import cnn

saliency = pytest.importorskip("saliency.core")
from saliency.core import guided_ig as _guided_ig  # noqa: E402


class _NumpyWithInterpolation:
    """saliency 0.2.1's GuidedIG calls ``np.quantile(..., interpolation=)``, which NumPy 2 renamed
    ``method=``: its module sees numpy with the old keyword mapped to the new one."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation="linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


_guided_ig.np = _NumpyWithInterpolation()
MODEL = cnn()
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def call_model(target):
    """PAIR's call-model function for MODEL: HWC batches in, gradients of one logit out."""

    def call(batch, call_model_args=None, expected_keys=None):
        t = torch.tensor(np.asarray(batch), dtype=torch.float32).permute(0, 3, 1, 2).requires_grad_()
        MODEL(t)[:, target].sum().backward()
        MODEL.zero_grad(set_to_none=True)
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: t.grad.permute(0, 2, 3, 1).numpy()}

    return call


def per_image(fn):
    return torch.from_numpy(np.stack([fn(X[i].permute(1, 2, 0).numpy()) for i in range(len(X))]))


def close(got, want, atol=1e-7):
    np.testing.assert_allclose(got.double().numpy(), want.double().numpy(), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("sqrt", [False, True])
def test_blur_ig_equals_saliency(sqrt):
    want = per_image(lambda xi: saliency.BlurIG().GetMask(xi, call_model(1), max_sigma=8, steps=20, sqrt=sqrt))
    got = pa.blur_ig(MODEL, max_sigma=8, n_steps=20, sqrt=sqrt, batch_size=7)(X, target=1)
    close(got, want.permute(0, 3, 1, 2))


@pytest.mark.parametrize("max_dist, fraction", [(0.1, 0.3), (1.0, 0.1), (0.0, 0.25)])
def test_guided_ig_equals_saliency(max_dist, fraction):
    run = lambda xi: saliency.GuidedIG().GetMask(xi, call_model(2), x_steps=30, max_dist=max_dist, fraction=fraction)  # noqa: E731
    want = per_image(run)
    got = pa.guided_ig(MODEL, n_steps=30, max_dist=max_dist, fraction=fraction)(X, target=2)
    close(got, want.permute(0, 3, 1, 2))


@pytest.mark.parametrize("area", [1.0, 0.3])
def test_xrai_equals_saliency_on_the_same_segments(area):
    segments = pa.cam.grid_segments(16, 16)
    params = saliency.XRAIParameters(steps=10, area_threshold=area)
    params.experimental_params["min_pixel_diff"] = 4
    masks = [m.numpy() for m in segments]
    want = per_image(
        lambda xi: saliency.XRAI().GetMask(xi, call_model(1), segments=masks, extra_parameters=params, batch_size=10)
    )
    got = pa.xrai(MODEL, n_steps=10, area_threshold=area, min_pixel_diff=4)(X, target=1, segments=segments)
    close(got, want)
    # a base attribution passed in replaces the integrated gradients
    base = pa.saliency(MODEL)(X, target=1)
    mine = pa.xrai(MODEL, area_threshold=area, min_pixel_diff=4)(X, target=1, base_attribution=base)
    want = torch.from_numpy(np.stack([
        saliency.XRAI().GetMask(X[i].permute(1, 2, 0).numpy(), call_model(1), segments=masks, extra_parameters=params,
                                base_attribution=base[i].permute(1, 2, 0).numpy()) for i in range(2)
    ]))  # fmt: skip
    close(mine, want)


def test_gaussian_blur_equals_scipy():
    from scipy import ndimage

    for sigma in (0.5, 2.0, 7.3):
        want = np.stack(
            [
                ndimage.gaussian_filter(X[i].permute(1, 2, 0).numpy(), [sigma, sigma, 0], mode="constant")
                for i in range(2)
            ]
        )
        close(pa.cam.gaussian_blur(X, sigma), torch.from_numpy(want).permute(0, 3, 1, 2))


@settings(max_examples=8)
@given(st.integers(0, 1000))
def test_blur_ig_and_guided_ig_are_complete(seed):
    torch.manual_seed(seed)
    model = (
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 2)
        )
        .double()
        .eval()
    )
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    f = lambda t: model(t)[:, 0]  # noqa: E731
    blur = pa.blur_ig(model, max_sigma=3.0, n_steps=400, grad_step=1e-4)(x, target=0)
    torch.testing.assert_close(blur.sum((1, 2, 3)), f(x) - f(pa.cam.gaussian_blur(x, 3.0)), atol=5e-3, rtol=2e-2)
    guided = pa.guided_ig(model, n_steps=400, max_dist=0.1)(x, target=0)
    torch.testing.assert_close(guided.sum((1, 2, 3)), f(x) - f(torch.zeros_like(x)), atol=5e-3, rtol=2e-2)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="fraction"):
        pa.guided_ig(MODEL, fraction=0.0)
    with pytest.raises(ValueError, match="max_sigma"):
        pa.blur_ig(MODEL, max_sigma=0.0)
    with pytest.raises(ValueError, match="boolean masks"):
        pa.xrai(MODEL)(X, target=0, segments=torch.zeros(3, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="images"):
        pa.blur_ig(MODEL)(X[0], target=0)
