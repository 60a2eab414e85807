"""Axiomatic metrics and random logit against quantus 0.6.0, and where Quantus departs from the
axioms it names."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib._core.random import integers

from .quantus_cases import SIDE, N, cnn, images

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")


def reference(metric, model, x, y, a=None, explain=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=model, x_batch=x.numpy(), y_batch=np.asarray(y), channel_first=True, device="cpu",
                     a_batch=None if a is None else a.detach().numpy().copy(), explain_func=explain, **kwargs)  # fmt: skip
    return np.asarray(out, dtype=np.float64)


def gradient(model, inputs, targets, **kwargs):
    return pa.saliency(model, abs=False)(torch.as_tensor(inputs), target=torch.as_tensor(targets)).detach().numpy()


def test_completeness_with_a_tolerance_where_quantus_asks_for_float_equality():
    """x*grad of a linear model with a zero baseline is complete: its attributions sum to
    f(x) - f(0). Quantus normalises them and compares with ``==``, so it says False."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10)).eval()
    x, y = images()
    a = pa.input_x_gradient(lin)(x, target=y)
    assert pa.metrics.completeness(lin, baselines=0.0)(x, a, target=y).all()
    assert not pa.metrics.completeness(lin, baselines=0.0)(x, 2 * a, target=y).any()
    want = reference(quantus.Completeness(perturb_baseline=0.0, disable_warnings=True), lin, x, y, a)
    assert (want == 0).all()
    unnormalised = reference(quantus.Completeness(perturb_baseline=0.0, normalise=False, disable_warnings=True),
                             lin, x, y, a)  # fmt: skip
    assert (unnormalised == 0).any()  # float equality fails some even without the normalisation


def test_non_sensitivity_equals_quantus():
    model, (x, y) = cnn(), images()
    a = pa.input_x_gradient(model)(x, target=y)
    a[:, :, :3] = 0.0  # dummy attributions on pixels the model reads
    x[:, :, 5:] = 0.0  # and real attributions of nothing: x*grad is 0 where x is
    want = reference(quantus.NonSensitivity(disable_warnings=True), model, x, y, a)
    got = pa.metrics.non_sensitivity(model)(x, a, target=y)
    np.testing.assert_array_equal(got.numpy(), want)
    assert want.min() > 0


def test_input_invariance_equals_quantus():
    model, (x, y) = cnn(padding=0), images()
    for method, invariant in [(lambda m: pa.saliency(m, abs=False), True), (lambda m: pa.input_x_gradient(m), False)]:

        def explain(model, inputs, targets, method=method, **kwargs):
            return method(model)(torch.as_tensor(inputs), target=torch.as_tensor(targets)).detach().numpy()

        want = reference(quantus.InputInvariance(disable_warnings=True), model, x, y, explain=explain)
        got = pa.metrics.input_invariance(method, model)(x, target=y)
        np.testing.assert_array_equal(got.numpy(), want.astype(bool))
        assert got.all() == invariant


def test_random_logit_equals_quantus_on_the_same_classes():
    model, (x, y) = cnn(), images()
    drawn = integers(9, (N,), x, torch.Generator().manual_seed(5))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np.random, "randint", lambda *args, **kwargs: drawn.numpy())
        want = reference(quantus.RandomLogit(num_classes=10, disable_warnings=True), model, x, y, explain=gradient)
    metric = pa.metrics.random_logit(pa.saliency(model, abs=False), n_classes=10)
    np.testing.assert_allclose(metric(x, target=y, generator=torch.Generator().manual_seed(5)).double().numpy(),
                               want, rtol=1e-4, atol=1e-5)  # fmt: skip


def test_bad_input():
    model, (x, y) = cnn(), images()
    with pytest.raises(ArgumentError, match="generator"):
        pa.metrics.random_logit(pa.saliency(model), n_classes=10)(x, target=y)
    with pytest.raises(ArgumentError, match="first Linear or Conv"):
        pa.metrics.input_invariance(lambda m: pa.saliency(m), nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)))
    with pytest.raises(ArgumentError, match="baselines"):
        pa.metrics.completeness(model, baselines="zero")
