"""Complexity and localisation metrics against quantus 0.6.0 on the same attributions and masks
(Quantus run one example at a time where its normalisation couples a batch), and the places
where Quantus departs from its papers."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

import pyattrib as pa
from pyattrib._core.errors import ArgumentError

if os.environ.get("PYATTRIB_REQUIRE_REFS"):
    import quantus
else:
    quantus = pytest.importorskip("quantus")

N = 6


def batch(seed: int = 0, signed: bool = True):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, 1, 8, 8, generator=g)
    a = torch.randn(N, 1, 8, 8, generator=g) if signed else torch.rand(N, 1, 8, 8, generator=g)
    a[1, 0, :4] = 0.0  # zeros and ties
    s = torch.zeros(N, 1, 8, 8, dtype=torch.bool)
    for i in range(N):
        s[i, 0, i : i + 3, 1 : 2 + i] = True
    return x, a, s


def reference(metric, x, a, s=None, one_at_a_time=False):
    """Quantus's scores, as a float64 array; NaN where it returns NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"model": None, "y_batch": np.zeros(len(x), dtype=int), "channel_first": True}
        if one_at_a_time:
            parts = [
                reference(metric, x[i : i + 1], a[i : i + 1], None if s is None else s[i : i + 1])
                for i in range(len(x))
            ]
            return np.concatenate(parts)
        out = metric(
            x_batch=x.numpy(), a_batch=a.numpy().copy(), s_batch=None if s is None else s.numpy().astype(float), **kw
        )
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("name", ["Sparseness", "Complexity", "EffectiveComplexity"])
def test_complexity_metrics_equal_quantus(name):
    x, a, _ = batch()
    ours = {"Sparseness": pa.metrics.sparseness(), "Complexity": pa.metrics.complexity(),
            "EffectiveComplexity": pa.metrics.effective_complexity(eps=0.05)}[name](a)  # fmt: skip
    kwargs = {"eps": 0.05} if name == "EffectiveComplexity" else {}
    want = reference(getattr(quantus, name)(disable_warnings=True, **kwargs), x, a, one_at_a_time=True)
    np.testing.assert_allclose(ours.double().numpy(), want, rtol=1e-5, atol=1e-6)


def test_effective_complexity_normalises_each_explanation_quantus_the_batch():
    """Quantus 0.6 divides a batch by its largest magnitude, so one example's count depends on the
    others in its batch; pyattrib divides each explanation by its own (``normalise="batch"`` gives
    Quantus's numbers)."""
    x, a, _ = batch()
    a[0] *= 100  # one loud explanation
    metric = quantus.EffectiveComplexity(eps=0.05, disable_warnings=True)
    batched = reference(metric, x, a)
    alone = reference(metric, x, a, one_at_a_time=True)
    assert (batched[1:] < alone[1:]).all()  # the loud one silences the others in Quantus
    ours = pa.metrics.effective_complexity(eps=0.05)(a)
    np.testing.assert_array_equal(ours.numpy(), alone)
    np.testing.assert_array_equal(pa.metrics.effective_complexity(eps=0.05, normalise="batch")(a).numpy(), batched)


LOCALISATION = {
    "PointingGame": (pa.metrics.pointing_game, {}),
    "AttributionLocalisation": (pa.metrics.attribution_localisation, {}),
    "TopKIntersection": (pa.metrics.top_k_intersection, {"k": 10}),
    "RelevanceMassAccuracy": (pa.metrics.relevance_mass_accuracy, {}),
    "RelevanceRankAccuracy": (pa.metrics.relevance_rank_accuracy, {}),
    "AUC": (pa.metrics.auc, {}),
}


@pytest.mark.parametrize("name", sorted(LOCALISATION))
@pytest.mark.parametrize("signed", [True, False])
def test_localisation_metrics_equal_quantus(name, signed):
    x, a, s = batch(1, signed)
    make, kwargs = LOCALISATION[name]
    ours = make(**kwargs)(a, s)
    want = reference(getattr(quantus, name)(disable_warnings=True, **kwargs), x, a, s)
    np.testing.assert_allclose(ours.double().numpy(), want, rtol=1e-5, atol=1e-6)
    assert ours.dtype == a.dtype


