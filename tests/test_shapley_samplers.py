"""Sample-efficient Shapley estimates: antithetic and stratified orderings for
shapley_value_sampling, paired coalitions for kernel_shap, the standard error. What the maths
gives, as properties; the error-versus-evaluations comparison with Captum is in
benchmarks/bench_shapley.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyattrib as pa
from pyattrib.lime import shapley_kernel_samples
from pyattrib.shapley import orderings


class Quadratic(torch.nn.Module):
    """f(x) = x^T A x + b^T x: interactions of at most two features."""

    def __init__(self, n_f: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(n_f, n_f, generator=g, dtype=torch.float64)
        self.b = torch.randn(n_f, generator=g, dtype=torch.float64)

    def forward(self, x):
        return ((x @ self.a) * x).sum(1) + x @ self.b


@settings(max_examples=15)
@given(st.integers(3, 9), st.integers(0, 10_000))
def test_an_antithetic_pair_is_exact_for_pairwise_interactions(n_f, seed):
    model = Quadratic(n_f, seed)
    x = torch.randn(3, n_f, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    exact = pa.shapley_values(model)(x)
    g = torch.Generator().manual_seed(seed)
    torch.testing.assert_close(
        pa.shapley_value_sampling(model, n_samples=2, sampler="antithetic")(x, generator=g), exact
    )
    g = torch.Generator().manual_seed(seed)
    stratified = pa.shapley_value_sampling(model, n_samples=2 * n_f, sampler="stratified")(x, generator=g)
    torch.testing.assert_close(stratified, exact)


@settings(max_examples=10)
@given(st.integers(2, 8), st.integers(0, 10_000), st.sampled_from(["random", "antithetic", "stratified"]))
def test_every_sampler_is_efficient_and_exact_for_additive_models(n_f, seed, sampler):
    model = torch.nn.Linear(n_f, 1).double()
    x = torch.randn(4, n_f, dtype=torch.float64)
    n = {"random": 3, "antithetic": 4, "stratified": 2 * n_f}[sampler]
    a = pa.shapley_value_sampling(model, n_samples=n, sampler=sampler)(
        x, target=0, generator=torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close(a, pa.shapley_values(model)(x, target=0))


def test_orderings_are_pairs_and_balanced_blocks():
    perms, units = orderings(5, 6, "antithetic", torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(perms[1::2], perms[0::2].flip(1)) and units.tolist() == [0, 0, 1, 1, 2, 2]
    perms, units = orderings(5, 20, "stratified", torch.Generator().manual_seed(0), "cpu")
    for block in perms.reshape(2, 10, 5):
        position_counts = torch.zeros(5, 5)
        for p in block:
            position_counts[p, torch.arange(5)] += 1
        assert torch.equal(position_counts, torch.full((5, 5), 2.0))  # every feature at every position, twice
    assert all(sorted(p.tolist()) == list(range(5)) for p in perms)


def test_the_standard_error_matches_the_spread_of_estimates_across_seeds():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double().eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    for sampler, n in (("random", 8), ("antithetic", 8)):
        runs = [pa.shapley_value_sampling(model, n_samples=n, sampler=sampler, return_stderr=True)(
            x, target=0, generator=torch.Generator().manual_seed(s)) for s in range(60)]  # fmt: skip
        spread = torch.stack([a for a, _ in runs]).std(0).mean()
        stderr = torch.stack([e for _, e in runs]).mean()
        assert 0.7 < float(stderr / spread) < 1.3, (sampler, float(stderr), float(spread))
        a, e = runs[0]
        assert a.shape == e.shape == x.shape and (e >= 0).all()


def test_paired_kernel_shap_draws_complements_and_is_closer_to_exact():
    z = shapley_kernel_samples(3, 11, 6, torch.Generator().manual_seed(0), torch.device("cpu"), paired=True)
    assert z[:, 0].all() and not z[:, 1].any()
    assert torch.equal(z[:, 3::2], ~z[:, 2:-1:2])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double().eval()
    x = torch.randn(6, 8, dtype=torch.float64)
    exact = pa.shapley_values(model)(x, target=0)
    err = {}
    for paired in (False, True):
        est = [pa.kernel_shap(model, n_samples=60, paired=paired)(x, target=0, generator=torch.Generator().manual_seed(s))
               for s in range(6)]  # fmt: skip
        err[paired] = float(torch.stack([(e - exact).abs().mean() for e in est]).mean())
        rise = (model(x) - model(torch.zeros_like(x)))[:, 0]
        torch.testing.assert_close(est[0].sum(1), rise, atol=1e-4, rtol=1e-4)  # efficiency
    assert err[True] < 0.7 * err[False], err


def test_bad_sampler_arguments_are_named():
    model = torch.nn.Linear(4, 1)
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="sampler must be one of"):
        pa.shapley_value_sampling(model, sampler="sobol")
    with pytest.raises(ValueError, match="must be even"):
        pa.shapley_value_sampling(model, n_samples=3, sampler="antithetic")
    with pytest.raises(ValueError, match="multiple of 8"):
        pa.shapley_value_sampling(model, n_samples=10, sampler="stratified")(x, target=0)
    with pytest.raises(ValueError, match="at least two independent draws"):
        pa.shapley_value_sampling(model, n_samples=2, sampler="antithetic", return_stderr=True)(x, target=0)
