"""Quantus 0.6.0's metrics on a tabular model (an MLP over 12 features) against pyattrib's, with
Quantus's numpy draws replaced by pyattrib's. Rows are given as ``(N, 1, 12)``: Quantus's checks
read the feature count from ``x.shape[2:]`` (a 2-D batch counts as one feature there)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.random import normal, uniform
from pyattrib.metrics.faithfulness_sampled import random_subsets

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")

N, D = 8, 12


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, D, generator=g)
    y = torch.arange(N) % 3
    return model, x, y, pa.input_x_gradient(model)(x, target=y).detach()


def explain(model, inputs, targets, **kwargs):
    return pa.input_x_gradient(model)(torch.as_tensor(inputs), target=torch.as_tensor(targets)).detach().numpy()


def reference(metric, model, x, y, a=None, patch=None):
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        if patch is not None:
            name, values = patch
            it = iter(values)
            mp.setattr(np.random, name, lambda *args, **kwargs: next(it))
        out = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), channel_first=True, device="cpu",
                     a_batch=None if a is None else a.numpy().copy(), explain_func=explain)  # fmt: skip
    return np.asarray(out, dtype=np.float64)


def close(ours, want):
    np.testing.assert_allclose(ours.double().numpy(), want, rtol=1e-4, atol=1e-5)


def test_ordered_removal_metrics(setup):
    model, x, y, a = setup
    q = {"disable_warnings": True}
    close(pa.metrics.pixel_flipping(model)(x, a, target=y), reference(quantus.PixelFlipping(**q), model, x, y, a))
    close(pa.metrics.faithfulness_estimate(model, features_in_step=2)(x, a, target=y),
          reference(quantus.FaithfulnessEstimate(features_in_step=2, **q), model, x, y, a))  # fmt: skip
    close(pa.metrics.non_sensitivity(model)(x, a, target=y), reference(quantus.NonSensitivity(**q), model, x, y, a))
    close(pa.metrics.sufficiency(model, threshold=0.8)(x, a),
          reference(quantus.Sufficiency(threshold=0.8, **q), model, x, y, a))  # fmt: skip


def test_random_subset_metrics(setup):
    model, x, y, a = setup
    subsets = random_subsets(N, 10, D, 4, x, torch.Generator().manual_seed(2))
    want = reference(quantus.FaithfulnessCorrelation(nr_runs=10, subset_size=4, return_aggregate=False,
                                                     disable_warnings=True), model, x, y, a,
                     ("choice", list(subsets.reshape(-1, 4).numpy())))  # fmt: skip
    got = pa.metrics.faithfulness_correlation(model, n_samples=10, subset_size=4)
    close(got(x, a, target=y, generator=torch.Generator().manual_seed(2)), want)
    g = torch.Generator().manual_seed(3)
    draws = list(uniform((D * 3 * N, 1), x, g).reshape(D * 3, N).numpy())
    want = reference(quantus.MonotonicityCorrelation(nr_samples=3, disable_warnings=True), model, x, y, a,
                     ("uniform", draws))  # fmt: skip
    got = pa.metrics.monotonicity_correlation(model, n_samples=3)
    close(got(x, a, target=y, generator=torch.Generator().manual_seed(3)), want)


def test_robustness_metrics(setup):
    model, x, y, _ = setup
    attributor = pa.input_x_gradient(model)
    g = torch.Generator().manual_seed(4)
    noise = [(0.2 * (2 * uniform(tuple(x.shape), x, g) - 1)).reshape(N, -1).double().numpy() for _ in range(4)]
    want = reference(quantus.AvgSensitivity(nr_samples=4, disable_warnings=True), model, x, y,
                     patch=("uniform", noise))  # fmt: skip
    got = pa.metrics.avg_sensitivity(attributor, n_samples=4)(x, target=y, generator=torch.Generator().manual_seed(4))
    close(got, want)
    g = torch.Generator().manual_seed(5)
    noise = [normal(tuple(x.shape), 0.1, x, g).reshape(N, -1).double().numpy() for _ in range(4)]
    want = reference(quantus.LocalLipschitzEstimate(nr_samples=4, disable_warnings=True), model, x, y,
                     patch=("normal", noise))  # fmt: skip
    got = pa.metrics.local_lipschitz_estimate(attributor, n_samples=4)
    close(got(x, target=y, generator=torch.Generator().manual_seed(5)), want)
    g = torch.Generator().manual_seed(6)
    noise = [(0.02 + 0.18 * uniform(tuple(x.shape), x, g)).reshape(N, -1).double().numpy() for _ in range(4)]
    for of, cls in [("input", quantus.RelativeInputStability), ("output", quantus.RelativeOutputStability)]:
        want = reference(cls(nr_samples=4, return_nan_when_prediction_changes=False, disable_warnings=True),
                         model, x, y, patch=("uniform", noise))  # fmt: skip
        got = pa.metrics.relative_stability(attributor, model, of=of, n_samples=4, nan_when_prediction_changes=False)
        close(got(x, target=y, generator=torch.Generator().manual_seed(6)), want)
