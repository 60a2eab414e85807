"""pyattrib.metrics: Captum's numbers, the metrics' axioms, and the curves against slow loops."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import infidelity_perturb_func_decorator as captum_decorator
from captum.metrics import sensitivity_max as captum_sensitivity
from captum.metrics._core.sensitivity import default_perturb_func as captum_default_perturb
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib.compat import default_perturb_func
from tests.models import cnn, grid, mlp, two_inputs


def noisy(inputs, baselines=None):
    """A random perturbation in Captum's protocol (global generator), tuple-aware."""
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    perts = tuple(torch.randn_like(x) * 0.1 for x in xs)
    moved = tuple(x - p for x, p in zip(xs, perts))
    return (perts, moved) if isinstance(inputs, tuple) else (perts[0], moved[0])


def same_seed(fn, seed=7):
    torch.manual_seed(seed)
    return fn()


CASES = [
    # model, inputs, target, baselines, additional_forward_args
    (mlp(), (torch.randn(6, 6),), torch.tensor([0, 1, 2, 0, 1, 2]), None, None),
    (cnn(), (torch.randn(3, 3, 8, 8),), 2, 0.5, None),
    (two_inputs(), (torch.randn(4, 4), torch.randn(4, 3)), [0, 2, 1, 1], (0.0, torch.zeros(1, 3)), torch.rand(4)),
    (grid(), (torch.randn(5, 5),), (1, 2), torch.zeros(5, 5), None),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_infidelity_equals_captum(case, normalize, batch_size):
    model, xs, target, baselines, args = CASES[case]
    inputs = xs if len(xs) > 1 else xs[0]
    attrs = pa.integrated_gradients(model)(inputs, baselines, target=target, additional_forward_args=args)
    n = xs[0].shape[0]
    ours = same_seed(
        lambda: pa.metrics.infidelity(model, noisy, n_samples=5, batch_size=batch_size or 5 * n,
                                      normalize=normalize)(
            inputs, attrs, baselines, target=target, additional_forward_args=args)
    )  # fmt: skip
    theirs = same_seed(
        lambda: captum_infidelity(model, noisy, inputs, attrs, baselines, args, target, n_perturb_samples=5,
                                  max_examples_per_batch=batch_size, normalize=normalize)
    )  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_perturbations_from_equals_captum_decorator():
    model, (x,), target, _, _ = CASES[0]
    attrs = pa.saliency(model)(x, target=target)

    def shift(inputs, baselines=None):
        return inputs - 0.05 * torch.arange(inputs.shape[1], dtype=inputs.dtype)

    for mult in (False, True):
        ours = pa.metrics.infidelity(model, pa.metrics.perturbations_from(shift, mult), n_samples=3)(
            x, attrs, 0.2, target=target
        )
        theirs = captum_infidelity(model, captum_decorator(mult)(shift), x, attrs, 0.2, target=target,
                                   n_perturb_samples=3)  # fmt: skip
        torch.testing.assert_close(ours, theirs)


def test_infidelity_does_not_depend_on_batch_size():
    model, xs, target, baselines, args = CASES[2]
    attrs = pa.saliency(model)(xs, target=target, additional_forward_args=args)

    def fixed(inputs):  # deterministic per row: batch_size cannot change the draws
        return tuple(0.01 * torch.ones_like(x) for x in inputs), tuple(x - 0.01 for x in inputs)

    runs = [pa.metrics.infidelity(model, fixed, n_samples=7, batch_size=b)(
        xs, attrs, target=target, additional_forward_args=args) for b in (None, 4, 9, 100)]  # fmt: skip
    for r in runs[1:]:
        torch.testing.assert_close(r, runs[0])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sensitivity_max_equals_captum(case):
    model, xs, target, baselines, args = CASES[case]
    inputs = xs if len(xs) > 1 else xs[0]
    kwargs = dict(target=target, additional_forward_args=args)
    if baselines is not None:
        kwargs["baselines"] = baselines
    ours = same_seed(lambda: pa.metrics.sensitivity_max(
        pa.integrated_gradients(model, n_steps=8), perturb_func=default_perturb_func, n_samples=4,
        batch_size=2 * xs[0].shape[0])(inputs, **kwargs))  # fmt: skip
    theirs = same_seed(lambda: captum_sensitivity(
        IntegratedGradients(model).attribute, inputs, captum_default_perturb, n_perturb_samples=4,
        max_examples_per_batch=2 * xs[0].shape[0], n_steps=8, **kwargs))  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_sensitivity_max_of_smoothgrad_is_reproducible_and_batched():
    model, (x,), target, _, _ = CASES[0]
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return model(*args, **kwargs)

    sg = pa.smoothgrad(pa.saliency(counting), stdevs=0.1, n_samples=3)
    measure = pa.metrics.sensitivity_max(sg, n_samples=10)
    a = measure(x, target=target, generator=torch.Generator().manual_seed(1))
    b = measure(x, target=target, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == (6,) and bool((a > 0).all())
    # the plain explanation, then all 10 perturbed copies in one attributor call
    assert calls == [6 * 3, 6 * 10 * 3] * 2
    assert torch.equal(pa.metrics.sensitivity_max(pa.saliency(model), norm_ord=float("inf"))(x, target=target,
                       generator=torch.Generator().manual_seed(0)).isfinite(), torch.ones(6, dtype=torch.bool))  # fmt: skip


@given(st.integers(0, 10_000), st.booleans())
def test_infidelity_of_exact_linear_attributions_is_zero(seed, global_attr):
    torch.manual_seed(seed)
    model = nn.Linear(5, 3).double()
    x, base = torch.randn(4, 5, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)
    if global_attr:  # IG = (x - x') w, perturbation (x - x~) / (x - x')
        attrs = pa.integrated_gradients(model)(x, base, target=1)
        perturb = pa.metrics.perturbations_from(lambda z, b: z - torch.randn_like(z), multiply_by_inputs=True)
        score = pa.metrics.infidelity(model, perturb)(x, attrs, base, target=1)
    else:  # saliency without abs = w, perturbation x - x~
        attrs = pa.saliency(model, abs=False)(x, target=1)
        perturb = pa.metrics.perturbations_from(lambda z: z - torch.randn_like(z), multiply_by_inputs=False)
        score = pa.metrics.infidelity(model, perturb)(x, attrs, target=1)
    torch.testing.assert_close(score, torch.zeros_like(score), atol=1e-18, rtol=0)


@given(st.integers(0, 10_000), st.floats(0.001, 1.0))
def test_sensitivity_of_an_input_independent_explanation_is_zero(seed, radius):
    torch.manual_seed(seed)
    model = nn.Linear(5, 3)
    x = torch.randn(3, 5)
    score = pa.metrics.sensitivity_max(pa.saliency(model), perturb_radius=radius, n_samples=4)(x, target=2)
    assert torch.equal(score, torch.zeros(3))


def test_sensitivity_is_positive_when_the_explanation_moves():
    model, (x,), target, _, _ = CASES[0]
    score = pa.metrics.sensitivity_max(pa.input_x_gradient(model), perturb_radius=0.2)(
        x, target=target, generator=torch.Generator().manual_seed(0)
    )
    assert bool((score > 0).all())


def slow_curve(model, x, attrs, base, target, n_steps, insert):
    """Pixel flipping one step at a time, one example at a time."""
    n, d = x.shape[0], x[0].numel()
    scores = torch.zeros(n, n_steps + 1)
    for i in range(n):
        order = torch.sort(attrs[i].reshape(-1).double(), descending=True, stable=True).indices
        for k in range(n_steps + 1):
            count = int(round(k * d / n_steps))
            flat = (base[i] if insert else x[i]).reshape(-1).clone()
            flat[order[:count]] = (x[i] if insert else base[i]).reshape(-1)[order[:count]]
            with torch.no_grad():
                scores[i, k] = model(flat.reshape(1, *x.shape[1:]))[0, target[i]]
    return scores


@pytest.mark.parametrize("insert", [False, True])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_curves_equal_a_step_by_step_loop(insert, batch_size):
    model, x = cnn(), torch.randn(3, 3, 8, 8)
    target = torch.tensor([0, 3, 1])
    attrs = pa.integrated_gradients(model)(x, target=target)
    base = torch.full_like(x, 0.25)
    curve = (pa.metrics.insertion if insert else pa.metrics.deletion)(model, n_steps=10, batch_size=batch_size)(
        x, attrs, base, target=target
    )
    expected = slow_curve(model, x, attrs, base, target, 10, insert)
    torch.testing.assert_close(curve.scores, expected, rtol=1e-5, atol=1e-5)
    fractions = torch.tensor([round(k * 192 / 10) / 192 for k in range(11)])
    torch.testing.assert_close(curve.fractions, fractions)
    torch.testing.assert_close(curve.auc, torch.trapezoid(expected, fractions, dim=1))
    start, end = (base, x) if insert else (x, base)
    torch.testing.assert_close(curve.scores[:, 0], model(start).gather(1, target[:, None])[:, 0].detach())
    torch.testing.assert_close(curve.scores[:, -1], model(end).gather(1, target[:, None])[:, 0].detach())


def test_deletion_with_a_pixel_mask_removes_whole_pixels():
    model, x = cnn(), torch.randn(2, 3, 8, 8)
    attrs = pa.saliency(model)(x, target=1)
    pixels = torch.arange(64).reshape(1, 1, 8, 8)
    curve = pa.metrics.deletion(model, n_steps=4)(x, attrs, target=1, feature_mask=pixels)
    # by hand: rank pixels by their summed attribution, blank the top quarter in all channels
    order = attrs.sum(1).reshape(2, -1).double().argsort(dim=1, descending=True, stable=True)
    blanked = x.clone().reshape(2, 3, 64)
    for i in range(2):
        blanked[i][:, order[i, :16]] = 0
    torch.testing.assert_close(curve.scores[:, 1], model(blanked.reshape(2, 3, 8, 8))[:, 1].detach())
    torch.testing.assert_close(curve.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0], dtype=curve.scores.dtype))


