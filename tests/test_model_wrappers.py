"""The model is never changed, whatever callable reaches the method (DESIGN: non-negotiables)."""

from __future__ import annotations

import functools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    return net.train()  # train mode, as a user may leave it


class Adapter:
    """A callable object holding the model (not an nn.Module)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x):
        return self.model(x)


HIDDEN: dict[str, nn.Module] = {}


def wrappers(model: nn.Module) -> dict:
    HIDDEN["m"] = model  # found by no search: the batch-norm guard still applies
    return {
        "module": model,
        "bound method": model.forward,
        "lambda": lambda t: model(t),
        "nested lambda": (lambda g: lambda t: g(t))(lambda t: model(t)),
        "partial": functools.partial(lambda m, t: m(t), model),
        "callable object": Adapter(model),
        "hidden in a dict": lambda t: HIDDEN["m"](t),
    }


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "flags": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
    }


def same(a: dict, b: dict) -> bool:
    return (
        all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        and a["flags"] == b["flags"]
        and a["requires_grad"] == b["requires_grad"]
        and all((g is None and h is None) or torch.equal(g, h) for g, h in zip(a["grad"], b["grad"]))
        and a["hooks"] == b["hooks"]
    )


METHODS = {
    "integrated_gradients": lambda f: pa.integrated_gradients(f, n_steps=4),
    "deep_lift": lambda f: pa.deep_lift(f),
    "feature_ablation": lambda f: pa.feature_ablation(f),
    "gradient_shap": lambda f: pa.gradient_shap(f, n_samples=3),
}


@settings(max_examples=25, deadline=None)
@given(
    wrapper=st.sampled_from(list(wrappers(nn.Identity()))),
    method=st.sampled_from(list(METHODS)),
    with_grad=st.booleans(),
    fail=st.booleans(),
)
def test_no_wrapper_changes_the_model(wrapper, method, with_grad, fail):
    model = bn_net()
    if with_grad:
        model(torch.randn(5, 4)).sum().backward()
    before = snapshot(model)
    f = wrappers(model)[wrapper]
    x = torch.randn(3, 4)
    data = {"generator": torch.Generator().manual_seed(0)} if method == "gradient_shap" else {}
    expected = METHODS[method](model.eval())(x, x * 0, target=1, **data)
    model.train()
    attributor = METHODS[method](f)
    data = {"generator": torch.Generator().manual_seed(0)} if method == "gradient_shap" else {}
    try:
        out = attributor(x, x * 0, target=7 if fail else 1, **data)  # 7 is out of range: an error mid-call
        torch.testing.assert_close(out, expected)  # eval-mode statistics, not batch statistics
    except IndexError:
        assert fail
    assert same(before, snapshot(model))
