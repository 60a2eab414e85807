"""Five explanations of one tabular model, side by side
====================================================

Trains a small MLP on scikit-learn's breast_cancer data (30 features) in a few seconds,
then attributes the predicted class of the test set with feature ablation, Shapley value
sampling, KernelSHAP, LIME and integrated gradients (all against the training mean), and
draws each method's share of mean ``|attribution|`` per feature with ``pyattrib.viz.feature_attr``:
``examples/out/tabular_attributions.png``. Downloads nothing.
"""

from __future__ import annotations

import os

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")


def train(seed: int = 0):
    data = load_breast_cancer()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=0.3, random_state=seed, stratify=data.target
    )
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_tr, x_te))
    y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_tr), y_tr).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x_te).argmax(1) == y_te).float().mean())
    return model, x_tr, x_te, acc, list(data.feature_names)


def main() -> dict[str, float]:
    model, x_tr, x_te, acc, names = train()
    print(f"test accuracy: {acc:.3f}")
    with torch.no_grad():
        target = model(x_te).argmax(1)
    baseline = x_tr.mean(0, keepdim=True)
    gen = torch.Generator().manual_seed(0)
    methods = {
        "feature ablation": pa.feature_ablation(model)(x_te, baseline, target=target),
        "Shapley sampling": pa.shapley_value_sampling(model, n_samples=50)(
            x_te, baseline, target=target, generator=gen
        ),
        "KernelSHAP": pa.kernel_shap(model, n_samples=300)(x_te, baseline, target=target, generator=gen),
        "LIME": pa.lime(model, n_samples=300)(x_te, baseline, target=target, generator=gen),
        "integrated gradients": pa.integrated_gradients(model)(x_te, baseline, target=target),
    }
    importance = {k: v.abs().mean(0) for k, v in methods.items()}
    os.makedirs(OUT, exist_ok=True)
    ordered = {"Shapley sampling": methods["Shapley sampling"], **methods}  # bars ordered by the Shapley estimate
    fig, _ = viz.feature_attr(ordered, names, top=12, title="breast_cancer MLP: top features by Shapley sampling")
    path = os.path.join(OUT, "tabular_attributions.png")
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    # how much do the methods agree with the Shapley estimate? (rank correlation of importances)
    ref = importance["Shapley sampling"].argsort().argsort().float()
    agreement = {}
    for name, imp in importance.items():
        r = imp.argsort().argsort().float()
        agreement[name] = float(torch.corrcoef(torch.stack([ref, r]))[0, 1])
        print(f"{name:>22}: Spearman vs Shapley sampling {agreement[name]:+.2f}")
    return {"accuracy": acc, **agreement}


if __name__ == "__main__":
    main()