def test_localisation_flags_equal_quantus():
    x, a, s = batch(2, signed=False)
    ours = pa.metrics.top_k_intersection(k=10, concept_influence=True)(a, s)
    want = reference(quantus.TopKIntersection(k=10, concept_influence=True, disable_warnings=True), x, a, s)
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-5, atol=1e-6)
    ours = pa.metrics.attribution_localisation(positive=True, abs=False)(a - 0.3, s)
    want = reference(quantus.AttributionLocalisation(positive_attributions=True, abs=False, disable_warnings=True),
                     x, a - 0.3, s)  # fmt: skip
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-5, atol=1e-7)


def test_where_quantus_departs_from_the_papers():
    """Weighted pointing game: Quantus writes the weights, a column, into its boolean array of
    hits, which raises as soon as one example hits.
    Weighted attribution localisation: Quantus divides the mask's size by ``x_batch[2:].size``, the
    batch without its first two examples, not one input's size."""
    x, a, s = batch(3, signed=False)
    a[:3, 0, [0, 1, 2], 1] = 2.0  # the first three examples' largest values inside their masks
    plain = pa.metrics.pointing_game()(a, s).numpy()
    assert plain.sum() >= 2
    with pytest.raises(TypeError):
        reference(quantus.PointingGame(weighted=True, disable_warnings=True), x, a, s)
    with pytest.raises(TypeError):  # one example that hits is enough
        reference(quantus.PointingGame(weighted=True, disable_warnings=True), x[:1], a[:1], s[:1])
    weighted = pa.metrics.pointing_game(weighted=True)(a, s)
    share = s.reshape(N, -1).float().mean(1)
    torch.testing.assert_close(weighted, torch.as_tensor(plain) * (1 - share))
    quantus_al = reference(quantus.AttributionLocalisation(weighted=True, disable_warnings=True), x, a, s)
    ours_al = pa.metrics.attribution_localisation(weighted=True)(a, s)
    unweighted = pa.metrics.attribution_localisation()(a, s)
    torch.testing.assert_close(ours_al, unweighted * share)  # the paper's ratio: the mask's share of one input
    np.testing.assert_allclose(quantus_al, unweighted.numpy() * s.reshape(N, -1).sum(1).numpy() / x[2:].numel(),
                               rtol=1e-5, atol=1e-7)  # fmt: skip


def test_empty_masks_and_bad_input():
    _, a, s = batch()
    s[2] = False
    for make, kwargs in LOCALISATION.values():
        out = make(**kwargs)(a, s)
        assert torch.isnan(out[2]) and torch.isfinite(out[[0, 1, 3]]).all()
    with pytest.raises(ArgumentError, match="do not fit attributions"):
        pa.metrics.pointing_game()(a, s[:, :, :4])
    with pytest.raises(ArgumentError, match="k=100"):
        pa.metrics.top_k_intersection(k=100)(a, s)
    with pytest.raises(ArgumentError, match="normalise"):
        pa.metrics.sparseness(normalise="each")
    three = a.expand(N, 3, 8, 8)  # a one-channel mask serves every channel
    torch.testing.assert_close(
        pa.metrics.relevance_mass_accuracy()(three, s), pa.metrics.relevance_mass_accuracy()(a, s), equal_nan=True
    )


def test_focus_equals_quantus_on_mosaics():
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(10, 1, 4, 4, generator=g), torch.arange(10) % 3
    tiles, flags = pa.metrics.mosaics(images, labels, target=1, n=N, generator=g)
    assert tiles.shape == (N, 1, 8, 8) and (flags.sum(1) == 2).all()
    for k in range(N):  # each quadrant holds the image its flag says
        quads = [tiles[k, :, :4, :4], tiles[k, :, :4, 4:], tiles[k, :, 4:, :4], tiles[k, :, 4:, 4:]]
        hits = [any(torch.equal(q, images[i]) for i in range(10) if labels[i] == 1) for q in quads]
        assert hits == flags[k].tolist()
    a = torch.randn(N, 1, 8, 8, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unused = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()  # Quantus asks for one
        want = quantus.Focus(disable_warnings=True)(model=unused, x_batch=tiles.numpy(), y_batch=np.ones(N, dtype=int),
                                                    a_batch=a.numpy().copy(), custom_batch=flags.numpy(),
                                                    channel_first=True)  # fmt: skip
    np.testing.assert_allclose(pa.metrics.focus()(a, flags).numpy(), np.asarray(want), rtol=1e-5, atol=1e-7)
    with pytest.raises(ArgumentError, match="quadrants"):
        pa.metrics.focus()(a, flags[:, :3])