def test_metrics_leave_a_training_model_as_found():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 4)
    attrs = pa.saliency(model)(x, target=0)
    pa.metrics.infidelity(model, noisy)(x, attrs, target=0)
    pa.metrics.sensitivity_max(pa.saliency(model))(x, target=0)
    pa.metrics.deletion(model, n_steps=3)(x, attrs, target=0)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_metric_errors_name_the_argument():
    model, (x,), target, _, _ = CASES[0]
    with pytest.raises(ValueError, match="attributions has shape"):
        pa.metrics.infidelity(model, noisy)(x, torch.zeros(6, 5), target=target)
    with pytest.raises(ValueError, match="perturbations_from"):
        pa.metrics.infidelity(model, lambda z: z)(x, torch.zeros_like(x), target=target)
    with pytest.raises(ValueError, match="target"):
        pa.metrics.deletion(model)(x, torch.zeros_like(x))
    with pytest.raises(ValueError, match="n_samples"):
        pa.metrics.sensitivity_max(pa.saliency(model), n_samples=0)


def dense_impute(image, removed):
    """Noiseless linear imputation of one (C, H, W) image by a dense solve per channel."""
    c, h, w = image.shape
    weights = {(di, dj): (1 / 12 if di and dj else 1 / 6) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj}
    holes = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    where = {p: k for k, p in enumerate(holes)}
    out = image.clone()
    for ch in range(c):
        a = torch.zeros(len(holes), len(holes), dtype=torch.float64)
        b = torch.zeros(len(holes), dtype=torch.float64)
        for k, (i, j) in enumerate(holes):
            for (di, dj), wt in weights.items():
                q = (i + di, j + dj)
                if not (0 <= q[0] < h and 0 <= q[1] < w):
                    continue
                a[k, k] += wt
                if q in where:
                    a[k, where[q]] -= wt
                else:
                    b[k] += wt * image[ch, q[0], q[1]]
        values = torch.linalg.solve(a, b)
        for k, (i, j) in enumerate(holes):
            out[ch, i, j] = values[k]
    return out


