"""Attributions inside a loss: parameter gradients checked against finite differences."""

import pytest
import torch

import pyattrib as pa

from . import models


@pytest.mark.parametrize(
    "make",
    [
        lambda m: pa.saliency(m, abs=False, create_graph=True),
        lambda m: pa.integrated_gradients(m, n_steps=6, create_graph=True),
        lambda m: pa.input_x_gradient(m, create_graph=True),
    ],
    ids=["saliency", "ig", "input_x_gradient"],
)
def test_attribution_loss_gradient_matches_finite_differences(make):
    model = models.mlp(d_in=4, hidden=5, d_out=2).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    attributor = make(model)

    def loss():
        attr = attributor(x, target=y)
        return (attr[:, 2:] ** 2).sum()  # penalise attribution on features 2, 3

    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss(), params, allow_unused=True, materialize_grads=True)
    eps = 1e-6
    for p, g in zip(params, grads):
        flat = p.data.view(-1)
        for j in range(0, flat.numel(), max(1, flat.numel() // 5)):
            old = flat[j].item()
            flat[j] = old + eps
            up = loss().item()
            flat[j] = old - eps
            down = loss().item()
            flat[j] = old
            fd = (up - down) / (2 * eps)
            assert abs(g.view(-1)[j].item() - fd) < 1e-5 * (1 + abs(fd)), (p.shape, j, g.view(-1)[j].item(), fd)
