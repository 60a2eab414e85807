"""Compat equals Captum where the native API deliberately differs: each difference is a named
option of the core, listed in ``CAPTUM_SEMANTICS`` and switched on by compat, tested here against
Captum 0.9 on the cases Captum's own suite does not reach."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

captum_attr = pytest.importorskip("captum.attr")
import pyattrib as pa  # noqa: E402
import pyattrib.compat as compat  # noqa: E402
from pyattrib.compat._base import CAPTUM_SEMANTICS  # noqa: E402


def seeded(run):
    torch.manual_seed(1)
    np.random.seed(1)
    return run()


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


@pytest.mark.parametrize("inner", ["Saliency", "IntegratedGradients", "GradientShap"])
@pytest.mark.parametrize("nt_samples_batch_size", [None, 2, 3])
@pytest.mark.parametrize("nt_type", ["smoothgrad", "vargrad"])
def test_noise_tunnel_draws_as_captum_in_chunks(inner, nt_samples_batch_size, nt_type):
    model = small_model()
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    refs = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kwargs = {"IntegratedGradients": {"baselines": refs[:1]}, "GradientShap": {"baselines": refs}}.get(inner, {})
    distrib = inner != "Saliency"
    ours, theirs = (
        seeded(lambda lib=lib: lib.NoiseTunnel(getattr(lib, inner)(model)).attribute(
            x, nt_type=nt_type, nt_samples=7, nt_samples_batch_size=nt_samples_batch_size, stdevs=0.2, target=1,
            draw_baseline_from_distrib=distrib, **kwargs))
        for lib in (compat, captum_attr)
    )  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-9)


def test_the_native_noise_tunnel_does_not_depend_on_batch_size_and_compat_switches_it_off():
    model = small_model()
    x = torch.randn(4, 5, dtype=torch.float64)
    runs = [pa.smoothgrad(pa.saliency(model), n_samples=7, stdevs=0.2, batch_size=b)(
        x, target=1, generator=torch.Generator().manual_seed(0)) for b in (8, 12, None)]  # fmt: skip
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(runs[0], runs[2], rtol=1e-12, atol=1e-12)
    assert CAPTUM_SEMANTICS["captum_draws"] is True


class Functional(nn.Module):
    """Nonlinearities Captum's hooks never see: functional calls and a tanh in a custom module."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.b, self.r = nn.Linear(5, 8), nn.Linear(5, 8), nn.Linear(8, 3), nn.ReLU()

    def forward(self, x):
        return self.b(torch.tanh(self.r(self.a(x))) + torch.nn.functional.gelu(self.c(x)))


ACTIVATIONS = [nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Tanh, nn.Softplus, nn.LeakyReLU, nn.ELU]


@pytest.mark.parametrize("act", [*ACTIVATIONS, "functional"], ids=lambda a: getattr(a, "__name__", a))
def test_deep_lift_rule_set_is_captums_through_compat(act):
    torch.manual_seed(0)
    model = (Functional() if act == "functional" else
             nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))).double()  # fmt: skip
    x = torch.randn(4, 5, dtype=torch.float64)
    b = 0.1 * torch.randn(4, 5, dtype=torch.float64)
    first = model.a if act == "functional" else model[0]
    for ours, theirs in (
        (compat.DeepLift(model).attribute(x, b, target=1), captum_attr.DeepLift(model).attribute(x, b, target=1)),
        (compat.LayerDeepLift(model, first).attribute(x, b, target=1),
         captum_attr.LayerDeepLift(model, first).attribute(x, b, target=1)),
        (compat.DeepLiftShap(model).attribute(x, torch.cat([b, -b]), target=1),
         captum_attr.DeepLiftShap(model).attribute(x, torch.cat([b, -b]), target=1)),
    ):  # fmt: skip
        torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)
    # the native rule set rescales these too, and conserves where Captum's does not
    if act not in (nn.Tanh, nn.Softplus, nn.LeakyReLU, nn.ELU):
        native, delta = pa.deep_lift(model, return_delta=True)(x, b, target=1)
        assert delta.abs().max() < 1e-8 and not torch.allclose(native, theirs, rtol=1e-5, atol=1e-8)


