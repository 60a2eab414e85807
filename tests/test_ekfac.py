"""EK-FAC and K-FAC influence: kronfluence 1.0.1's factors and scores on an MLP, a CNN and a tiny
GPT-2 (same settings: the empirical Fisher, the same damping), and the properties of the scores."""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from tests.models import CNN

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import kronfluence
else:
    kronfluence = pytest.importorskip("kronfluence")


def _kronfluence(model, loss, train, query, strategy, *, damping=1e-8, batch=8, tracked=None):
    """kronfluence's factors, pairwise scores and self-scores for ``loss(model, batch)``."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class _Task(Task):
        def compute_train_loss(self, batch, model, sample=False):
            return loss(model, batch)

        def compute_measurement(self, batch, model):
            return loss(model, batch)

        def get_influence_tracked_modules(self):
            return tracked

    logging.getLogger("kronfluence").setLevel(logging.ERROR)
    model = prepare_model(copy.deepcopy(model), _Task())
    out = tempfile.mkdtemp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        an = Analyzer("t", model, _Task(), output_dir=out, disable_tqdm=True, disable_model_save=True)
        an.fit_all_factors("f", train, factor_args=FactorArguments(strategy=strategy, use_empirical_fisher=True),
                           per_device_batch_size=batch, overwrite_output_dir=True)  # fmt: skip
        args = ScoreArguments(damping_factor=damping)
        an.compute_pairwise_scores("s", "f", query_dataset=query, train_dataset=train, score_args=args,
                                   per_device_query_batch_size=len(query), per_device_train_batch_size=batch,
                                   overwrite_output_dir=True)  # fmt: skip
        an.compute_self_scores("self", "f", train_dataset=train, score_args=args, per_device_train_batch_size=batch,
                               overwrite_output_dir=True)  # fmt: skip
    covariances = an.load_covariance_matrices("f")
    return (an.load_pairwise_scores("s")["all_modules"], an.load_self_scores("self")["all_modules"], covariances,
            an.load_lambda_matrices("f") if strategy == "ekfac" else None)  # fmt: skip


def _same_factors(ours, covariances, lambdas, names):
    """Each layer's covariances (and EK-FAC's corrected eigenvalues) equal kronfluence's, normalised."""
    for name, theirs in names.items():
        n_a = covariances["num_activation_covariance_processed"][theirs]
        _close(ours.factors[name]["activation_covariance"], covariances["activation_covariance"][theirs] / n_a)
        n_g = covariances["num_gradient_covariance_processed"][theirs]
        _close(ours.factors[name]["gradient_covariance"], covariances["gradient_covariance"][theirs] / n_g)
        if lambdas is not None:
            n_l = lambdas["num_lambda_processed"][theirs]
            _close(ours.factors[name]["lambda"], lambdas["lambda_matrix"][theirs] / n_l, tol=1e-3)


def _close(ours, theirs, tol=1e-4):
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=tol, atol=tol * scale)  # atol: tol x the scale


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    return model, TensorDataset(torch.randn(40, 6), torch.randint(0, 3, (40,))), (torch.randn(5, 6),
                                                                                  torch.randint(0, 3, (5,)))


def _classify(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y, reduction="sum")


@pytest.mark.parametrize("strategy", ["ekfac", "kfac"])
def test_mlp_factors_and_scores_equal_kronfluence(strategy):
    model, train, (tx, ty) = _mlp()
    pairwise, self_scores, covariances, lambdas = _kronfluence(model, _classify, train, TensorDataset(tx, ty), strategy)
    ours = pa.influence.ekfac_influence(model, train, strategy=strategy, fisher="empirical", batch_size=8).fit_factors()
    for name in ("0", "2"):
        n_a = covariances["num_activation_covariance_processed"][name]
        _close(ours.factors[name]["activation_covariance"], covariances["activation_covariance"][name] / n_a)
        n_g = covariances["num_gradient_covariance_processed"][name]
        _close(ours.factors[name]["gradient_covariance"], covariances["gradient_covariance"][name] / n_g)
        if lambdas is not None:
            _close(ours.factors[name]["lambda"], lambdas["lambda_matrix"][name] / lambdas["num_lambda_processed"][name])
    _close(ours.influence(tx, ty), pairwise)
    _close(ours.self_influence(), self_scores)


