"""Stochastic gates: Captum's numbers under the same seed, and the L0 penalty's meaning."""

from __future__ import annotations

import pytest
import torch
from captum.module import BinaryConcreteStochasticGates as CaptumBinary
from captum.module import GaussianStochasticGates as CaptumGaussian

from pyattrib.modules import BinaryConcreteStochasticGates, GaussianStochasticGates

PAIRS = [(BinaryConcreteStochasticGates, CaptumBinary, {"temperature": 0.5}),
         (GaussianStochasticGates, CaptumGaussian, {"std": 0.3})]  # fmt: skip


def build(cls, seed, **kwargs):
    torch.manual_seed(seed)
    return cls(**kwargs)


@pytest.mark.parametrize(("ours", "theirs", "extra"), PAIRS)
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_gates_equal_captum(ours, theirs, extra, reduction, masked, training):
    x = torch.randn(4, 2, 3)
    mask = torch.tensor([[0, 1, 1], [2, 2, 0]]) if masked else None
    n_gates = 3 if masked else 6
    kwargs = dict(n_gates=n_gates, mask=mask, reg_weight=0.7, reg_reduction=reduction, **extra)
    a, b = build(ours, 1, **kwargs), build(theirs, 1, **kwargs)
    a.train(training), b.train(training)
    torch.manual_seed(2)
    out_a, reg_a = a(x)
    torch.manual_seed(2)
    out_b, reg_b = b(x)
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(reg_a, reg_b)
    torch.testing.assert_close(a.get_gate_values(), b.get_gate_values())
    torch.testing.assert_close(a.get_gate_values(clamp=False), b.get_gate_values(clamp=False))
    torch.testing.assert_close(a.get_gate_active_probs(), b.get_gate_active_probs())


@pytest.mark.parametrize("cls", [BinaryConcreteStochasticGates, GaussianStochasticGates])
def test_penalty_trains_gates_closed_and_eval_is_deterministic(cls):
    torch.manual_seed(0)
    gates = cls(5, reg_weight=1.0)
    opt = torch.optim.Adam(gates.parameters(), lr=0.1)
    x = torch.randn(16, 5)
    before = gates.get_gate_active_probs().sum()
    for _ in range(50):
        opt.zero_grad()
        _, reg = gates(x)
        reg.backward()
        opt.step()
    assert gates.get_gate_active_probs().sum() < before  # L0 alone closes gates
    gates.eval()
    torch.testing.assert_close(gates(x)[0], gates(x)[0])
    torch.testing.assert_close(gates(x)[0], x * gates.get_gate_values())


def test_gate_errors_name_the_argument():
    with pytest.raises(ValueError, match="mask"):
        GaussianStochasticGates(3, mask=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="reg_reduction"):
        GaussianStochasticGates(3, reg_reduction="max")
    with pytest.raises(ValueError, match="temperature"):
        BinaryConcreteStochasticGates(3, temperature=1.5)
    with pytest.raises(ValueError, match="gates"):
        GaussianStochasticGates(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="batch"):
        GaussianStochasticGates(3)(torch.randn(3))
    loaded = BinaryConcreteStochasticGates.from_pretrained(torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(loaded.log_alpha_param.detach(), torch.tensor([0.5, -1.0]))
