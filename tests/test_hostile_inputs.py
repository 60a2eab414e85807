"""Every public transform and wrapper, called with randomly broken arguments (hypothesis): the
error is pyattrib's own (``ArgumentError``, or ``TypeError`` for a wrong type) and names the
argument, or the call succeeds with finite attributions; the model's parameters, buffers,
flags, ``.grad`` and hooks are bit-identical afterwards."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyattrib as pa  # noqa: E402
import pyattrib.compat as compat
from pyattrib._core.errors import ArgumentError

from .test_model_state import ATTRIBUTORS, NEEDS_REFS, assert_same, call_kwargs, prepared, snapshot

# the public transforms and wrappers test_model_state.py does not build
EXTRA = {
    "deconvolution": lambda m: pa.deconvolution(m),
    "guided_gradcam": lambda m: pa.guided_gradcam(m, m.lin),
    "layer_gradient_x_activation": lambda m: pa.layer_gradient_x_activation(m, m.bn),
    "layer_deep_lift_shap": lambda m: pa.layer_deep_lift_shap(m, m.lin),
    "layer_lrp": lambda m: pa.layer_lrp(m, m.out),
    "neuron_deep_lift_shap": lambda m: pa.neuron_deep_lift_shap(m, m.bn),
    "neuron_guided_backprop": lambda m: pa.neuron_guided_backprop(m, m.bn),
    "feature_permutation": lambda m: pa.feature_permutation(m),
    "layer_feature_permutation": lambda m: pa.layer_feature_permutation(m, m.bn),
    "shapley_values": lambda m: pa.shapley_values(m),
    "noise_tunnel": lambda m: pa.noise_tunnel(pa.saliency(m), kind="smoothgrad", n_samples=2),
    "smoothgrad_sq": lambda m: pa.smoothgrad_sq(pa.saliency(m), n_samples=2),
    "vargrad": lambda m: pa.vargrad(pa.input_x_gradient(m), n_samples=2),
}  # fmt: skip
ATTRIBUTORS = {**ATTRIBUTORS, **EXTRA}
NEEDS_REFS = (*NEEDS_REFS, "layer_deep_lift_shap", "neuron_deep_lift_shap")
PERTURBATION = {"feature_ablation", "occlusion", "shapley_value_sampling", "kernel_shap", "lime", "feature_permutation",
                "shapley_values"}  # fmt: skip
TARGETED = {n for n in ATTRIBUTORS if "target" in call_kwargs(n)}
SEEN: dict[str, set[str]] = {"cases": set(), "errors": set()}

# a corruption: (argument it breaks, how), applied to a valid call on a (5, 4) batch
CORRUPTIONS = {
    "inputs": ["wrong width", "integer dtype", "float64", "nan", "inf", "empty batch", "0-d", "list", "numpy",
               "string", "meta device", "tuple with a mismatched batch"],
    "target": ["out of range", "negative out of range", "float", "string", "too many entries", "2-d tensor",
               "float tensor", "bool"],
    "baselines": ["wrong width", "wrong batch", "string", "nan"],
    "feature_mask": ["wrong shape", "float ids", "string"],
}  # fmt: skip


def broken(argument: str, how: str, x: torch.Tensor, kwargs: dict, args: tuple) -> tuple:
    """The call's (inputs, args, kwargs) with ``argument`` broken ``how``."""
    kwargs, args = dict(kwargs), tuple(args)
    if argument == "inputs":
        x = {
            "wrong width": lambda: torch.randn(5, 6), "integer dtype": lambda: torch.randint(0, 3, (5, 4)),
            "float64": lambda: x.double(), "nan": lambda: x.index_fill(0, torch.tensor([2]), float("nan")),
            "inf": lambda: x.index_fill(0, torch.tensor([0]), float("inf")), "empty batch": lambda: x[:0],
            "0-d": lambda: torch.tensor(1.0), "list": lambda: x.tolist(), "numpy": lambda: x.numpy(),
            "string": lambda: "an image", "meta device": lambda: x.to("meta"),
            "tuple with a mismatched batch": lambda: (x, torch.randn(3, 4)),
        }[how]()  # fmt: skip
    elif argument == "target":
        kwargs["target"] = {
            "out of range": 7, "negative out of range": -9, "float": 1.5, "string": "cat", "too many entries": [0] * 6,
            "2-d tensor": torch.zeros(5, 2, dtype=torch.long), "float tensor": torch.zeros(5), "bool": True,
        }[how]  # fmt: skip
    elif argument == "baselines":
        bad = {"wrong width": torch.zeros(5, 6), "wrong batch": torch.zeros(3, 4), "string": "zeros",
               "nan": torch.full((5, 4), float("nan"))}[how]  # fmt: skip
        if args:
            args = (bad,)
        else:
            kwargs["baselines"] = bad
    else:
        kwargs["feature_mask"] = {"wrong shape": torch.zeros(1, 7, dtype=torch.long),
                                  "float ids": torch.zeros(1, 4), "string": "all"}[how]  # fmt: skip
    return x, args, kwargs