def test_cnn_scores_equal_kronfluence():
    torch.manual_seed(1)
    model = CNN()
    train = TensorDataset(torch.randn(24, 3, 8, 8), torch.randint(0, 4, (24,)))
    tx, ty = torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))
    for strategy in ("ekfac", "kfac"):
        # a damping above float32's rounding of the smallest eigenvalues (conv1's gradient covariance has
        # eigenvalues near 1e-12: with kronfluence's default 1e-8 both results are mostly rounding error)
        pairwise, self_scores, covariances, lambdas = _kronfluence(model, _classify, train, TensorDataset(tx, ty),
                                                                   strategy, damping=1e-4)  # fmt: skip
        ours = pa.influence.ekfac_influence(model, train, strategy=strategy, damping=1e-4, fisher="empirical",
                                            batch_size=8)  # fmt: skip
        ours.fit_factors()
        _same_factors(ours, covariances, lambdas, {n: n for n in ("conv1", "conv2", "fc")})
        _close(ours.influence(tx, ty), pairwise)
        _close(ours.self_influence(), self_scores)


def _gpt2():
    from tests.architectures import gpt2

    model = gpt2()
    torch.manual_seed(2)
    ids = torch.randint(0, 60, (12, 10))
    return model, ids


def _lm_loss(out, ids):
    logits = out.logits if hasattr(out, "logits") else out[0]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")


def _as_linear(model):
    """kronfluence tracks nn.Linear, not Hugging Face's Conv1D: the same layers as Linear."""
    from transformers.pytorch_utils import Conv1D

    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, Conv1D):
                lin = nn.Linear(child.weight.shape[0], child.weight.shape[1])
                lin.weight.data.copy_(child.weight.data.T)
                lin.bias.data.copy_(child.bias.data)
                setattr(m, child_name, lin)
    return model


@pytest.mark.parametrize("strategy", ["ekfac", "kfac"])
def test_tiny_gpt2_scores_equal_kronfluence_and_tokens_sum_to_sequences(strategy):
    model, ids = _gpt2()
    train, query = TensorDataset(ids[:10], ids[:10]), TensorDataset(ids[10:], ids[10:])
    layers = ["transformer.h"]

    def loss(m, batch):
        return _lm_loss(m(batch[0]), batch[1])

    linear = _as_linear(copy.deepcopy(model))
    tracked = [n for n, m in linear.named_modules() if isinstance(m, nn.Linear) and n.startswith("transformer.h")]
    pairwise, self_scores, covariances, lambdas = _kronfluence(linear, loss, train, query, strategy, batch=5,
                                                               tracked=tracked, damping=1e-4)  # fmt: skip
    ours = pa.influence.ekfac_influence(model, train, loss_fn=_lm_loss, layers=layers, strategy=strategy, damping=1e-4,
                                        fisher="empirical", batch_size=5)  # fmt: skip
    ours.fit_factors()
    _same_factors(ours, covariances, lambdas, {n: n for n in tracked})  # Conv1D here, Linear there: one layout
    scores = ours.influence(ids[10:], ids[10:])
    _close(scores, pairwise, tol=1e-3)
    _close(ours.self_influence(), self_scores, tol=1e-3)
    per_token = ours.influence(ids[10:], ids[10:], per_token=True)
    assert per_token.shape == (2, 10, 10)
    _close(per_token.sum(-1), scores, tol=1e-4)