def test_captum_rule_set_leaves_no_global_hook_behind():
    from torch.nn.modules import module as nn_module

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.GELU(), nn.Linear(8, 3)).double()
    before = (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks))
    compat.DeepLift(model).attribute(torch.randn(2, 5, dtype=torch.float64), target=0)
    with pytest.raises(RuntimeError, match="boom"):
        compat.DeepLift(nn.Sequential(model, Boom())).attribute(torch.randn(2, 5, dtype=torch.float64), target=0)
    assert (len(nn_module._global_forward_pre_hooks), len(nn_module._global_forward_hooks)) == before
    assert CAPTUM_SEMANTICS["captum_nonlinearities"] is True


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


# ---- influence: Captum's scaling and defaults through compat ----


def _checkpoints(tmp_path):
    from .test_influence import trained

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    paths, _ = trained(model, x, y, tmp_path, n_checkpoints=2)
    return model, x, y, paths


def _load(m, path):
    m.load_state_dict(torch.load(path))
    return 0.3  # a learning rate other than 1: sqrt(lr) and lr differ


def test_tracin_intermediate_quantities_are_scaled_as_captum(tmp_path):
    """Captum's TracInCP scales each checkpoint's gradients by its learning rate (not its root)."""
    from captum import influence as captum_influence
    from torch.utils.data import DataLoader, TensorDataset

    model, x, y, paths = _checkpoints(tmp_path)
    data = DataLoader(TensorDataset(x, y), batch_size=4)
    ours, theirs = (lib.TracInCP(model, train_dataset=data, checkpoints=paths, checkpoints_load_func=_load,
                                 loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=4)
                    for lib in (compat, captum_influence))  # fmt: skip
    probe = DataLoader(TensorDataset(x[:5], y[:5]), batch_size=5)
    torch.testing.assert_close(ours.compute_intermediate_quantities(probe),
                               theirs.compute_intermediate_quantities(probe), rtol=1e-4, atol=1e-6)  # fmt: skip


def test_tracin_rand_proj_defaults_to_five_proponents_and_finds_opponents(tmp_path):
    from captum import influence as captum_influence
    from torch.utils.data import DataLoader, TensorDataset

    model, x, y, paths = _checkpoints(tmp_path)
    data = DataLoader(TensorDataset(x, y), batch_size=4)
    ours = compat.TracInCPFastRandProj(model, model[2], data, paths, checkpoints_load_func=_load,
                                       loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=4)  # fmt: skip
    exact = captum_influence.TracInCPFast(model, model[2], data, paths, checkpoints_load_func=_load,
                                          loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=4)  # fmt: skip
    test = (x[:3], y[:3])
    top = ours.influence(test)  # Captum's default k=5
    assert top.indices.shape == (3, 5)
    for proponents in (True, False):
        idx, score = ours.influence(test, k=4, proponents=proponents)
        c_idx, c_score = exact.influence(test, k=4, proponents=proponents)
        assert torch.equal(idx, c_idx)
        torch.testing.assert_close(score, c_score, rtol=1e-4, atol=1e-6)
    assert ours.influence(test, k=None).shape == (3, 12)


# ---- robust: a mask per input, each broadcast against its own input ----


@pytest.mark.parametrize("attack", ["FGSM", "PGD"])
def test_attack_masks_broadcast_per_input_as_captum(attack):
    from captum import robust as captum_robust

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(6, 3)

        def forward(self, x, z):
            return self.a(x) + self.b(z.flatten(1))

    torch.manual_seed(0)
    model = Two()
    x, z, y = torch.randn(5, 4), torch.randn(5, 2, 3), torch.randint(0, 3, (5,))
    mask = (torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.ones(1, 2, 3))  # one example's shape, and a batch of 1
    kwargs = {"mask": mask} if attack == "FGSM" else {"mask": mask, "step_size": 0.05, "step_num": 3}
    ours, theirs = (getattr(lib, attack)(model).perturb((x, z), 0.1, target=y, **kwargs)
                    for lib in (compat, captum_robust))  # fmt: skip
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert torch.equal(ours[0][:, 1], x[:, 1])  # masked out: unchanged
    with pytest.raises(ValueError, match=r"mask\[1\] has shape \(3, 3\), which does not broadcast"):
        getattr(compat, attack)(model).perturb((x, z), 0.1, target=y, **{**kwargs, "mask": (mask[0], torch.ones(3, 3))})


