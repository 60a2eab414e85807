"""TCAV: the batched CAV fit against scikit-learn, scores against Captum, and significance."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import Ridge
from torch import nn
from torch.utils.data import DataLoader

import pyattrib as pa
from pyattrib.concepts import Concept, fit_cavs
from pyattrib.concepts.classifier import ConceptStats
from tests.models import cnn


def loader(x, batch_size=16):
    return DataLoader(x, batch_size=batch_size)


@pytest.mark.parametrize("features", [6, 50])  # primal (features < rows) and dual form
def test_batched_fit_equals_sklearn_ridge_per_set(features):
    torch.manual_seed(0)
    acts = [torch.randn(20, features, dtype=torch.float64) + k for k in range(4)]
    stats = [ConceptStats.of(a, 0.25, torch.Generator().manual_seed(k)) for k, a in enumerate(acts)]
    sets = [[0, 1, 2], [3, 1, 0]]
    weights, accs = fit_cavs([[stats[k] for k in s] for s in sets], regularisation=0.1)
    for s, w in zip(sets, weights):
        x = torch.cat([stats[k].train for k in s])
        y = torch.cat([torch.nn.functional.one_hot(torch.full((len(stats[k].train),), pos), len(s))
                       for pos, k in enumerate(s)]).double()  # fmt: skip
        alpha = 0.1 * float((x**2).sum()) / features  # regularisation x mean square x rows
        reference = Ridge(alpha=alpha, solver="cholesky").fit(x.numpy(), y.numpy())
        torch.testing.assert_close(w, torch.as_tensor(reference.coef_), rtol=1e-6, atol=1e-8)
    assert bool(((accs >= 0) & (accs <= 1)).all())


def test_welch_p_value_equals_scipy():
    from scipy.stats import ttest_ind

    from pyattrib.concepts.tcav import welch_p_value

    a, b = torch.rand(7, dtype=torch.float64), torch.rand(9, dtype=torch.float64) + 0.2
    assert welch_p_value(a, b) == pytest.approx(
        ttest_ind(a.numpy(), b.numpy(), equal_var=False).pvalue, rel=1e-6, abs=1e-9
    )
    assert welch_p_value(torch.ones(4), torch.ones(5)) == 1.0 and welch_p_value(torch.ones(4), torch.zeros(5)) == 0.0


def test_binary_cavs_are_opposite_rows():
    stats = [ConceptStats.of(torch.randn(30, 5) + k, 0.3, torch.Generator().manual_seed(k)) for k in range(2)]
    (w,), _ = fit_cavs([stats], 0.01)
    torch.testing.assert_close(w[0], -w[1])


class FixedClassifier(pa.concepts.Classifier):
    """The same known CAV for every set (so pyattrib's and Captum's scores are comparable)."""

    def __init__(self, direction):
        self.direction = direction

    def train_and_eval(self, dataloader, **kwargs):
        labels = torch.cat([y for _, y in dataloader])
        self._classes = list(dict.fromkeys(labels.tolist()))
        return {"accs": torch.tensor(1.0)}

    def weights(self):
        return torch.stack([-self.direction, self.direction])

    def classes(self):
        return self._classes


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_interpret_equals_captum_with_the_same_cav(layer, tmp_path):
    from captum.concept import TCAV as CaptumTCAV
    from captum.concept import Concept as CaptumConcept

    torch.manual_seed(0)
    model, x = cnn(), torch.randn(12, 3, 8, 8)
    target = torch.arange(12) % 4
    width = {"conv1": 4 * 8 * 8, "conv2": 6 * 4 * 4}[layer]
    direction = torch.randn(width)
    data = {name: torch.randn(20, 3, 8, 8) + shift for name, shift in (("striped", 1.0), ("random", 0.0))}
    ours_sets = [[Concept(0, "striped", loader(data["striped"])), Concept(1, "random", loader(data["random"]))]]
    theirs_sets = [[CaptumConcept(0, "striped", loader(data["striped"])),
                    CaptumConcept(1, "random", loader(data["random"]))]]  # fmt: skip
    ours = pa.concepts.tcav(model, layer, classifier=FixedClassifier(direction)).interpret(x, ours_sets, target)
    theirs = CaptumTCAV(model, layer, classifier=FixedClassifier(direction), save_path=str(tmp_path)).interpret(
        x, theirs_sets, target
    )
    for key in ("sign_count", "magnitude"):
        torch.testing.assert_close(ours["0-1"][layer][key], theirs["0-1"][layer][key], rtol=1e-4, atol=1e-6)


def linear_world(seed=0):
    """An identity hidden layer, then tanh: the class-1 logit grows along w (its weights)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(8))
        model[0].bias.zero_()
    direction = model[2].weight[1]
    return model, direction.detach()


def test_a_used_concept_is_significant_and_a_random_one_is_not():
    model, w = linear_world()
    g = torch.Generator().manual_seed(1)
    along = Concept(0, "along", loader(torch.randn(60, 8, generator=g) + 3 * w / w.norm()))
    randoms = [Concept(i, f"random{i}", loader(torch.randn(60, 8, generator=g))) for i in range(1, 13)]
    check = pa.concepts.tcav(model, "0")
    inputs = torch.randn(40, 8, generator=g)
    used = check.significance(inputs, along, randoms, target=1)["0"]
    assert used["significant"] and used["p_value"] < 0.01
    assert float(used["concept_scores"].min()) == 1.0  # every input's logit grows along the CAV
    z = torch.randn(30, 8, generator=g)
    centred = Concept(20, "centred", loader(torch.cat([z, -z])))  # no direction at all: mean exactly 0
    chance = check.significance(inputs, centred, randoms, target=1)["0"]
    assert not chance["significant"] and chance["p_value"] > 0.05


