"""Robustness metrics against quantus 0.6.0 with the same noise (Quantus's numpy draws are
replaced by pyattrib's) and the same explanation function, and where Quantus departs from its
papers."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib._core.random import normal, uniform

from .quantus_cases import SIDE, N, cnn, images

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")

SAMPLES = 5


def explain(model, inputs, targets, **kwargs):
    x, t = torch.as_tensor(inputs), torch.as_tensor(targets)
    return pa.input_x_gradient(model)(x, target=t).detach().numpy()


def reference(metric, model, x, y, draws=None, **kwargs):
    """Quantus's scores; ``draws``: (name, arrays) replacing its numpy noise draws in order."""
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        if draws is not None:
            name, arrays = draws
            it = iter(arrays)
            mp.setattr(np.random, name, lambda *args, **kw: next(it))
        out = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, channel_first=True,
                     explain_func=explain, device="cpu", **kwargs)  # fmt: skip
    return np.asarray(out, dtype=np.float64)


def noise(kind, x, seed, low=0.0, high=1.0, std=1.0):
    g = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        return [(low + (high - low) * uniform(tuple(x.shape), x, g)).reshape(N, -1).double().numpy()
                for _ in range(SAMPLES)]  # fmt: skip
    return [normal(tuple(x.shape), std, x, g).reshape(N, -1).double().numpy() for _ in range(SAMPLES)]


def close(ours, want, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(ours.double().numpy(), want, rtol=rtol, atol=atol)


def test_avg_sensitivity_and_local_lipschitz_equal_quantus():
    model, (x, y) = cnn(), images()
    ig = pa.input_x_gradient(model)
    want = reference(quantus.AvgSensitivity(nr_samples=SAMPLES, disable_warnings=True), model, x, y,
                     ("uniform", noise("uniform", x, 0, -0.2, 0.2)))  # fmt: skip
    close(pa.metrics.avg_sensitivity(ig, n_samples=SAMPLES)(x, target=y, generator=torch.Generator().manual_seed(0)),
          want)  # fmt: skip
    want = reference(quantus.LocalLipschitzEstimate(nr_samples=SAMPLES, disable_warnings=True), model, x, y,
                     ("normal", noise("normal", x, 1, std=0.1)))  # fmt: skip
    metric = pa.metrics.local_lipschitz_estimate(ig, n_samples=SAMPLES, batch_size=2 * N)  # chunks of 2 copies
    close(metric(x, target=y, generator=torch.Generator().manual_seed(1)), want)


def test_continuity_equals_quantus():
    model, (x, y) = cnn(), images()
    for steps in (3, 5):
        want = reference(quantus.Continuity(nr_steps=steps, disable_warnings=True), model, x, y)
        close(pa.metrics.continuity(pa.input_x_gradient(model), n_steps=steps)(x, target=y), want)


@pytest.mark.parametrize("of", ["input", "output", "representation"])
def test_relative_stability_equals_quantus_where_no_prediction_changes(of):
    model, (x, y) = cnn(), images()
    cls = {"input": quantus.RelativeInputStability, "output": quantus.RelativeOutputStability,
           "representation": quantus.RelativeRepresentationStability}[of]  # fmt: skip
    draws = ("uniform", noise("uniform", x, 2, 0.02, 0.2))
    want = reference(cls(nr_samples=SAMPLES, return_nan_when_prediction_changes=False, disable_warnings=True),
                     model, x, y, draws)  # fmt: skip
    metric = pa.metrics.relative_stability(pa.input_x_gradient(model), model, of=of, n_samples=SAMPLES,
                                           nan_when_prediction_changes=False)  # fmt: skip
    close(metric(x, target=y, generator=torch.Generator().manual_seed(2)), want, rtol=1e-3)


def test_relative_stability_takes_the_max_over_copies_that_keep_the_class():
    """Quantus's ``np.max`` over copies returns NaN for an example as soon as one copy changes its
    class; the paper maximises over the copies that keep it."""
    model, (x, y) = cnn(), images()
    draws = noise("uniform", x, 3, 0.5, 3.0)  # large noise: some copies change class
    metric = quantus.RelativeInputStability(nr_samples=SAMPLES, disable_warnings=True)
    want = reference(metric, model, x, y, ("uniform", draws))  # its own bounds are not used: the draws are ours
    assert np.isnan(want).any()
    ours = pa.metrics.relative_stability(pa.input_x_gradient(model), model, n_samples=SAMPLES, low=0.5, high=3.0)
    got = ours(x, target=y, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(got[torch.as_tensor(np.isnan(want))]).any()
    keep = ~np.isnan(want)
    close(got[torch.as_tensor(keep)], want[keep], rtol=1e-3)


def test_consistency_equals_quantus():
    model, (x, y) = cnn(), images()
    x = torch.cat([x, x])  # twins share their explanation
    want = reference(quantus.Consistency(disable_warnings=True), model, x, torch.cat([y, y]))
    ours = pa.metrics.consistency(pa.input_x_gradient(model), model)(x, target=torch.cat([y, y]))
    close(ours, want)
    assert want.max() > 0


def test_bad_input():
    model, (x, y) = cnn(), images()
    with pytest.raises(ArgumentError, match="generator"):
        pa.metrics.avg_sensitivity(pa.saliency(model), n_samples=2)(x, target=y)
    with pytest.raises(ArgumentError, match="model="):
        pa.metrics.avg_sensitivity(pa.saliency(model), nan_when_prediction_changes=True)
    with pytest.raises(ArgumentError, match="of="):
        pa.metrics.relative_stability(pa.saliency(model), model, of="logits")
    with pytest.raises(ArgumentError, match="images"):
        mlp = nn.Sequential(nn.Linear(SIDE * SIDE, 10))
        pa.metrics.continuity(pa.saliency(mlp), n_steps=2)(x.reshape(N, -1), target=y)


def test_max_sensitivity_equals_quantus_and_the_named_stabilities():
    model, (x, y) = cnn(), images()
    ig = pa.input_x_gradient(model)
    want = reference(quantus.MaxSensitivity(nr_samples=SAMPLES, disable_warnings=True), model, x, y,
                     ("uniform", noise("uniform", x, 0, -0.2, 0.2)))  # fmt: skip
    close(pa.metrics.max_sensitivity(ig, n_samples=SAMPLES)(x, target=y, generator=torch.Generator().manual_seed(0)),
          want)  # fmt: skip
    for of, named in [("input", pa.metrics.relative_input_stability), ("output", pa.metrics.relative_output_stability),
                      ("representation", pa.metrics.relative_representation_stability)]:  # fmt: skip
        one = named(ig, model, n_samples=3)(x, target=y, generator=torch.Generator().manual_seed(1))
        other = pa.metrics.relative_stability(ig, model, of=of, n_samples=3)
        torch.testing.assert_close(one, other(x, target=y, generator=torch.Generator().manual_seed(1)), atol=0,
                                   rtol=0, equal_nan=True)  # fmt: skip
