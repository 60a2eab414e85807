"""Faithfulness metrics against quantus 0.6.0 on the same model, inputs, attributions and random
draws (Quantus's numpy draws are replaced by pyattrib's), and the places where Quantus departs
from its papers."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib._core.random import uniform
from pyattrib.metrics.faithfulness_sampled import random_subsets

from .quantus_cases import SIDE, N, cnn

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")


def data(side: int = SIDE, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, 1, side, side, generator=g)
    a = torch.randn(N, 1, side, side, generator=g)  # no ties: Quantus's argsort is not stable
    return x, a, torch.arange(N) % 10


def reference(metric, model, x, a, y, **kwargs):
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        mp.setattr(np, "trapz", np.trapezoid, raising=False)  # numpy 2 removed what Quantus's AUC calls
        out = metric(model=model, x_batch=x.numpy(), y_batch=np.asarray(y), a_batch=a.detach().numpy().copy(), channel_first=True,
                     device="cpu", **kwargs)  # fmt: skip
    return np.asarray(out, dtype=np.float64)


def close(ours, want, atol=1e-5):
    np.testing.assert_allclose(ours.double().numpy(), want, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("step", [1, 8])
def test_pixel_flipping_and_estimate_equal_quantus(step):
    model, (x, a, y) = cnn(), data()
    close(pa.metrics.pixel_flipping(model, features_in_step=step)(x, a, target=y),
          reference(quantus.PixelFlipping(features_in_step=step, disable_warnings=True), model, x, a, y))  # fmt: skip
    close(
        pa.metrics.faithfulness_estimate(model, features_in_step=step)(x, a, target=y),
        reference(quantus.FaithfulnessEstimate(features_in_step=step, disable_warnings=True), model, x, a, y),
    )
    auc = reference(quantus.PixelFlipping(features_in_step=step, return_auc_per_sample=True, disable_warnings=True),
                    model, x, a, y)  # fmt: skip
    close(torch.trapezoid(pa.metrics.pixel_flipping(model, features_in_step=step)(x, a, target=y), dim=1), auc)


@pytest.mark.parametrize("patch_size", [3, 4, 8])
def test_region_perturbation_and_selectivity_equal_quantus(patch_size):
    model, (x, a, y) = cnn(), data()
    for order, regions in [("morf", 100), ("lerf", 3)]:
        ours = pa.metrics.region_perturbation(model, patch_size=patch_size, order=order, regions_evaluation=regions)
        want = reference(quantus.RegionPerturbation(patch_size=patch_size, order=order, regions_evaluation=regions,
                                                    disable_warnings=True), model, x, a, y)  # fmt: skip
        close(ours(x, a, target=y), want)
    close(
        pa.metrics.selectivity(model, patch_size=patch_size)(x, a, target=y),
        reference(quantus.Selectivity(patch_size=patch_size, disable_warnings=True), model, x, a, y),
    )


def test_faithfulness_correlation_equals_quantus_on_the_same_subsets():
    model, (x, a, y) = cnn(), data()
    subsets = random_subsets(N, 20, SIDE * SIDE, 12, x, torch.Generator().manual_seed(3))
    draws = iter(subsets.reshape(-1, 12).numpy())  # Quantus draws per run, then per example
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np.random, "choice", lambda *args, **kwargs: next(draws))
        want = reference(quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=12, return_aggregate=False,
                                                         disable_warnings=True), model, x, a, y)  # fmt: skip
    ours = pa.metrics.faithfulness_correlation(model, n_samples=20, subset_size=12)
    close(ours(x, a, target=y, generator=torch.Generator().manual_seed(3)), want)
    assert np.isfinite(want).all() and np.abs(want).max() > 0.05


def test_monotonicity_correlation_equals_quantus_on_the_same_draws():
    model, (x, a, y) = cnn(), data()
    g = torch.Generator().manual_seed(4)
    steps, samples = SIDE * SIDE // 8, 3
    values = uniform((steps * samples * N, 1), x, g).reshape(steps * samples, N)  # pyattrib's draws
    draws = iter(values.numpy())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np.random, "uniform", lambda *args, **kwargs: next(draws))
        want = reference(quantus.MonotonicityCorrelation(nr_samples=samples, features_in_step=8, disable_warnings=True),
                         model, x, a, y)  # fmt: skip
    ours = pa.metrics.monotonicity_correlation(model, n_samples=samples, features_in_step=8)
    close(ours(x, a, target=y, generator=torch.Generator().manual_seed(4)), want)


def test_sensitivity_n_quantus_protocol_equals_quantus_and_differs_from_the_paper():
    """Quantus removes the top-ranked elements cumulatively and correlates, at each step, the drop
    with that step's attributions *across the batch*; the paper (Ancona et al.) correlates, per
    example, the drops of random subsets of n elements with their summed attributions."""
    model, (x, a, y) = cnn(), data()
    want = reference(quantus.SensitivityN(features_in_step=2, return_aggregate=False, disable_warnings=True),
                     model, x, a, y)  # fmt: skip
    close(pa.metrics.sensitivity_n(model, protocol="quantus", features_in_step=2)(x, a, target=y), want)
    assert want.shape == (int(0.8 * SIDE * SIDE // 2),)
    paper = pa.metrics.sensitivity_n(model, sizes=[1, 4, 16], n_samples=30, softmax=False)
    out = paper(x, a, target=y, generator=torch.Generator().manual_seed(0))
    assert out.shape == (N, 3)
    # on a linear model with gradient x input attributions every subset's drop is its summed attribution
    lin = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10)).eval()
    exact = pa.input_x_gradient(lin)(x, target=y)
    perfect = pa.metrics.sensitivity_n(lin, sizes=[1, 4, 16], n_samples=30, softmax=False, baselines=0.0)
    torch.testing.assert_close(perfect(x, exact, target=y, generator=torch.Generator().manual_seed(0)),
                               torch.ones(N, 3), atol=1e-5, rtol=0)  # fmt: skip


def test_monotonicity_follows_the_paper_where_quantus_never_changes_its_copies():
    """Quantus replaces the elements of its all-baseline copy by the baseline again, so the output
    never moves and every explanation is 'monotonic'. Putting the input's values back (the
    paper), a linear model whose contributions are all positive is monotonic and one with
    negative contributions is not."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).eval()
    x, y = torch.rand(N, 1, 4, 4) + 0.1, torch.zeros(N, dtype=torch.long)
    metric = pa.metrics.monotonicity(lin, softmax=False, baselines=0.0)
    for low, monotonic in [(0.1, True), (-1.0, False)]:
        with torch.no_grad():
            lin[1].weight.uniform_(low, 1.0)
        a = (x * lin[1].weight.reshape(1, 1, 4, 4)).abs().detach() + 0.01
        assert (metric(x, a, target=y) == monotonic).all()
        want = reference(quantus.Monotonicity(perturb_baseline=0.0, disable_warnings=True), lin, x, a, y, softmax=False)
        assert (want == 1).all()


