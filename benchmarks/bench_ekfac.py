"""EK-FAC influence (issue 36): fitting the factors plus pairwise scores on the digits CNN,
pyattrib against kronfluence 1.0.1 at the same settings, on this CPU (2 threads).

5,000 training images (the 1,797 digits, 8x8, tiled with small Gaussian jitter) and 200 queries;
a CNN conv(1->16)-ReLU-conv(16->32)-ReLU-pool-linear(32*4*4->10); EK-FAC over every Conv2d and
Linear, the empirical Fisher, damping 1e-8, batches of 128 for fitting and scoring. Prints each
library's seconds (median of interleaved rounds), examples per second (fitting reads the data
twice, scoring once), the ratio, the peak tensor memory for two batch sizes, and the largest
difference between the two libraries' scores.

``python benchmarks/bench_ekfac.py``
"""

from __future__ import annotations

import copy
import logging
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import interleaved, peak_tensor_mb  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")
logging.getLogger("kronfluence").setLevel(logging.ERROR)
N_TRAIN, N_TEST, BATCH = 5000, 200, 128


def data() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    reps = -(-N_TRAIN // len(x))
    train_x = (x.repeat(reps, 1, 1, 1)[:N_TRAIN] + 0.05 * torch.randn(N_TRAIN, 1, 8, 8, generator=g))
    return train_x, y.repeat(reps)[:N_TRAIN], x[:N_TEST], y[:N_TEST]


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)).eval()  # fmt: skip


def kronfluence_run(model: nn.Module, train: TensorDataset, query: TensorDataset) -> torch.Tensor:
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class Classify(Task):
        def compute_train_loss(self, batch, model, sample=False):
            return F.cross_entropy(model(batch[0]), batch[1], reduction="sum")

        def compute_measurement(self, batch, model):
            return self.compute_train_loss(batch, model)

    prepared = prepare_model(copy.deepcopy(model), Classify())
    an = Analyzer("bench", prepared, Classify(), output_dir=tempfile.mkdtemp(), disable_tqdm=True,
                  disable_model_save=True)  # fmt: skip
    an.fit_all_factors("f", train, factor_args=FactorArguments(use_empirical_fisher=True), per_device_batch_size=BATCH,
                       overwrite_output_dir=True)  # fmt: skip
    an.compute_pairwise_scores("s", "f", query_dataset=query, train_dataset=train, score_args=ScoreArguments(),
                               per_device_query_batch_size=N_TEST, per_device_train_batch_size=BATCH,
                               overwrite_output_dir=True)  # fmt: skip
    return an.load_pairwise_scores("s")["all_modules"]


def pyattrib_run(model: nn.Module, train: TensorDataset, tx: torch.Tensor, ty: torch.Tensor, batch: int = BATCH):
    ek = pa.influence.ekfac_influence(model, train, fisher="empirical", batch_size=batch)
    return ek.fit_factors().influence(tx, ty)


def main() -> None:
    x, y, tx, ty = data()
    model, train, query = cnn(), TensorDataset(x, y), TensorDataset(tx, ty)
    ours, theirs = pyattrib_run(model, train, tx, ty), kronfluence_run(model, train, query)
    scale = theirs.abs().max().item()
    times = interleaved({"pyattrib": lambda: pyattrib_run(model, train, tx, ty),
                         "kronfluence": lambda: kronfluence_run(model, train, query)}, rounds=3, warmup=1)  # fmt: skip
    print(f"torch {torch.__version__}, 2 threads, CPU; digits CNN, {N_TRAIN} train x {N_TEST} queries, EK-FAC over "
          f"3 layers, empirical Fisher, damping 1e-8, batch {BATCH}")  # fmt: skip
    passes = 3 * N_TRAIN + N_TEST  # two fitting passes and one scoring pass over the training data
    for name, t in times.items():
        print(f"  {name:12s} fit + pairwise scores {t:7.2f} s   {passes / t:8.0f} examples/s")
    print(f"  ratio pyattrib / kronfluence: {times['pyattrib'] / times['kronfluence']:.2f}x (target <= 1.0x)")
    print(f"  largest score difference: {(ours - theirs).abs().max().item() / scale:.1e} of the largest score")
    for batch in (32, 128):
        mb = peak_tensor_mb(lambda b=batch: pyattrib_run(model, train, tx[:50], ty[:50], b))
        print(f"  pyattrib peak tensor memory, batch_size {batch:4d} (50 queries): {mb:7.1f} MB")


if __name__ == "__main__":
    main()
