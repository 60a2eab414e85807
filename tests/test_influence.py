"""TracInCP: Captum's numbers on an MLP and a CNN, and the influence matrix's properties."""

from __future__ import annotations

import os

import pytest
import torch
from captum.influence import TracInCP as CaptumTracInCP
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from tests.models import CNN


def trained(model, x, y, tmp_path, n_checkpoints=3):
    """Checkpoints (paths and state dicts) along a short SGD run."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    paths, states = [], []
    for c in range(n_checkpoints):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        paths.append(os.path.join(tmp_path, f"c{c}.pt"))
        torch.save(model.state_dict(), paths[-1])
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    return paths, states


def models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    yield mlp, torch.randn(18, 4), torch.randint(0, 3, (18,)), torch.randn(4, 4), torch.randint(0, 3, (4,))
    torch.manual_seed(1)
    yield (
        CNN(),
        torch.randn(10, 3, 8, 8),
        torch.randint(0, 4, (10,)),
        torch.randn(3, 3, 8, 8),
        torch.randint(0, 4, (3,)),
    )


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("sample_wise", [False, True])
def test_tracin_equals_captum(case, sample_wise, tmp_path):
    model, x, y, tx, ty = list(models())[case]
    paths, states = trained(model, x, y, tmp_path)

    def load(m, path):
        m.load_state_dict(torch.load(path))
        return 0.1

    ours = pa.influence.tracin_cp(model, TensorDataset(x, y), states, learning_rates=[0.1] * 3, batch_size=4)
    theirs = CaptumTracInCP(
        model, DataLoader(TensorDataset(x, y), batch_size=4), paths, checkpoints_load_func=load,
        loss_fn=nn.CrossEntropyLoss(reduction="sum" if sample_wise else "none"), batch_size=4,
        sample_wise_grads_per_batch=sample_wise,
    )  # fmt: skip
    torch.testing.assert_close(ours.influence(tx, ty), theirs.influence((tx, ty)), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), rtol=1e-4, atol=1e-6)
    for proponents in (True, False):
        idx, score = ours.k_most_influential(tx, ty, 3, proponents=proponents)
        c_idx, c_score = theirs.influence((tx, ty), k=3, proponents=proponents)
        torch.testing.assert_close(score, c_score, rtol=1e-4, atol=1e-6)
        assert torch.equal(idx, c_idx)


def test_influence_matrix_properties_and_model_left_alone(tmp_path):
    model, x, y, _, _ = next(models())
    _, states = trained(model, x, y, tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tracin = pa.influence.tracin_cp(model, TensorDataset(x, y), states, learning_rates=[0.5, 1.0, 2.0], batch_size=5)
    matrix = tracin.influence(x, y)
    torch.testing.assert_close(matrix, matrix.T, rtol=1e-5, atol=1e-6)  # symmetric
    torch.testing.assert_close(matrix.diagonal(), tracin.self_influence(), rtol=1e-5, atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # checkpoints never loaded
    # layers: only the last layer's parameters, by hand
    last = pa.influence.tracin_cp(model, TensorDataset(x, y), states[-1:], layers=["2"]).influence(x[:2], y[:2])
    grads = []
    for xi, yi in zip(x, y):
        model.load_state_dict(states[-1])
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None], reduction="sum").backward()
        grads.append(torch.cat([model[2].weight.grad.reshape(-1), model[2].bias.grad]))
    g = torch.stack(grads)
    torch.testing.assert_close(last, g[:2] @ g.T, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="layers"):
        pa.influence.tracin_cp(model, TensorDataset(x, y), states, layers=["nope"])


def test_tracin_fast_equals_captum_and_the_full_final_layer_weights(tmp_path):
    from captum.influence import TracInCPFast

    model, x, y, tx, ty = next(models())
    paths, states = trained(model, x, y, tmp_path)

    def load(m, path):
        m.load_state_dict(torch.load(path))
        return 0.1

    fast = pa.influence.tracin_cp_fast(model, "2", TensorDataset(x, y), states, learning_rates=[0.1] * 3,
                                       batch_size=4)  # fmt: skip
    theirs = TracInCPFast(model, model[2], DataLoader(TensorDataset(x, y), batch_size=4), paths,
                          checkpoints_load_func=load, loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=4)  # fmt: skip
    torch.testing.assert_close(fast.influence(tx, ty), theirs.influence((tx, ty)), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast.self_influence(), theirs.self_influence(), rtol=1e-4, atol=1e-6)
    # the closed form is TracInCP restricted to the final layer's weight
    full = pa.influence.tracin_cp(model, TensorDataset(x, y), states, learning_rates=[0.1] * 3)
    full.names = ["2.weight"]
    torch.testing.assert_close(fast.influence(tx, ty), full.influence(tx, ty), rtol=1e-4, atol=1e-6)
    # a loss known to sum over examples runs on the whole chunk; any other is mapped per example: same numbers
    for loss in (nn.CrossEntropyLoss(reduction="none"), lambda out, t: nn.functional.cross_entropy(out, t) * 1.0):
        other = pa.influence.tracin_cp_fast(model, "2", TensorDataset(x, y), states, learning_rates=[0.1] * 3,
                                            batch_size=4, loss_fn=loss)  # fmt: skip
        torch.testing.assert_close(other.self_influence(), fast.self_influence(), rtol=1e-4, atol=1e-6)
    assert pa.influence.tracin.batch_sum(nn.CrossEntropyLoss()) is None  # a batch mean: not a per-example sum
    with pytest.raises(ValueError, match="nn.Linear"):
        pa.influence.tracin_cp_fast(model, "1", TensorDataset(x, y), states)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_similarity_influence_equals_captum(metric, tmp_path):
    from captum.influence import SimilarityInfluence
    from captum.influence._core.similarity_influence import cosine_similarity, euclidean_distance

    torch.manual_seed(0)
    model = CNN().eval()
    train, test = torch.randn(23, 3, 8, 8), torch.randn(4, 3, 8, 8)
    ours = pa.influence.similarity_influence(model, ["conv1", "fc"], TensorDataset(train), similarity=metric,
                                             batch_size=5).influence(test, top_k=3)  # fmt: skip
    theirs = SimilarityInfluence(
        model, ["conv1", "fc"], TensorDataset(train), str(tmp_path), batch_size=5,
        similarity_metric=cosine_similarity if metric == "cosine" else euclidean_distance,
        similarity_direction="max" if metric == "cosine" else "min",
    ).influence(test, top_k=3)  # fmt: skip
    for layer in ("conv1", "fc"):
        assert torch.equal(ours[layer][0], theirs[layer][0])
        torch.testing.assert_close(ours[layer][1], theirs[layer][1], rtol=1e-4, atol=1e-5)


def test_rand_proj_without_projection_equals_fast_and_projects_faithfully(tmp_path):
    model, x, y, tx, ty = next(models())
    _, states = trained(model, x, y, tmp_path)
    options = dict(learning_rates=[0.1, 0.2, 0.3], batch_size=5)
    fast = pa.influence.tracin_cp_fast(model, "2", TensorDataset(x, y), states, **options)
    exact = pa.influence.tracin_cp_fast_rand_proj(model, "2", TensorDataset(x, y), states, **options)
    torch.testing.assert_close(exact.influence(tx, ty), fast.influence(tx, ty), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(exact.self_influence(), fast.self_influence(), rtol=1e-5, atol=1e-6)
    idx, val = exact.k_most_influential(tx, ty, k=4, proponents=False)
    f_idx, f_val = fast.k_most_influential(tx, ty, k=4, proponents=False)
    assert torch.equal(idx, f_idx)
    torch.testing.assert_close(val, f_val, rtol=1e-5, atol=1e-6)
    # a random projection keeps the dot products in expectation: the mean over seeds is unbiased
    projected = [pa.influence.tracin_cp_fast_rand_proj(model, "2", TensorDataset(x, y), states, projection_dim=4,
                                                       seed=s, **options) for s in range(200)]  # fmt: skip
    approx = projected[0].influence(tx, ty)
    torch.testing.assert_close(approx, projected[0].influence(tx, ty))  # same seed, same projection
    assert projected[0].train_embeddings().shape[1] <= 3 * 4  # 3 checkpoints x at most 4
    mean = torch.stack([p.influence(tx, ty) for p in projected]).mean(0)
    exact_scores = fast.influence(tx, ty)
    assert float((mean - exact_scores).abs().max()) < 0.25 * float(exact_scores.abs().max())


def test_linear_layers_keep_factored_gradients_unless_the_weight_is_used_elsewhere(tmp_path):
    """TracInCP keeps a Linear layer's per-example weight gradient as delta a^T; a model that also
    uses that weight outside the layer is caught by the one-time check and gets plain gradients."""

    class Reused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.out(torch.tanh(self.fc(x)) + x @ self.fc.weight.T)  # fc.weight used twice

    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    for model, factored in ((nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)), {"0", "2"}),
                            (Reused(), {"out"})):  # fmt: skip
        states = [{k: v.clone() for k, v in model.state_dict().items()}]
        tracin = pa.influence.tracin_cp(model, TensorDataset(x, y), states, batch_size=5)
        scores = tracin.influence(x[:3], y[:3])
        assert {name for name, _ in tracin._linear} == factored
        dense = torch.cat([tracin.gradients(0, (x[:3],), y[:3], True)]) @ torch.cat(
            [tracin.gradients(0, (x,), y)]).T  # fmt: skip
        torch.testing.assert_close(scores, dense, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(tracin.self_influence(), (tracin.gradients(0, (x,), y) ** 2).sum(1),
                                   rtol=1e-4, atol=1e-5)  # fmt: skip


def test_rand_proj_self_influence_of_other_data_equals_fast(tmp_path):
    model, x, y, tx, ty = next(models())
    _, states = trained(model, x, y, tmp_path)
    data = TensorDataset(x, y)
    proj = pa.influence.tracin_cp_fast_rand_proj(model, "2", data, states, batch_size=4)
    fast = pa.influence.tracin_cp_fast(model, "2", data, states, batch_size=4)
    torch.testing.assert_close(proj.self_influence((tx, ty)), fast.self_influence((tx, ty)), rtol=1e-4, atol=1e-6)


def test_one_cosine_similarity_with_captums_zero_rows_as_an_option():
    """compat's cosine similarity is the native one with Captum's fill for all-zero rows (zero_rows=)."""
    from captum.influence._core.similarity_influence import cosine_similarity as captum_cosine

    import pyattrib.compat as pc

    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, -1.0]])
    b = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(pa.influence.cosine_similarity(a, b),
                               torch.tensor([[0.6, 0.0], [0.0, 0.0], [0.4 / 5**0.5, 0.0]]), atol=1e-6, rtol=0)  # fmt: skip
    for fill in (0, 1, -2):
        want = captum_cosine(a, b, replace_nan=fill)
        torch.testing.assert_close(pc.cosine_similarity(a, b, replace_nan=fill), want, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(pa.influence.cosine_similarity(a, b, zero_rows=fill), want, atol=1e-6, rtol=1e-6)


def test_tracin_and_influence_functions_on_a_model_with_tied_weights():
    """A Hugging Face GPT-2 ties lm_head.weight to the token embedding: its state dict names the
    tensor twice, functional_call takes it once. TracIn's self-influence is each example's squared
    gradient norm over the model's (deduplicated) parameters."""
    from tests.architectures import gpt2

    model = gpt2()
    torch.manual_seed(0)
    ids = torch.randint(0, 60, (3, 6))

    def lm_loss(out, y):
        logits = out.logits if hasattr(out, "logits") else out
        return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 60), y[:, 1:].reshape(-1), reduction="sum")

    ours = pa.influence.tracin_cp(model, TensorDataset(ids, ids), [model.state_dict()], loss_fn=lm_loss)
    expected = []
    for i in range(3):
        grads = torch.autograd.grad(lm_loss(model(ids[i : i + 1]), ids[i : i + 1]), list(model.parameters()))
        expected.append(sum(float((g**2).sum()) for g in grads))
    torch.testing.assert_close(ours.self_influence(), torch.tensor(expected), rtol=1e-4, atol=1e-6)
    arnoldi = pa.influence.arnoldi_influence_function(model, TensorDataset(ids, ids), loss_fn=lm_loss,
                                                      layers=["transformer.h.0.mlp"], arnoldi_dim=10,
                                                      projection_dim=5, batch_size=2)  # fmt: skip
    scores = arnoldi.influence(ids, ids)  # the HF output reaches the loss mapped per example (its logits)
    torch.testing.assert_close(arnoldi.self_influence(), scores.diagonal(), rtol=1e-4, atol=1e-6)
    assert bool((scores.diagonal() > 0).all())
