"""Owen values (pa.owen_values) against shap 0.51's PartitionExplainer, the library that defines
the algorithm, and the properties the definition gives."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyattrib as pa

shap = pytest.importorskip("shap")


def breast_cancer(n_features: int = 12):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data[:, :n_features].astype(np.float32)
    data = (data - data.mean(0)) / data.std(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(n_features, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)).eval()
    return model, data


def shap_values(model, hierarchy, background, x, max_evals):
    f = lambda a: model(torch.as_tensor(a, dtype=torch.float32)).detach().numpy()[:, 1]  # noqa: E731
    explainer = shap.PartitionExplainer(f, shap.maskers.Partition(background, clustering=hierarchy))
    return explainer(x, max_evals=max_evals, silent=True).values


@pytest.mark.parametrize("max_evals", [1000, 60, 24])
def test_owen_values_equal_shap_partition_explainer(max_evals):
    model, data = breast_cancer()
    hierarchy = pa.owen.correlation_hierarchy(data)
    np.testing.assert_allclose(hierarchy, shap.utils.hclust(data, metric="correlation"), atol=1e-6)
    x, base = data[:6], np.zeros((1, data.shape[1]), dtype=np.float32)
    want = shap_values(model, hierarchy, base, x, max_evals)
    got = pa.owen_values(model, hierarchy=hierarchy, max_evals=max_evals, batch_size=7)(torch.tensor(x), target=1)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    if max_evals < 100:  # the budget binds: not the full expansion's values
        full = pa.owen_values(model, hierarchy=hierarchy, max_evals=1000)(torch.tensor(x), target=1)
        assert (full - got).abs().max() > 1e-4


def test_a_nested_tuple_hierarchy_equals_its_linkage_in_shap():
    model, data = breast_cancer(6)
    tree = ((0, (1, 2)), ((3, 4), 5))
    z = pa.owen.tree_hierarchy(tree)
    x, base = data[:4], data[10:11]
    want = shap_values(model, z, base, x, 200)
    got = pa.owen_values(model, hierarchy=tree)(torch.tensor(x), torch.tensor(base), target=1)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


def owen_by_definition(v, unions):
    """Owen values of a two-level partition from the formula (Owen, 1977)."""
    m = len(unions)
    phi = {}
    for k, union in enumerate(unions):
        others = [u for j, u in enumerate(unions) if j != k]
        for i in union:
            rest = [j for j in union if j != i]
            total = 0.0
            for r in range(m):
                for chosen in itertools.combinations(others, r):
                    q = set().union(*chosen) if chosen else set()
                    wr = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                    for t in range(len(rest) + 1):
                        for sub in itertools.combinations(rest, t):
                            wt = math.factorial(t) * math.factorial(len(union) - t - 1) / math.factorial(len(union))
                            s = q | set(sub)
                            total += wr * wt * (v(s | {i}) - v(s))
            phi[i] = total
    return [phi[i] for i in sorted(phi)]


@settings(max_examples=10)
@given(st.integers(0, 10_000))
def test_fully_expanded_values_are_the_owen_values_of_the_hierarchy(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double().eval()
    x = torch.randn(1, 4, dtype=torch.float64)
    got = pa.owen_values(model, hierarchy=((0, 1), (2, 3)))(x, target=0)[0]

    def v(s):
        keep = torch.tensor([[j in s for j in range(4)]])
        with torch.no_grad():
            return float(model(torch.where(keep, x, torch.zeros_like(x)))[0, 0])

    torch.testing.assert_close(got, torch.tensor(owen_by_definition(v, [(0, 1), (2, 3)]), dtype=torch.float64))


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000))
def test_a_flat_hierarchy_gives_the_shapley_values(n_f, seed):
    """One union of all features (a flat tuple): the Owen value is the Shapley value."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(n_f, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double().eval()
    x = torch.randn(3, n_f, dtype=torch.float64)
    flat = pa.owen_values(model, hierarchy=tuple(range(n_f)), max_evals=2**n_f)(x, target=1)
    torch.testing.assert_close(flat, pa.shapley_values(model)(x, target=1))


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_wider_unions_are_the_owen_values_by_definition(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    unions = [(0, 1, 2), (3, 4)]
    got = pa.owen_values(model, hierarchy=tuple(unions))(x, target=0)[0]

    def v(s):
        keep = torch.tensor([[j in s for j in range(5)]])
        with torch.no_grad():
            return float(model(torch.where(keep, x, torch.zeros_like(x)))[0, 0])

    torch.testing.assert_close(got, torch.tensor(owen_by_definition(v, unions), dtype=torch.float64))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 60))
