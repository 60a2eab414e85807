"""Every family in float64, float32, float16 and bfloat16 on the CPU: attributions come back in the
inputs' dtype, finite, and within a documented tolerance of float64's; a model whose output is not
finite at some examples gets an error naming them, not NaN attributions.

Tolerances (``max |a - a_64| / max |a_64|`` of the attributions): float32 1e-4, float16 2e-2,
bfloat16 1e-1 (8 bits of mantissa; integrated gradients sums 50 such steps). Measured on the
model below: float16 at most 0.0074, bfloat16 at most 0.06."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError

from .test_model_state import ATTRIBUTORS, NEEDS_REFS, call_kwargs, prepared

TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def attributions(name: str, dtype: torch.dtype) -> torch.Tensor:
    model = prepared(False).to(dtype)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    refs = (torch.randn(3, 4, generator=torch.Generator().manual_seed(1)).to(dtype),) if name in NEEDS_REFS else ()
    torch.manual_seed(0)  # the same draws for the random methods in every dtype
    out = ATTRIBUTORS[name](model)(x, *refs, **call_kwargs(name))
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert all(t.dtype == dtype for t in leaves) and all(torch.isfinite(t).all() for t in leaves)
    return leaves[0]  # the attributions (a delta may follow)


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("name", list(ATTRIBUTORS))
def test_every_family_in_every_float_dtype(name, dtype):
    reference = attributions(name, torch.float64)
    got = attributions(name, dtype).double()
    error = float((got - reference).abs().max() / reference.abs().max().clamp(min=1e-12))
    assert error <= TOLERANCE[dtype], f"{name} in {dtype}: relative error {error:.3g}"


class NotFiniteAt(nn.Module):
    """sqrt of the first feature: NaN (and a NaN gradient) where it is negative."""

    def forward(self, x):
        return torch.stack([torch.sqrt(x[:, 0]), x[:, 1]], 1)


@pytest.mark.parametrize("make", [pa.saliency, pa.integrated_gradients, pa.feature_ablation, pa.deep_lift,
                                  lambda m: pa.smoothgrad(pa.saliency(m), stdevs=0.01)])  # fmt: skip
def test_a_model_not_finite_at_some_examples_is_named_not_returned_as_nan(make):
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0], [4.0, 1.0], [-2.0, 0.5]])
    with pytest.raises(ArgumentError, match=r"attributions of examples \[1, 3\] are NaN or inf"):
        make(NotFiniteAt())(x, target=0)
    assert torch.isfinite(make(NotFiniteAt())(x.abs(), target=0)).all()
