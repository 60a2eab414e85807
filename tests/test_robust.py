"""pyattrib.robust: Captum's FGSM/PGD/AttackComparator numbers, the attack's constraints, the
per-example minimum search against a brute-force loop."""

from __future__ import annotations

import pytest
import torch
from captum.robust import FGSM, PGD, AttackComparator, MinParamPerturbation
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
import pyattrib.compat  # noqa: F401
from tests.models import cnn, two_inputs


def softmax_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4), nn.Softmax(-1)).eval()


CE = nn.CrossEntropyLoss(reduction="none")
MODELS = {
    "mlp": lambda: (softmax_mlp(), (torch.randn(5, 6),), torch.tensor([0, 1, 2, 3, 0]), None, None),
    "cnn": lambda: (cnn(), (torch.randn(3, 3, 8, 8),), torch.tensor([1, 0, 3]), CE, None),
    "two": lambda: (two_inputs(), (torch.randn(4, 4), torch.randn(4, 3)), torch.tensor([0, 2, 1, 1]), CE,
                    torch.rand(4)),
}  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_captum(name, targeted):
    torch.manual_seed(0)
    model, xs, target, loss, args = MODELS[name]()
    inputs = xs if len(xs) > 1 else xs[0]
    mask = tuple((torch.rand_like(x) > 0.3).float() for x in xs)
    mask = mask if len(xs) > 1 else mask[0]
    ours = pa.robust.fgsm(model, loss_fn=loss, lower_bound=-1.0, upper_bound=1.0, targeted=targeted)(
        inputs, 0.1, target=target, additional_forward_args=args, mask=mask
    )
    theirs = FGSM(model, loss, lower_bound=-1.0, upper_bound=1.0).perturb(inputs, 0.1, target, args, targeted, mask)
    for a, b in zip(ours if len(xs) > 1 else (ours,), theirs if len(xs) > 1 else (theirs,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", MODELS)
# not L2 with a random start: Captum's broadcasts its radii along the last input dimension (a
# Captum bug); test_pgd_l2_random_start_is_uniform_in_the_ball_per_example checks ours
@pytest.mark.parametrize(("norm", "random_start"), [("Linf", False), ("Linf", True), ("L2", False)])
def test_pgd_equals_captum(name, norm, random_start):
    torch.manual_seed(0)
    model, xs, target, loss, args = MODELS[name]()
    inputs = xs if len(xs) > 1 else xs[0]
    torch.manual_seed(5)
    ours = pa.robust.pgd(model, loss_fn=loss, norm=norm, step_size=0.02, steps=6, random_start=random_start,
                         lower_bound=-2.0, upper_bound=2.0)(inputs, 0.1, target=target, additional_forward_args=args)  # fmt: skip
    torch.manual_seed(5)
    theirs = PGD(model, loss, lower_bound=-2.0, upper_bound=2.0).perturb(
        inputs, 0.1, 0.02, 6, target, args, random_start=random_start, norm=norm
    )
    for a, b in zip(ours if len(xs) > 1 else (ours,), theirs if len(xs) > 1 else (theirs,)):
        torch.testing.assert_close(a, b)


@given(st.integers(0, 10_000), st.sampled_from(["Linf", "L2"]), st.floats(0.01, 1.0), st.booleans())
def test_pgd_stays_in_the_ball_and_the_bounds(seed, norm, radius, random_start):
    torch.manual_seed(seed)
    model, x = softmax_mlp(seed % 3), torch.rand(4, 6)
    out = pa.robust.pgd(model, norm=norm, step_size=radius / 3, steps=5, random_start=random_start,
                        lower_bound=0.0, upper_bound=1.0)(x, radius, target=1,
                                                          generator=torch.Generator().manual_seed(seed))  # fmt: skip
    assert bool(((out >= 0) & (out <= 1)).all())
    delta = (out - x).reshape(4, -1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert bool((size <= radius * (1 + 1e-5)).all())


def test_pgd_l2_random_start_is_uniform_in_the_ball_per_example():
    x = torch.zeros(2000, 3)
    start = pa.robust.attacks.ball_point(x, 2.0, "L2", torch.Generator().manual_seed(0))
    radii = start.norm(dim=1)
    assert bool((radii <= 2.0 + 1e-6).all())
    # uniform in a 3-ball: P(r <= 2 * 0.5) = 0.5^3
    assert abs(float((radii <= 1.0).float().mean()) - 0.125) < 0.03


def test_attack_raises_the_loss_and_targeted_lowers_it():
    model, x = softmax_mlp(), torch.randn(8, 6)
    y = model(x).argmax(1)
    loss = lambda z: -torch.log(model(z).gather(1, y[:, None]))[:, 0]  # noqa: E731
    away = pa.robust.pgd(model, step_size=0.05, steps=10)(x, 0.5, target=y)
    toward = pa.robust.pgd(model, step_size=0.05, steps=10, targeted=True)(x, 0.5, target=y)
    assert bool((loss(away) > loss(x)).all()) and bool((loss(toward) < loss(x)).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attacks_take_half_precision(dtype):
    model = softmax_mlp().to(dtype)
    x = torch.randn(4, 6, dtype=dtype)
    for attack in (pa.robust.fgsm(model), pa.robust.pgd(model, steps=3, random_start=True)):
        out = attack(x, 0.1, target=torch.tensor([0, 1, 2, 3]))
        assert out.dtype == dtype and out.shape == x.shape and bool(out.isfinite().all())
        assert not torch.equal(out, x)


def test_attacks_compile():
    model, x = softmax_mlp(), torch.randn(4, 6)
    for attack in (pa.robust.fgsm(model), pa.robust.pgd(model, steps=3, norm="L2")):
        compiled = torch.compile(attack, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x, 0.1, target=2), attack(x, 0.1, target=2))


def test_attacks_leave_the_model_as_found():
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(-1)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 6, requires_grad=True)
    pa.robust.pgd(model, steps=3)(x, 0.1, target=0)
    assert model.training and x.grad is None and x.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def column_drop(x, column):
    out = x.clone()
    out[:, column] = 0
    return out


def accuracy_and_score(out, target):
    return (out.argmax(1) == target).float(), out[:, target]


@pytest.mark.parametrize("per_eval", [1, 3])
def test_attack_comparator_equals_captum(per_eval):
    model, x = softmax_mlp(), torch.randn(6, 6)
    results = []
    for cls in (AttackComparator, pa.compat.AttackComparator):
        torch.manual_seed(0)
        comp = cls(model, accuracy_and_score)
        comp.add_attack(column_drop, name="drop0", attack_kwargs={"column": 0})
        comp.add_attack(lambda z: z + 0.3 * torch.randn_like(z), name="noise", num_attempts=4)
        comp.add_attack(FGSM(model) if cls is AttackComparator else pa.compat.FGSM(model),
                        attack_kwargs={"epsilon": 0.2}, additional_attack_arg_names=["target"])  # fmt: skip
        first = comp.evaluate(x, perturbations_per_eval=per_eval, target=1)
        second = comp.evaluate(x * 2, perturbations_per_eval=per_eval, target=2)
        results.append((first, second, comp.summary()))
    torch.testing.assert_close(results[0], results[1])


def test_native_comparator_batches_every_version_in_one_forward():
    calls = []
    model = softmax_mlp()

    def counting(z):
        calls.append(z.shape[0])
        return model(z)

    comp = pa.robust.attack_comparator(counting, lambda out, target: out[:, target])
    comp.add_attack(lambda z: z.flip(1), name="flip", num_attempts=3)
    result = comp.evaluate(torch.randn(4, 6), target=0)
    assert calls == [16] and set(result) == {"Original", "flip"} and set(result["flip"]) == {"mean", "min", "max"}


def shrink(x, scale):
    return x * (1 - scale)


def test_min_param_per_example_equals_a_loop_over_examples():
    model, x = softmax_mlp(), torch.randn(10, 6) * 3
    y = model(x).argmax(1)
    grid = [round(0.05 * k, 10) for k in range(20)]
    found = {}
    for mode in ("linear", "binary"):
        search = pa.robust.min_param_perturbation(model, shrink, arg_name="scale", arg_min=0.0, arg_max=1.0,
                                                  arg_step=0.05, mode=mode)  # fmt: skip
        found[mode] = search(x, target=y)
    for i in range(10):
        expected = next((s for s in grid if model(shrink(x[i : i + 1], s)).argmax(1) != y[i]), None)
        got = found["linear"].params[i]
        assert (expected is None and got.isnan()) or abs(float(got) - expected) < 1e-9
        if expected is not None:
            torch.testing.assert_close(found["linear"].perturbed[i], shrink(x[i], got.float()))
        else:
            torch.testing.assert_close(found["linear"].perturbed[i], x[i])
    torch.testing.assert_close(found["binary"].params, found["linear"].params, equal_nan=True)
    assert int(found["linear"].params.isnan().sum()) < 10  # something broke


def test_min_param_batch_mode_equals_captum():
    model, x = softmax_mlp(), torch.randn(6, 6) * 3
    y = model(x).argmax(1)
    for mode in ("linear", "binary"):
        ours = pa.compat.MinParamPerturbation(model, shrink, "scale", 0.0, 1.0, 0.05, mode=mode).evaluate(
            x, target=y, perturbations_per_eval=4
        )
        theirs = MinParamPerturbation(model, shrink, "scale", 0.0, 1.0, 0.05, mode=mode).evaluate(
            x, target=y, perturbations_per_eval=4
        )
        assert ours[1] == pytest.approx(theirs[1], rel=1e-6, abs=1e-6)
        torch.testing.assert_close(ours[0], theirs[0])


def test_robust_errors_name_the_argument():
    model = softmax_mlp()
    with pytest.raises(ValueError, match="norm"):
        pa.robust.pgd(model, norm="L1")
    with pytest.raises(ValueError, match="arg_max"):
        pa.robust.min_param_perturbation(model, shrink, arg_name="scale", arg_min=0, arg_max=1, arg_step=2)
    with pytest.raises(ValueError, match="mask"):
        pa.robust.fgsm(model)(torch.randn(2, 6), 0.1, target=0, mask=(torch.ones(2, 6), torch.ones(2, 6)))


@pytest.mark.compile
def test_pgd_compiles_with_inductor():
    model, x = softmax_mlp(), torch.randn(4, 6)
    attack = pa.robust.pgd(model, steps=3)
    torch.testing.assert_close(torch.compile(attack, fullgraph=True)(x, 0.1, target=2), attack(x, 0.1, target=2))
