"""Argument forms that Captum accepts and pyattrib reads the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
from tests.models import mlp


def test_neuron_selector_forms():
    model = mlp()
    x = torch.randn(4, 6)
    layer = model[1]
    per_neuron = pa.neuron_gradient(model, layer)
    total = sum(per_neuron(x, neuron_selector=k) for k in range(8))
    # a callable returning one total for the batch: its gradient is each example's
    torch.testing.assert_close(per_neuron(x, neuron_selector=lambda out: out.sum()), total)
    # a partial index into a bigger block sums the block
    wide = nn.Sequential(nn.Linear(6, 8), nn.Unflatten(1, (2, 4)), nn.Tanh()).eval()
    block = pa.neuron_gradient(wide, wide[2])(x, neuron_selector=1)
    by_hand = sum(pa.neuron_gradient(wide, wide[2])(x, neuron_selector=(1, k)) for k in range(4))
    torch.testing.assert_close(block, by_hand)


def test_baseline_forms():
    model = mlp()
    x = torch.randn(3, 6)
    ig = pa.integrated_gradients(model, n_steps=8)
    per_row = torch.tensor([[0.1], [0.2], [0.3]])  # one value per example, broadcast over features
    torch.testing.assert_close(ig(x, per_row, target=0), ig(x, per_row.expand(3, 6), target=0))
    torch.testing.assert_close(ig(x, np.full((1, 6), 0.5), target=0), ig(x, 0.5, target=0))
    with pytest.raises(ValueError, match="must be tensors"):
        pa.gradient_shap(model)(x, 0.0, target=0)


def test_occlusion_window_forms():
    model = mlp()
    x = torch.randn(2, 6)
    occ = pa.occlusion(model, sliding_window_shapes=((2,),))  # one input, its window in a tuple
    torch.testing.assert_close(occ(x, target=1), pa.occlusion(model, sliding_window_shapes=(2,))(x, target=1))
    with pytest.raises(ValueError, match="stride"):
        pa.occlusion(model, sliding_window_shapes=(2,), strides=3)(x, target=1)
    scalar = pa.occlusion(lambda a, b: a * b, sliding_window_shapes=((), ()))  # one number per example
    a, b = torch.tensor([2.0, 3.0]), torch.tensor([5.0, 7.0])
    out = scalar((a, b))
    torch.testing.assert_close(out[0], a * b)
    torch.testing.assert_close(out[1], a * b)
