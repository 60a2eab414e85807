"""The model is left exactly as found, also after an exception."""

import pytest
import torch
from torch import nn

import pyattrib as pa


class Net(nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.0)
        self.out = nn.Linear(6, 3)
        self.fail = fail

    def forward(self, x):
        h = self.lin(x)
        if self.fail:
            raise RuntimeError("boom")
        return self.out(self.drop(torch.relu(self.bn(h))))


def snapshot(model):
    return {
        "params": {
            k: (v.detach().clone(), v.requires_grad, None if v.grad is None else v.grad.clone())
            for k, v in model.named_parameters()
        },
        "buffers": {k: v.clone() for k, v in model.named_buffers()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
        ),
    }


def assert_same(before, after):
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"] == 0
    for k, (v, rg, g) in before["params"].items():
        v2, rg2, g2 = after["params"][k]
        assert torch.equal(v, v2) and rg == rg2
        assert (g is None and g2 is None) or torch.equal(g, g2)
    for k, v in before["buffers"].items():
        assert torch.equal(v, after["buffers"][k]), f"buffer {k} changed"


def prepared(train: bool, fail: bool = False):
    torch.manual_seed(0)
    model = Net(fail)
    model.train(train)
    model.lin.weight.requires_grad_(False)
    model.out.weight.grad = torch.ones_like(model.out.weight)
    return model


ATTRIBUTORS = {
    "saliency": lambda m: pa.saliency(m),
    "input_x_gradient": lambda m: pa.input_x_gradient(m),
    "ig": lambda m: pa.integrated_gradients(m, n_steps=4, return_delta=True),
    "gradient_shap": lambda m: pa.gradient_shap(m, n_samples=3, return_delta=True),
    "smoothgrad_ig": lambda m: pa.smoothgrad(pa.integrated_gradients(m, n_steps=3), stdevs=0.1),
    "multi_target": lambda m: pa.multi_target(pa.saliency(m), [0, 1]),
    "layer_activation": lambda m: pa.layer_activation(m, m.bn),
    "layer_ig": lambda m: pa.layer_integrated_gradients(m, [m.bn, m.lin], n_steps=3, return_delta=True),
    "layer_conductance": lambda m: pa.layer_conductance(m, m.bn, n_steps=3, batch_size=10),
    "internal_influence": lambda m: pa.internal_influence(m, m.drop, n_steps=3),
    "layer_gradcam": lambda m: pa.layer_gradcam(m, m.lin),
    "layer_gradient_shap": lambda m: pa.layer_gradient_shap(m, m.lin, n_samples=2, return_delta=True),
    "neuron_gradient": lambda m: pa.neuron_gradient(m, m.bn),
    "neuron_ig": lambda m: pa.neuron_integrated_gradients(m, m.drop, n_steps=3),
    "neuron_conductance": lambda m: pa.neuron_conductance(m, m.bn, n_steps=3),
    "neuron_gradient_shap": lambda m: pa.neuron_gradient_shap(m, m.bn, n_samples=2),
    "deep_lift": lambda m: pa.deep_lift(m, return_delta=True),
    "deep_lift_shap": lambda m: pa.deep_lift_shap(m, batch_size=4),
    "layer_deep_lift": lambda m: pa.layer_deep_lift(m, m.out),
    "neuron_deep_lift": lambda m: pa.neuron_deep_lift(m, m.bn),
    "guided_backprop": lambda m: pa.guided_backprop(m),
    "neuron_deconvolution": lambda m: pa.neuron_deconvolution(m, m.bn),
    "lrp": lambda m: pa.lrp(m, return_delta=True),
    "feature_ablation": lambda m: pa.feature_ablation(m, batch_size=7),
    "occlusion": lambda m: pa.occlusion(m, sliding_window_shapes=(2,)),
    "shapley_value_sampling": lambda m: pa.shapley_value_sampling(m, n_samples=2),
    "kernel_shap": lambda m: pa.kernel_shap(m, n_samples=8),
    "lime": lambda m: pa.lime(m, n_samples=8),
    "layer_feature_ablation": lambda m: pa.layer_feature_ablation(m, m.bn),
    "neuron_feature_ablation": lambda m: pa.neuron_feature_ablation(m, m.bn),
}
NEEDS_REFS = ("gradient_shap", "layer_gradient_shap", "neuron_gradient_shap", "deep_lift_shap")


def call_kwargs(name):
    if name == "multi_target":
        return {}
    if name == "layer_activation":
        return {}
    if name.startswith("neuron_"):
        kw = {"neuron_selector": 1}
        return {**kw, "target": 1} if name == "neuron_conductance" else kw
    return {"target": 1}


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", list(ATTRIBUTORS))
def test_model_untouched(name, train):
    model = prepared(train)
    before = snapshot(model)
    x = torch.randn(5, 4)
    args = (torch.randn(3, 4),) if name in NEEDS_REFS else ()
    ATTRIBUTORS[name](model)(x, *args, **call_kwargs(name))
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", list(ATTRIBUTORS))
def test_model_untouched_after_exception(name):
    model = prepared(True, fail=True)
    before = snapshot(model)
    x = torch.randn(5, 4)
    args = (torch.randn(3, 4),) if name in NEEDS_REFS else ()
    with pytest.raises(RuntimeError, match="boom"):
        ATTRIBUTORS[name](model)(x, *args, **call_kwargs(name))
    assert_same(before, snapshot(model))


def test_inputs_untouched():
    model = prepared(False)
    x = torch.randn(5, 4)
    x_copy = x.clone()
    pa.integrated_gradients(model)(x, target=0)
    assert torch.equal(x, x_copy) and not x.requires_grad and x.grad is None


def test_attributions_are_detached_unless_create_graph():
    model = prepared(False)
    x = torch.randn(5, 4)
    assert not pa.integrated_gradients(model)(x, target=0).requires_grad
    assert pa.integrated_gradients(model, create_graph=True)(x, target=0).requires_grad
