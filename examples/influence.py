"""Find mislabelled training examples with TracIn self-influence
=============================================================

Flips the labels of 5% of the digits training set, trains the digits CNN of ``digits.py``
(saving 3 checkpoints), and ranks the training examples by TracInCP self-influence: the
flipped ones come first (precision at k is printed). Then shows the strongest proponents
and opponents of one test image (``examples/out/influence_proponents.png``).
"""

from __future__ import annotations

import os
import sys

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
    tracin = pa.influence.tracin_cp(model, TensorDataset(x_tr, noisy), checkpoints, learning_rates=[0.05] * 3)
    ranked = tracin.self_influence().argsort(descending=True)
    is_flipped = torch.zeros(len(y_tr), dtype=torch.bool)
    is_flipped[flipped] = True
    k = len(flipped)
    precision = float(is_flipped[ranked[:k]].float().mean())
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
    print(f"precision of self-influence at k={k}: {precision:.1%} (chance {flip_share:.0%}); "
          f"flipped found in the top {3 * k}: {found:.1%}")  # fmt: skip
    return {"precision_at_k": precision, "recall_at_3k": found, "accuracy": accuracy}


if __name__ == "__main__":
    main()
