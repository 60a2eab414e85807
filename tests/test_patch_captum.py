"""patch_captum(): code that imports Captum, before or after the call, gets compat's classes;
unpatch_captum() puts Captum back; without Captum installed, stand-in modules serve compat."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest
import torch
from torch import nn

captum_attr = pytest.importorskip("captum.attr")
import pyattrib as pa  # noqa: E402
import pyattrib.compat as compat  # noqa: E402
from pyattrib.compat.patch import patched  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def patching():
    yield compat.patch_captum
    compat.unpatch_captum()


def test_every_way_of_reaching_captum_gets_compat_and_unpatch_restores(patching):
    from captum.attr import Saliency as bound_before

    library = types.ModuleType("a_library_built_on_captum")  # a module that imported Captum before the call
    library.IntegratedGradients = captum_attr.IntegratedGradients
    sys.modules[library.__name__] = library
    try:
        assert patching() > 100 and patched()
        import captum.attr as again
        from captum.attr import IntegratedGradients, Saliency
        from captum.attr._core.lime import Lime  # a private path too

        assert Saliency is compat.Saliency and IntegratedGradients is compat.IntegratedGradients
        assert again.KernelShap is compat.KernelShap and Lime is compat.Lime
        assert library.IntegratedGradients is compat.IntegratedGradients
        from captum.influence import TracInCP

        assert TracInCP is compat.TracInCP
        compat.unpatch_captum()
        assert not patched() and captum_attr.Saliency is bound_before is not compat.Saliency
        assert library.IntegratedGradients is not compat.IntegratedGradients
    finally:
        del sys.modules[library.__name__]


def test_a_library_calling_captum_runs_on_compat_and_gets_captums_numbers(patching):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 4)

    def library_explain(m, inputs):  # as a library would: Captum by name, at call time
        from captum import attr

        return attr.IntegratedGradients(m).attribute(inputs, target=1, n_steps=16)

    before = library_explain(model, x)
    patching()
    ig = sys.modules["captum.attr"].IntegratedGradients
    assert ig is compat.IntegratedGradients
    torch.testing.assert_close(library_explain(model, x), before, rtol=1e-5, atol=1e-6)


def test_without_captum_installed_stand_in_modules_serve_compat():
    code = textwrap.dedent("""
        import sys
        sys.modules["captum"] = None  # as if Captum were not installed
        import pyattrib.compat as compat
        count = compat.patch_captum()
        from captum.attr import IntegratedGradients
        from captum import attr
        import captum.influence
        assert IntegratedGradients is compat.IntegratedGradients and attr.Lime is compat.Lime, count
        assert captum.influence.TracInCP is compat.TracInCP
        compat.unpatch_captum()
        assert sys.modules["captum"] is None
        print("ok", count)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


# ---- outputs whose rows are not the input's examples ----


class Nodes(nn.Module):
    """A 'graph model' on one example: (1, n_nodes, F) -> (n_nodes, C), one row per node."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x):
        mixed = x.squeeze(0) + x.squeeze(0).mean(0, keepdim=True)  # nodes see each other
        return torch.tanh(self.lin(mixed))


def test_output_rows_sums_the_selected_rows_and_the_default_keeps_its_error():
    torch.manual_seed(0)
    model = Nodes()
    x = torch.randn(1, 6, 3)

    per_node = torch.tensor([0, 2, 0, 0, 0, 0])
    xr = x.clone().requires_grad_()
    expected = torch.autograd.grad(model(xr)[torch.arange(6), per_node].sum(), xr)[0]  # the selected rows' sum
    ours = pa.saliency(model, abs=False)(x, target=pa.output_rows(per_node))
    torch.testing.assert_close(ours, expected)
    ig = pa.integrated_gradients(model, n_steps=32, batch_size=1, return_delta=True)  # one input row per evaluation
    attr, delta = ig(x, target=pa.output_rows(per_node))
    with torch.no_grad():
        gap = model(x)[torch.arange(6), per_node].sum() - model(0 * x)[torch.arange(6), per_node].sum()
    assert abs(float(attr.sum() - gap)) < 1e-4 and float(delta.abs().max()) < 1e-4
    with pytest.raises(ValueError, match="target tensor has shape \\(6,\\) but inputs have 1 examples"):
        pa.saliency(model)(x, target=torch.tensor([0, 2, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="has 2 entries but each input row gives 6 output rows"):
        pa.saliency(model)(x, target=pa.output_rows([0, 2]))


@pytest.mark.parametrize(
    "method", ["Saliency", "InputXGradient", "IntegratedGradients", "GuidedBackprop", "Deconvolution"]
)
def test_compat_takes_a_target_per_output_row_as_captum(method):
    torch.manual_seed(0)

    class Picked(nn.Module):  # PyG's CaptumModel for two nodes: (2, C) rows for one example
        def __init__(self) -> None:
            super().__init__()
            self.inner = Nodes()

        def forward(self, x):
            return self.inner(x)[[1, 4]]

    model = Picked()
    x = torch.randn(1, 6, 3)
    kwargs = {"internal_batch_size": 1, "n_steps": 8} if method == "IntegratedGradients" else {}
    for target in (torch.tensor([2, 0]), [3, 1]):
        ours = getattr(compat, method)(model).attribute(x, target=target, **kwargs)
        theirs = getattr(captum_attr, method)(model).attribute(x, target=target, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    one = nn.Sequential(Picked(), nn.Linear(4, 1))  # (2, 1): target None
    torch.testing.assert_close(getattr(compat, method)(one).attribute(x, **kwargs),
                               getattr(captum_attr, method)(one).attribute(x, **kwargs), rtol=1e-5, atol=1e-7)  # fmt: skip
