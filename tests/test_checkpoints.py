"""Checkpoints on disk: natural order, the state-dict shapes training loops save, loaders that
write into a model, and the native TracIn reading a folder."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import pyattrib as pa
from pyattrib._core.errors import ArgumentError
from pyattrib.influence import checkpoint_paths, load_flexible, loaded_states, read_checkpoint


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


def _states(n: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for c in range(n):
        torch.manual_seed(10 + c)
        out.append({k: v.clone() for k, v in _model().state_dict().items()})
        out[-1] = {k: torch.randn_like(v) for k, v in out[-1].items()}
    return out


def test_folder_in_natural_order(tmp_path):
    for name in ["ckpt10.pt", "ckpt2.pt", "ckpt1.pt"]:
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(p) for p in checkpoint_paths(str(tmp_path))] == ["ckpt1.pt", "ckpt2.pt", "ckpt10.pt"]
    assert checkpoint_paths(str(tmp_path / "ckpt2.pt")) == [str(tmp_path / "ckpt2.pt")]


def test_read_checkpoint_shapes(tmp_path):
    state = _states(1)[0]
    plain, wrapped, parallel = (str(tmp_path / f"{k}.pt") for k in ("plain", "wrapped", "parallel"))
    torch.save(state, plain)
    torch.save({"model_state_dict": state, "learning_rate": 0.25, "epoch": 3}, wrapped)
    torch.save({f"module.{k}": v for k, v in state.items()}, parallel)
    for path, rate in [(plain, 1.0), (wrapped, 0.25), (parallel, 1.0)]:
        got, lr = read_checkpoint(path)
        assert lr == rate
        assert sorted(got) == sorted(state)
        for k in state:
            assert torch.equal(got[k], state[k])


def test_loaded_states_keep_the_model(tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    states = _states(2)
    paths = []
    for c, s in enumerate(states):
        paths.append(str(tmp_path / f"c{c}.pt"))
        torch.save({"model_state_dict": s, "learning_rate": 0.5 * (c + 1)}, paths[-1])
    got, rates = loaded_states(model, paths)
    assert rates == [0.5, 1.0]
    for g, s in zip(got, states):
        assert all(torch.equal(g[k], s[k]) for k in s)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())

    def broken(m: nn.Module, path: str) -> float:
        load_flexible(m, path)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        loaded_states(model, paths, broken)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ArgumentError, match="checkpoints"):
        loaded_states(model, [])


def test_tracin_reads_a_folder(tmp_path):
    model, states = _model(), _states(3)
    for c, s in enumerate(states):
        (tmp_path / "run").mkdir(exist_ok=True)
        torch.save(s, str(tmp_path / "run" / f"epoch{c + 1}.pt"))
    torch.manual_seed(1)
    data = TensorDataset(torch.randn(6, 4), torch.randint(0, 3, (6,)))
    from_folder = pa.influence.tracin_cp(model, data, str(tmp_path / "run"), batch_size=4).self_influence()
    from_states = pa.influence.tracin_cp(model, data, states, batch_size=4).self_influence()
    torch.testing.assert_close(from_folder, from_states)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArgumentError, match="checkpoints is empty"):
        pa.influence.tracin_cp(model, data, str(tmp_path / "empty"))
    with pytest.raises(ArgumentError, match="no file or folder"):
        pa.influence.tracin_cp(model, data, str(tmp_path / "missing.pt"))
