"""Invariants and errors of the gradient and path methods."""

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.quadrature import quadrature

from . import models


def test_ig_on_linear_model_is_exact():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3).double()
    x, b = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    for method in ("gausslegendre", "riemann_left", "riemann_trapezoid"):
        attr = pa.integrated_gradients(lin, n_steps=3, method=method)(x, b, target=2)
        torch.testing.assert_close(attr, (x - b) * lin.weight[2].detach())


def test_ig_with_baseline_equal_to_input_is_zero():
    m = models.mlp()
    x = torch.randn(3, 6)
    attr, delta = pa.integrated_gradients(m, return_delta=True)(x, x.clone(), target=1)
    assert attr.abs().max() == 0 and delta.abs().max() < 1e-6


@pytest.mark.parametrize("batch_size", [1, 3, 5, 7, 40, 1000])
def test_results_do_not_depend_on_batch_size(batch_size):
    m = models.two_inputs()
    x = (torch.randn(5, 4), torch.randn(5, 3))
    kw = dict(target=[0, 1, 2, 0, 1], additional_forward_args=(torch.rand(5) + 0.5,))
    ref = pa.integrated_gradients(m, n_steps=8)(x, (0.1, torch.zeros(1, 3)), **kw)
    got = pa.integrated_gradients(m, n_steps=8, batch_size=batch_size)(x, (0.1, torch.zeros(1, 3)), **kw)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b)
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    refs = (torch.randn(6, 4), torch.randn(6, 3))
    ref = pa.gradient_shap(m, n_samples=6, stdevs=0.1)(x, refs, generator=g(), **kw)
    got = pa.gradient_shap(m, n_samples=6, stdevs=0.1, batch_size=batch_size)(x, refs, generator=g(), **kw)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(pa.saliency(m, batch_size=batch_size)(x, **kw)[0], pa.saliency(m)(x, **kw)[0])


def test_batch_invariance():
    m = models.cnn()
    x = torch.randn(4, 3, 8, 8)
    full = pa.integrated_gradients(m, n_steps=10)(x, target=[0, 1, 2, 3])
    alone = pa.integrated_gradients(m, n_steps=10)(x[2:3], target=[2])
    torch.testing.assert_close(full[2:3], alone, atol=1e-6, rtol=1e-5)


def test_vmap_over_examples_equals_loop():
    m = models.mlp()
    x = torch.randn(4, 6)
    ig = pa.integrated_gradients(m, n_steps=8)
    batched = torch.func.vmap(lambda z: ig(z[None], target=1)[0])(x)
    looped = torch.stack([ig(x[i : i + 1], target=1)[0] for i in range(4)])
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=1e-5)


def test_slow_reference_ig_follows_the_paper():
    # Riemann sum written literally as in Sundararajan et al., one gradient per step.
    m = models.mlp()
    x, b, n = torch.randn(2, 6), torch.randn(2, 6), 25
    total = torch.zeros_like(x)
    for k in range(1, n + 1):
        p = (b + k / n * (x - b)).requires_grad_()
        (g,) = torch.autograd.grad(m(p)[:, 1].sum(), p)
        total += g / n
    slow = (x - b) * total
    fast = pa.integrated_gradients(m, n_steps=n, method="riemann_right")(x, b, target=1)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)


def test_float64_stays_float64_and_dtypes_follow_inputs():
    m = models.mlp().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    for att in (pa.saliency(m), pa.integrated_gradients(m, n_steps=4), pa.smoothgrad(pa.saliency(m), stdevs=0.1)):
        assert att(x, target=0).dtype == torch.float64
    a = pa.gradient_shap(m)(x, torch.zeros(2, 6, dtype=torch.float64), target=0)
    assert a.dtype == torch.float64


def test_quadrature_weights_integrate_polynomials():
    for method in ("gausslegendre", "riemann_middle", "riemann_trapezoid", "riemann_left", "riemann_right"):
        a, w = quadrature(method, 200)
        assert abs(float(w.sum()) - 1) < 1e-12
        assert abs(float((w * a).sum()) - 0.5) < 1e-2
    a, w = quadrature("gausslegendre", 4)
    assert abs(float((w * a**7).sum()) - 1 / 8) < 1e-12


