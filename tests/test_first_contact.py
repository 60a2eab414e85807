"""What a new user meets first: defaults that bound memory, their own errors, clear messages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.budget import ROW_BUDGET


class Counting(nn.Module):
    """Records the rows of every call; raises once ``fail`` is set."""

    def __init__(self, inner: nn.Module, fail: bool = False) -> None:
        super().__init__()
        self.inner, self.fail, self.rows = inner, fail, []

    def forward(self, x):
        self.rows.append(x.shape[0])
        if self.fail:
            raise RuntimeError("the user's own bug")
        return self.inner(x)


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


@pytest.mark.parametrize(
    "method",
    [
        lambda m: pa.saliency(m),
        lambda m: pa.integrated_gradients(m, n_steps=4),
        lambda m: pa.occlusion(m, sliding_window_shapes=(3, 4, 4)),
        lambda m: pa.feature_ablation(m),
        lambda m: pa.guided_backprop(m),
        lambda m: pa.deep_lift(m),
    ],
)
def test_an_error_in_the_model_reaches_the_user_once(method):
    model = Counting(conv_net(), fail=True)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="the user's own bug"):
        method(model)(x, target=1)
    assert model.rows == [model.rows[0]]  # one call, no retry
    model.fail, model.rows = False, []
    method(model)(x, target=1)  # and nothing was remembered against the model
    assert model.rows


def test_default_chunks_follow_the_memory_budget():
    big = Counting(conv_net())
    x = torch.randn(2, 3, 256, 256)  # 196608 elements per row: a chunk is one batch
    pa.occlusion(big, sliding_window_shapes=(3, 64, 64), strides=(3, 64, 64))(x, target=0)
    assert set(big.rows) == {2} and len(big.rows) == 1 + 16  # the unperturbed pass, then 16 windows
    small = Counting(conv_net())
    x = torch.randn(2, 3, 8, 8)  # 192 elements per row
    pa.integrated_gradients(small, n_steps=50)(x, target=0)
    assert small.rows == [100]  # 100 rows fit the budget: one evaluation
    mid = Counting(conv_net())
    x = torch.randn(4, 3, 64, 64)
    pa.integrated_gradients(mid, n_steps=50)(x, target=0)
    per_chunk = ROW_BUDGET // (3 * 64 * 64) // 4 * 4
    assert max(mid.rows) == per_chunk and sum(mid.rows) == 200
    explicit = Counting(conv_net())
    pa.integrated_gradients(explicit, n_steps=50, batch_size=7)(x, target=0)
    assert max(explicit.rows) == 7  # an explicit batch_size wins


def test_default_chunking_does_not_change_results():
    model = conv_net()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    chunked = pa.integrated_gradients(model, n_steps=50)(x, target=0)
    whole = pa.integrated_gradients(model, n_steps=50, batch_size=200)(x, target=0)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)
