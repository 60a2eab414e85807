"""pyattrib.compat: Captum's class API over the transforms, with Captum's numbers and quirks."""

import inspect
import subprocess
import sys
from pathlib import Path

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import pyattrib as pa
import pyattrib.compat as pc

from . import models

CAPTUM_TESTS = Path(__file__).resolve().parents[2] / "shared" / "captum-tests"
RUNNER = Path(__file__).resolve().parents[1] / "tools" / "captum_suite.py"


def seeded(seed=7):
    torch.manual_seed(seed)
    np.random.seed(seed)


def close(a, b, tol=1e-5):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, tol)
        return
    torch.testing.assert_close(a, b, atol=tol, rtol=1e-4)


@pytest.fixture
def mlp():
    return models.mlp()


def test_every_twin_has_captums_attribute_signature():
    for name, (original, twin) in pc.captum_twins().items():
        if not hasattr(original, "attribute"):
            continue
        ours = list(inspect.signature(twin.attribute).parameters)
        theirs = list(inspect.signature(original.attribute).parameters)
        assert ours[: len(theirs)] == theirs or ours == theirs[: len(ours)], name
        assert [p for p in theirs if p not in ours and p not in ("kwargs",)] == [], name


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
def test_integrated_gradients_matches_captum_including_trapezoid_weights(mlp, method):
    x = torch.randn(5, 6)
    ours = pc.IntegratedGradients(mlp).attribute(x, 0.1, target=2, n_steps=9, method=method,
                                                 return_convergence_delta=True)  # fmt: skip
    theirs = ca.IntegratedGradients(mlp).attribute(x, 0.1, target=2, n_steps=9, method=method,
                                                   return_convergence_delta=True)  # fmt: skip
    close(ours, theirs)
    if method == "riemann_trapezoid":  # the native trapezoid differs on purpose
        native = pa.integrated_gradients(mlp, n_steps=9, method=method)(x, 0.1, target=2)
        assert not torch.allclose(native, ours[0], atol=1e-6)


def test_gradient_shap_same_seed_same_numbers_and_one_delta_per_sample():
    model = models.two_inputs()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    refs = (torch.randn(6, 4), torch.randn(6, 3))
    results = []
    for cls in (pc.GradientShap, ca.GradientShap):
        seeded()
        results.append(cls(model).attribute(x, refs, n_samples=4, stdevs=0.1, target=1,
                                            additional_forward_args=(torch.rand(3) + 0.5, 0.1),
                                            return_convergence_delta=True))  # fmt: skip
    close(results[0], results[1], 1e-4)
    assert results[0][1].shape == (12,)


def test_noise_tunnel_over_ig_matches_captum_with_per_sample_deltas(mlp):
    x = torch.randn(4, 6)
    results = []
    for nt, ig in ((pc.NoiseTunnel, pc.IntegratedGradients), (ca.NoiseTunnel, ca.IntegratedGradients)):
        seeded()
        results.append(nt(ig(mlp)).attribute(x, nt_type="vargrad", nt_samples=3, stdevs=0.2, target=1, n_steps=8,
                                             return_convergence_delta=True))  # fmt: skip
    close(results[0], results[1], 1e-4)
    assert results[0][1].shape == (12,)


def test_deep_lift_shap_pair_deltas_match_captum(mlp):
    x, refs = torch.randn(3, 6), torch.randn(4, 6)
    ours = pc.DeepLiftShap(mlp).attribute(x, refs, target=0, return_convergence_delta=True)
    theirs = ca.DeepLiftShap(mlp).attribute(x, refs, target=0, return_convergence_delta=True)
    close(ours, theirs, 1e-4)
    assert ours[1].shape == (12,)


def test_layer_and_neuron_classes_match_captum(mlp):
    x = torch.randn(4, 6)
    layer = mlp[2] if isinstance(mlp, nn.Sequential) else list(mlp.modules())[2]
    close(pc.LayerConductance(mlp, layer).attribute(x, target=1, n_steps=10),
          ca.LayerConductance(mlp, layer).attribute(x, target=1, n_steps=10))  # fmt: skip
    close(pc.NeuronConductance(mlp, layer).attribute(x, neuron_selector=3, target=1, n_steps=10),
          ca.NeuronConductance(mlp, layer).attribute(x, neuron_selector=3, target=1, n_steps=10))  # fmt: skip
    close(pc.LayerGradientXActivation(mlp, [layer, list(mlp.modules())[1]]).attribute(x, target=0),
          ca.LayerGradientXActivation(mlp, [layer, list(mlp.modules())[1]]).attribute(x, target=0))  # fmt: skip


