"""One name per concept: the old names of renamed arguments still work for one release, with a
DeprecationWarning naming the new one, and give the same numbers; both names at once is an error."""

import pytest
import torch
from torch import nn

import pyattrib as pa


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_metrics_take_n_samples_and_the_old_n_perturb_samples_warns():
    model, x = _model(), torch.randn(4, 6)
    attrs = pa.saliency(model)(x, target=0)
    fixed = lambda z: (0.1 * torch.ones_like(z), z - 0.1)  # noqa: E731  (deterministic: same numbers twice)
    new = pa.metrics.infidelity(model, fixed, n_samples=3)(x, attrs, target=0)
    with pytest.warns(DeprecationWarning, match=r"n_perturb_samples= is now n_samples="):
        old = pa.metrics.infidelity(model, fixed, n_perturb_samples=3)(x, attrs, target=0)
    torch.testing.assert_close(new, old, rtol=0, atol=0)
    g = torch.Generator().manual_seed(1)
    sens_new = pa.metrics.sensitivity_max(pa.saliency(model), n_samples=2)(x, target=0, generator=g)
    with pytest.warns(DeprecationWarning, match="n_samples="):
        sens = pa.metrics.sensitivity_max(pa.saliency(model), n_perturb_samples=2)
    sens_old = sens(x, target=0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sens_new, sens_old, rtol=0, atol=0)
    with pytest.raises(pa.metrics.infidelity.__globals__["ArgumentError"], match="pass n_samples= only"):
        pa.metrics.infidelity(model, fixed, n_samples=3, n_perturb_samples=3)


@pytest.mark.parametrize("method", ["layer_feature_ablation", "layer_feature_permutation"])
def test_layer_perturbation_takes_baselines_and_feature_mask(method):
    model, x = _model(), torch.randn(5, 6)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    attributor = getattr(pa, method)(model, model[1])
    extra = (
        {"baselines": 0.5} if method == "layer_feature_ablation" else {"generator": torch.Generator().manual_seed(0)}
    )
    new = attributor(x, target=1, feature_mask=mask, **extra)
    old_extra = (
        {"layer_baselines": 0.5}
        if method == "layer_feature_ablation"
        else {"generator": torch.Generator().manual_seed(0)}
    )
    with pytest.warns(DeprecationWarning) as record:
        old = attributor(x, target=1, layer_mask=mask, **old_extra)
    said = {str(w.message).split(":")[1].split(" (")[0].strip() for w in record}
    assert "layer_mask= is now feature_mask=" in said
    assert ("layer_baselines= is now baselines=" in said) == (method == "layer_feature_ablation")
    torch.testing.assert_close(new, old, rtol=0, atol=0)
    assert len(mask.unique()) == 4 and new.shape == (5, 8)


def test_the_deprecated_names_are_not_in_the_signatures():
    import inspect

    assert "n_perturb_samples" not in inspect.signature(pa.metrics.infidelity).parameters
    assert "n_samples" in inspect.signature(pa.metrics.sensitivity_max).parameters
    params = inspect.signature(pa.layer_feature_ablation(_model(), _model()[1])).parameters
    assert {"baselines", "feature_mask"} <= set(params) and not {"layer_baselines", "layer_mask"} & set(params)


def test_product_baselines_draw_from_a_generator_when_given():
    choices = {"name": ["Anna", "Bob", "Cleo", "Dan"], "city": ["Oslo", "Rome"]}
    a = pa.text.ProductBaselines(choices, generator=torch.Generator().manual_seed(3))
    b = pa.text.ProductBaselines(choices, generator=torch.Generator().manual_seed(3))
    draws_a, draws_b = [a() for _ in range(20)], [b() for _ in range(20)]
    assert draws_a == draws_b  # the generator decides, not Python's global random
    assert {d["name"] for d in draws_a} == set(choices["name"]) and {d["city"] for d in draws_a} == set(choices["city"])
    import random

    random.seed(0)
    first = [pa.text.ProductBaselines(choices)() for _ in range(5)]
    random.seed(0)
    assert first == [pa.text.ProductBaselines(choices)() for _ in range(5)]  # Captum's draw: Python's random


def test_seeded_constructors_take_a_generator_that_names_the_seed():
    torch.manual_seed(0)
    model, x, y = _model(), torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    train = torch.utils.data.TensorDataset(torch.randn(12, 6), torch.randint(0, 3, (12,)))

    def projected(**how):
        proj = pa.influence.TracInCPFastRandProj(model, "2", train, [model.state_dict()], projection_dim=4, **how)
        return proj.influence(x, y)

    same = [projected(generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)
    assert not torch.allclose(same[0], projected(generator=torch.Generator().manual_seed(6)), rtol=1e-3, atol=1e-6)
    seed = int(torch.randint(2**31 - 1, (), generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(projected(seed=seed), same[0], rtol=0, atol=0)  # the generator names a seed
    clf = pa.concepts.RidgeClassifier(generator=torch.Generator().manual_seed(5))
    assert clf.seed == seed and pa.concepts.TCAV(model, ["0"], generator=torch.Generator().manual_seed(5)).seed == seed