def test_irof_equals_quantus_with_its_batch_mean_and_per_example_by_default():
    """Quantus fills with the mean of the whole batch as perturbed so far (``"batch_mean"``), so an
    example's score changes with its batch; pyattrib's default fills each example with its own
    mean, which does not."""
    model, (x, a, y) = cnn(16), data(16)
    want = reference(quantus.IROF(return_aggregate=False, disable_warnings=True), model, x, a, y)
    close(pa.metrics.irof(model, baselines="batch_mean")(x, a, target=y), want, atol=1e-4)
    alone = np.concatenate([reference(quantus.IROF(return_aggregate=False, disable_warnings=True), model,
                                      x[i : i + 1], a[i : i + 1], y[i : i + 1]) for i in range(N)])  # fmt: skip
    assert np.abs(alone - want).max() > 1e-3  # Quantus: the batch changes the score
    ours = pa.metrics.irof(model)(x, a, target=y)
    torch.testing.assert_close(pa.metrics.irof(model)(x[:2], a[:2], target=y[:2]), ours[:2], atol=1e-5, rtol=1e-5)


def test_sufficiency_equals_quantus():
    model, (x, a, _) = cnn(), data()
    x = torch.cat([x, x + 0.01 * torch.rand_like(x)])  # near twins: explanations close, classes equal
    a = torch.cat([a, a + 0.05 * torch.randn_like(a)])
    want = reference(quantus.Sufficiency(disable_warnings=True), model, x, a, np.zeros(2 * N, dtype=int))
    assert want.max() > 0
    close(pa.metrics.sufficiency(model)(x, a), want)


def test_bad_input_and_generators():
    model, (x, a, y) = cnn(), data()
    with pytest.raises(ArgumentError, match="do not fit inputs"):
        pa.metrics.pixel_flipping(model)(x, a[:, :, :4], target=y)
    with pytest.raises(ArgumentError, match="generator"):
        pa.metrics.faithfulness_correlation(model, subset_size=4)(x, a, target=y)
    with pytest.raises(ArgumentError, match="generator"):
        pa.metrics.region_perturbation(model, order="random")(x, a, target=y)
    with pytest.raises(ArgumentError, match="subset_size"):
        pa.metrics.faithfulness_correlation(model)(x, a, target=y, generator=torch.Generator())
    with pytest.raises(ArgumentError, match="baselines"):
        pa.metrics.pixel_flipping(model, baselines="grey")
    with pytest.raises(ArgumentError, match="order"):
        pa.metrics.region_perturbation(model, order="best")
    with pytest.raises(ArgumentError, match="target"):
        pa.metrics.pixel_flipping(model)(x, a)


def test_batch_size_and_model_state_do_not_change_scores():
    model, (x, a, y) = cnn(), data()
    model.train()
    hooks = len(model._forward_hooks)
    full = pa.metrics.region_perturbation(model, patch_size=2)(x, a, target=y)
    chunked = pa.metrics.region_perturbation(model, patch_size=2, batch_size=7)(x, a, target=y)
    torch.testing.assert_close(full, chunked, atol=1e-6, rtol=1e-5)
    assert model.training and len(model._forward_hooks) == hooks
    three = a.expand(N, 1, SIDE, SIDE)
    torch.testing.assert_close(pa.metrics.pixel_flipping(model)(x, three, target=y),
                               pa.metrics.pixel_flipping(model)(x, a, target=y), atol=0, rtol=0)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    random_order = pa.metrics.region_perturbation(model, patch_size=2, order="random")
    first = random_order(x, a, target=y, generator=g)
    torch.testing.assert_close(random_order(x, a, target=y, generator=torch.Generator().manual_seed(0)), first,
                               atol=0, rtol=0)  # fmt: skip