def _dense_kfac_scores(model, layer, xs, ys, tx, ty, damping):
    """K-FAC by its definition for one layer: per-example gradients from autograd, ``A`` and ``G``
    averaged over positions, ``(A (x) G + damping)^-1`` formed densely."""
    def grads(x, y):
        rows = []
        for i in range(len(y)):
            g = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1], reduction="sum"), layer.weight)[0]
            rows.append(g.T.reshape(-1) if isinstance(layer, nn.Embedding) else g.reshape(-1))
        return torch.stack(rows).double()

    acts, outs = [], []
    h1 = layer.register_forward_hook(lambda m, i, o: acts.append(i[0]))
    def grad_of_output(module, inputs, output):
        output.register_hook(outs.append)

    h2 = layer.register_forward_hook(grad_of_output)
    for i in range(len(ys)):
        F.cross_entropy(model(xs[i : i + 1]), ys[i : i + 1], reduction="sum").backward()
    h1.remove(), h2.remove()
    model.zero_grad(set_to_none=True)
    if isinstance(layer, nn.Embedding):
        a = torch.cat([F.one_hot(t.reshape(-1), layer.num_embeddings) for t in acts]).double()
    else:
        a = torch.cat([t.reshape(-1, t.shape[-1]) for t in acts]).double()
    g = torch.cat([t.reshape(-1, t.shape[-1]) for t in outs]).double()
    big_a, big_g = a.T @ a / len(a), g.T @ g / len(g)
    fisher = torch.kron(big_g, big_a)  # rows of W (d_out, d_in) flattened row-major
    inverse = torch.linalg.inv(fisher + damping * torch.eye(len(fisher), dtype=torch.float64))
    return grads(tx, ty) @ inverse @ grads(xs, ys).T


class _Bag(nn.Module):
    """Token ids -> embedding -> mean -> linear head (no bias in the embedding)."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = nn.Embedding(7, 4), nn.Linear(4, 3, bias=False)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids)).mean(1))


@pytest.mark.parametrize("layer_name", ["emb", "head"])
def test_kfac_equals_its_dense_definition_embedding_included(layer_name):
    """kronfluence has no Embedding layer: K-FAC's formula formed densely is the reference there."""
    torch.manual_seed(3)
    model = _Bag()
    xs, ys = torch.randint(0, 7, (20, 5)), torch.randint(0, 3, (20,))
    tx, ty = torch.randint(0, 7, (3, 5)), torch.randint(0, 3, (3,))
    ours = pa.influence.ekfac_influence(model, TensorDataset(xs, ys), layers=[layer_name], strategy="kfac",
                                        damping=1e-3, fisher="empirical", batch_size=6).fit_factors()  # fmt: skip
    dense = _dense_kfac_scores(model, getattr(model, layer_name), xs, ys, tx, ty, 1e-3)
    _close(ours.influence(tx, ty).double(), dense, tol=1e-4)


def test_ekfac_scores_properties(tmp_path):
    model, train, (tx, ty) = _mlp()
    model[0].weight.requires_grad_(False)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ek = pa.influence.ekfac_influence(model, train, fisher="empirical", batch_size=7).fit_factors()
    scores = ek.influence(tx, ty)
    # the model is left as found: training flag, requires_grad, no .grad, parameters
    assert model.training and not model[0].weight.requires_grad and model[2].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # the batch size changes nothing
    other = pa.influence.ekfac_influence(model, train, fisher="empirical", batch_size=40).fit_factors()
    _close(other.influence(tx, ty), scores, tol=1e-5)
    # top-k is the top of the scores; self-influence is the diagonal of the train x train scores
    idx, val = ek.k_most_influential(tx, ty, k=3)
    top = torch.topk(scores, 3, dim=1)
    assert torch.equal(idx, top.indices)
    _close(val, top.values, tol=1e-5)
    idx, val = ek.k_most_influential(tx, ty, k=2, proponents=False)
    assert torch.equal(idx, torch.topk(-scores, 2, dim=1).indices)
    xs, ys = train.tensors
    _close(ek.self_influence(), ek.influence(xs, ys).diagonal(), tol=1e-5)
    # factors on disk give the same scores
    ek.save_factors(tmp_path / "factors.safetensors")
    loaded = pa.influence.ekfac_influence(model, train, fisher="empirical").load_factors(tmp_path / "factors.safetensors")
    _close(loaded.influence(tx, ty), scores, tol=1e-5)
    # a heuristic damping (None) regularises more than 1e-8: smaller scores
    heuristic = pa.influence.ekfac_influence(model, train, fisher="empirical", damping=None, batch_size=7)
    assert heuristic.fit_factors().influence(tx, ty).abs().max() < scores.abs().max()


