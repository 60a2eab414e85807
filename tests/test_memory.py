"""State that does not grow with the work: perturbation outputs streamed into running sums,
least-squares solves in bounded pieces, noise added in place."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.call import prepare
from pyattrib._core.perturb import STREAM_ROWS, evaluate

lime = importlib.import_module("pyattrib.lime")  # the module; ``pa.lime`` is the method


def peak_tensor_bytes(fn) -> int:
    """The most tensor memory alive at once while ``fn`` runs (torch.profiler's timeline)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`export_memory_timeline` is deprecated", FutureWarning)
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    return max(sum(s) for s in sizes)


@pytest.mark.parametrize("whole, batch_size", [(False, None), (False, 5), (True, None)])
def test_evaluate_streams_every_row_once_in_order(whole, batch_size):
    net = nn.Linear(4, 3)
    x = torch.randn(3, 4)
    model = (lambda z: net(z).sum(0)) if whole else net
    call = prepare(x, None, None, method="test", differentiable=False)
    n_perturbations = 2 * STREAM_ROWS + 7

    def build(p, i):
        return (x.index_select(0, i) * (p[:, None] + 1),)

    kept = evaluate(model, call, build, n_perturbations, batch_size, whole=whole)
    runs = []
    streamed = evaluate(model, call, build, n_perturbations, batch_size, whole=whole,
                        reduce=lambda first, n, v: runs.append((first, n, v)))  # fmt: skip
    assert streamed.values.numel() == 0 and (streamed.shape, streamed.whole) == (kept.shape, kept.whole)
    assert len(runs) > 1  # handed on as it goes, not once at the end
    firsts = [first for first, _, _ in runs]
    sizes = [len(v) for _, _, v in runs]
    assert firsts == [sum(sizes[:k]) for k in range(len(runs))]  # consecutive, each row once
    assert {n for _, n, _ in runs} == {1 if whole else 3}
    torch.testing.assert_close(torch.cat([v for _, _, v in runs]), kept.values.reshape(-1, kept.values.shape[-1]))


def test_shapley_sampling_memory_does_not_grow_with_its_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 64), nn.Tanh()).eval()
    x = torch.randn(2, 4)
    peaks = {}
    for n_samples in (500, 4000):
        attribute = pa.shapley_value_sampling(model, n_samples=n_samples)
        g = torch.Generator().manual_seed(0)
        phi = attribute(x, generator=g)
        with torch.no_grad():  # efficiency: the groups share out f(x) - f(0), per output
            torch.testing.assert_close(phi.sum(-1), model(x) - model(torch.zeros_like(x)), atol=1e-4, rtol=1e-4)
        peaks[n_samples] = peak_tensor_bytes(lambda a=attribute, g=g: a(x, generator=g))
    more_outputs = 3500 * 3 * 2 * 64 * 4  # bytes: 3 more coalitions per sample, 2 examples, 64 outputs
    assert peaks[4000] - peaks[500] < more_outputs / 4


