"""What a new user meets first: defaults that bound memory, their own errors, clear messages."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.budget import FORWARD_BUDGET, GRADIENT_BUDGET


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
    tabular = Counting(nn.Sequential(nn.Linear(10, 4)))
    pa.feature_ablation(tabular)(torch.randn(8, 10), target=0)
    per_chunk = FORWARD_BUDGET // 10 // 8 * 8  # forward-only rows: the small budget
    assert tabular.rows[1:] == [80] and per_chunk >= 80
    images = Counting(conv_net())
    pa.feature_ablation(images)(
        torch.randn(4, 3, 32, 32), target=0, feature_mask=torch.arange(4).repeat_interleave(8).expand(1, 3, 32, 32)
    )
    assert set(images.rows) == {4}  # one perturbation of the batch per evaluation, as Captum
    mid = Counting(conv_net())
    x = torch.randn(4, 3, 64, 64)
    pa.integrated_gradients(mid, n_steps=50)(x, target=0)
    per_chunk = GRADIENT_BUDGET // (3 * 64 * 64) // 4 * 4
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


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()


@pytest.mark.parametrize(
    "kwarg, says",
    [
        ({"internal_batch_size": 4}, "batch_size= on the transform"),
        ({"return_convergence_delta": True}, "return_delta=True on the transform"),
        ({"n_steps": 10}, r"pa.integrated_gradients\(model, n_steps=...\)"),
        ({"nt_type": "smoothgrad"}, "pa.noise_tunnel"),
        ({"targte": 1}, "unexpected keyword argument 'targte'; the call is"),
    ],
)
def test_captum_argument_names_say_where_they_go(kwarg, says):
    with pytest.raises(TypeError, match=says):
        pa.integrated_gradients(mlp())(torch.randn(2, 5), target=0, **kwarg)


def test_perturbations_per_eval_points_to_batch_size():
    with pytest.raises(TypeError, match="batch_size= on the transform"):
        pa.feature_ablation(mlp())(torch.randn(2, 5), target=0, perturbations_per_eval=2)


def test_numpy_targets_work():
    np = pytest.importorskip("numpy")
    x = torch.randn(3, 5)
    ig = pa.integrated_gradients(mlp(), n_steps=8)
    expected = ig(x, target=torch.tensor([2, 0, 1]))
    torch.testing.assert_close(ig(x, target=np.array([2, 0, 1])), expected)
    torch.testing.assert_close(ig(x, target=[np.int64(2), np.int32(0), np.int64(1)]), expected)
    torch.testing.assert_close(ig(x, target=np.int64(2)), ig(x, target=2))
    with pytest.raises(TypeError, match="integer indices"):
        ig(x, target=np.array([0.5, 1.0, 2.0]))


def test_attributors_show_their_call_signature_and_docstring():
    import inspect

    ig = pa.integrated_gradients(mlp())
    params = inspect.signature(ig).parameters
    assert list(params) == ["inputs", "baselines", "target", "additional_forward_args"]
    assert "Integrated Gradients" in ig.__doc__ and "Sundararajan" in ig.__doc__
    sg = pa.smoothgrad(pa.saliency(mlp()))
    assert "generator" in inspect.signature(sg).parameters and "target" in inspect.signature(sg).parameters
    neuron = pa.neuron_integrated_gradients(mlp(), mlp()[0])
    assert "neuron_selector" in inspect.signature(neuron).parameters
    assert "target" not in inspect.signature(neuron).parameters
    import pydoc

    assert "Sundararajan" in pydoc.render_doc(ig)


def test_input_without_a_batch_dimension_gets_the_fix():
    ig = pa.integrated_gradients(mlp())
    with pytest.raises(RuntimeError, match="mat1 and mat2") as info:
        ig(torch.randn(5), target=0)  # the model's own error, once...
    assert "x.unsqueeze(0)" in str(info.value)  # ...with the fix in its message
    with pytest.raises(ValueError, match=r"target: .* rows \(inputs of shape \(5,\)\).*x.unsqueeze\(0\)"):
        pa.feature_ablation(mlp())(torch.randn(5), target=0)

    class Flattening(nn.Module):  # returns no batch dimension at all
        def forward(self, x):
            return x.reshape(-1)[:3]

    with pytest.raises(ValueError, match=r"shape \(3,\) for a batch of 2 rows.*x.unsqueeze\(0\)"):
        pa.saliency(Flattening())(torch.randn(2, 5))


def test_float64_model_with_float32_inputs_is_refused_clearly():
    model = mlp().double()
    with pytest.raises(ValueError, match=r"inputs are torch.float32 but the model's parameters are torch.float64"):
        pa.saliency(model)(torch.randn(2, 5), target=0)
    pa.saliency(model)(torch.randn(2, 5, dtype=torch.float64), target=0)


@pytest.mark.parametrize("kind", ["dict", "tuple", "model_output"])
def test_structured_outputs_read_logits_first(kind):
    inner = mlp()

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logits = self.inner(x)
            if kind == "dict":
                return {"hidden": x, "logits": logits}
            if kind == "tuple":
                return (logits, x)
            from transformers.modeling_outputs import SequenceClassifierOutput

            return SequenceClassifierOutput(logits=logits)

    if kind == "model_output":
        pytest.importorskip("transformers")
    x = torch.randn(3, 5)
    for method in (pa.integrated_gradients, pa.saliency, pa.feature_ablation):
        torch.testing.assert_close(method(Wrapped())(x, target=1), method(inner)(x, target=1))


@pytest.mark.parametrize(
    "make, says",
    [
        (
            lambda m: pa.integrated_gradients(m, internal_batch_size=4),
            "'internal_batch_size' is Captum's name.*batch_size=",
        ),
        (
            lambda m: pa.feature_ablation(m, perturbations_per_eval=4),
            "'perturbations_per_eval' is Captum's name.*batch_size=",
        ),
        (lambda m: pa.noise_tunnel(pa.saliency(m), nt_type="smoothgrad"), "'nt_type' is Captum's name.*kind="),
        (lambda m: pa.smoothgrad(pa.saliency(m), nt_samples=4), "'nt_samples' is Captum's name.*n_samples="),
        (lambda m: pa.vargrad(pa.saliency(m), nt_samples_batch_size=4), "'nt_samples_batch_size'.*batch_size="),
        (lambda m: pa.layer_integrated_gradients(m, m[0], internal_batch_size=2), "Captum's name.*batch_size="),
        (lambda m: pa.integrated_gradients(m, target=1), "'target' is data: pass it to the attributor"),
        (lambda m: pa.saliency(m, n_stesp=3), r"unexpected keyword argument 'n_stesp'; the transform is saliency\("),
    ],
)
def test_captum_names_at_transform_time_say_where_they_go(make, says):
    with pytest.raises(TypeError, match=says):
        make(mlp())


def test_captum_methods_on_an_attributor_say_how_to_call_it():
    ig = pa.integrated_gradients(mlp())
    with pytest.raises(AttributeError, match=r"no .attribute\(\): an attributor is called directly"):
        ig.attribute(torch.randn(2, 5), target=0)
    with pytest.raises(AttributeError, match="return_delta=True"):
        _ = ig.compute_convergence_delta
    with pytest.raises(AttributeError, match="'Attributor' object has no attribute 'nope'"):
        _ = ig.nope
    assert not hasattr(ig, "attribute") and callable(ig)


def test_a_missing_optional_dependency_names_the_extra(monkeypatch):
    import numpy as np

    import pyattrib.viz as viz
    from pyattrib import insights

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    for call in (lambda: viz.image_attr(np.zeros((4, 4, 1))), lambda: viz.feature_attr(np.zeros(3)),
                 lambda: viz.timeseries_attr(np.zeros((2, 5)))):  # fmt: skip
        with pytest.raises(
            ModuleNotFoundError, match=r'pyattrib.viz.\w+ needs matplotlib: pip install "pyattrib\[viz\]"'
        ):
            call()
    with pytest.raises(ModuleNotFoundError, match=r"pyattrib\[viz\]"):
        insights.report(mlp(), (torch.randn(2, 5), torch.tensor([0, 1])), {"s": pa.saliency})
    assert "<!DOCTYPE html>" in viz.text_attr(["a", "b"], np.array([0.1, -0.2]))  # HTML needs no matplotlib
    monkeypatch.setitem(sys.modules, "bottle", None)
    with pytest.raises(ModuleNotFoundError, match=r"pyattrib\[insights\]"):
        insights.serve(mlp(), (torch.randn(2, 5), torch.tensor([0, 1])), {"s": pa.saliency}, port=0)
