"""The MPRT family against quantus 0.6.0: MPRT, smooth MPRT (Quantus's noise replaced by
pyattrib's draws) and efficient MPRT, on the same layers, seeds and explanations."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib._core.random import normal

from .quantus_cases import cnn, images

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")


def explain(model, inputs, targets, **kwargs):
    return pa.saliency(model, abs=False)(torch.as_tensor(inputs), target=torch.as_tensor(targets)).detach().numpy()


def reference(metric, model, x, y, a=None, draws=None):
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        if draws is not None:
            it = iter(draws)
            mp.setattr(np.random, "randn", lambda *shape: next(it))
        return metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), channel_first=True, device="cpu",
                      a_batch=None if a is None else a.detach().numpy().copy(), explain_func=explain)  # fmt: skip


def layer_rows(scores: dict) -> np.ndarray:
    return np.asarray([v for k, v in scores.items() if k != "original"], dtype=np.float64)


def test_mprt_equals_quantus_with_its_order_and_seeding():
    model, (x, y) = cnn(), images()
    want = reference(quantus.MPRT(disable_warnings=True), model, x, y)
    got = pa.metrics.mprt(model, lambda m: pa.saliency(m, abs=False), seed=43, seed_each_layer=True)(x, target=y)
    assert got.layers == [k for k in want if k != "original"] == ["3", "0"]
    np.testing.assert_allclose(got.correlation.numpy(), layer_rows(want), rtol=1e-5, atol=1e-6)


def test_smooth_mprt_equals_quantus_on_the_same_noise():
    model, (x, y) = cnn(), images()
    samples, g = 4, torch.Generator().manual_seed(7)
    check = pa.metrics.smooth_mprt(model, lambda m: pa.saliency(m, abs=False), n_samples=samples)
    got = check(x, target=y, generator=g)
    # the same draws, in the order pyattrib makes them: per model (original, then each layer), per sample
    g = torch.Generator().manual_seed(7)
    per_model = [normal((samples - 1, *x.shape), 1.0, x, g) for _ in range(3)]
    draws = [d.double().numpy() for block in per_model for d in block]
    smoothed = pa.metrics.randomisation.denoised(pa.saliency(model, abs=False), samples, 0.1,
                                                 torch.Generator().manual_seed(7))(x, target=y)  # fmt: skip
    want = reference(quantus.SmoothMPRT(nr_samples=samples, disable_warnings=True), model, x, y, smoothed, draws)
    assert got.layers == ["0", "3"]
    np.testing.assert_allclose(got.correlation.numpy(), layer_rows(want), rtol=1e-4, atol=1e-5)


def test_efficient_mprt_equals_quantus():
    model, (x, y) = cnn(), images()
    want = np.asarray(reference(quantus.EfficientMPRT(disable_warnings=True), model, x, y), dtype=np.float64)
    got = pa.metrics.efficient_mprt(model, lambda m: pa.saliency(m, abs=False))(x, target=y)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)


def test_discrete_entropy_equals_numpy_and_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    values = torch.randn(5, 300, generator=torch.Generator().manual_seed(0))
    values[1, :10] = values[1, 10]  # ties
    want = [scipy_stats.entropy(np.histogram(v, bins=37)[0]) for v in values.double().numpy()]
    np.testing.assert_allclose(pa.metrics.discrete_entropy(values, 37).numpy(), want, rtol=1e-12, atol=1e-12)


def test_bad_input_and_model_untouched():
    model, (x, y) = cnn(), images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ArgumentError, match="generator"):
        pa.metrics.smooth_mprt(model, lambda m: pa.saliency(m), n_samples=2)(x, target=y)
    with pytest.raises(ArgumentError, match="order"):
        pa.metrics.mprt(model, lambda m: pa.saliency(m), order="random")
    pa.metrics.efficient_mprt(model, lambda m: pa.saliency(m))(x, target=y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mprt_generator_draws_the_seed():
    """A generator replaces the seed (one draw when the check is built): the same generator state
    gives the same randomised layers, another state other ones, and the caller's RNG is untouched."""
    model = cnn()
    x, y = images()
    x, y = x[:2], y[:2]
    saliency = lambda m: pa.saliency(m, abs=False)  # noqa: E731
    make = lambda g: pa.metrics.mprt(model, saliency, generator=g)(x, target=y).correlation  # noqa: E731
    state = torch.get_rng_state()
    a, b = make(torch.Generator().manual_seed(1)), make(torch.Generator().manual_seed(1))
    c = make(torch.Generator().manual_seed(2))
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    drawn = int(torch.randint(2**31 - 1, (), generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(pa.metrics.mprt(model, saliency, seed=drawn)(x, target=y).correlation, a)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    efficient = pa.metrics.efficient_mprt(model, saliency, generator=g())(x, target=y)
    torch.testing.assert_close(efficient, pa.metrics.efficient_mprt(model, saliency, seed=drawn)(x, target=y))
    smooth = pa.metrics.smooth_mprt(model, saliency, n_samples=2, generator=g())(x, target=y, generator=g())
    again = pa.metrics.smooth_mprt(model, saliency, n_samples=2, seed=drawn)(x, target=y, generator=g())
    torch.testing.assert_close(smooth.correlation, again.correlation)
