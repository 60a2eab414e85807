"""Metrics and attacks, Captum vs pyattrib side by side (CPU, 2 threads, one process).

Rows (the issue's targets in brackets):

- sensitivity_max over IG, 10 perturbations [<= 0.3x Captum];
- infidelity, 10 perturbations [<= 0.5x];
- PGD, Linf, 20 steps [<= 0.7x];
- deletion curve, 16 images x 50 steps, against a per-step loop (one forward per step).

on the benchmark CNN (3x32x32, batch 16) and an MLP (64 features, batch 64). Each library
at its defaults. Prints median time, the ratio, and peak tensor memory (MB) of each side;
for infidelity also the floor (the perturbation function and the plain batched forwards
every implementation runs) as a fraction of Captum's time.

``python benchmarks/bench_metrics.py [--rounds 5] [--no-memory] 2>/dev/null``
"""

from __future__ import annotations

import argparse
import warnings

import torch
from captum.attr import IntegratedGradients
from captum.metrics import infidelity, sensitivity_max
from captum.robust import PGD
from common import cnn, interleaved, peak_tensor_mb
from torch import nn

import pyattrib as pa

warnings.filterwarnings("ignore")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def noise(inputs):
    e = torch.randn_like(inputs) * 0.05
    return e, inputs - e


def per_step_deletion(model, x, attrs, target, n_steps):
    """The loop users write: one forward of the batch per step."""
    n, d = x.shape[0], x[0].numel()
    order = attrs.reshape(n, -1).argsort(dim=1, descending=True)
    scores = []
    with torch.no_grad():
        for k in range(n_steps + 1):
            flat = x.reshape(n, -1).clone()
            flat.scatter_(1, order[:, : round(k * d / n_steps)], 0.0)
            scores.append(model(flat.reshape(x.shape)).gather(1, target[:, None])[:, 0])
    return torch.stack(scores, 1)


def infidelity_floor(model, x, attrs, target, samples):
    """The work any implementation does: the user's perturbation function on the repeated
    batch, f(x) and f(x - I) in plain batched forwards, and the squared errors."""
    with torch.no_grad():
        rows = x.repeat_interleave(samples, 0)
        perturbation, perturbed = noise(rows)
        fx = model(x).gather(1, target[:, None])[:, 0].repeat_interleave(samples)
        moved = model(perturbed).gather(1, target.repeat_interleave(samples)[:, None])[:, 0]
        dot = (attrs.repeat_interleave(samples, 0) * perturbation).reshape(len(rows), -1).sum(1)
        return ((dot - (fx - moved)) ** 2).reshape(-1, samples).mean(1)


def cases(name: str):
    model, x = (cnn(), torch.randn(16, 3, 32, 32)) if name == "cnn" else (mlp(), torch.randn(64, 64))
    target = torch.arange(x.shape[0]) % 10
    attrs = pa.integrated_gradients(model)(x, target=target)
    softmax = nn.Sequential(model, nn.Softmax(-1)).eval()
    ce = nn.CrossEntropyLoss(reduction="none")
    ig_captum, ig_ours = IntegratedGradients(model), pa.integrated_gradients(model)
    sens_ours = pa.metrics.sensitivity_max(ig_ours, n_samples=10)
    infid_ours = pa.metrics.infidelity(model, noise, n_samples=10)
    pgd_ours = pa.robust.pgd(model, loss_fn=ce, norm="Linf", step_size=0.01, steps=20)
    deletion = pa.metrics.deletion(softmax, n_steps=50)
    yield (
        "sensitivity_max(IG)",
        {
            "captum": lambda: sensitivity_max(ig_captum.attribute, x, target=target, n_perturb_samples=10),
            "pyattrib": lambda: sens_ours(x, target=target),
        },
    )
    yield (
        "infidelity",
        {
            "captum": lambda: infidelity(model, noise, x, attrs, target=target, n_perturb_samples=10),
            "pyattrib": lambda: infid_ours(x, attrs, target=target),
            "floor": lambda: infidelity_floor(model, x, attrs, target, 10),
        },
    )
    yield (
        "pgd Linf 20 steps",
        {
            "captum": lambda: PGD(model, ce).perturb(x, 0.1, 0.01, 20, target),
            "pyattrib": lambda: pgd_ours(x, 0.1, target=target),
        },
    )
    if name == "cnn":
        yield (
            "deletion 16x50 (vs loop)",
            {
                "captum": lambda: per_step_deletion(softmax, x, attrs, target, 50),
                "pyattrib": lambda: deletion(x, attrs, target=target),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    print(f"{'model':<6}{'metric':<28}{'captum ms':>11}{'pyattrib ms':>13}{'ratio':>8}{'captum MB':>11}{'ours MB':>9}")
    for name in ("cnn", "mlp"):
        for label, contenders in cases(name):
            times = interleaved(contenders, rounds=args.rounds, warmup=1)
            mem = {k: float("nan") for k in contenders}
            if not args.no_memory:
                mem = {k: peak_tensor_mb(fn) for k, fn in contenders.items() if k != "floor"}
            ratio = times["pyattrib"] / times["captum"]
            floor = f"  floor {times['floor'] / times['captum']:.2f}x of Captum" if "floor" in times else ""
            print(f"{name:<6}{label:<28}{times['captum'] * 1e3:>11.1f}{times['pyattrib'] * 1e3:>13.1f}"
                  f"{ratio:>7.2f}x{mem['captum']:>11.1f}{mem['pyattrib']:>9.1f}{floor}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
