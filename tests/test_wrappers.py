"""noise_tunnel and multi_target: composition, batching and randomness."""

import pytest
import torch
from torch import nn

import pyattrib as pa

from . import models


def test_smoothgrad_with_zero_noise_equals_inner():
    m = models.mlp()
    x = torch.randn(4, 6)
    ig = pa.integrated_gradients(m, n_steps=8)
    torch.testing.assert_close(pa.smoothgrad(ig, stdevs=0.0, n_samples=3)(x, target=1), ig(x, target=1))
    torch.testing.assert_close(pa.smoothgrad_sq(ig, stdevs=0.0)(x, target=1), ig(x, target=1) ** 2)
    assert pa.vargrad(ig, stdevs=0.0)(x, target=1).abs().max() < 1e-6


def test_same_generator_same_result_and_batch_size_free():
    m = models.two_inputs()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    sg = pa.smoothgrad(pa.integrated_gradients(m, n_steps=4), n_samples=7, stdevs=(0.2, 0.1))
    sg_chunked = pa.smoothgrad(pa.integrated_gradients(m, n_steps=4), n_samples=7, stdevs=(0.2, 0.1), batch_size=6)
    kw = dict(target=[0, 1, 2], additional_forward_args=torch.rand(3) + 0.5)
    a = sg(x, **kw, generator=torch.Generator().manual_seed(1))
    b = sg(x, **kw, generator=torch.Generator().manual_seed(1))
    c = sg_chunked(x, **kw, generator=torch.Generator().manual_seed(1))
    d = sg(x, **kw, generator=torch.Generator().manual_seed(2))
    for u, v, w, z in zip(a, b, c, d):
        torch.testing.assert_close(u, v)
        torch.testing.assert_close(u, w)
        assert not torch.allclose(u, z)


def test_stacked_wrappers_and_generator_pass_through():
    m = models.mlp()
    x = torch.randn(2, 6)
    refs = torch.randn(5, 6)
    inner = pa.gradient_shap(m, n_samples=3)
    stacked = pa.vargrad(pa.smoothgrad(inner, n_samples=2, stdevs=0.1), n_samples=3, stdevs=0.1)
    a = stacked(x, refs, target=0, generator=torch.Generator().manual_seed(0))
    b = stacked(x, refs, target=0, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape
    torch.testing.assert_close(a, b)


def test_draw_baseline_from_distrib_matches_manual_average():
    # with zero noise, smoothgrad(IG) over drawn baselines is the mean of IG at those baselines
    m = models.mlp()
    x = torch.randn(2, 6)
    refs = torch.randn(4, 6)
    att = pa.noise_tunnel(
        pa.integrated_gradients(m, n_steps=6), n_samples=5, stdevs=0.0, draw_baseline_from_distrib=True
    )
    got = att(x, refs, target=1, generator=torch.Generator().manual_seed(3))
    pick = torch.randint(4, (10,), generator=torch.Generator().manual_seed(3))
    ig = pa.integrated_gradients(m, n_steps=6)
    manual = torch.stack(
        [ig(x[i : i + 1].expand(5, 6), refs[pick[i * 5 : i * 5 + 5]], target=1).mean(0) for i in range(2)]
    )
    torch.testing.assert_close(got, manual, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("batch_size", [None, 4])
def test_multi_target_equals_separate_calls(batch_size):
    m = models.two_inputs()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    args = (torch.rand(3) + 0.5,)
    ig = pa.integrated_gradients(m, n_steps=6, batch_size=batch_size, return_delta=True)
    (a1, a2), delta = pa.multi_target(ig, [2, 0, 1])(x, (0.1, 0.0), additional_forward_args=args)
    assert a1.shape == (3, 3, 4) and a2.shape == (3, 3, 3) and delta.shape == (3, 3)
    for j, t in enumerate([2, 0, 1]):
        (b1, b2), d = ig(x, (0.1, 0.0), target=t, additional_forward_args=args)
        torch.testing.assert_close(a1[:, j], b1)
        torch.testing.assert_close(a2[:, j], b2)
        torch.testing.assert_close(delta[:, j], d)


def test_multi_target_tuple_targets_and_one_call(monkeypatch):
    m = models.grid()
    x = torch.randn(4, 5)
    calls = []
    sal = pa.saliency(m)
    counting = sal.with_fn(lambda *a, **k: calls.append(1) or sal(*a, **k))
    out = pa.multi_target(counting, [(0, 1), (1, 2)])(x)
    assert len(calls) == 1 and out.shape == (4, 2, 5)
    torch.testing.assert_close(out[:, 1], sal(x, target=(1, 2)))


def test_multi_target_of_smoothgrad():
    # a linear model's gradient does not depend on where it is taken: the noisy mean is the weight row
    lin = nn.Linear(6, 3)
    x = torch.randn(2, 6)
    sg = pa.smoothgrad(pa.saliency(lin, abs=False), n_samples=4, stdevs=0.2)
    out = pa.multi_target(sg, torch.tensor([0, 2]))(x, generator=torch.Generator().manual_seed(0))
    expected = lin.weight.detach()[[0, 2]].expand(2, 2, 6)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # and on a nonlinear model, without noise it is the multi-target saliency itself
    m = models.mlp()
    flat = pa.multi_target(pa.smoothgrad(pa.saliency(m), n_samples=3, stdevs=0.0), [0, 2])(x)
    torch.testing.assert_close(flat, pa.multi_target(pa.saliency(m), [0, 2])(x), rtol=1e-6, atol=1e-7)


def test_multi_target_errors():
    m = models.mlp()
    with pytest.raises(ValueError, match="targets is empty"):
        pa.multi_target(pa.saliency(m), [])
    with pytest.raises(TypeError, match="int or a tuple of ints"):
        pa.multi_target(pa.saliency(m), ["a"])
    with pytest.raises(TypeError, match="target is set by multi_target"):
        pa.multi_target(pa.saliency(m), [0, 1])(torch.randn(2, 6), target=0)
    with pytest.raises(TypeError, match="wraps a pyattrib attributor"):
        pa.multi_target(m, [0])