def test_imputation_solves_the_neighbour_average_system():
    torch.manual_seed(0)
    images = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    removed = torch.rand(2, 1, 7, 6) < 0.5
    removed[:, :, 0, 0] = False  # at least one known pixel
    got = pa.metrics.impute(images, removed, tol=1e-12)
    for k in range(2):
        torch.testing.assert_close(got[k], dense_impute(images[k], removed[k, 0]), atol=1e-8, rtol=1e-8)


@given(st.integers(0, 10_000))
def test_imputation_reproduces_affine_images(seed):
    torch.manual_seed(seed)
    a, b, c = torch.randn(3, dtype=torch.float64)
    i, j = torch.meshgrid(torch.arange(9.0, dtype=torch.float64), torch.arange(9.0, dtype=torch.float64), indexing="ij")
    image = (a * i + b * j + c).to(torch.float64).expand(1, 3, 9, 9)
    removed = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    removed[0, 0, 1:8, 1:8] = torch.rand(7, 7) < 0.7  # interior holes: the affine image is the solution
    torch.testing.assert_close(pa.metrics.impute(image, removed, tol=1e-12), image, atol=1e-7, rtol=0)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_scores_the_imputed_images(order):
    model, x = cnn(), torch.randn(3, 3, 8, 8)
    target = torch.tensor([0, 1, 2])
    attrs = pa.saliency(model)(x, target=target)
    curve = pa.metrics.road(model, percentages=(0.25, 0.5), order=order, noise=0.0, batch_size=2)(
        x, attrs, target=target
    )
    ranked = attrs.sum(1).reshape(3, -1).double().argsort(dim=1, descending=order == "morf", stable=True)
    for k, share in enumerate((0.25, 0.5)):
        removed = torch.zeros(3, 64, dtype=torch.bool)
        removed.scatter_(1, ranked[:, : int(share * 64)], True)
        imputed = pa.metrics.impute(x, removed.reshape(3, 1, 8, 8))
        torch.testing.assert_close(curve.scores[:, k], model(imputed).gather(1, target[:, None])[:, 0].detach())
    noisy_runs = [pa.metrics.road(model, order=order)(x, attrs, target=target,
                  generator=torch.Generator().manual_seed(3)).scores for _ in range(2)]  # fmt: skip
    torch.testing.assert_close(noisy_runs[0], noisy_runs[1])


