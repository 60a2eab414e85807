"""The linear datamodeling score (issue 36) of pyattrib's data-attribution methods on the digits MLP.

40 random halves of a 600-example digits training set; an MLP 64-32-10 trained on each (full-batch
Adam, 150 steps, each run's initialisation from its recorded seed); the measured output is each of
100 test examples' loss. Scores are oriented so that they rise with the test loss (TracIn and the
influence functions give helpful examples positive scores, TRAK those that raise the margin, so
their negation). EK-FAC and K-FAC run in pyattrib and, at the same settings, in kronfluence 1.0.1
(heuristic damping: 0.1 times the mean eigenvalue of each layer). Prints each
method's LDS (mean over test examples, with its standard error) and its time.

``python benchmarks/bench_lds.py``
"""

from __future__ import annotations

import time
import warnings

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

import pyattrib as pa

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
N_TRAIN, N_TEST, N_MODELS, STEPS = 600, 100, 40, 150


def data() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN : N_TRAIN + N_TEST], y[N_TRAIN : N_TRAIN + N_TEST]


class Kronfluence:
    """kronfluence 1.0.1's EK-FAC with the same model, data and damping rule, as an object with
    ``influence(x, y)`` (its sampled Fisher draws labels with torch's global generator, seeded)."""

    def __init__(self, model: nn.Module, train_set: TensorDataset, empirical: bool) -> None:
        import copy
        import logging
        import tempfile

        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.arguments import FactorArguments, ScoreArguments
        from kronfluence.task import Task

        class Classify(Task):
            def compute_train_loss(self, batch, model, sample=False):
                logits = model(batch[0])
                if sample:
                    with torch.no_grad():
                        labels = torch.multinomial(torch.softmax(logits.detach(), -1), 1).flatten()
                    return nn.functional.cross_entropy(logits, labels, reduction="sum")
                return nn.functional.cross_entropy(logits, batch[1], reduction="sum")

            def compute_measurement(self, batch, model):
                return self.compute_train_loss(batch, model)

        logging.getLogger("kronfluence").setLevel(logging.ERROR)
        torch.manual_seed(0)
        self.train_set, self.score_args = train_set, ScoreArguments(damping_factor=None)
        self.analyzer = Analyzer("lds", prepare_model(copy.deepcopy(model), Classify()), Classify(),
                                 output_dir=tempfile.mkdtemp(), disable_tqdm=True, disable_model_save=True)
        self.analyzer.fit_all_factors("f", train_set, factor_args=FactorArguments(use_empirical_fisher=empirical),
                                      per_device_batch_size=100, overwrite_output_dir=True)  # fmt: skip

    def influence(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.analyzer.compute_pairwise_scores("s", "f", query_dataset=TensorDataset(x, y), train_dataset=self.train_set,
                                              score_args=self.score_args, per_device_query_batch_size=len(x),
                                              per_device_train_batch_size=100, overwrite_output_dir=True)  # fmt: skip
        return self.analyzer.load_pairwise_scores("s")["all_modules"]


def main() -> None:
    x, y, test_x, test_y = data()

    def train(indices: torch.Tensor, generator: torch.Generator) -> nn.Module:
        model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(STEPS):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[indices]), y[indices]).backward()
            optimizer.step()
        return model.eval()

    def test_loss(model: nn.Module) -> torch.Tensor:
        return nn.functional.cross_entropy(model(test_x), test_y, reduction="none")

    t = time.perf_counter()
    masks = pa.influence.subsets(N_TRAIN, N_MODELS, 0.5, generator=torch.Generator().manual_seed(0))
    runs = pa.influence.train_on_subsets(train, test_loss, masks, generator=torch.Generator().manual_seed(1))
    trained = time.perf_counter() - t
    full = train(torch.arange(N_TRAIN), torch.Generator().manual_seed(0))
    train_set = TensorDataset(x, y)
    methods = {
        "TracInCP (final checkpoint)": lambda: pa.influence.tracin_cp(full, train_set, [full.state_dict()]),
        "NaiveInfluenceFunction (exact Hessian)": lambda: pa.influence.naive_influence_function(
            full, train_set, projection_dim=None, hessian_reg=1e-3),
        "ArnoldiInfluenceFunction (200 iters, 50 dims)": lambda: pa.influence.arnoldi_influence_function(
            full, train_set, arnoldi_dim=200, projection_dim=50, hessian_reg=1e-3),
        "TRAK (1 model, k=512)": lambda: pa.influence.trak(full, train_set, [full.state_dict()], projection_dim=512,
                                                           generator=torch.Generator().manual_seed(0)),
        "TRAK (5 models on the full set, k=512)": lambda: pa.influence.trak(
            full, train_set, [train(torch.arange(N_TRAIN), torch.Generator().manual_seed(s)).state_dict()
                              for s in range(5)], projection_dim=512, generator=torch.Generator().manual_seed(0)),
        "EK-FAC (pyattrib, sampled Fisher, heuristic damping)": lambda: pa.influence.ekfac_influence(
            full, train_set, damping=None, batch_size=100).fit_factors(generator=torch.Generator().manual_seed(0)),
        "EK-FAC (pyattrib, empirical Fisher, heuristic damping)": lambda: pa.influence.ekfac_influence(
            full, train_set, damping=None, fisher="empirical", batch_size=100).fit_factors(),
        "K-FAC (pyattrib, empirical Fisher, heuristic damping)": lambda: pa.influence.ekfac_influence(
            full, train_set, strategy="kfac", damping=None, fisher="empirical", batch_size=100).fit_factors(),
        "EK-FAC (kronfluence, sampled Fisher, heuristic damping)": lambda: Kronfluence(full, train_set, False),
        "EK-FAC (kronfluence, empirical Fisher, heuristic damping)": lambda: Kronfluence(full, train_set, True),
    }  # fmt: skip
    print(f"torch {torch.__version__}, 2 threads, CPU; digits MLP 64-32-10, {N_TRAIN} train / {N_TEST} test, "
          f"{N_MODELS} models on random halves ({trained:.1f} s to train them), test-loss outputs")  # fmt: skip
    for name, make in methods.items():
        t = time.perf_counter()
        scores = -make().influence(test_x, test_y)  # helpful examples positive (TRAK: raise the margin): negate
        spent = time.perf_counter() - t
        per_test = pa.influence.lds(scores, masks, runs.outputs)
        kept = per_test[~per_test.isnan()]
        print(f"  {name:56s} LDS {kept.mean():.3f} +- {kept.std() / len(kept) ** 0.5:.3f}   {spent:6.2f} s")


if __name__ == "__main__":
    main()
