"""Integrated gradients to a tolerance: ``n_steps="auto"``."""

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.kernel import adaptive_path_integral
from pyattrib._core.quadrature import DyadicGrid, fejer

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


def test_fejer_is_exact_to_its_degree_and_its_levels_nest_on_the_grid():
    for m in (2, 3, 4):
        alpha, w = fejer(m)
        for p in range(2**m - 1):
            assert abs((w * alpha**p).sum() - 1 / (p + 1)) < 1e-13
    grid = DyadicGrid.build()
    for m in range(1, grid.depth):
        coarse, fine = grid.fejer[m] != 0, grid.fejer[m + 1] != 0
        assert int(coarse.sum()) == 2**m - 1 and not bool((coarse & ~fine).any())
        assert not bool(coarse[[0, grid.size]].any())  # never the baseline or the input
    assert abs((fejer(5)[1] * np.exp(fejer(5)[0])).sum() - (np.e - 1)) < 1e-14


def test_interval_errors_sum_to_the_completeness_delta_and_weights_hold_constants():
    grid = DyadicGrid.build()
    torch.manual_seed(0)
    held = torch.rand(3, grid.size + 1) < 0.1
    held[:, [0, grid.size // 2, grid.size]] = True
    a = grid.alpha
    values, slopes = torch.sin(3 * a).expand(3, -1), (3 * torch.cos(3 * a)).expand(3, -1)
    w = grid.trapezoid(held)
    assert torch.allclose(w.sum(1), torch.ones(3, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert not bool(w[~held].any()) and not bool(w[:, [0, grid.size]].any())
    errors, _ = grid.interval_errors(held, values, slopes)
    torch.testing.assert_close(errors.sum(1), (w * slopes).sum(1) - (values[:, -1] - values[:, 0]))


def _recording(integrand, antiderivative, parameter):
    """A ``grad_at`` for the kernel: the gradient ``integrand(a)`` spread over 2 features,
    recording ``F(a)`` on the chunk as the model's forward pass would."""
    rows = []

    def grad_at(points, c):
        rows.append(len(c.i))
        a, p = points[0][:, 0], parameter[c.i]
        c.outputs = antiderivative(a, p)
        return (integrand(a, p).unsqueeze(1).expand(-1, 2) / 2,)

    return grad_at, rows


def _integrate(integrand, antiderivative, parameter, tolerance):
    n = len(parameter)
    grad_at, rows = _recording(integrand, antiderivative, parameter)
    start, diff = (torch.zeros(n, 2, dtype=torch.float64),), (torch.ones(n, 2, dtype=torch.float64),)
    zero = torch.zeros(n, dtype=torch.float64)
    ends = (antiderivative(zero, parameter), antiderivative(zero + 1, parameter))
    integral, steps = adaptive_path_integral(grad_at, start, diff, ends, tolerance, None)
    error = integral[0].sum(1) - (ends[1] - ends[0])
    return error, steps, rows


def test_smooth_integrands_stop_early_and_no_node_is_evaluated_twice():
    # example i integrates (p_i + 1) a^p_i: higher degrees need more nodes
    degrees = torch.tensor([0, 1, 4, 7, 12, 30], dtype=torch.float64)
    error, steps, rows = _integrate(lambda a, p: (p + 1) * a**p, lambda a, p: a ** (p + 1), degrees, 1e-10)
    assert float(error.abs().max()) <= 1e-10
    assert steps[:2].tolist() == [3, 3]  # the first rule (Fejer's, 3 nodes) is exact to degree 3
    assert steps.tolist() == sorted(steps.tolist()) and int(steps[-2]) <= 15
    assert sum(rows) == int(steps.sum())  # refined examples only, earlier nodes reused


def test_a_jump_in_the_gradient_is_isolated_by_halving():
    """A ReLU network's gradient jumps along the path. The interval holding the jump has all
    the error, so only it is halved: nodes grow with log(1 / tolerance), not 1 / tolerance."""
    jumps = torch.tensor([0.31, 0.47, 0.62, 0.77, 0.13, 0.55], dtype=torch.float64)
    step_up = lambda a, j: (a > j).double()  # noqa: E731
    ramp = lambda a, j: (a - j).clamp(min=0)  # noqa: E731
    for tolerance in (1e-2, 4e-3):
        error, steps, rows = _integrate(step_up, ramp, jumps, tolerance)
        assert float(error.abs().max()) <= tolerance
        assert int(steps.max()) <= 64 and float(steps.double().mean()) < 20  # of 255 on the grid
        assert sum(rows) == int(steps.sum())


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
    assert counted.rows <= rows_fixed / 2  # the target: half the evaluations at the same error


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

    with pytest.warns(
        RuntimeWarning, match=r"1 of 2 examples did not reach tolerance=1e-06 on the finest grid \(257 nodes"
    ):
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
