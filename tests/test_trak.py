"""TRAK (pa.influence.trak) against its published formula (Park et al. 2023, Algorithm 1) computed
densely: per-example margin gradients by autograd one example at a time, the same projections,
the averaged kernel times the averaged 1 - p."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import TensorDataset

import pyattrib as pa


def setting():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, y = torch.randn(12, 6), torch.randint(0, 3, (12,))
    return model, [model.state_dict(), other.state_dict()], x, y, torch.randn(4, 6), torch.randint(0, 3, (4,))


def dense_trak(model, states, trak, x, y, test_x, test_y, damping):
    kernels, lefts = [], []
    for c, state in enumerate(states):
        m = copy.deepcopy(model)
        m.load_state_dict(state)

        def grad_and_p(xi, yi, m=m):
            p = m(xi[None]).softmax(1)[0, yi]
            f = torch.log(p / (1 - p))  # the margin, from the probabilities
            g = torch.autograd.grad(f, list(m.parameters()))
            return torch.cat([t.reshape(-1) for t in g]).double(), float(p.detach())

        train = [grad_and_p(xi, yi) for xi, yi in zip(x, y)]
        test = torch.stack([grad_and_p(xi, yi)[0] for xi, yi in zip(test_x, test_y)])
        grads = torch.stack([g for g, _ in train])
        proj = trak.projection(c, grads.shape[1], grads)
        phi, phi_test = grads @ proj, test @ proj
        gram = phi.T @ phi + damping * torch.eye(phi.shape[1], dtype=torch.float64)
        kernels.append(phi_test @ torch.linalg.inv(gram) @ phi.T)
        lefts.append(torch.tensor([1 - p for _, p in train], dtype=torch.float64))
    return torch.stack(kernels).mean(0) * torch.stack(lefts).mean(0)[None]


def test_trak_equals_its_formula_computed_densely():
    model, states, x, y, test_x, test_y = setting()
    trak = pa.influence.trak(model, TensorDataset(x, y), states, projection_dim=8, damping=1e-3, batch_size=5,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
    got = trak.influence(test_x, test_y)
    want = dense_trak(model, states, trak, x, y, test_x, test_y, 1e-3)
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-3)
    assert got.shape == (4, 12) and float(got.abs().max()) > 1e-3


def test_trak_does_not_depend_on_the_chunks_and_draws_from_its_generator():
    model, states, x, y, test_x, test_y = setting()
    make = lambda b, s: pa.influence.trak(model, TensorDataset(x, y), states, projection_dim=8, batch_size=b,  # noqa: E731
                                          damping=1e-3, generator=torch.Generator().manual_seed(s))  # fmt: skip
    a = make(5, 0).influence(test_x, test_y)
    torch.testing.assert_close(make(64, 0).influence(test_x, test_y), a, atol=1e-5, rtol=1e-4)
    assert (make(5, 1).influence(test_x, test_y) - a).abs().max() > 1e-4  # another projection
    before = {k: v.clone() for k, v in model.state_dict().items()}
    make(5, 0).influence(test_x, test_y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model as found


def test_trak_on_a_language_model_equals_the_dense_formula():
    """TRAK with the language-model output (every next token's margin, summed) and the weights
    ``1 - p`` averaged over the positions, on a Hugging Face GPT-2 with tied embeddings."""
    from tests.architectures import gpt2

    model = gpt2()
    torch.manual_seed(1)
    ids, test_ids = torch.randint(0, 60, (6, 5)), torch.randint(0, 60, (2, 5))
    trak = pa.influence.trak(model, TensorDataset(ids, ids), [model.state_dict()], projection_dim=6, damping=1e-3,
                             batch_size=4, generator=torch.Generator().manual_seed(0),
                             output_fn=pa.influence.sequence_margin, residual_fn=pa.influence.sequence_residual)  # fmt: skip
    got = trak.influence(test_ids, test_ids)
    params = list(model.parameters())

    def grad_and_q(seq):
        logits = model(seq[None]).logits[0, :-1]
        p = logits.softmax(-1).gather(1, seq[1:, None])[:, 0]
        f = torch.log(p / (1 - p)).sum()  # each next token's margin, from its probability
        g = torch.autograd.grad(f, params)
        return torch.cat([t.reshape(-1) for t in g]).double(), float((1 - p.detach()).mean())

    train = [grad_and_q(s) for s in ids]
    grads = torch.stack([g for g, _ in train])
    proj = trak.projection(0, grads.shape[1], grads)
    phi = grads @ proj
    phi_test = torch.stack([grad_and_q(s)[0] for s in test_ids]) @ proj
    gram = phi.T @ phi + 1e-3 * torch.eye(phi.shape[1], dtype=torch.float64)
    want = phi_test @ torch.linalg.inv(gram) @ phi.T * torch.tensor([q for _, q in train], dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, atol=1e-4 * float(want.abs().max()), rtol=1e-3)
