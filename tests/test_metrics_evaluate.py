"""pa.metrics.evaluate: one table of methods by metrics, equal to calling each metric alone."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import pyattrib as pa
from pyattrib._core.errors import ArgumentError


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)).eval()
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1])
    return model, x, y


def test_evaluate_equals_each_metric_alone_and_ranks_by_direction():
    model, x, y = setup()
    masks = torch.zeros(5, 1, 6, 6, dtype=torch.bool)
    masks[:, :, 1:4, 1:4] = True
    attributors = {"saliency": pa.saliency(model), "x*grad": pa.input_x_gradient(model),
                   "smoothgrad": pa.smoothgrad(pa.saliency(model), n_samples=4)}  # fmt: skip
    metrics = {
        "sparseness": pa.metrics.sparseness(),
        "pointing": pa.metrics.pointing_game(),
        "pixel flipping": pa.metrics.pixel_flipping(model, features_in_step=4),
        "selectivity": pa.metrics.selectivity(model, patch_size=3),
        "correlation": pa.metrics.faithfulness_correlation(model, n_samples=8, subset_size=4),
        "avg sensitivity": lambda attributor: pa.metrics.avg_sensitivity(attributor, n_samples=3),
        "deletion": pa.metrics.deletion(model, n_steps=4),
    }
    table = pa.metrics.evaluate(model, x, y, attributors=attributors, metrics=metrics, masks=masks,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert table.methods == list(attributors) and table.metrics == list(metrics)
    assert table.higher_is_better == {"sparseness": True, "pointing": True, "pixel flipping": False,
                                      "selectivity": False, "correlation": True, "avg sensitivity": False,
                                      "deletion": False}  # fmt: skip
    a = pa.input_x_gradient(model)(x, target=y)
    alone = pa.metrics.pixel_flipping(model, features_in_step=4)(x, a, target=y).double().mean(1)
    torch.testing.assert_close(table.per_example["x*grad"]["pixel flipping"], alone, atol=1e-6, rtol=1e-6)
    assert math.isclose(table.scores["x*grad"]["pixel flipping"], float(alone.mean()), rel_tol=1e-6, abs_tol=1e-9)
    torch.testing.assert_close(table.per_example["x*grad"]["deletion"],
                               pa.metrics.deletion(model, n_steps=4)(x, a, target=y).auc, atol=1e-6, rtol=1e-6)  # fmt: skip
    ranks = table.ranks()
    for metric, higher in table.higher_is_better.items():
        best = max(table.methods, key=lambda m: table.scores[m][metric] * (1 if higher else -1))
        assert ranks[best][metric] == 1
    rows = table.rows()
    assert rows[0]["method"] == "saliency" and set(rows[0]) == {"method", *metrics}
    assert "sparseness ↑" in str(table)
    pd = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (3, len(metrics))


def test_evaluate_ties_share_a_rank_and_the_figure_draws():
    model, x, y = setup()
    table = pa.metrics.evaluate(model, x, y, attributors={"a": pa.saliency(model), "b": pa.saliency(model)},
                                metrics={"sparseness": pa.metrics.sparseness()})  # fmt: skip
    assert table.ranks() == {"a": {"sparseness": 1}, "b": {"sparseness": 1}}
    pytest.importorskip("matplotlib")
    fig, ax = pa.viz.evaluation(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


def test_evaluate_bad_input():
    model, x, y = setup()
    with pytest.raises(ArgumentError, match="masks="):
        pa.metrics.evaluate(model, x, y, attributors={"s": pa.saliency(model)}, metrics={"p": pa.metrics.auc()})
    with pytest.raises(ArgumentError, match="at least one"):
        pa.metrics.evaluate(model, x, y, attributors={}, metrics={"p": pa.metrics.auc()})
    with pytest.raises(ArgumentError, match="parameters"):
        pa.metrics.evaluate(model, x, y, attributors={"s": pa.saliency(model)}, metrics={"p": lambda a, b, c: a})
