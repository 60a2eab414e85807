"""Right for the right reasons: an attribution penalty inside a compiled training loop
===================================================================================

Ross et al. (2017) train with a loss that penalises input gradients on features known
to be irrelevant. Here the data is scikit-learn's breast_cancer set plus one *decoy*
column that copies the label in the training set (a shortcut) but is pure noise at
test time. Trained on cross-entropy alone, the model takes the shortcut and fails on
the test set. With ``lambda * ||saliency[:, decoy]||^2`` added to the loss, computed
by ``pa.saliency(model, create_graph=True)`` and compiled together with the model,
it ignores the decoy and generalises.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

import pyattrib as pa


def data(seed: int = 0):
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_tr, x_te))
    y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)
    g = torch.Generator().manual_seed(seed)
    # the decoy: a strong copy of the label in training, noise at test time
    decoy_tr = (2.0 * y_tr - 1.0) * 3.0 + 0.1 * torch.randn(len(y_tr), generator=g)
    decoy_te = 3.0 * torch.randn(len(y_te), generator=g)
    return torch.cat([x_tr, decoy_tr[:, None]], 1), y_tr, torch.cat([x_te, decoy_te[:, None]], 1), y_te


def fit(penalty: float, x: torch.Tensor, y: torch.Tensor, steps: int = 300, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 32), nn.Tanh(), nn.Linear(32, 2))
    explain = pa.saliency(model, abs=False, create_graph=True)
    decoy = x.shape[1] - 1

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        fit_loss = nn.functional.cross_entropy(model(xb), yb)
        if penalty == 0:
            return fit_loss
        attr = explain(xb, target=yb)  # d logit_y / d x, differentiable in the weights
        return fit_loss + penalty * attr[:, decoy].pow(2).mean()

    step = torch.compile(loss_fn, fullgraph=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        step(x, y).backward()
        opt.step()
    return model.eval()


def decoy_share(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of |integrated gradients| mass that lands on the decoy column."""
    attr = pa.integrated_gradients(model, n_steps=32)(x, target=y).abs()
    return float(attr[:, -1].sum() / attr.sum())


def main() -> dict[str, float]:
    x_tr, y_tr, x_te, y_te = data()
    results = {}
    for name, lam in (("plain", 0.0), ("with attribution prior", 1000.0)):
        model = fit(lam, x_tr, y_tr)
        with torch.no_grad():
            acc = float((model(x_te).argmax(1) == y_te).float().mean())
        share = decoy_share(model, x_te, y_te)
        results[name] = acc
        results[name + " decoy share"] = share
        print(f"{name:>24}: test accuracy {acc:.3f}, IG mass on decoy {share:.1%}")
    return results


if __name__ == "__main__":
    main()
