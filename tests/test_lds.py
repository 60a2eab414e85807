"""The linear datamodeling score (pa.influence.lds) and its helpers: a linear datamodel is
predicted exactly, random scores are not, the correlation is scipy's Spearman, and models trained
on subsets are reproducible from their recorded seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import pyattrib as pa
from pyattrib._core.errors import ArgumentError


def test_subsets_are_uniform_draws_of_the_given_size():
    g = torch.Generator().manual_seed(0)
    masks = pa.influence.subsets(40, 200, 0.25, generator=g)
    assert masks.shape == (200, 40) and bool((masks.sum(1) == 10).all())
    share = masks.double().mean(0)  # every example in about a quarter of the subsets
    assert float((share - 0.25).abs().max()) < 0.12
    again = pa.influence.subsets(40, 200, 0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)
    with pytest.raises(ArgumentError, match="fraction"):
        pa.influence.subsets(10, 3, 1.0)


def test_a_linear_datamodel_scores_one_and_random_scores_about_zero():
    g = torch.Generator().manual_seed(1)
    tau = torch.randn(6, 50, generator=g, dtype=torch.float64)
    masks = pa.influence.subsets(50, 64, generator=g)
    outputs = masks.double() @ tau.T + 0.05 * torch.randn(64, 6, generator=g, dtype=torch.float64)
    exact = pa.influence.lds(tau, masks, outputs)
    assert float(exact.mean()) > 0.95
    noise = pa.influence.lds(torch.randn(6, 50, generator=g, dtype=torch.float64), masks, outputs)
    assert abs(float(noise.mean())) < 0.3
    for t in range(6):  # the correlation is Spearman's, per test example, over the subsets
        want = spearmanr(outputs[:, t].numpy(), (masks.double() @ tau[t]).numpy()).statistic
        np.testing.assert_allclose(float(exact[t]), want, atol=1e-12)


def test_models_trained_on_subsets_are_reproducible_from_their_seeds():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(30, generator=g)
    test = torch.randn(5, 4, generator=g)

    def train(indices, generator):  # a few noisy SGD steps: the result depends on the generator
        w = torch.zeros(4)
        for _ in range(50):
            pick = indices[torch.randint(len(indices), (8,), generator=generator)]
            w -= 0.05 * 2 * x[pick].T @ (x[pick] @ w - y[pick]) / 8
        return w

    masks = pa.influence.subsets(30, 5, generator=g)
    runs = pa.influence.train_on_subsets(train, lambda w: test @ w, masks, generator=torch.Generator().manual_seed(3))
    again = pa.influence.train_on_subsets(train, lambda w: test @ w, masks, generator=torch.Generator().manual_seed(3))
    assert runs.outputs.shape == (5, 5) and len(set(runs.seeds)) == 5
    torch.testing.assert_close(runs.outputs, again.outputs, atol=0, rtol=0)
    one = train(masks[2].nonzero()[:, 0], torch.Generator().manual_seed(runs.seeds[2]))  # a run repeated alone
    torch.testing.assert_close(runs.outputs[2], (test @ one).double(), atol=1e-12, rtol=0)
    with pytest.raises(ArgumentError, match="shapes do not agree"):
        pa.influence.lds(torch.zeros(5, 30), masks, runs.outputs[:, :4])
