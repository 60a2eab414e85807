"""Integrated gradients to a tolerance: ``n_steps="auto"``."""

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.kernel import adaptive_path_integral
from pyattrib._core.quadrature import NestedRule, clenshaw_curtis

from . import models


class RowCounter(nn.Module):
    """Counts the rows it differentiates through (forward-only rows are not counted)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, *xs):
        if torch.is_grad_enabled():
            self.rows += xs[0].shape[0]
        return self.model(*xs)


def test_clenshaw_curtis_is_exact_to_its_degree_and_levels_nest():
    for n in (4, 8, 16):
        alpha, w = clenshaw_curtis(n)
        for p in range(n + 1):
            assert abs((w * alpha**p).sum() - 1 / (p + 1)) < 1e-13
    rule = NestedRule.build()
    for g, steps in enumerate(rule.steps.tolist()):
        held = rule.weights[g] != 0
        assert int(held.sum()) == steps
        # every level holds all nodes of the levels before it
        assert bool(held[: rule.groups[g].stop].all()) and not bool(held[rule.groups[g].stop :].any())


def test_each_example_stops_at_the_first_level_that_meets_the_tolerance():
    # example i integrates (p_i + 1) a^p_i, exact from 2^m + 1 > p_i nodes on
    degrees = torch.tensor([1, 4, 7, 12, 30], dtype=torch.float64)
    expected = [5, 5, 9, 17, 33]
    rows = []

    def grad_at(points, c):
        rows.append(len(c.i))
        a = points[0][:, 0]
        p = degrees[c.i]
        return (((p + 1) * a**p).unsqueeze(1).expand(-1, 3) / 3,)

    start, diff = (torch.zeros(5, 3, dtype=torch.float64),), (torch.ones(5, 3, dtype=torch.float64),)
    integral, steps = adaptive_path_integral(grad_at, start, diff, torch.ones(5, dtype=torch.float64), 1e-10, None)
    assert steps.tolist() == expected
    assert sum(rows) == sum(expected)  # refined examples only, earlier nodes reused
    torch.testing.assert_close(integral[0].sum(1), torch.ones(5, dtype=torch.float64))


def test_half_levels_sit_between_clenshaw_curtis_levels():
    rule = NestedRule.build()
    assert rule.steps.tolist() == [5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257]
    for g in range(len(rule.steps)):
        w = rule.weights[g]
        assert abs(float(w.sum()) - 1) < 1e-12  # constants
        assert abs(float((w * rule.nodes).sum()) - 0.5) < 1e-12  # and linear integrands, exactly


def test_a_discontinuous_integrand_stops_at_half_levels():
    """A ReLU network's gradient jumps along the path: examples stop half way between two
    Clenshaw-Curtis levels where the trapezoid on the held nodes meets the tolerance."""
    jumps = torch.tensor([0.31, 0.47, 0.62, 0.77, 0.13, 0.55], dtype=torch.float64)
    rows = []

    def grad_at(points, c):
        rows.append(len(c.i))
        return (((points[0][:, 0] > jumps[c.i]).double()).unsqueeze(1).expand(-1, 2) / 2,)

    n = len(jumps)
    start, diff = (torch.zeros(n, 2, dtype=torch.float64),), (torch.ones(n, 2, dtype=torch.float64),)
    integral, steps = adaptive_path_integral(grad_at, start, diff, 1 - jumps, 0.02, None)
    assert steps.tolist() == [5, 17, 33, 7, 17, 13]  # 7 and 13: half levels
    assert sum(rows) == int(steps.sum())  # no node evaluated twice
    assert float((integral[0].sum(1) - (1 - jumps)).abs().max()) <= 0.02


@pytest.mark.parametrize("tolerance", [1e-3, 1e-5])
def test_auto_reaches_the_tolerance_on_every_example(tolerance):
    m = models.mlp(seed=1).double()
    x = torch.randn(8, 6, dtype=torch.float64) * torch.linspace(0.1, 4, 8, dtype=torch.float64)[:, None]
    attr, delta = pa.integrated_gradients(m, n_steps="auto", tolerance=tolerance, return_delta=True)(x, target=1)
    assert delta.abs().max() <= tolerance
    exact = pa.integrated_gradients(m, n_steps=400)(x, target=1)
    assert (attr - exact).abs().max() < 50 * tolerance


def test_auto_spends_fewer_evaluations_than_fixed_steps_at_the_same_error():
    counted = RowCounter(models.cnn())
    x = torch.randn(8, 3, 8, 8)
    fixed, d50 = pa.integrated_gradients(counted, n_steps=50, return_delta=True)(x, target=0)
    rows_fixed, counted.rows = counted.rows, 0
    _, d_auto = pa.integrated_gradients(counted, n_steps="auto", tolerance=float(d50.abs().max()), return_delta=True)(
        x, target=0
    )
    assert d_auto.abs().max() <= d50.abs().max()
    assert counted.rows < rows_fixed


def test_auto_does_not_depend_on_batch_size_and_takes_per_example_targets():
    m = models.two_inputs()
    x = (torch.randn(5, 4), torch.randn(5, 3))
    kw = dict(target=[0, 1, 2, 0, 1], additional_forward_args=(torch.rand(5) + 0.5,))
    ig = lambda bs: pa.integrated_gradients(m, n_steps="auto", tolerance=1e-4, batch_size=bs)  # noqa: E731
    ref = ig(None)(x, (0.1, torch.zeros(1, 3)), **kw)
    for bs in (1, 7, 64):
        for a, b in zip(ref, ig(bs)(x, (0.1, torch.zeros(1, 3)), **kw)):
            torch.testing.assert_close(a, b)


def test_layer_ig_auto_reaches_the_tolerance_on_token_ids():
    m = models.token_model()
    ids = torch.randint(1, 20, (4, 7))
    attr, delta = pa.layer_integrated_gradients(m, m.embedding, n_steps="auto", tolerance=1e-3, return_delta=True)(
        ids, torch.zeros_like(ids), target=0
    )
    assert delta.abs().max() <= 1e-3
    exact = pa.layer_integrated_gradients(m, m.embedding, n_steps=300)(ids, torch.zeros_like(ids), target=0)
    assert (attr - exact).abs().max() < 1e-2


def test_unconverged_examples_warn_with_the_largest_delta():
    def step(x):  # a jump along the path: no quadrature converges
        s = x.sum(1, keepdim=True)
        return torch.where(s > 0.5, s + 1.0, s)

    with pytest.warns(RuntimeWarning, match=r"1 of 2 examples did not reach tolerance=1e-06 in 257 steps"):
        pa.integrated_gradients(step, n_steps="auto", tolerance=1e-6)(torch.tensor([[1.0, 0.0], [0.1, 0.1]]))


def test_bad_auto_arguments_are_named():
    m = models.mlp()
    with pytest.raises(ValueError, match="tolerance applies only to n_steps='auto'"):
        pa.integrated_gradients(m, n_steps=20, tolerance=1e-3)
    with pytest.raises(ValueError, match="method='riemann_left' applies to a fixed n_steps"):
        pa.integrated_gradients(m, n_steps="auto", method="riemann_left")
    with pytest.raises(ValueError, match="n_steps must be a positive int or 'auto'"):
        pa.layer_integrated_gradients(m, m[0], n_steps="many")
    with pytest.raises(ValueError, match="tolerance must be a positive float"):
        pa.integrated_gradients(m, n_steps="auto", tolerance=0)
    with pytest.raises(ValueError, match="torch.func transforms cannot trace"):
        torch.func.vmap(lambda x: pa.integrated_gradients(m, n_steps="auto")(x[None], target=0))(torch.randn(2, 6))


def test_clenshaw_curtis_weights_match_numpy_integration():
    alpha, w = clenshaw_curtis(32)
    assert abs((w * np.exp(alpha)).sum() - (np.e - 1)) < 1e-14
