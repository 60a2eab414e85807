"""Sample-efficient Shapley estimates: error against exact Shapley values as a function of model
evaluations, pyattrib's samplers next to Captum's ShapleyValueSampling and KernelShap, one process,
same models and data.

Run: python benchmarks/bench_shapley.py
Targets (issue 37): the same mean error as Captum's ShapleyValueSampling with at most 0.25x its
evaluations; at most 0.5x Captum KernelShap's evaluations for kernel_shap.

Error: mean absolute difference from the exact values (``pa.shapley_values``, all 2^F coalitions),
over examples, features and seeds. Evaluations: rows the model was sent, per example (pyattrib
evaluates each distinct coalition of the sampled orderings once; Captum one per ordering step). An estimator's error falls as c / sqrt(evaluations); c is fitted
per method over the sample sizes, and the evaluations a method needs for Captum's error are
(c_method / c_captum)^2 of Captum's.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import torch
from captum.attr import KernelShap, ShapleyValueSampling
from sklearn.datasets import load_breast_cancer
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  (threads)

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")
SEEDS = range(8)


def breast_cancer_mlp(n_features: int = 10) -> tuple[nn.Module, torch.Tensor]:
    data = load_breast_cancer()
    x = torch.tensor(data.data[:, :n_features], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x[:16]


def tanh_mlp(n_features: int = 12) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(n_features, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2)).eval()
    return model, torch.randn(16, n_features)


def error(estimate, exact) -> float:
    return float((estimate - exact).abs().mean())


def fit(points: list[tuple[int, float]]) -> float:
    """c in error = c / sqrt(evaluations), least squares in log space with the slope fixed."""
    return math.exp(sum(math.log(e * math.sqrt(n)) for n, e in points) / len(points))


def svs_curves(model, x, exact, n_f):
    curves = {}
    sizes = [10, 20, 40, 80]
    captum = ShapleyValueSampling(model)
    curves["captum ShapleyValueSampling"] = [
        (s * n_f + 1, sum(error(captum.attribute(x, target=1, n_samples=s), exact) for _ in SEEDS) / len(SEEDS))
        for s in sizes
    ]  # fmt: skip  (Captum draws from torch's global generator; each call draws anew)
    rows = [0]

    def counted(v):  # pyattrib evaluates each distinct coalition once: count what it sends
        rows[0] += len(v)
        return model(v)

    for sampler in ("random", "antithetic", "stratified"):
        ss = [s for s in (2 * n_f, 4 * n_f, 8 * n_f)] if sampler == "stratified" else sizes
        pts = []
        for s in ss:
            rows[0] = 0
            errs = [error(pa.shapley_value_sampling(counted, n_samples=s, sampler=sampler)(
                x, target=1, generator=torch.Generator().manual_seed(seed)), exact) for seed in SEEDS]  # fmt: skip
            pts.append((round(rows[0] / len(SEEDS) / len(x)), sum(errs) / len(errs)))
        curves[f"pyattrib shapley_value_sampling sampler={sampler!r}"] = pts
    return curves


def kernel_curves(model, x, exact):
    curves = {}
    sizes = [50, 100, 200, 400]
    captum = KernelShap(model)
    xs = x[:8]
    curves["captum KernelShap"] = [
        (s, sum(error(captum.attribute(xs, target=1, n_samples=s), exact[:8]) for _ in range(3)) / 3) for s in sizes
    ]
    for paired in (False, True):
        pts = []
        for s in sizes:
            errs = [error(pa.kernel_shap(model, n_samples=s, paired=paired)(
                xs, target=1, generator=torch.Generator().manual_seed(seed)), exact[:8]) for seed in SEEDS]  # fmt: skip
            pts.append((s, sum(errs) / len(errs)))
        curves[f"pyattrib kernel_shap paired={paired}"] = pts
    return curves


def report(title: str, curves: dict, reference: str) -> None:
    print(title)
    c_ref = fit(curves[reference])
    for name, pts in curves.items():
        c = fit(pts)
        row = "  ".join(f"{n:5d}: {e:.2e}" for n, e in pts)
        print(f"  {name:<52} {row}   evaluations for the same error: {(c / c_ref) ** 2:.2f}x {reference.split()[1]}")


def main() -> None:
    print(f"torch {torch.__version__}, CPU; mean |estimate - exact| over examples, features and seeds "
          "(evaluations per example: error)")  # fmt: skip
    for name, (model, x) in {"breast-cancer MLP, 10 features": breast_cancer_mlp(),
                             "tanh MLP, 12 features": tanh_mlp()}.items():  # fmt: skip
        n_f = x.shape[1]
        exact = pa.shapley_values(model)(x, target=1)
        torch.manual_seed(0)
        report(f"{name}: Shapley value sampling (target <= 0.25x)", svs_curves(model, x, exact, n_f),
               "captum ShapleyValueSampling")  # fmt: skip
        torch.manual_seed(0)
        report(f"{name}: KernelSHAP (target <= 0.5x)", kernel_curves(model, x, exact), "captum KernelShap")


if __name__ == "__main__":
    main()
