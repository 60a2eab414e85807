"""Axioms of attribution as hypothesis properties over random small models."""

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib import testing as T

IG = lambda f: pa.integrated_gradients(f, n_steps=64)  # noqa: E731


@given(model=T.mlps(d_in=4, d_out=3), x=T.batches(4), b=T.batches(4, max_batch=1), target=st.integers(0, 2))
def test_ig_completeness(model, x, b, target):
    T.check_completeness(IG, model, x, b.expand_as(x), target=target, atol=1e-6, rtol=1e-4)


@given(model=T.mlps(d_in=4), x=T.batches(4), feature=st.integers(0, 3))
def test_ig_sensitivity(model, x, feature):
    T.check_sensitivity(IG, model, x, torch.zeros_like(x), feature, target=0, tol=1e-3)


@given(model=T.mlps(d_in=3), x=T.batches(4), b=T.batches(4, max_batch=1))
def test_ig_dummy_feature(model, x, b):
    # the model sees features 0..2 only; feature 3 is a dummy
    def f(z):
        return model(z[:, :3])

    T.check_dummy(IG, f, x, b.expand_as(x), feature=3, target=0)
    sal = pa.saliency(f)(x, target=0)
    assert float(sal[:, 3].abs().max()) == 0.0


@given(m1=T.mlps(d_in=4), m2=T.mlps(d_in=4), a=st.floats(-2, 2), c=st.floats(-2, 2), x=T.batches(4))
def test_ig_linearity(m1, m2, a, c, x):
    f = lambda z: m1(z)[:, 0]  # noqa: E731
    g = lambda z: m2(z)[:, 0]  # noqa: E731
    T.check_linearity(IG, f, g, a, c, x, torch.zeros_like(x))


@given(
    x=T.batches(4), b=T.batches(4, max_batch=1), seed=st.integers(0, 1000), ij=st.sampled_from([(0, 1), (1, 3), (2, 0)])
)
def test_ig_symmetry(x, b, seed, ij):
    torch.manual_seed(seed)
    model = T.SymmetricMLP(torch.randn(5, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64), *ij)
    T.check_symmetry(IG, model, x, b.expand_as(x).clone(), *ij)


@given(model=T.mlps(d_in=4, d_out=2), x=T.batches(4), target=st.integers(0, 1))
def test_implementation_invariance(model, x, target):
    other = T.reparametrised(model)
    T.check_implementation_invariance(IG, model, other, x, torch.zeros_like(x), target=target)
    a = pa.saliency(model, abs=False)(x, target=target)
    b = pa.saliency(other, abs=False)(x, target=target)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


@given(x=T.batches(5), b=T.batches(5, max_batch=1), seed=st.integers(0, 1000))
def test_gradient_shap_completeness_in_expectation_on_linear(x, b, seed):
    # exact on linear models for every draw: E over alpha/baseline is linear in f
    torch.manual_seed(seed)
    lin = nn.Linear(5, 2).double()
    attr, delta = pa.gradient_shap(lin, n_samples=7, return_delta=True)(
        x, b, target=1, generator=torch.Generator().manual_seed(seed)
    )
    assert float(delta.abs().max()) < 1e-9