def applies(name: str, argument: str) -> bool:
    if argument == "target":
        return name in TARGETED
    if argument == "feature_mask":
        return name in PERTURBATION
    if argument == "baselines":
        return name not in ("saliency", "multi_target", "layer_activation", "layer_gradcam", "guided_backprop",
                            "neuron_gradient", "neuron_deconvolution", "input_x_gradient", "lrp", "lime",
                            "kernel_shap", "shapley_value_sampling", "occlusion", "layer_feature_ablation",
                            "neuron_feature_ablation", "feature_ablation", "deconvolution", "guided_gradcam",
                            "layer_gradient_x_activation", "layer_lrp", "neuron_guided_backprop",
                            "feature_permutation", "layer_feature_permutation", "shapley_values", "noise_tunnel",
                            "smoothgrad_sq", "vargrad")  # fmt: skip
    return True


@pytest.mark.parametrize("name", list(ATTRIBUTORS))
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_broken_arguments_get_named_errors_and_leave_the_model_as_found(name, data):
    argument = data.draw(st.sampled_from([a for a in CORRUPTIONS if applies(name, a)]), label="argument")
    how = data.draw(st.sampled_from(CORRUPTIONS[argument]), label="how")
    train = data.draw(st.booleans(), label="train")
    model = prepared(train)
    before = snapshot(model)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    args = (torch.randn(3, 4),) if name in NEEDS_REFS else ()
    x, args, kwargs = broken(argument, how, x, call_kwargs(name), args)
    SEEN["cases"].add(f"{name}/{argument}/{how}")
    try:
        out = ATTRIBUTORS[name](model)(x, *args, **kwargs)
    except RuntimeError as error:  # the model's own error, once, with the fix added (inputs it cannot take)
        assert "pyattrib: inputs" in str(error), f"{name}, {argument} {how}: {error}"
        SEEN["errors"].add(f"model's RuntimeError + hint: {str(error)[:40]}")
    except (ArgumentError, TypeError) as error:
        message = str(error)
        named = argument in message or (argument == "target" and "neuron_selector" in message)
        assert named, f"{name}, {argument} {how}: the error does not name {argument!r}: {message}"
        SEEN["errors"].add(f"{type(error).__name__}: {message[:60]}")
    else:
        for leaf in torch.utils._pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
                assert torch.isfinite(leaf).all(), f"{name}, {argument} {how}: non-finite result"
    assert_same(before, snapshot(model))


COMPAT = {
    "IntegratedGradients": lambda m: compat.IntegratedGradients(m).attribute,
    "Saliency": lambda m: compat.Saliency(m).attribute,
    "FeatureAblation": lambda m: compat.FeatureAblation(m).attribute,
    "DeepLift": lambda m: compat.DeepLift(m).attribute,
    "NoiseTunnel": lambda m: lambda x, **kw: compat.NoiseTunnel(compat.Saliency(m)).attribute(x, nt_samples=2, **kw),
    "LayerIntegratedGradients": lambda m: compat.LayerIntegratedGradients(m, m.lin).attribute,
}  # fmt: skip


@pytest.mark.parametrize("name", list(COMPAT))
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_compat_classes_with_broken_arguments(name, data):
    argument = data.draw(st.sampled_from(["inputs", "target"]), label="argument")
    how = data.draw(st.sampled_from(CORRUPTIONS[argument]), label="how")
    model = prepared(False)
    before = snapshot(model)
    x, _, kwargs = broken(argument, how, torch.randn(5, 4), {"target": 1}, ())
    SEEN["cases"].add(f"compat.{name}/{argument}/{how}")
    try:
        out = COMPAT[name](model)(x, **kwargs)
    except (ArgumentError, TypeError, AssertionError, IndexError) as error:  # Captum's users catch these
        SEEN["errors"].add(f"{type(error).__name__}: {str(error)[:60]}")
    except RuntimeError as error:  # the model's own error, once, with the fix added
        assert "pyattrib: inputs" in str(error), f"compat.{name}, {argument} {how}: {error}"
    else:
        assert torch.isfinite(out).all()
    assert_same(before, snapshot(model))


def test_report_counts():
    """Run last in the file: the number of distinct cases and error paths (PYATTRIB_REPORT=1 prints them)."""
    if os.environ.get("PYATTRIB_REPORT"):
        print(f"\nhostile inputs: {len(SEEN['cases'])} distinct cases, {len(SEEN['errors'])} distinct error messages")
    assert np.isfinite(len(SEEN["cases"]))


@pytest.mark.slow
def test_every_corruption_of_every_transform():
    """The exhaustive version of the property above: every (transform, argument, corruption)."""
    failures, total = [], 0
    for name in ATTRIBUTORS:
        for argument, hows in CORRUPTIONS.items():
            if not applies(name, argument):
                continue
            for how in hows:
                total += 1
                model = prepared(False)
                before = snapshot(model)
                args = (torch.randn(3, 4),) if name in NEEDS_REFS else ()
                x, args, kwargs = broken(argument, how, torch.randn(5, 4), call_kwargs(name), args)
                try:
                    out = ATTRIBUTORS[name](model)(x, *args, **kwargs)
                    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
                    if not all(torch.isfinite(t).all() for t in leaves if t.is_floating_point()):
                        failures.append((name, argument, how, "non-finite result"))
                except RuntimeError as error:
                    if "pyattrib: inputs" not in str(error):
                        failures.append((name, argument, how, str(error)[:80]))
                except (ArgumentError, TypeError) as error:
                    if argument not in str(error) and not (argument == "target" and "neuron_selector" in str(error)):
                        failures.append((name, argument, how, str(error)[:80]))
                assert_same(before, snapshot(model))
    assert total > 800 and not failures, failures[:10]
