"""Every family leaves a partly-frozen model as found: a model in training mode whose
BatchNorm the user froze in eval comes back exactly so (each module's own ``training`` flag,
not ``model.train()``), with its buffers, parameters, ``.grad`` and hooks untouched."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from pyattrib._core.state import in_eval
from pyattrib.concepts import Concept
from pyattrib.data import attribute_dataset

from .test_model_state import assert_same, snapshot


def frozen_bn_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.0), nn.Linear(6, 3))
    model.train()
    model[1].eval()  # the user froze the batch statistics inside a training model
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[0].weight.grad = torch.ones_like(model[0].weight)
    return model


def data():
    torch.manual_seed(1)
    return torch.randn(12, 4), torch.randint(0, 3, (12,))


def influence_runs(model, x, y):
    states = [{k: v.clone() for k, v in model.state_dict().items()}]
    train = TensorDataset(x, y)
    pa.influence.tracin_cp(model, train, states, learning_rates=[0.1], batch_size=4).influence(x[:2], y[:2])
    pa.influence.tracin_cp_fast(model, "4", train, states, batch_size=4).influence(x[:2], y[:2])
    pa.influence.similarity_influence(model, "1", TensorDataset(x), batch_size=4).influence(x[:2], top_k=2)
    pa.influence.naive_influence_function(model, train, projection_dim=None, batch_size=4).influence(x[:2], y[:2])


def concept_runs(model, x, y):
    loader = lambda t: DataLoader(t, batch_size=4)  # noqa: E731
    sets = [[Concept(0, "a", loader(x[:6] + 1.0)), Concept(1, "b", loader(x[6:]))]]
    pa.concepts.tcav(model, "1").interpret(x[:3], sets, 0)


def metric_runs(model, x, y):
    attrs = pa.saliency(model)(x, target=y)
    noisy = pa.metrics.perturbations_from(lambda z: z + 0.01 * torch.randn_like(z), multiply_by_inputs=False)
    pa.metrics.infidelity(model, noisy, n_samples=3)(x, attrs, target=y)
    pa.metrics.sensitivity_max(pa.saliency(model), n_samples=3)(x, target=y)
    pa.metrics.deletion(model, n_steps=4)(x, attrs, target=y)


def robust_runs(model, x, y):
    pa.robust.fgsm(model)(x, 0.1, target=y)
    pa.robust.pgd(model, steps=3)(x, 0.1, target=y)


def data_runs(model, x, y):
    attribute_dataset(pa.saliency(model), DataLoader(TensorDataset(x, y), batch_size=5), show_progress=False)


FAMILIES = {"influence": influence_runs, "concepts": concept_runs, "metrics": metric_runs, "robust": robust_runs,
            "data": data_runs}  # fmt: skip


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_leaves_a_partly_frozen_model_as_found(family):
    model = frozen_bn_model()
    before = snapshot(model)
    FAMILIES[family](model, *data())
    after = snapshot(model)
    assert after["training"][""] is True and after["training"]["1"] is False
    assert_same(before, after)


def test_text_family_leaves_a_partly_frozen_model_as_found(gpt2, tokenizer):
    from pyattrib.text import TextTemplateInput, llm_attribution

    gpt2.train()
    gpt2.transformer.drop.eval()  # one module frozen inside a training model
    try:
        before = snapshot(gpt2)
        llm_attribution(gpt2, tokenizer)(TextTemplateInput("{} likes {}", ["Dave", "cheese"]), target="ok")
        assert_same(before, snapshot(gpt2))
    finally:
        gpt2.eval()


def test_in_eval_restores_each_modules_own_flag_after_an_exception():
    model = frozen_bn_model()
    with pytest.raises(RuntimeError, match="boom"), in_eval(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert model.training and not model[1].training and model[4].training
