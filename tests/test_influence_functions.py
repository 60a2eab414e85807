"""Influence functions (naive and Arnoldi) against Captum 0.9 and against each other."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from pyattrib._core.errors import ArgumentError


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    path = os.path.join(tmp_path, "model.pt")
    torch.save(model.state_dict(), path)
    return model.eval(), x, y, torch.randn(5, 4), torch.randint(0, 3, (5,)), path


def _load(model, path):
    model.load_state_dict(torch.load(path))
    return 1.0


@pytest.mark.parametrize("projection_dim", [None, 10])
def test_naive_equals_captum(setup, projection_dim):
    from captum.influence import NaiveInfluenceFunction

    model, x, y, tx, ty, path = setup
    data = TensorDataset(x, y)
    ours = pa.influence.naive_influence_function(model, data, projection_dim=projection_dim, batch_size=7)
    theirs = NaiveInfluenceFunction(model, DataLoader(data, batch_size=7), path, checkpoints_load_func=_load,
                                    loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=7,
                                    projection_dim=projection_dim or 200)  # fmt: skip
    torch.testing.assert_close(ours.influence(tx, ty), theirs.influence((tx, ty)), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), rtol=1e-3, atol=1e-4)


def test_naive_is_the_exact_inverse_hessian_and_arnoldi_converges_to_it(setup):
    model, x, y, tx, ty, _ = setup
    data = TensorDataset(x, y)
    naive = pa.influence.naive_influence_function(model, data, projection_dim=None, hessian_reg=1e-2,
                                                  hessian_inverse_tol=0.0)  # fmt: skip
    # with every positive eigenvalue kept, R R^T is the inverse of the regularised Hessian on that eigenspace
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def total(theta):
        chunks = dict(zip(names, [t.reshape(s) for t, s in zip(theta.split([s.numel() for s in shapes]), shapes)]))
        return nn.functional.cross_entropy(torch.func.functional_call(model, chunks, (x,)), y, reduction="sum")

    values, vectors = torch.linalg.eigh(torch.func.hessian(total)(params) + 1e-2 * torch.eye(len(params)))
    positive = values > 0
    expected = vectors[:, positive] @ torch.diag(1 / values[positive]) @ vectors[:, positive].T
    torch.testing.assert_close(naive.R @ naive.R.T, expected, rtol=1e-3, atol=1e-3)
    # Arnoldi over the whole parameter space (38 < arnoldi_dim) finds the same eigenpairs
    arnoldi = pa.influence.arnoldi_influence_function(model, data, arnoldi_dim=60, arnoldi_tol=1e-8,
                                                      projection_dim=None, hessian_reg=1e-2, hessian_inverse_tol=1e-2)  # fmt: skip
    kept = pa.influence.naive_influence_function(model, data, projection_dim=None, hessian_reg=1e-2,
                                                 hessian_inverse_tol=1e-2)  # fmt: skip
    torch.testing.assert_close(arnoldi.influence(tx, ty), kept.influence(tx, ty), rtol=1e-3, atol=1e-3)
    # and a short Arnoldi run keeps the top of the spectrum: its largest-scale scores agree in sign and order
    short = pa.influence.arnoldi_influence_function(model, data, arnoldi_dim=20, projection_dim=5, hessian_reg=1e-2,
                                                    hessian_inverse_tol=0.0)  # fmt: skip
    top = pa.influence.naive_influence_function(
        model, data, projection_dim=5, hessian_reg=1e-2, hessian_inverse_tol=0.0
    )
    a, b = short.influence(tx, ty).flatten(), top.influence(tx, ty).flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99


def test_arnoldi_agrees_with_captum(setup):
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction

    model, x, y, tx, ty, path = setup
    data = TensorDataset(x, y)
    ours = pa.influence.arnoldi_influence_function(model, data, arnoldi_dim=60, arnoldi_tol=1e-6, batch_size=8)
    theirs = ArnoldiInfluenceFunction(model, DataLoader(data, batch_size=8), path, checkpoints_load_func=_load,
                                      loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8, arnoldi_dim=60,
                                      arnoldi_tol=1e-6)  # fmt: skip
    # both span the whole (38-dimensional) parameter space: the same top-50 (all) eigenpairs
    torch.testing.assert_close(ours.influence(tx, ty), theirs.influence((tx, ty)), rtol=1e-2, atol=1e-3)


def test_bad_input_and_model_left_alone(setup):
    model, x, y, *_ = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    f = pa.influence.naive_influence_function(model, TensorDataset(x, y))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert f.influence(x[:2], y[:2]).shape == (2, 24)
    with pytest.raises(ArgumentError, match="hessian_inverse_tol"):
        pa.influence.naive_influence_function(model, TensorDataset(x, y), hessian_inverse_tol=1e9)
    big = nn.Linear(200, 200)
    with pytest.raises(ArgumentError, match="use arnoldi_influence_function"):
        pa.influence.naive_influence_function(big, TensorDataset(torch.randn(4, 200), torch.randint(0, 200, (4,))))


def test_arnoldi_restarts_when_the_krylov_space_closes():
    """H = 2 I (least squares on identity inputs): every Krylov space is one-dimensional, so a
    single Arnoldi run finds one direction; the restart finds them all, as the naive inverse does."""
    model = nn.Linear(6, 1, bias=False)
    x, y = torch.eye(6), torch.zeros(6, 1)
    loss = nn.MSELoss(reduction="sum")
    arnoldi = pa.influence.arnoldi_influence_function(model, TensorDataset(x, y), loss_fn=loss, arnoldi_tol=1e-4)
    naive = pa.influence.naive_influence_function(model, TensorDataset(x, y), loss_fn=loss, hessian_reg=1e-3,
                                                  hessian_inverse_tol=1e-4)  # fmt: skip
    assert arnoldi.R.shape == (6, 6)
    torch.testing.assert_close(arnoldi.R @ arnoldi.R.T, torch.eye(6) / (2 + 1e-3), rtol=1e-4, atol=1e-5)
    scores = arnoldi.influence(x, y)
    torch.testing.assert_close(scores, naive.influence(x, y), rtol=1e-3, atol=1e-4)
    assert (scores.argmax(1) == torch.arange(6)).all()  # each example is its own top proponent