def test_feature_ablation_perturbations_per_eval_and_occlusion(mlp):
    x = torch.randn(3, 6)
    mask = torch.arange(6).reshape(1, 6) // 2
    close(pc.FeatureAblation(mlp).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=3),
          ca.FeatureAblation(mlp).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=3))  # fmt: skip
    cnn, img = models.cnn(), torch.randn(2, 3, 8, 8)
    close(pc.Occlusion(cnn).attribute(img, (3, 2, 2), strides=2, target=0),
          ca.Occlusion(cnn).attribute(img, (3, 2, 2), strides=2, target=0))  # fmt: skip


def test_lrp_reads_captums_rule_attribute_and_refuses_unknown_modules():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 4)
    model[0].rule = pc.GammaRule(gamma=0.5)
    ours = pc.LRP(model).attribute(x, target=1)
    del model[0].rule
    import captum.attr._utils.lrp_rules as captum_rules

    model[0].rule = captum_rules.GammaRule(gamma=0.5)
    theirs = ca.LRP(model).attribute(x, target=1)
    close(ours, theirs)
    model[0].rule = 3
    with pytest.raises(TypeError, match="rule"):
        pc.LRP(model)
    with pytest.raises(TypeError, match="no rule"):
        pc.LRP(nn.Sequential(nn.Linear(4, 2), nn.GELU())).attribute(x, target=0)


def test_interpretable_embedding_round_trip():
    model = models.token_model()
    ids = torch.randint(0, 20, (2, 7))
    out = model(ids)
    with pytest.warns(UserWarning, match="replaced until remove_interpretable_embedding_layer"):
        emb = pc.configure_interpretable_embedding_layer(model, "embedding")  # as Captum warns
    assert model.embedding is emb
    with pytest.raises(AssertionError):
        pc.configure_interpretable_embedding_layer(model, "embedding")
    torch.testing.assert_close(model(emb.indices_to_embeddings(ids)), out)
    pc.remove_interpretable_embedding_layer(model, emb)
    assert isinstance(model.embedding, nn.Embedding)
    ref = pc.TokenReferenceBase(reference_token_idx=3).generate_reference(5, torch.device("cpu"))
    assert ref.tolist() == [3] * 5


def test_bad_arguments_raise_what_captum_code_catches(mlp):
    x = torch.randn(2, 6)
    with pytest.raises(AssertionError):
        pc.IntegratedGradients(mlp).attribute(x, torch.zeros(3, 6), target=0)
    with pytest.raises(ValueError):  # the same error is a ValueError for native code
        pa.integrated_gradients(mlp)(x, torch.zeros(3, 6), target=0)


def test_attribute_future_resolves_future_outputs(mlp):
    x = torch.randn(2, 6)

    def future_forward(t):
        fut = torch.futures.Future()
        fut.set_result(mlp(t))
        return fut

    got = pc.FeatureAblation(future_forward).attribute_future(x, target=1).wait()
    close(got, pc.FeatureAblation(mlp).attribute(x, target=1))
    with pytest.raises(NotImplementedError):
        pc.IntegratedGradients(mlp).attribute_future(x)