def test_tcav_saves_and_reloads_cavs_and_leaves_the_model_alone(tmp_path):
    model, x = cnn(), torch.randn(6, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sets = [[Concept(0, "a", loader(torch.randn(20, 3, 8, 8) + 1)), Concept(1, "b", loader(torch.randn(20, 3, 8, 8)))]]
    first = pa.concepts.tcav(model, ["conv1", "conv2"], save_path=str(tmp_path), batch_size=4)
    scores = first.interpret(x, sets, target=2)
    assert set(scores["0-1"]) == {"conv1", "conv2"} and scores["0-1"]["conv2"]["sign_count"].shape == (2,)
    chunked = pa.concepts.tcav(model, ["conv1", "conv2"], batch_size=3)  # activations and gradients in 3s
    torch.testing.assert_close(chunked.interpret(x, sets, target=2)["0-1"]["conv2"]["magnitude"],
                               scores["0-1"]["conv2"]["magnitude"])  # fmt: skip
    again = pa.concepts.tcav(model, ["conv1", "conv2"], save_path=str(tmp_path))
    bare = [[Concept(0, "a"), Concept(1, "b")]]  # no data: the CAVs come from disk
    torch.testing.assert_close(again.interpret(x, bare, target=2)["0-1"]["conv1"]["magnitude"],
                               scores["0-1"]["conv1"]["magnitude"])  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="id 0"):
        first.compute_cavs([[Concept(0, "other", loader(torch.randn(4, 3, 8, 8))), sets[0][1]]])


def test_ridge_classifier_protocol_and_compat_cav_round_trip(tmp_path):
    from torch.utils.data import TensorDataset

    from pyattrib.compat import CAV, DefaultClassifier

    x = torch.cat([torch.randn(50, 4) + 2, torch.randn(50, 4) - 2])
    y = torch.cat([torch.full((50,), 7), torch.full((50,), 3)])
    clf = DefaultClassifier()
    stats = clf.train_and_eval(DataLoader(TensorDataset(x, y), batch_size=32))
    assert clf.classes() == [7, 3] and float(stats["accs"]) == 1.0  # separable
    w = clf.weights()
    torch.testing.assert_close(w[0], -w[1])
    assert float(w[0] @ torch.ones(4)) > 0  # class 7 lies along +1
    concepts = [Concept(7, "high"), Concept(3, "low")]
    CAV(concepts, "fc", {"weights": w, "classes": [7, 3]}, save_path=str(tmp_path), model_id="m").save()
    loaded = CAV.load(str(tmp_path), "m", concepts, "fc")
    torch.testing.assert_close(loaded.stats["weights"], w)
    assert loaded.layer == "fc" and [c.name for c in loaded.concepts] == ["high", "low"]


def test_default_cav_points_where_captums_default_classifier_does(tmp_path):
    import random
    import warnings

    from captum.concept import TCAV as CaptumTCAV
    from captum.concept import Concept as CaptumConcept

    torch.manual_seed(0)
    random.seed(0)
    direction = torch.tensor([1.0, -1.0, 0.5, 0.0, 0.0, 2.0])
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2)).eval()
    with torch.no_grad():  # an identity layer, then a class-1 logit that grows along the concept
        model[0].weight.copy_(torch.eye(6))
        model[0].bias.zero_()
        model[2].weight[1] = direction
    a, b = torch.randn(80, 6) + direction, torch.randn(80, 6) - direction
    ours = pa.concepts.tcav(model, "0")
    sets_ours = [[Concept(0, "a", loader(a)), Concept(1, "b", loader(b))]]
    ours.compute_cavs(sets_ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CaptumTCAV(model, "0", save_path=str(tmp_path))
        sets_theirs = [[CaptumConcept(0, "a", loader(a)), CaptumConcept(1, "b", loader(b))]]
        theirs.compute_cavs(sets_theirs)
    w_ours = ours.cavs["0-1"]["0"].stats["weights"][0].double()
    w_theirs = torch.as_tensor(theirs.cavs["0-1"]["0"].stats["weights"][0]).double()
    # different linear classifiers (ridge, Captum's SGD): the same separating direction, and
    # the same verdict of TCAV
    assert float(torch.nn.functional.cosine_similarity(w_ours, w_theirs, dim=0)) > 0.7
    assert float(ours.cavs["0-1"]["0"].stats["accs"]) > 0.9
    x = torch.randn(64, 6)
    score_ours = ours.interpret(x, sets_ours, target=1)["0-1"]["0"]["sign_count"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum reads its CAV files through numpy.core
        score_theirs = theirs.interpret(x, sets_theirs, target=1)["0-1"]["0"]["sign_count"]
    assert float(score_ours[0]) > 0.9 and float(score_theirs[0]) > 0.9
    torch.testing.assert_close(score_ours, score_theirs, atol=0.1, rtol=0)