# ---- DataLoaderAttribution: the metric's dimensions flattened, as Captum ----


@pytest.mark.parametrize("return_input_shape", [True, False])
@pytest.mark.parametrize("metric", ["per-output", "mean", "sum"])
def test_dataloader_attribution_flattens_the_metric_as_captum(return_input_shape, metric):
    from captum.attr._core.dataloader_attr import DataLoaderAttribution as CaptumDataLoaderAttribution
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    data = TensorDataset(torch.randn(10, 5))
    to_metric = {"per-output": None, "mean": lambda a: a.mean(0), "sum": lambda a: a.sum()}[metric]
    kwargs = {"to_metric": to_metric} if to_metric else {}
    ours, theirs = (cls(attr(model)).attribute(DataLoader(data, batch_size=4), return_input_shape=return_input_shape,
                                               **kwargs)
                    for cls, attr in ((compat.DataLoaderAttribution, compat.FeatureAblation),
                                      (CaptumDataLoaderAttribution, captum_attr.FeatureAblation)))  # fmt: skip
    assert type(ours) is type(theirs)  # 1-tuples from a TensorDataset; one tensor without the input shape
    ours, theirs = (ours[0], theirs[0]) if return_input_shape else (ours, theirs)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    (native,) = pa.data.dataloader_attribution(model, to_metric=to_metric)(DataLoader(data, batch_size=4))
    assert native.shape == (
        (10, 3, 5) if metric == "per-output" else theirs.shape
    )  # the native keeps the metric's shape


# ---- LRP: Captum's tensor hooks on residual connections, custom sum modules, train-mode dropout ----


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.r, self.b, self.r2, self.c = (
            nn.Linear(4, 6),
            nn.ReLU(),
            nn.Linear(6, 6),
            nn.ReLU(),
            nn.Linear(6, 3),
        )

    def forward(self, x):
        h = self.r(self.a(x))
        return self.c(h + self.r2(self.b(h)))


class Addition(nn.Module):
    def forward(self, x1, x2):
        return x1 + x2


class Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear, self.add = nn.Linear(2, 2, bias=False), Addition()
        self.linear.weight.data.fill_(5)

    def forward(self, x):
        return self.add(self.linear(x), x)


def test_lrp_on_a_residual_connection_is_captums_through_compat():
    torch.manual_seed(0)
    model, x = Residual(), torch.randn(5, 4)
    theirs = captum_attr.LRP(model).attribute(x, target=1).detach()
    torch.testing.assert_close(compat.LRP(model).attribute(x, target=1), theirs, rtol=1e-5, atol=1e-6)
    for layer in (model.a, model.b, [model.a, model.b]):
        for to_input in (False, True):  # b's input is also the skip: Captum's hook sees both shares
            ours = compat.LayerLRP(model, layer).attribute(x, target=1, attribute_to_layer_input=to_input)
            ref = captum_attr.LayerLRP(model, layer).attribute(x, target=1, attribute_to_layer_input=to_input)
            for o, t in zip(ours if isinstance(ours, list) else [ours], ref if isinstance(ref, list) else [ref]):
                torch.testing.assert_close(o, t.detach(), rtol=1e-5, atol=1e-6)
    native = pa.lrp(model)(x, target=1)  # the native splits relevance at the sum instead, and conserves it
    assert not torch.allclose(native, theirs, rtol=1e-3, atol=1e-4)