def test_symmetric_features_get_equal_values(seed, max_evals):
    """Features the model treats alike, with equal values, in mirrored places of the hierarchy."""
    torch.manual_seed(seed)
    inner = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double().eval()
    model = lambda z: inner(torch.stack([z[:, 0] + z[:, 1], z[:, 2], z[:, 3]], 1))  # noqa: E731
    x = torch.randn(2, 4, dtype=torch.float64)
    x[:, 1] = x[:, 0]
    a = pa.owen_values(model, hierarchy=((0, 1), (2, 3)), max_evals=max_evals)(x, target=0)
    torch.testing.assert_close(a[:, 0], a[:, 1])


@settings(max_examples=15)
@given(st.integers(3, 10), st.integers(4, 60), st.integers(0, 10_000))
def test_owen_values_are_efficient_at_any_budget(n_f, max_evals, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(n_f, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double().eval()
    x = torch.randn(3, n_f, dtype=torch.float64)
    tree = pa.owen.correlation_hierarchy(torch.randn(20, n_f))
    a = pa.owen_values(model, hierarchy=tree, max_evals=max_evals)(x, target=1)
    rise = (model(x) - model(torch.zeros_like(x)))[:, 1]
    torch.testing.assert_close(a.sum(1), rise)


def test_feature_groups_and_bad_hierarchies():
    model = torch.nn.Sequential(torch.nn.Linear(6, 2)).double()
    x = torch.randn(2, 6, dtype=torch.float64)
    groups = torch.tensor([[0, 0, 1, 1, 2, 2]])
    a = pa.owen_values(model, hierarchy=((0, 1), 2))(x, target=0, feature_mask=groups)
    torch.testing.assert_close(a, pa.shapley_values(model)(x, target=0, feature_mask=groups))  # additive: exact
    with pytest.raises(ValueError, match="exactly once"):
        pa.owen_values(model, hierarchy=((0, 1), 1))
    with pytest.raises(ValueError, match="exactly once"):
        pa.owen_values(model, hierarchy=np.array([[0, 1, 1, 2], [0, 6, 1, 3]]))(x[:, :3], target=0)
    with pytest.raises(ValueError, match="6 feature groups"):
        pa.owen_values(model, hierarchy=((0, 1), 2))(x, target=0)
    with pytest.raises(ValueError, match=r"shape \(5, 4\)"):
        pa.owen_values(model, hierarchy=pa.owen.tree_hierarchy(((0, 1), 2)))(x, target=0)
    with pytest.raises(ValueError, match="max_evals"):
        pa.owen_values(model, hierarchy=((0, 1), 2), max_evals=3)
    with pytest.raises(ValueError, match="below what expanding the hierarchy's root needs: its 3 children"):
        pa.owen_values(model, hierarchy=(0, 1, 2), max_evals=7)(x, target=0, feature_mask=groups)  # 2^3 needed
    flat = pa.owen_values(model, hierarchy=(0, 1, 2), max_evals=8)(x, target=0, feature_mask=groups)
    torch.testing.assert_close(flat, a)  # a flat hierarchy: the Shapley values


def test_a_background_of_many_rows_equals_shap():
    """shap's Partition masker with a background of several rows averages the model over them."""
    model, data = breast_cancer()
    hierarchy = pa.owen.correlation_hierarchy(data)
    x, rows = data[:4], data[100:105]
    want = shap_values(model, hierarchy, rows, x, 300)
    got = pa.owen_values(model, hierarchy=hierarchy, max_evals=300)(
        torch.tensor(x), pa.owen.background(torch.tensor(rows)), target=1
    )
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match="background rows have shape"):
        pa.owen_values(model, hierarchy=hierarchy)(torch.tensor(x), pa.owen.background(torch.zeros(3, 5)), target=1)


def test_an_expansion_that_fits_max_evals_is_one_model_call_with_shaps_values():
    """Every coalition of a hierarchy whose full expansion fits ``max_evals`` is needed whatever the
    order, so all are evaluated in the first call: one call, no more rows than ``max_evals``, the
    values shap finds round by round. One evaluation short, the rounds run as shap's."""
    model, data = breast_cancer(8)
    hierarchy = pa.owen.correlation_hierarchy(data)
    full = sys.modules["pyattrib.owen._expand"].Tree.of_linkage(hierarchy, 8)
    needed = full.full[full.root] + 2  # the expansion and the two ends
    x, base = data[:3], np.zeros((1, 8), dtype=np.float32)
    rows = []

    def counted(v):
        rows.append(len(v))
        return model(v)

    for max_evals in (needed, needed - 2, needed - 3):
        rows.clear()
        got = pa.owen_values(counted, hierarchy=hierarchy, max_evals=max_evals)(torch.tensor(x), target=1)
        np.testing.assert_allclose(got.numpy(), shap_values(model, hierarchy, base, x, max_evals), atol=1e-6)
        assert sum(rows) <= 3 * (max_evals + 1)  # shap may open a pair with one evaluation left
        assert (len(rows) == 1) == (max_evals == needed)
