"""Concepts and feature selection: TCAV on the digits CNN, stochastic gates on breast_cancer
=========================================================================================

Part 1 trains the digits CNN of ``digits.py`` and asks, with TCAV, whether "closed loops"
(examples of 0, 6, 8, 9) push the model towards the class 8 more than random sets of digits
do, at two layers; each score comes with the p-value of a t-test against random concepts.
Writes ``examples/out/concepts_tcav.png``.

Part 2 trains a logistic-regression head behind ``BinaryConcreteStochasticGates`` on
scikit-learn's breast_cancer data (L0 penalty on the gates), and compares the features the
gates keep with the top features by integrated-gradients attribution of a plain model.
"""

from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import pyattrib as pa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
sys.path.insert(0, HERE)  # the digits CNN of digits.py
from digits import train  # noqa: E402

OUT = os.path.join(HERE, "out")
LAYERS = {"2": "conv2", "6": "fc1"}


def tcav_part(n_random: int = 10, size: int = 40) -> dict[str, dict[str, float]]:
    model, x_te, y_te, acc = train()
    g = torch.Generator().manual_seed(0)
    loops = x_te[torch.isin(y_te, torch.tensor([0, 6, 8, 9]))]
    strokes = x_te[torch.isin(y_te, torch.tensor([1, 7]))]

    def concept(i: int, name: str, pool: torch.Tensor) -> pa.concepts.Concept:
        pick = torch.randperm(len(pool), generator=g)[:size]
        return pa.concepts.Concept(i, name, DataLoader(pool[pick], batch_size=size))  # type: ignore[arg-type]

    concepts = {"closed loops": concept(0, "loops", loops), "open strokes": concept(1, "strokes", strokes)}
    randoms = [concept(10 + i, f"random{i}", x_te) for i in range(n_random)]
    eights = x_te[y_te == 8]
    check = pa.concepts.tcav(model, list(LAYERS))
    results: dict[str, dict[str, float]] = {}
    for name, c in concepts.items():
        for layer, test in check.significance(eights, c, randoms, target=8).items():
            results[f"{name} @ {LAYERS[layer]}"] = {
                "tcav": float(test["concept_scores"].mean()),
                "random": float(test["random_scores"].mean()),
                "p_value": test["p_value"],
            }
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    names = list(results)
    ax.bar(range(len(names)), [results[n]["tcav"] for n in names], color="tab:blue", label="concept vs random")
    ax.scatter(range(len(names)), [results[n]["random"] for n in names], color="k", zorder=3,
               label="random vs random (mean)")  # fmt: skip
    for i, n in enumerate(names):
        ax.text(i, results[n]["tcav"] + 0.02, f"p={results[n]['p_value']:.2g}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set(ylim=(0, 1.1), ylabel="TCAV score (sign count) for class 8",
           title=f"digits CNN (accuracy {acc:.1%}): which concepts make an 8?")  # fmt: skip
    ax.legend(fontsize=8)
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "concepts_tcav.png"), dpi=110)
    plt.close(fig)
    return results


def gates_part(k: int = 5, epochs: int = 300) -> dict[str, object]:
    data = load_breast_cancer()
    x = torch.tensor(StandardScaler().fit_transform(data.data), dtype=torch.float32)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    gates = pa.modules.BinaryConcreteStochasticGates(x.shape[1], reg_weight=0.02)
    head = nn.Linear(x.shape[1], 2)
    opt = torch.optim.Adam([*gates.parameters(), *head.parameters()], lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        gated, penalty = gates(x)
        (nn.functional.cross_entropy(head(gated), y) + penalty).backward()
        opt.step()
    gates.eval()
    kept = gates.get_gate_values()
    plain = nn.Linear(x.shape[1], 2)
    opt = torch.optim.Adam(plain.parameters(), lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(plain(x), y).backward()
        opt.step()
    importance = pa.integrated_gradients(plain)(x, target=y).abs().mean(0)
    top_gates = set(kept.argsort(descending=True)[:k].tolist())
    top_attr = set(importance.argsort(descending=True)[:k].tolist())
    with torch.no_grad():
        accuracy = float((head(gates(x)[0]).argmax(1) == y).float().mean())
    # breast_cancer's features come in near-duplicate groups (radius, perimeter, area, ...):
    # how close is each gate pick to some top-attribution feature?
    corr = torch.corrcoef(x.T).abs()
    closeness = corr[sorted(top_gates)][:, sorted(top_attr)].amax(1)
    return {
        "open gates": int((kept > 0.5).sum()),
        "accuracy with gates": accuracy,
        "top gates": [data.feature_names[i] for i in sorted(top_gates)],
        "top attributions": [data.feature_names[i] for i in sorted(top_attr)],
        "overlap": len(top_gates & top_attr) / k,
        "mean closest |correlation|": float(closeness.mean()),
    }


def main() -> dict[str, object]:
    tcav = tcav_part()
    print(f"{'concept @ layer':<28}{'TCAV':>8}{'random':>8}{'p-value':>10}")
    for name, row in tcav.items():
        print(f"{name:<28}{row['tcav']:>8.3f}{row['random']:>8.3f}{row['p_value']:>10.3g}")
    gates = gates_part()
    print(f"\nstochastic gates on breast_cancer: {gates['open gates']} of 30 gates open, "
          f"accuracy {gates['accuracy with gates']:.1%}")  # fmt: skip
    print("top-5 by gate value:       ", ", ".join(gates["top gates"]))  # type: ignore[arg-type]
    print("top-5 by |IG| of a plain model:", ", ".join(gates["top attributions"]))  # type: ignore[arg-type]
    print(f"overlap: {gates['overlap']:.0%}; each gate pick's closest |correlation| with an attribution "
          f"pick, mean: {gates['mean closest |correlation|']:.2f}")  # fmt: skip
    return {"tcav": tcav, "gates": gates}


if __name__ == "__main__":
    main()
