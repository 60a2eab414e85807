"""LIME and KernelSHAP options that compat's Captum semantics are made of: feature ids shifted
(not renumbered), a forward returning one value for the whole batch, the similarity kernel's
distances, and Captum's draw order as a sampler of the core."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.random import captum_coalitions
from pyattrib.lime import similarity_kernel


def test_shifted_ids_keep_an_empty_group_as_a_feature():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, mask = torch.randn(3, 4), torch.tensor([[1, 1, 3, 3]])
    g = torch.Generator().manual_seed(0)
    compact = pa.kernel_shap(model, n_samples=30, return_input_shape=False)(x, target=0, feature_mask=mask, generator=g)
    shifted = pa.kernel_shap(model, n_samples=30, return_input_shape=False, feature_ids="shift")(
        x, target=0, feature_mask=mask, generator=g
    )
    assert compact.shape == (3, 2) and shifted.shape == (3, 3)
    # the model is linear in the groups: both recover each group's exact contribution; id 2 is carried by
    # no element, so its coefficient is 0 (to the regression's precision)
    exact = torch.stack([(model.weight[0, :2] * x[:, :2]).sum(1), (model.weight[0, 2:] * x[:, 2:]).sum(1)], 1)
    torch.testing.assert_close(compact, exact, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shifted[:, [0, 2]], exact, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shifted[:, 1], torch.zeros(3), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["kernel_shap", "lime"])
def test_a_whole_batch_output_gets_one_surrogate(method):
    torch.manual_seed(1)
    lin = nn.Linear(5, 1)
    x = torch.randn(4, 5)

    def total(batch: torch.Tensor) -> torch.Tensor:  # one value for the whole batch
        return lin(batch).sum()

    options = {"interpretable_model": "linear"} if method == "lime" else {}
    attr = getattr(pa, method)(total, n_samples=200, **options)(x, generator=torch.Generator().manual_seed(0))
    assert attr.shape == (1, 5)
    # removing feature j from every example moves the total by w_j * sum_i x_ij: a linear surrogate recovers it
    torch.testing.assert_close(attr[0], lin.weight[0] * x.sum(0), atol=1e-3, rtol=1e-3)


def test_similarity_kernel_distances():
    a, b = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    flat_a, flat_b = a.reshape(3, -1).double(), b.reshape(3, -1).double()
    cos = 1 - torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=1)
    euclid = (flat_a - flat_b).norm(dim=1)
    torch.testing.assert_close(similarity_kernel("cosine", 0.5)((a,), (b,), None), torch.exp(-(cos**2) / 0.25))
    torch.testing.assert_close(similarity_kernel("euclidean", 3.0)((a,), (b,), None), torch.exp(-(euclid**2) / 9))
    with pytest.raises(Exception, match="distance"):
        similarity_kernel("manhattan")


@pytest.mark.parametrize("kind", ["bernoulli", "shapley_kernel"])
def test_captum_coalitions_are_a_generator_stream(kind):
    """The sampler draws from the given generator (the global one when None) in a fixed order: the
    same seed gives the same coalitions, examples drawn one after another."""
    sample = captum_coalitions(kind)
    one = sample(2, 12, 5, torch.Generator().manual_seed(3), torch.device("cpu"))
    again = sample(2, 12, 5, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert one.dtype == torch.bool and one.shape == (2, 12, 5) and torch.equal(one, again)
    torch.manual_seed(3)
    assert torch.equal(sample(2, 12, 5, None, torch.device("cpu")), one)
    if kind == "shapley_kernel":
        assert one[:, 0].all() and not one[:, 1].any()
        sizes = one[:, 2:].sum(-1)
        assert bool(((sizes >= 1) & (sizes <= 4)).all())
    else:
        assert 0.2 < one.float().mean().item() < 0.8
    assert not torch.equal(one[0], one[1])