@pytest.mark.skipif(not CAPTUM_TESTS.exists(), reason="Captum's tests live in ../shared/captum-tests")
def test_suite_runner_substitutes_and_a_broken_twin_fails():
    folder = ["--folders", "tests/attr/layer/test_layer_activation.py"]
    good = subprocess.run([sys.executable, str(RUNNER), str(CAPTUM_TESTS), *folder],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    broken = subprocess.run([sys.executable, str(RUNNER), str(CAPTUM_TESTS), *folder,
                             "--broken"], capture_output=True, text=True, timeout=300)  # fmt: skip
    good_row = next(line for line in good.stdout.splitlines() if line.startswith("all"))
    broken_row = next(line for line in broken.stdout.splitlines() if line.startswith("all"))
    base, passed = map(int, good_row.split()[1:3])
    assert base >= 10 and passed == base, good.stdout
    assert int(broken_row.split()[2]) == 0, broken.stdout


@pytest.mark.filterwarnings("ignore:You are providing multiple inputs")  # both libraries warn
@pytest.mark.parametrize("per_eval", [1, 4])
def test_lime_and_kernel_shap_same_seed_same_numbers_as_captum(mlp, per_eval):
    """Per-example surrogates, Captum's sampling order: a seeded call gives Captum's numbers."""
    x, mask = torch.randn(3, 6), torch.tensor([[0, 0, 1, 1, 2, 2]])
    for ours, theirs in ((pc.Lime(mlp), ca.Lime(mlp)), (pc.KernelShap(mlp), ca.KernelShap(mlp))):
        for kw in ({"feature_mask": mask}, {"baselines": 0.5, "return_input_shape": False}):
            seeded()
            a = ours.attribute(x, target=[0, 1, 2], n_samples=40, perturbations_per_eval=per_eval, **kw)
            seeded()
            b = theirs.attribute(x, target=[0, 1, 2], n_samples=40, perturbations_per_eval=per_eval, **kw)
            close(a, b, tol=1e-4)


def test_lime_base_with_user_sampling_in_input_space_matches_captum(mlp):
    from captum._utils.models.linear_model import SkLearnLinearRegression

    def perturb(x, **kwargs):  # noise in the input space, mapped to a binary interpretable vector
        return x + torch.randn_like(x)

    def to_interp(sample, x, **kwargs):
        return (sample - x).abs().gt(0.5).long()

    def sim(x, sample, z, **kwargs):
        return torch.exp(-((x - sample) ** 2).sum() / kwargs["width"])

    x = torch.randn(1, 6)
    results = []
    for cls in (pc.LimeBase, ca.LimeBase):
        seeded()
        lb = cls(mlp, SkLearnLinearRegression(), sim, perturb, False, None, to_interp)
        results.append(lb.attribute(x, target=1, n_samples=30, perturbations_per_eval=7, width=4.0))
    close(results[0], results[1], tol=1e-4)


def test_kernel_shap_on_a_scalar_per_batch_model_fits_one_surrogate():
    lin = nn.Linear(4, 1)
    agg = lambda x: lin(x).sum()  # noqa: E731  one value for the whole batch
    x = torch.randn(3, 4)
    seeded()
    ours = pc.KernelShap(agg).attribute(x, n_samples=30)
    seeded()
    theirs = ca.KernelShap(agg).attribute(x, n_samples=30)
    assert ours.shape == (1, 4)
    close(ours, theirs, tol=1e-4)
    with pytest.raises(AssertionError, match="Perturbations per eval must be 1"):
        pc.KernelShap(agg).attribute(x, n_samples=30, perturbations_per_eval=2)


def test_captums_arguments_are_mapped_by_one_table():
    """compat's classes translate Captum's configuration through CAPTUM_ARGS (names) and CAPTUM_VALUES
    (values) in one function; the hints a native call gives for Captum's names agree with the table."""
    from pyattrib._core.attributor import CAPTUM_NAMES
    from pyattrib.compat._base import CAPTUM_ARGS, native

    for captum_name, ours in CAPTUM_ARGS.items():
        assert f"{ours}=" in CAPTUM_NAMES[captum_name], captum_name
    assert native(internal_batch_size=8, method="riemann_trapezoid", n_steps=5, return_convergence_delta=True) == {
        "batch_size": 8, "method": "riemann_trapezoid_captum", "n_steps": 5, "return_delta": True}  # fmt: skip
    with pytest.raises(TypeError, match="batch_size"):
        native(internal_batch_size=4, perturbations_per_eval=2)
    # the mapping reaches the transform: Captum's trapezoid rule, batch size and delta flag
    model = models.mlp()
    x = torch.randn(3, 6)
    theirs = pc.IntegratedGradients(model).attribute(x, target=1, n_steps=7, method="riemann_trapezoid",
                                                     internal_batch_size=4, return_convergence_delta=True)  # fmt: skip
    ours = pa.integrated_gradients(model, n_steps=7, method="riemann_trapezoid_captum", return_delta=True)(x, target=1)
    torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=1e-5)