def test_lrp_with_a_two_input_sum_module_and_its_own_rule_is_captums():
    from captum.attr._utils.lrp_rules import EpsilonRule as CaptumEpsilon

    ours_model, theirs_model = Skip(), Skip()
    ours_model.add.rule, theirs_model.add.rule = compat.EpsilonRule(), CaptumEpsilon()
    x = torch.tensor([[2.0, 3.0]])
    ours = compat.LRP(ours_model).attribute(x, target=1)
    torch.testing.assert_close(
        ours, captum_attr.LRP(theirs_model).attribute(x, target=1).detach(), rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(ours, torch.tensor([[10.0, 18.0]]), rtol=1e-6, atol=1e-6)  # Captum's own expectation


def test_lrp_passes_relevance_through_train_mode_dropout_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False), nn.Dropout(p=0.01))
    model.train()
    x = torch.tensor([[1.0, 2.0, 3.0]])
    torch.manual_seed(5)  # the dropout keeps the one output (p = 0.99) in every pass below
    ixg = captum_attr.InputXGradient(model).attribute(x)
    for ours in (compat.LRP(model).attribute(x), pa.lrp(model)(x)):
        torch.testing.assert_close(ours, ixg.detach(), rtol=1e-5, atol=1e-6)  # relevance = x * grad on a ReLU net
    assert CAPTUM_SEMANTICS["captum_hooks"] is True


# ---- exceptions: what Captum's users catch, compat raises (pyattrib's ArgumentError is also that type) ----


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


X4 = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
BAD_CALLS = {
    "target out of range": lambda lib: lib.Saliency(_mlp()).attribute(X4, target=3),
    "unknown quadrature": lambda lib: lib.IntegratedGradients(_mlp()).attribute(X4, target=0, method="bogus"),
    "unknown noise tunnel type": lambda lib: lib.NoiseTunnel(lib.Saliency(_mlp())).attribute(X4, nt_type="bogus", target=0),
    "occlusion window of the wrong rank": lambda lib: lib.Occlusion(_mlp()).attribute(X4, sliding_window_shapes=(1, 1), target=0),
    "baselines of the wrong shape": lambda lib: lib.IntegratedGradients(_mlp()).attribute(X4, torch.zeros(2, 3), target=0),
    "gradient shap baselines of the wrong width": lambda lib: lib.GradientShap(_mlp()).attribute(X4, torch.zeros(3, 5), target=0),
    "lrp without a rule": lambda lib: lib.LRP(nn.Sequential(nn.Linear(4, 3), nn.GELU())).attribute(X4, target=0),
    "attack added twice": lambda lib: _twice(lib),
    "perturbations_per_eval not an int": lambda lib: lib.FeatureAblation(_mlp()).attribute(X4, target=0, perturbations_per_eval=1.5),
    "llm attribution of an unsupported method": lambda lib: lib.LLMAttribution(lib.Saliency(_mlp()), None),
    "llm result of the wrong shape": lambda lib: lib.LLMAttributionResult(seq_attr=torch.zeros(2, 2), token_attr=None,
                                                                          input_tokens=["a", "b"], output_tokens=["c"]),
}  # fmt: skip


def _twice(lib):
    from captum import robust

    module = compat if lib is compat else robust
    comparator = module.AttackComparator(_mlp(), metric=lambda out: out.sum())
    comparator.add_attack(module.FGSM(_mlp()), name="fgsm")
    comparator.add_attack(module.FGSM(_mlp()), name="fgsm")


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_errors_have_the_types_captum_users_catch(case):
    with pytest.raises(Exception) as theirs:  # noqa: B017 (any type: Captum's is the reference)
        BAD_CALLS[case](captum_attr)
    with pytest.raises(type(theirs.value)):
        BAD_CALLS[case](compat)


# ---- TCAV: Captum's CAV files, Concept's repr, the default classifier object ----


def _concept_sets(lib):
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(3)
    striped, plain = torch.randn(12, 4, generator=g) + 2.0, torch.randn(12, 4, generator=g)
    return [
        [
            lib.Concept(0, "striped", DataLoader(striped, batch_size=6)),
            lib.Concept(1, "plain", DataLoader(plain, batch_size=6)),
        ]
    ]


