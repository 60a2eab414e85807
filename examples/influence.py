"""Find mislabelled training examples with TracIn, EK-FAC and TRAK
=================================================================

Flips the labels of 5% of the digits training set, trains the digits CNN of ``digits.py``
(saving 3 checkpoints), and ranks the training examples by self-influence with TracInCP, EK-FAC
influence functions and TRAK: the flipped ones come first (precision at k is printed for each).
Shows the strongest proponents and opponents of one test image
(``examples/out/influence_proponents.png``), then measures which method predicts the effect of
training on a subset best: the linear datamodeling score (LDS) of each on the digits MLP, from
models trained on random halves of a training set.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import pyattrib as pa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
sys.path.insert(0, HERE)  # the digits CNN of digits.py
from digits import make_cnn  # noqa: E402

OUT = os.path.join(HERE, "out")


def main(epochs: int = 12, flip_share: float = 0.05) -> dict[str, float]:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0)
    flipped = torch.randperm(len(y_tr))[: int(flip_share * len(y_tr))]
    noisy = y_tr.clone()
    noisy[flipped] = (noisy[flipped] + torch.randint(1, 10, (len(flipped),))) % 10  # a wrong label
    model = make_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    checkpoints = []
    for epoch in range(epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_tr[idx]), noisy[idx]).backward()
            opt.step()
        if epoch % (epochs // 3) == epochs // 3 - 1:
            checkpoints.append({k: v.clone() for k, v in model.state_dict().items()})
    model.eval()
    train = TensorDataset(x_tr, noisy)
    tracin = pa.influence.tracin_cp(model, train, checkpoints, learning_rates=[0.05] * 3)
    ekfac = pa.influence.ekfac_influence(model, train, damping=None, batch_size=128)
    ekfac.fit_factors(generator=torch.Generator().manual_seed(0))
    trak = pa.influence.trak(model, train, checkpoints, projection_dim=256, generator=torch.Generator().manual_seed(0))
    self_scores = {"TracInCP": tracin.self_influence(), "EK-FAC": ekfac.self_influence(),
                   "TRAK": trak.influence(x_tr, noisy).diagonal()}  # fmt: skip
    is_flipped = torch.zeros(len(y_tr), dtype=torch.bool)
    is_flipped[flipped] = True
    k = len(flipped)
    precisions = {name: float(is_flipped[s.argsort(descending=True)[:k]].float().mean())
                  for name, s in self_scores.items()}  # fmt: skip
    ranked = self_scores["TracInCP"].argsort(descending=True)
    precision = precisions["TracInCP"]
    found = float(is_flipped[ranked[: 3 * k]].float().sum() / k)
    with torch.no_grad():
        accuracy = float((model(x_te).argmax(1) == y_te).float().mean())
    # proponents and opponents of one test image
    pro, pro_score = tracin.k_most_influential(x_te[:1], y_te[:1], k=4, proponents=True)
    opp, opp_score = tracin.k_most_influential(x_te[:1], y_te[:1], k=4, proponents=False)
    fig, axes = plt.subplots(1, 9, figsize=(12, 1.9), constrained_layout=True)
    axes[0].imshow(x_te[0, 0].numpy(), cmap="gray_r")
    axes[0].set_title(f"test: {int(y_te[0])}", fontsize=8)
    for ax, i, s, kind in [
        *zip(axes[1:5], pro[0], pro_score[0], ["+"] * 4),
        *zip(axes[5:], opp[0], opp_score[0], ["-"] * 4),
    ]:
        ax.imshow(x_tr[i, 0].numpy(), cmap="gray_r")
        mark = " (flipped)" if is_flipped[i] else ""
        ax.set_title(f"{kind} label {int(noisy[i])}{mark}\n{float(s):.2g}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.suptitle("TracInCP: strongest proponents (+) and opponents (-) of a test image", fontsize=9)
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "influence_proponents.png"), dpi=110)
    plt.close(fig)
    print(f"test accuracy {accuracy:.1%}; {k} of {len(y_tr)} training labels flipped")
    for name, p in precisions.items():
        print(f"{name:9s} precision of self-influence at k={k}: {p:.1%} (chance {flip_share:.0%})")
    print(f"TracInCP: flipped found in the top {3 * k}: {found:.1%}")
    scores = lds_table()
    return {"precision_at_k": precision, "recall_at_3k": found, "accuracy": accuracy,
            **{f"precision_at_k {name}": p for name, p in precisions.items()},
            **{f"LDS {name}": v for name, v in scores.items()}}  # fmt: skip


def lds_table(n_train: int = 300, n_test: int = 60, n_models: int = 16, steps: int = 100) -> dict[str, float]:
    """The LDS of each method on the digits MLP: ``n_models`` MLPs trained on random halves (seeds
    recorded by ``train_on_subsets``); each method's scores of the model trained on everything
    predict the test losses of the subset models (larger is better)."""
    digits = load_digits()
    x, y = torch.tensor(digits.data, dtype=torch.float32) / 16.0, torch.tensor(digits.target)
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train : n_train + n_test], y[n_train : n_train + n_test]

    def fit(indices: torch.Tensor, generator: torch.Generator) -> nn.Module:
        mlp = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
        with torch.no_grad():
            for p in mlp.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
        opt = torch.optim.Adam(mlp.parameters(), lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(mlp(x_tr[indices]), y_tr[indices]).backward()
            opt.step()
        return mlp.eval()

    def test_loss(mlp: nn.Module) -> torch.Tensor:
        return nn.functional.cross_entropy(mlp(x_te), y_te, reduction="none")

    masks = pa.influence.subsets(n_train, n_models, 0.5, generator=torch.Generator().manual_seed(0))
    runs = pa.influence.train_on_subsets(fit, test_loss, masks, generator=torch.Generator().manual_seed(1))
    full, train = fit(torch.arange(n_train), torch.Generator().manual_seed(0)), TensorDataset(x_tr, y_tr)
    methods: dict[str, Any] = {
        "TracInCP": pa.influence.tracin_cp(full, train, [full.state_dict()]),
        "EK-FAC": pa.influence.ekfac_influence(full, train, damping=None).fit_factors(
            generator=torch.Generator().manual_seed(0)),
        "TRAK": pa.influence.trak(full, train, [full.state_dict()], projection_dim=256,
                                  generator=torch.Generator().manual_seed(0)),
    }  # fmt: skip
    out = {}
    print(f"LDS on the digits MLP ({n_models} models on random halves of {n_train} examples, {n_test} test losses):")
    for name, method in methods.items():
        per_test = pa.influence.lds(-method.influence(x_te, y_te), masks, runs.outputs)  # helpful: lower loss
        out[name] = float(per_test[~per_test.isnan()].mean())
        print(f"  {name:9s} LDS {out[name]:.3f}")
    return out


if __name__ == "__main__":
    main()
