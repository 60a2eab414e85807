"""The static types of attributors: every transform that declares ``Attributor[C]`` returns an
attributor whose runtime call signature is ``C.__call__``'s, and mypy reads the declared call (an
unknown keyword is an error, a dict of several methods is still callable with ``target=``)."""

from __future__ import annotations

import inspect
import os
import textwrap
import typing

import pytest
import torch
from torch import nn

import pyattrib as pa
import pyattrib.cam
from pyattrib._core import calls
from pyattrib._core.errors import ArgumentError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def declared(fn):
    """The call protocol ``C`` of a transform annotated ``-> Attributor[C]``, or None."""
    ret = typing.get_type_hints(inspect.unwrap(fn)).get("return")
    args = typing.get_args(ret)
    return args[0] if typing.get_origin(ret) is pa.Attributor and args else None


def typed_transforms():
    found = {}
    for module, prefix in ((pa, "pa"), (pyattrib.cam, "pa.cam")):
        for name in module.__all__:
            fn = getattr(module, name)
            if inspect.isfunction(inspect.unwrap(fn)) and declared(fn) is not None:
                found.setdefault(inspect.unwrap(fn), f"{prefix}.{name}")
    return sorted((name, fn) for fn, name in found.items())


TYPED = typed_transforms()


def build(fn):
    """The transform on an MLP (and its first layer), or on a CNN (and its convolution) for CAMs."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    params = [
        p for p in inspect.signature(fn).parameters.values() if p.default is p.empty and p.kind is not p.KEYWORD_ONLY
    ]
    image = fn.__module__.startswith("pyattrib.cam") or fn.__name__ in ("layer_gradcam", "guided_gradcam")
    model, layer = (cnn, cnn[0]) if image else (mlp, mlp[0])
    extra = {"owen_values": {"hierarchy": ((0, 1), (2, 3))}, "occlusion": {"sliding_window_shapes": (2,)}}.get(
        fn.__name__, {}
    )
    if len(params) == 1:
        return fn(model, **extra)
    layers = [layer] if params[1].name == "target_layers" else layer
    return fn(model, layers, **extra)


def params(sig: inspect.Signature, drop_self: bool = False) -> list[inspect.Parameter]:
    return list(sig.parameters.values())[1 if drop_self else 0 :]


def accepts(runtime: inspect.Signature, protocol: inspect.Signature) -> list[str]:
    """What the runtime call does not accept of the declared one (empty: every declared call works).
    The runtime may take more (a parameter with a default, ``**kwargs`` for old names); a parameter the
    protocol requires may default to None at runtime, where pyattrib names it in its own error."""
    have = {p.name: p for p in params(runtime)}
    wanted = params(protocol, drop_self=True)
    problems = [f"{p.name} is missing" for p in wanted if p.name not in have]
    positional = [p.name for p in params(runtime) if p.kind is p.POSITIONAL_OR_KEYWORD]
    declared_positional = [p.name for p in wanted if p.kind is p.POSITIONAL_OR_KEYWORD]
    if positional[: len(declared_positional)] != declared_positional:
        problems.append(f"positional order {positional} is not {declared_positional}")
    for p in wanted:
        r = have.get(p.name)
        if r is None:
            continue
        if r.kind is not p.kind and not (p.kind is p.KEYWORD_ONLY and r.kind is r.POSITIONAL_OR_KEYWORD):
            problems.append(f"{p.name} is {r.kind.name}, declared {p.kind.name}")
        if p.default is not p.empty and r.default != p.default:
            problems.append(f"{p.name} defaults to {r.default!r}, declared {p.default!r}")
        if p.default is p.empty and r.default not in (r.empty, None):
            problems.append(f"{p.name} is required, but defaults to {r.default!r}")
    extra = [r for r in params(runtime) if r.name not in {p.name for p in wanted}]
    problems += [f"{r.name} is not declared and has no default" for r in extra
                 if r.default is r.empty and r.kind not in (r.VAR_POSITIONAL, r.VAR_KEYWORD)]  # fmt: skip
    return problems


def test_the_transforms_of_every_family_declare_their_call():
    names = {name.split(".")[-1] for name, _ in TYPED}
    assert {"saliency", "integrated_gradients", "gradient_shap", "deep_lift_shap", "feature_ablation", "lime",
            "feature_permutation", "layer_activation", "neuron_gradient", "neuron_feature_ablation", "grad_cam",
            "lrp", "owen_values"} <= names  # fmt: skip
    assert len(TYPED) >= 40


@pytest.mark.parametrize("name, fn", TYPED, ids=[name for name, _ in TYPED])
def test_the_runtime_call_is_the_declared_one(name, fn):
    protocol = declared(fn)
    attributor = build(fn)
    assert isinstance(attributor, pa.Attributor)
    assert accepts(inspect.signature(attributor), inspect.signature(protocol.__call__)) == [], name
    required = [p.name for p in params(inspect.signature(protocol.__call__), True)[1:] if p.default is p.empty]
    if "baselines" in required:  # declared required, None at runtime: pyattrib's own error names it
        x = torch.randn(2, 3, 6, 6) if "cam" in fn.__module__ else torch.randn(2, 8)
        kwargs = {"neuron_selector": 0} if "neuron_selector" in required else {"target": 0}
        with pytest.raises(ArgumentError, match="baselines is required"):
            attributor(x, **kwargs)


def test_every_call_protocol_is_used():
    used = {declared(fn) for _, fn in TYPED}
    protocols = {
        v
        for v in vars(calls).values()
        if isinstance(v, type) and issubclass(v, typing.Protocol) and v is not typing.Protocol
    }
    assert protocols == used


def test_mypy_reads_the_declared_call(tmp_path):
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "use.py"
    snippet.write_text(
        textwrap.dedent("""
        import torch
        import pyattrib as pa

        model = torch.nn.Linear(4, 2)
        x = torch.randn(3, 4)
        ig = pa.integrated_gradients(model)
        reveal_type(ig)
        ig(x, torch.zeros(3, 4), target=1)
        ig(x, target=1, n_steps=8)
        methods = {"ig": ig, "saliency": pa.saliency(model), "ablation": pa.feature_ablation(model)}
        for method in methods.values():
            method(x, target=1)
    """)
    )
    out, _, status = api.run([str(snippet), "--config-file", os.path.join(ROOT, "pyproject.toml"),
                              "--cache-dir", os.path.join(ROOT, ".mypy_cache"), "--no-error-summary"])  # fmt: skip
    lines = out.strip().splitlines()
    assert status == 1
    assert any('Revealed type is "pyattrib._core.attributor.Attributor[pyattrib._core.calls.BaselineCall]"' in li
               for li in lines), out  # fmt: skip
    errors = [li for li in lines if ": error:" in li]
    assert len(errors) == 1 and ':10: error: Unexpected keyword argument "n_steps"' in errors[0], out