def test_spearman_equals_scipy():
    from scipy.stats import spearmanr

    a, b = torch.randn(4, 30), torch.randn(4, 30)
    a[:, :10] = 0  # ties share their average rank
    b[:2, 5:12] = 1.5
    ours = pa.metrics.spearman(a, b)
    for k in range(4):
        assert float(ours[k]) == pytest.approx(spearmanr(a[k], b[k]).statistic, abs=1e-9)


def test_mprt_cascades_from_the_top_and_leaves_the_model_alone():
    model, (x,), target, _, _ = CASES[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = pa.metrics.mprt(model, lambda m: pa.integrated_gradients(m, n_steps=16), seed=3)
    result = check(x, target=target)
    assert result.layers == ["4", "2", "0"] and result.correlation.shape == (3, 6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # by hand: the top layer reset under the same seed
    import copy

    copied = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        copied[4].reset_parameters()
    trained = pa.integrated_gradients(model, n_steps=16)(x, target=target).abs()
    top = pa.integrated_gradients(copied, n_steps=16)(x, target=target).abs()
    torch.testing.assert_close(result.correlation[0], pa.metrics.spearman(trained, top))
    torch.testing.assert_close(check(x, target=target).correlation, result.correlation)
    # an explanation that ignores the model fails the sanity check: correlation stays 1
    blind = pa.metrics.mprt(model, lambda m: lambda inputs, **kw: inputs * 2)(x, target=target)
    torch.testing.assert_close(blind.correlation, torch.ones(3, 6, dtype=torch.float64))
