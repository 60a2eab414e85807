"""Layer and neuron methods: tuple layer values, completeness, errors, compile."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import pyattrib as pa
from pyattrib import testing as T

from . import models
from .test_compile import compiled_run


def test_lstm_tuple_layer_value_keeps_its_structure():
    m = models.lstm_model()
    ids = torch.randint(0, 20, (3, 5))
    act = pa.layer_activation(m, m.lstm)(ids)
    out, (h, c) = m.lstm(m.embedding(ids))
    assert isinstance(act, tuple) and isinstance(act[1], tuple)
    for a, b in zip((act[0], *act[1]), (out, h, c)):
        torch.testing.assert_close(a, b)
    gxa = pa.layer_gradient_x_activation(m, m.lstm)(ids, target=1)
    assert gxa[0].shape == out.shape and gxa[1][0].shape == h.shape == (1, 3, 6)
    # completeness holds for the tuple value: the head reads out, h and c
    attr, delta = pa.layer_integrated_gradients(m, m.lstm, n_steps=64, return_delta=True)(
        ids, torch.zeros_like(ids), target=0
    )
    assert attr[1][1].shape == c.shape
    assert delta.abs().max() < 1e-4


@given(
    model=T.mlps(d_in=4, d_out=2, max_hidden=5), x=T.batches(4), b=T.batches(4, max_batch=1), steps=st.integers(32, 64)
)
def test_layer_ig_and_conductance_completeness(model, x, b, steps):
    base = b.expand_as(x)
    with torch.no_grad():
        gap = (model(x) - model(base))[:, 1]
    _, delta = pa.layer_integrated_gradients(model, model[1], n_steps=steps, return_delta=True)(x, base, target=1)
    assert (delta.abs() <= 1e-6 + 1e-4 * gap.abs()).all()
    attr, delta = pa.layer_conductance(model, model[1], n_steps=steps, method="riemann_trapezoid", return_delta=True)(
        x, base, target=1
    )
    # conductance's telescoping sum converges at O(1/n)
    assert (delta.abs() <= 1e-3 + 2e-2 * gap.abs()).all()
    torch.testing.assert_close(attr.sum(1), gap + delta, atol=1e-9, rtol=1e-9)


def test_multi_target_over_neurons_equals_separate_calls():
    m = models.mlp()
    x = torch.randn(4, 6)
    nig = pa.neuron_integrated_gradients(m, m[2], n_steps=8, batch_size=40)
    many = pa.multi_target(nig, list(range(8)), argname="neuron_selector")(x)
    assert many.shape == (4, 8, 6)
    for j in range(8):
        torch.testing.assert_close(many[:, j], nig(x, neuron_selector=j))


def test_per_example_neuron_selector():
    m = models.mlp()
    x = torch.randn(3, 6)
    got = pa.neuron_gradient(m, m[2])(x, neuron_selector=[0, 4, 7])
    for i, j in enumerate([0, 4, 7]):
        torch.testing.assert_close(got[i : i + 1], pa.neuron_gradient(m, m[2])(x[i : i + 1], neuron_selector=j))


def test_smoothgrad_of_layer_and_neuron_methods():
    m = models.mlp()
    x = torch.randn(3, 6)
    sg = pa.smoothgrad(pa.layer_integrated_gradients(m, m[2], n_steps=6), n_samples=3, stdevs=0.0)
    torch.testing.assert_close(
        sg(x, target=[0, 1, 2]), pa.layer_integrated_gradients(m, m[2], n_steps=6)(x, target=[0, 1, 2])
    )
    sg = pa.smoothgrad(pa.neuron_gradient(m, m[2]), n_samples=4, stdevs=0.0)
    torch.testing.assert_close(
        sg(x, neuron_selector=[1, 2, 3]),
        pa.neuron_gradient(m, m[2])(x, neuron_selector=[1, 2, 3]),
        rtol=1e-6,
        atol=1e-7,
    )
    # with noise: a neuron of the first (linear) layer has the gradient W1[j] wherever it is taken, so the
    # noisy mean is exactly that row
    noisy = pa.smoothgrad(pa.neuron_gradient(m, m[0]), n_samples=4, stdevs=0.1)
    got = noisy(x, neuron_selector=[1, 2, 3], generator=torch.Generator().manual_seed(0))
    w = m[0].weight.detach()
    torch.testing.assert_close(got, w[[1, 2, 3]], rtol=1e-6, atol=1e-6)


class Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin1, self.lin2, self.act = nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU()

    def forward(self, x):
        return self.lin2(self.act(self.lin1(self.act(x))))


def test_module_called_twice_is_a_clear_error_and_leaves_no_hooks():
    m = Reused()
    with pytest.raises(RuntimeError, match=r"layer 'act' ran 2 times in one forward pass"):
        pa.layer_gradient_x_activation(m, m.act)(torch.randn(2, 4), target=0)
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())


def test_layer_errors():
    m = models.mlp()
    x = torch.randn(3, 6)
    with pytest.raises(RuntimeError, match="did not run in the model's forward pass"):
        pa.layer_activation(m, nn.Linear(2, 2))(x)
    with pytest.raises(TypeError, match="layer must be an nn.Module"):
        pa.layer_activation(m, "0")
    with pytest.raises(TypeError, match="inputs has dtype torch.int64.*layer_integrated_gradients"):
        pa.layer_conductance(models.token_model(), models.token_model().embedding)(
            torch.ones(2, 3, dtype=torch.long), target=0
        )
    with pytest.raises(IndexError, match="neuron_selector 9 is out of range"):
        pa.neuron_gradient(m, m[2])(x, neuron_selector=9)
    with pytest.raises(ValueError, match="attributions must be a tensor"):
        pa.interpolate(torch.ones(3, 4), (8,))


@pytest.mark.compile
def test_compiled_layer_integrated_gradients():
    m = models.mlp()
    lig = pa.layer_integrated_gradients(m, m[2], n_steps=6, batch_size=12)
    x1, x2 = torch.randn(4, 6), torch.randn(4, 6)
    y1, y2 = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2])
    c1, c2 = compiled_run(lig, ((x1,), {"target": y1}), ((x2,), {"target": y2}))
    torch.testing.assert_close(c1, lig(x1, target=y1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c2, lig(x2, target=y2), atol=1e-6, rtol=1e-5)
    assert not any(mod._forward_hooks for mod in m.modules())


def test_layer_methods_under_vmap_equal_a_loop():
    m = models.mlp()
    x = torch.randn(4, 6)
    for attributor in (
        pa.layer_integrated_gradients(m, m[2], n_steps=8),
        pa.layer_gradient_x_activation(m, m[2]),
        pa.internal_influence(m, m[2], n_steps=6),
    ):
        batched = torch.func.vmap(lambda z, a=attributor: a(z[None], target=1)[0])(x)
        looped = torch.stack([attributor(x[i : i + 1], target=1)[0] for i in range(4)])
        torch.testing.assert_close(batched, looped, atol=1e-6, rtol=1e-5)
    nc = pa.neuron_conductance(m, m[2], n_steps=6)
    batched = torch.func.vmap(lambda z: nc(z[None], neuron_selector=3, target=1)[0])(x)
    looped = nc(x, neuron_selector=3, target=1)
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=1e-5)
    assert not any("forward" in mod.__dict__ for mod in m.modules())


def test_neuron_conductance_runs_the_model_once_per_chunk():
    m = models.mlp()
    calls = []
    handle = m[0].register_forward_pre_hook(lambda mod, args: calls.append(len(args[0])))
    try:
        pa.neuron_conductance(m, m[2], n_steps=6, batch_size=12)(torch.randn(4, 6), neuron_selector=1, target=0)
    finally:
        handle.remove()
    assert calls == [12, 12]  # 24 path points in two chunks, each through the model once


def test_layer_input_with_a_bool_mask_among_its_arguments_passes_the_mask_through():
    """A Hugging Face BertLayer gets (hidden_states, bool attention mask, None) positionally: the
    mask is no attributable leaf (Captum crashes subtracting bools); it passes through, comes back
    as None, and the hidden states' attributions equal those at the previous layer's output."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    ids, mask = torch.randint(0, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0

    def f(ids, mask):
        return model(input_ids=ids, attention_mask=mask).logits

    blocks = model.bert.encoder.layer
    (hidden, *rest), delta = pa.layer_integrated_gradients(f, blocks[1], attribute_to_layer_input=True, n_steps=16,
                                                           return_delta=True)(ids, target=1, additional_forward_args=(mask,))  # fmt: skip
    assert all(r is None for r in rest) and hidden.shape == (2, 7, 16)
    assert delta.abs().max() < 1e-4
    at_output = pa.layer_integrated_gradients(f, blocks[0], n_steps=16)(ids, target=1, additional_forward_args=(mask,))
    at_output = at_output[0] if isinstance(at_output, tuple) else at_output
    torch.testing.assert_close(hidden, at_output, rtol=1e-4, atol=1e-6)
