"""Streaming summaries: Captum's statistics and values, and the exact batch statistics."""

from __future__ import annotations

import pytest
import torch
from captum.attr import CommonStats as CaptumCommonStats
from captum.attr import Summarizer as CaptumSummarizer

from pyattrib.data import MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, StdDev, Sum, Summarizer, Var


def test_summary_equals_the_batch_statistics():
    data = torch.randn(50, 3, 4, dtype=torch.float64) * 3 + 1
    s = Summarizer([Mean(), Var(), Var(order=1), StdDev(order=1), Min(), Max(), Sum(), Count(), MSE()])
    for row in data:
        s.update(row)
    out = s.summary
    torch.testing.assert_close(out["mean"], data.mean(0))
    torch.testing.assert_close(out["variance"], data.var(0, correction=0))
    torch.testing.assert_close(out["sample_variance"], data.var(0))
    torch.testing.assert_close(out["sample_std_dev"], data.std(0))
    torch.testing.assert_close(out["min"], data.amin(0))
    torch.testing.assert_close(out["max"], data.amax(0))
    torch.testing.assert_close(out["sum"], data.sum(0))
    assert out["count"] == 50
    torch.testing.assert_close(out["mse"], ((data - data.mean(0)) ** 2).sum(0))


def test_summaries_equal_captum_for_tuples_and_numbers():
    torch.manual_seed(0)
    stream = [(torch.randn(2, 3), float(k)) for k in range(7)]
    ours, theirs = Summarizer(CommonStats()), CaptumSummarizer(CaptumCommonStats())
    for item in stream:
        ours.update(item)
        theirs.update(item)
    for a, b in zip(ours.summary, theirs.summary):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(torch.as_tensor(a[key]).double(), torch.as_tensor(b[key]).double())


def test_class_summarizer_splits_by_label():
    x = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    s = ClassSummarizer([Mean(), Count()])
    s.update(x, labels)
    assert set(s.class_summaries) == {0, 1, 2}
    torch.testing.assert_close(s.class_summaries[0][0]["mean"], x[labels == 0].mean(0))
    assert s.class_summaries[1][0]["count"] == 2
    torch.testing.assert_close(s.summary[0]["mean"], x.mean(0))
    with pytest.raises(ValueError, match="labels"):
        s.update(x, [0, 1])


def test_batched_and_merged_updates_equal_row_by_row_updates():
    torch.manual_seed(0)
    data = torch.randn(30, 4, dtype=torch.float64)
    stats = [Mean(), Var(order=1), Min(), Max(), Sum(), Count(), MSE()]
    rowwise, batched, left, right = (Summarizer(stats) for _ in range(4))
    for row in data:
        rowwise.update(row)
    batched.update_rows(data[:7])
    batched.update_rows(data[7:])
    left.update_rows(data[:12])
    right.update_rows(data[12:])
    left.merge(right)  # e.g. two processes' summaries
    for other in (batched, left):
        for key, value in rowwise.summary.items():
            torch.testing.assert_close(torch.as_tensor(other.summary[key]), torch.as_tensor(value))
