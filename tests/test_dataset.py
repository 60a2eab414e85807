"""attribute_dataset: shards on disk, summaries, restarts, and torchrun with two processes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from pyattrib.data import ClassSummarizer, Count, Mean, Summarizer, attribute_dataset, load_attributions
from tests.dataset_job import job


def setup(n=30):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    x, y = torch.randn(n, 5), torch.arange(n) % 3
    return model, x, y


def test_shards_and_summaries_equal_one_big_call(tmp_path):
    model, x, y = setup()
    ig = pa.integrated_gradients(model, n_steps=16)
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    result = attribute_dataset(ig, loader, out=str(tmp_path), summarize=ClassSummarizer([Mean(), Count()]),
                               show_progress=False)  # fmt: skip
    expected = ig(x, target=y)
    stored = load_attributions(str(tmp_path))
    assert len(stored) == 30 and np.array_equal(stored.ids, np.arange(30))
    np.testing.assert_allclose(stored.array(0), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored.get([29, 3])[0], expected[[29, 3]].numpy(), rtol=1e-5, atol=1e-6)
    for label in range(3):
        summary = result.summary.class_summaries[label][0]
        assert summary["count"] == 10
        torch.testing.assert_close(summary["mean"], expected[y == label].mean(0), rtol=1e-5, atol=1e-6)
    # dict batches, a fixed target, and a plain Summarizer
    dicts = DataLoader([{"x": a, "label": b} for a, b in zip(x, y)], batch_size=8)
    plain = attribute_dataset(ig, dicts, target=1, summarize=Summarizer([Mean()]), show_progress=False)
    torch.testing.assert_close(plain.summary.summary["mean"], ig(x, target=1).mean(0), rtol=1e-5, atol=1e-6)


def test_an_interrupted_run_restarts_without_losing_or_repeating(tmp_path):
    model, x, y = setup()
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # 8 batches
    saliency = pa.saliency(model)
    calls = []

    def failing(inputs, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the job is killed after three batches
        calls.append(len(inputs))
        return saliency(inputs, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        attribute_dataset(failing, loader, out=str(tmp_path), show_progress=False)
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    rerun = []

    def counting(inputs, **kwargs):
        rerun.append(len(inputs))
        return saliency(inputs, **kwargs)

    result = attribute_dataset(counting, loader, out=str(tmp_path), summarize=Summarizer([Mean(), Count()]),
                               show_progress=False)  # fmt: skip
    assert len(rerun) == 5  # only the batches not finished before
    stored = load_attributions(str(tmp_path))
    assert sorted(stored.ids.tolist()) == list(range(30))  # nothing lost, nothing twice
    np.testing.assert_allclose(stored.array(0), saliency(x, target=y).numpy(), rtol=1e-5, atol=1e-6)
    assert result.summary.summary["count"] == 30  # finished shards are read back for the summary


def test_torchrun_with_two_processes_equals_one_process(tmp_path):
    single = job(str(tmp_path / "single"))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), OMP_NUM_THREADS="1")
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "tests.dataset_job", str(tmp_path / "two"),
         str(tmp_path / "summary.pt")],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    one, two = load_attributions(str(tmp_path / "single")), load_attributions(str(tmp_path / "two"))
    assert sorted(two.ids.tolist()) == list(range(45)) and len(two) == 45
    np.testing.assert_array_equal(two.array(0), one.array(0))  # random per batch, independent of world size
    merged = torch.load(tmp_path / "summary.pt")
    for label, summary in single.class_summaries.items():
        assert merged[label][0]["count"] == summary[0]["count"]
        torch.testing.assert_close(merged[label][0]["mean"], summary[0]["mean"])


@pytest.mark.parametrize("per_pass", [None, 3])
def test_dataloader_attribution_equals_captum(per_pass):
    from unittest.mock import Mock, patch

    from captum.attr import FeatureAblation
    from captum.attr._core.dataloader_attr import DataLoaderAttribution

    model, x, y = setup(22)
    labels = y[:, None].float()
    dataset = TensorDataset(x, labels)
    mask = (torch.tensor([[0, 0, 1, 2, 2]]), torch.tensor([[3]]))

    def forward(inputs, extra):
        return model(inputs)[:, 0] + extra[:, 0]

    def reduce(accum, out, inputs):
        sq = (out - inputs[1][:, 0]) ** 2
        return sq if accum is None else torch.cat([accum, sq])

    to_metric = lambda accum: accum.mean()  # noqa: E731  a dataset-level loss
    iters = Mock(wraps=DataLoader.__iter__)
    with patch.object(DataLoader, "__iter__", lambda self: iters(self)):
        ours = pa.data.dataloader_attribution(forward, reduce=reduce, to_metric=to_metric,
                                              perturbations_per_pass=per_pass)(
            DataLoader(dataset, batch_size=5), (0.5, 0.0), feature_mask=mask)  # fmt: skip
    assert iters.call_count == 2 + (1 if per_pass is None else 2)  # shapes, base pass, ablation passes
    theirs = DataLoaderAttribution(FeatureAblation(forward)).attribute(
        DataLoader(dataset, batch_size=5), baselines=(0.5, 0.0), feature_mask=mask, reduce=reduce,
        to_metric=to_metric, perturbations_per_pass=per_pass or 1,
    )  # fmt: skip
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