def test_kernel_shap_solves_in_bounded_pieces_with_the_same_result(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(5, 6)

    def run():
        return pa.kernel_shap(model, n_samples=20)(x, target=1, generator=torch.Generator().manual_seed(3))

    together = run()
    monkeypatch.setattr(lime, "SOLVE_ELEMENTS", 1)  # one example per solve and per draw
    torch.testing.assert_close(run(), together, atol=1e-6, rtol=1e-6)


def test_kernel_shap_coalitions_are_boolean_with_the_drawn_sizes():
    z = lime.shapley_kernel_samples(4, 30, 7, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert z.dtype == torch.bool and z.shape == (4, 30, 7)
    assert bool(z[:, 0].all()) and not bool(z[:, 1].any())
    sizes = z[:, 2:].sum(-1)
    assert bool(((sizes >= 1) & (sizes <= 6)).all()) and len(sizes.unique()) > 1


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_is_added_in_place_without_touching_the_inputs(kind):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)).eval()
    x = torch.randn(3, 5)
    before = x.clone()

    def run(batch_size):
        return pa.noise_tunnel(pa.saliency(model), kind=kind, n_samples=7, stdevs=0.3, batch_size=batch_size)(
            x, target=1, generator=torch.Generator().manual_seed(1)
        )

    whole = run(None)
    assert torch.equal(x, before)
    torch.testing.assert_close(run(6), whole)  # two samples per chunk: slices of the noise
    grads = []
    noise = torch.normal(0.0, 0.3, size=(21, 5), generator=torch.Generator().manual_seed(1))
    for s in range(7):
        xs = (x + noise.view(3, 7, 5)[:, s]).requires_grad_()
        grads.append(torch.autograd.grad(model(xs)[:, 1].sum(), xs)[0].abs())
    g = torch.stack(grads)
    expected = {"smoothgrad": g.mean(0), "smoothgrad_sq": (g * g).mean(0), "vargrad": g.var(0, unbiased=False)}
    torch.testing.assert_close(whole, expected[kind], atol=1e-6, rtol=1e-5)


def kept_hidden_rows(run, width: int = 50, rows: tuple[int, ...] = (4, 8)) -> list[tuple[int, ...]]:
    """Shapes of the distinct ``(rows, width)`` tensors (hidden rows of the 4 examples, or of
    them and their references; not weights) that autograd keeps while ``run()`` runs."""
    saved: dict[int, tuple[int, ...]] = {}

    def pack(t):
        if t.dim() == 2 and t.shape[1] == width and t.shape[0] in rows:
            saved[t.untyped_storage().data_ptr()] = tuple(t.shape)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sorted(saved.values())


def _hidden_relu_net(inplace: bool, d_out: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 50), nn.ReLU(inplace=inplace), nn.Linear(50, d_out)).eval()


@pytest.mark.parametrize("inplace", [False, True], ids=["relu", "relu_inplace"])
def test_deep_lift_keeps_only_the_input_change_of_a_rescaled_relu(inplace):
    """The rescale rule keeps the ReLU's output for the 4 inputs and their 4 references, and
    its input change per pair; not its 8 inputs as well. An in-place ReLU's change is taken
    before it runs in place, so no ``2n``-row copy of its input is kept either."""
    model, x = _hidden_relu_net(inplace), torch.randn(4, 6)
    out: list[torch.Tensor] = []
    assert kept_hidden_rows(lambda: out.append(pa.deep_lift(model)(x, target=0))) == [(4, 50), (8, 50)]
    with torch.no_grad():  # and the rule is the same: completeness holds exactly on a ReLU net
        gap = model(x) - model(torch.zeros_like(x))
    torch.testing.assert_close(out[0].sum(1, keepdim=True), gap, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0], pa.deep_lift(_hidden_relu_net(False))(x, target=0))


@pytest.mark.parametrize("make", [pa.guided_backprop, pa.deconvolution], ids=["guided_backprop", "deconvolution"])
def test_rules_on_in_place_relus_keep_no_copy_of_the_activation(make):
    """An in-place ReLU whose rule reads only its output (guided backprop, deconvolution)
    runs in place, as the model asked: the backward keeps the very tensor the next layer
    keeps, as plain autograd does, not a copy of it (a ResNet has one per block)."""
    model, x = _hidden_relu_net(True, d_out=3), torch.randn(4, 6)

    def plain() -> None:
        xs = x.clone().requires_grad_()
        torch.autograd.grad(model(xs)[:, 0].sum(), xs)

    assert kept_hidden_rows(plain) == [(4, 50)]  # relu_ and the last Linear keep one tensor
    assert kept_hidden_rows(lambda: make(model)(x, target=0)) == [(4, 50)]
    # the same numbers as on the model with an out-of-place ReLU, and the model is unchanged
    out_of_place = _hidden_relu_net(False, d_out=3)
    torch.testing.assert_close(make(model)(x, target=0), make(out_of_place)(x, target=0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), out_of_place(x))