def test_target_callable_and_scalar_tensor():
    m = models.mlp()
    x = torch.randn(3, 6)
    a = pa.saliency(m, abs=False)(x, target=lambda out: out[:, 1] - out[:, 0])
    b = pa.saliency(m, abs=False)(x, target=1) - pa.saliency(m, abs=False)(x, target=0)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(pa.saliency(m)(x, target=torch.tensor(2)), pa.saliency(m)(x, target=2))
    torch.testing.assert_close(pa.saliency(m)(x, target=-1), pa.saliency(m)(x, target=2))


def test_non_batch_additional_args_are_passed_as_is():
    m = models.two_inputs()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    a = pa.integrated_gradients(m, n_steps=5)(x, target=0, additional_forward_args=(None, 0.7))
    b = pa.integrated_gradients(lambda p, q: m(p, q, None, 0.7), n_steps=5)(x, target=0)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)


def test_convergence_delta_function_matches_return_delta():
    m = models.mlp()
    x, b = torch.randn(3, 6), torch.randn(3, 6)
    attr, delta = pa.integrated_gradients(m, n_steps=5, return_delta=True)(x, b, target=[0, 1, 2])
    torch.testing.assert_close(pa.convergence_delta(m, x, b, attr, target=[0, 1, 2]), delta)


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, x: pa.integrated_gradients(m)(x, torch.zeros(2, 6), target=0),
            r"baselines has shape \(2, 6\).*inputs has shape \(3, 6\)",
        ),
        (lambda m, x: pa.integrated_gradients(m)(x, target=3), r"target 3 is out of range.*0\.\.2"),
        (lambda m, x: pa.integrated_gradients(m)(x, target=[0, 1, 5]), r"target for example 2 is \[5\], out of range"),
        (lambda m, x: pa.integrated_gradients(m)(x, target=(0, 1)), r"target has 2 index\(es\).*1 dimension"),
        (lambda m, x: pa.integrated_gradients(m)(x), r"target is None but the model output has shape \(N, 3\)"),
        (lambda m, x: pa.integrated_gradients(m)(x, target=[0, 1]), r"target has 2 entries but inputs have 3 examples"),
        (
            lambda m, x: pa.integrated_gradients(m)(x.long(), target=0),
            r"inputs has dtype torch.int64.*layer_integrated_gradients",
        ),
        (lambda m, x: pa.saliency(m)(x > 0, target=0), r"inputs has dtype torch.bool"),
        (lambda m, x: pa.integrated_gradients(m, n_steps=0), r"n_steps must be a positive int"),
        (
            lambda m, x: pa.integrated_gradients(m, method="simpson"),
            r"unknown quadrature method 'simpson'.*gausslegendre",
        ),
        (lambda m, x: pa.integrated_gradients(m, method="riemann_trapezoid", n_steps=1), r"at least 2"),
        (
            lambda m, x: pa.gradient_shap(m, stdevs=(0.1, 0.2))(x, torch.zeros(1, 6), target=0),
            r"stdevs has 2 entries but inputs has 1",
        ),
        (lambda m, x: pa.smoothgrad(pa.saliency(m), stdevs=(0.1, 0.2))(x, target=0), r"stdevs has 2 entries"),
        (lambda m, x: pa.gradient_shap(m)(x, target=0), r"baselines is required"),
        (lambda m, x: pa.gradient_shap(m)(x, torch.zeros(4, 5), target=0), r"must have shape \(n_references, 6\)"),
        (lambda m, x: pa.integrated_gradients(m, batch_size=0), r"batch_size must be None or a positive int"),
        (lambda m, x: pa.noise_tunnel(pa.saliency(m), kind="smooth"), r"unknown noise tunnel kind"),
        (
            lambda m, x: pa.integrated_gradients(m)((x, x), (0.0,), target=0),
            r"baselines has 1 entries but inputs has 2",
        ),
        (lambda m, x: pa.integrated_gradients(m)(x, target=0.5), r"target of type float"),
    ],
)
def test_bad_input_messages(call, message):
    m, x = models.mlp(), torch.randn(3, 6)
    with pytest.raises((ValueError, TypeError, IndexError), match=message):
        call(m, x)


def test_zero_dim_output_message():
    with pytest.raises(ValueError, match="0-d scalar"):
        pa.saliency(lambda z: z.sum())(torch.randn(3, 2))
