"""Which explanation of the digits CNN is best? Five methods, five metrics, one table
==================================================================================

Trains the digits CNN of ``digits.py`` (seconds, nothing downloaded), explains 64 test
images with saliency, integrated gradients, smoothgrad(IG), DeepLift and occlusion, and
scores each method:

- deletion AUC (lower is better) and insertion AUC (higher), of the softmax probability;
- infidelity (lower) against Gaussian input noise;
- max-sensitivity (lower);
- the model-randomisation check: Spearman correlation with the attributions of a model
  whose top layer, then all layers, are re-initialised (lower means the method depends on
  what the model learnt).

Writes ``examples/out/evaluate_curves.png`` (mean deletion/insertion curves per method) and
prints the table.

``quantus_table()`` then scores six methods with one metric of each of Quantus's categories in
one ``pa.metrics.evaluate`` call (faithfulness correlation, average sensitivity, the pointing
game against the digit's strokes, sparseness, random logit and non-sensitivity), prints the
table and draws it ranked (``examples/out/evaluate_table.png``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import pyattrib as pa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
sys.path.insert(0, HERE)  # the digits CNN of digits.py
from digits import train  # noqa: E402

OUT = os.path.join(HERE, "out")

METHODS = {
    "saliency": lambda m: pa.saliency(m),
    "integrated gradients": lambda m: pa.integrated_gradients(m),
    "smoothgrad(IG)": lambda m: pa.smoothgrad(pa.integrated_gradients(m, n_steps=16), stdevs=0.1, n_samples=8),
    "deep_lift": lambda m: pa.deep_lift(m),
    "occlusion": lambda m: pa.occlusion(m, sliding_window_shapes=(1, 2, 2)),
}


def gaussian_noise(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    noise = torch.randn_like(inputs) * 0.1
    return noise, inputs - noise


def main(n_images: int = 64, steps: int = 32) -> dict[str, dict[str, float]]:
    model, x_te, y_te, acc = train()
    x, y = x_te[:n_images], y_te[:n_images]
    probability = nn.Sequential(model, nn.Softmax(-1)).eval()
    deletion = pa.metrics.deletion(probability, n_steps=steps)
    insertion = pa.metrics.insertion(probability, n_steps=steps)
    table: dict[str, dict[str, float]] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name, explain in METHODS.items():
        generator = torch.Generator().manual_seed(0)
        kwargs = {"generator": generator} if "smoothgrad" in name else {}
        attrs = explain(model)(x, target=y, **kwargs)
        down, up = deletion(x, attrs, target=y), insertion(x, attrs, target=y)
        torch.manual_seed(0)
        infid = pa.metrics.infidelity(model, gaussian_noise)(x, attrs, target=y)
        sens = pa.metrics.sensitivity_max(explain(model), perturb_radius=0.05, n_samples=5)(
            x[:16], target=y[:16], generator=torch.Generator().manual_seed(1)
        )
        random = pa.metrics.mprt(model, explain, seed=0)(x[:16], target=y[:16], **kwargs)
        table[name] = {
            "deletion AUC": float(down.auc.mean()),
            "insertion AUC": float(up.auc.mean()),
            "infidelity": float(infid.mean()),
            "sensitivity": float(sens.mean()),
            "rank corr, top layer random": float(random.correlation[0].mean()),
            "rank corr, all random": float(random.correlation[-1].mean()),
        }
        axes[0].plot(down.fractions, down.scores.mean(0), label=name)
        axes[1].plot(up.fractions, up.scores.mean(0), label=name)
    for ax, title in zip(axes, ("deletion (lower is better)", "insertion (higher is better)")):
        ax.set(title=title, xlabel="share of pixels removed" if "del" in title else "share of pixels inserted",
               ylabel="mean probability of the true class", ylim=(0, 1.02))  # fmt: skip
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"digits CNN (test accuracy {acc:.1%}), {n_images} test images, baseline 0")
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "evaluate_curves.png"), dpi=110)
    plt.close(fig)
    columns = list(next(iter(table.values())))
    print(f"{'method':<22}" + "".join(f"{c:>16}" for c in ("del AUC", "ins AUC", "infidelity", "sensitivity",
                                                            "corr top", "corr all")))  # fmt: skip
    for name, row in table.items():
        print(f"{name:<22}" + "".join(f"{row[c]:>16.4f}" for c in columns))
    return table


def quantus_table(n_images: int = 64, n_samples: int = 10) -> pa.metrics.Evaluation:
    model, x_te, y_te, _ = train()
    x, y = x_te[:n_images], y_te[:n_images]
    methods = {
        "saliency": pa.saliency(model),
        "x*grad": pa.input_x_gradient(model),
        "integrated gradients": pa.integrated_gradients(model, n_steps=16),
        "smoothgrad": pa.smoothgrad(pa.saliency(model), n_samples=8, stdevs=0.1),
        "deep_lift": pa.deep_lift(model),
        "occlusion": pa.occlusion(model, sliding_window_shapes=(1, 2, 2)),
    }
    metrics: dict[str, Callable[..., Any]] = {
        "faithfulness corr.": pa.metrics.faithfulness_correlation(model, n_samples=n_samples * 2, subset_size=8),
        "avg sensitivity": lambda explain: pa.metrics.avg_sensitivity(explain, n_samples=n_samples, radius=0.05),
        "pointing game": pa.metrics.pointing_game(),
        "sparseness": pa.metrics.sparseness(),
        "random logit": lambda explain: pa.metrics.random_logit(explain, n_classes=10),
        "non-sensitivity": pa.metrics.non_sensitivity(model, features_in_step=4),
    }
    strokes = x > 0.5  # the digit's bright strokes: where the evidence should be
    table = pa.metrics.evaluate(model, x, y, attributors=methods, metrics=metrics, masks=strokes,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    print(table)
    fig, _ = pa.viz.evaluation(table)
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "evaluate_table.png"), dpi=110)
    return table


if __name__ == "__main__":
    main()
    quantus_table()
