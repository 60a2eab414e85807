"""The linear datamodeling score (issue 36) of pyattrib's data-attribution methods on the digits MLP.

40 random halves of a 600-example digits training set; an MLP 64-32-10 trained on each (full-batch
Adam, 150 steps, each run's initialisation from its recorded seed); the measured output is each of
100 test examples' loss. Scores are oriented so that they rise with the test loss (TracIn and the
influence functions give helpful examples positive scores, TRAK those that raise the margin, so
their negation). Prints each
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
    }  # fmt: skip
    print(f"torch {torch.__version__}, 2 threads, CPU; digits MLP 64-32-10, {N_TRAIN} train / {N_TEST} test, "
          f"{N_MODELS} models on random halves ({trained:.1f} s to train them), test-loss outputs")  # fmt: skip
    for name, make in methods.items():
        t = time.perf_counter()
        scores = -make().influence(test_x, test_y)  # helpful examples positive (TRAK: raise the margin): negate
        spent = time.perf_counter() - t
        per_test = pa.influence.lds(scores, masks, runs.outputs)
        kept = per_test[~per_test.isnan()]
        print(f"  {name:48s} LDS {kept.mean():.3f} +- {kept.std() / len(kept) ** 0.5:.3f}   {spent:6.2f} s")
    print("  (EK-FAC, and kronfluence's figures on the same models: not built yet)")


if __name__ == "__main__":
    main()