@pytest.mark.filterwarnings("ignore:numpy.core is deprecated:DeprecationWarning")  # inside Captum's CAV.load
def test_a_cav_captum_saved_is_reused_and_ours_is_captums_format(tmp_path):
    from captum import concept as captum_concept

    model = _mlp()
    theirs = captum_concept.TCAV(model, ["0"], save_path=str(tmp_path / "a"))
    saved = theirs.compute_cavs(_concept_sets(captum_concept))
    ours = compat.TCAV(model, ["0"], save_path=str(tmp_path / "a")).compute_cavs(_concept_sets(compat))
    w_theirs = saved["0-1"]["0"].stats["weights"]
    torch.testing.assert_close(torch.as_tensor(ours["0-1"]["0"].stats["weights"]), torch.as_tensor(w_theirs),
                               rtol=0, atol=0)  # loaded, not retrained (our ridge fit gives other weights)  # fmt: skip
    compat.TCAV(model, ["0"], save_path=str(tmp_path / "b")).compute_cavs(_concept_sets(compat))
    loaded = captum_concept.CAV.load(str(tmp_path / "b"), "default_model_id", _concept_sets(captum_concept)[0], "0")
    assert loaded is not None and loaded.layer == "0" and [c.name for c in loaded.concepts] == ["striped", "plain"]


def test_concept_repr_and_default_classifier_are_captums():
    from captum import concept as captum_concept

    assert (
        repr(compat.Concept(3, "stripes"))
        == repr(captum_concept.Concept(3, "stripes", None))
        == "Concept(3, 'stripes')"
    )
    tcav = compat.TCAV(_mlp(), ["0"])
    assert isinstance(tcav.classifier, compat.Classifier) and tcav.classifier is tcav.classifier
    assert pa.concepts.tcav(_mlp(), ["0"]).classifier is None  # the native: the batched ridge fit


@pytest.mark.parametrize("at", [1, 3])
def test_layer_deep_lift_at_a_nonlinearitys_input_skips_its_rule_as_captum(at):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Sigmoid(), nn.Linear(6, 3)).double()
    x, b = torch.randn(5, 4, dtype=torch.float64), 0.1 * torch.randn(5, 4, dtype=torch.float64)
    for name, refs in (("LayerDeepLift", b), ("LayerDeepLiftShap", torch.cat([b, -b]))):
        ours = getattr(compat, name)(model, model[at]).attribute(x, refs, target=1, attribute_to_layer_input=True)
        theirs = getattr(captum_attr, name)(model, model[at]).attribute(
            x, refs, target=1, attribute_to_layer_input=True
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name, kwargs", [("FeatureAblation", {}), ("FeaturePermutation", {}),
                                          ("Occlusion", {"sliding_window_shapes": (1,)})])  # fmt: skip
@pytest.mark.parametrize("k", [1, 2])
def test_feature_ablation_family_lays_out_one_row_per_output_value_as_captum(name, kwargs, k):
    torch.manual_seed(0)
    model, x = nn.Linear(4, k), torch.randn(3, 4)
    torch.manual_seed(1)
    theirs = getattr(captum_attr, name)(model).attribute(x, **kwargs)
    torch.manual_seed(1)
    ours = getattr(compat, name)(model).attribute(x, **kwargs)
    assert ours.shape == theirs.shape == (3 * k, 4)  # the native keeps (3, k, 4)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


# ---- Captum's sparse features: a tuple whose tensors do not share a first dimension ----


@pytest.mark.parametrize("sparse", [torch.tensor([1, 7, 2, 4, 5, 3, 6]), torch.tensor([])], ids=["list", "empty"])
def test_sparse_features_through_feature_ablation_and_permutation_are_captums(sparse):
    from captum.testing.helpers.basic_models import BasicModelWithSparseInputs

    model = BasicModelWithSparseInputs()
    dense = torch.tensor([[1.0, -2.0, 3.0], [2.0, -1.0, 3.0]])
    ours = compat.FeatureAblation(model).attribute((dense, sparse))
    theirs = captum_attr.FeatureAblation(model).attribute((dense, sparse))
    for o, t in zip(ours, theirs):
        assert o.shape == t.shape
        torch.testing.assert_close(o, t, rtol=1e-6, atol=1e-6)
    for seed in range(3):  # the same draws as Captum's, permutation by permutation
        torch.manual_seed(seed)
        theirs = captum_attr.FeaturePermutation(model).attribute((dense, sparse))
        torch.manual_seed(seed)
        ours = compat.FeaturePermutation(model).attribute((dense, sparse))
        for o, t in zip(ours, theirs):
            torch.testing.assert_close(o, t, rtol=1e-6, atol=1e-6)