def test_sampled_fisher_follows_the_generator():
    model, train, (tx, ty) = _mlp()

    def fitted(seed):
        ek = pa.influence.ekfac_influence(model, train, batch_size=8)
        return ek.fit_factors(generator=torch.Generator().manual_seed(seed)).factors["2"]["gradient_covariance"]

    torch.testing.assert_close(fitted(0), fitted(0))
    assert not torch.allclose(fitted(0), fitted(1))


def test_ekfac_bad_input():
    model, train, (tx, ty) = _mlp()
    with pytest.raises(ArgumentError, match="strategy"):
        pa.influence.ekfac_influence(model, train, strategy="eva")
    with pytest.raises(ArgumentError, match="fisher"):
        pa.influence.ekfac_influence(model, train, fisher="true")
    with pytest.raises(ArgumentError, match="damping"):
        pa.influence.ekfac_influence(model, train, damping=-1.0)
    with pytest.raises(ArgumentError, match="not modules"):
        pa.influence.ekfac_influence(model, train, layers=["nope"])
    with pytest.raises(ArgumentError, match="no Linear"):
        pa.influence.ekfac_influence(model, train, layers=["1"])
    with pytest.raises(ArgumentError, match="fit_factors"):
        pa.influence.ekfac_influence(model, train).influence(tx, ty)
    with pytest.raises(ArgumentError, match="reduction='mean'"):
        pa.influence.ekfac_influence(model, train, loss_fn=nn.CrossEntropyLoss()).fit_factors()
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ArgumentError, match="groups=2"):
        pa.influence.ekfac_influence(grouped, train)


def test_torchrun_with_two_processes_equals_one_process(tmp_path):
    """Factor fitting and scoring with the training data sharded over two processes (gloo) give
    one process's factors and scores."""
    import subprocess
    import sys

    from tests.ekfac_job import job

    single = job()
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), OMP_NUM_THREADS="1")
    subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "tests.ekfac_job", str(tmp_path / "two.pt")],
                   check=True, env=env, capture_output=True, timeout=300)  # fmt: skip
    ranks = [torch.load(tmp_path / f"two.pt.{r}") for r in (0, 1)]
    # 7 chunks of the training data: one process reads all of them (twice), rank r the chunks c = r mod 2
    assert single["fitted"].tolist() == [4] * 6 + [3] + [4] * 6 + [3]
    assert ranks[0]["fitted"].tolist() == [4, 4, 4, 3] * 2 and ranks[1]["fitted"].tolist() == [4, 4, 4] * 2
    for two in ranks:
        assert set(two) == set(single)
        for key, value in single.items():
            if key == "top":
                assert torch.equal(two[key], value)
            elif key != "fitted":
                _close(two[key].double(), value.double(), tol=1e-5)


def test_scores_are_kept_on_disk_and_a_stopped_run_resumes(tmp_path, monkeypatch):
    model, train, (tx, ty) = _mlp()
    ek = pa.influence.ekfac_influence(model, train, fisher="empirical", batch_size=8).fit_factors()
    whole = ek.influence(tx, ty)
    calls = []
    original = ek._gradients

    def failing(xs, y, loss_fn):
        calls.append(len(y))
        if len(calls) == 3:
            raise RuntimeError("stopped")
        return original(xs, y, loss_fn)

    monkeypatch.setattr(ek, "_gradients", failing)
    with pytest.raises(RuntimeError, match="stopped"):
        ek.influence(tx, ty, out=tmp_path / "scores")
    assert len(list((tmp_path / "scores").glob("scores_*.pt"))) == 1  # the query's chunk, then the first train chunk
    monkeypatch.setattr(ek, "_gradients", original)
    resumed = ek.influence(tx, ty, out=tmp_path / "scores")
    torch.testing.assert_close(resumed, whole)
    assert len(list((tmp_path / "scores").glob("scores_*.pt"))) == 5  # 40 examples in chunks of 8
    with pytest.raises(ArgumentError, match="other queries"):
        ek.influence(tx[:2], ty[:2], out=tmp_path / "scores")
    torch.testing.assert_close(ek.self_influence(out=tmp_path / "self"), ek.self_influence(out=tmp_path / "self"))
