"""Quantus 0.6.0's complexity and localisation metrics vs pyattrib's, one process, the same
attributions and masks: 64 digits-sized explanations (1x28x28) with box masks.

Run: python benchmarks/bench_quantus.py
Target (issue 38): at most 0.5x Quantus's time for these (not perturbation-heavy) metrics.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import quantus
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")

METRICS = {
    "Sparseness": (lambda: quantus.Sparseness(disable_warnings=True), pa.metrics.sparseness(), False),
    "Complexity": (lambda: quantus.Complexity(disable_warnings=True), pa.metrics.complexity(), False),
    "EffectiveComplexity": (lambda: quantus.EffectiveComplexity(disable_warnings=True),
                            pa.metrics.effective_complexity(normalise="batch"), False),
    "PointingGame": (lambda: quantus.PointingGame(disable_warnings=True), pa.metrics.pointing_game(), True),
    "AttributionLocalisation": (lambda: quantus.AttributionLocalisation(disable_warnings=True),
                                pa.metrics.attribution_localisation(), True),
    "TopKIntersection": (lambda: quantus.TopKIntersection(k=100, disable_warnings=True),
                         pa.metrics.top_k_intersection(k=100), True),
    "RelevanceMassAccuracy": (lambda: quantus.RelevanceMassAccuracy(disable_warnings=True),
                              pa.metrics.relevance_mass_accuracy(), True),
    "RelevanceRankAccuracy": (lambda: quantus.RelevanceRankAccuracy(disable_warnings=True),
                              pa.metrics.relevance_rank_accuracy(), True),
    "AUC": (lambda: quantus.AUC(disable_warnings=True), pa.metrics.auc(), True),
}  # fmt: skip


def main() -> None:
    g = torch.Generator().manual_seed(0)
    n = 64
    x = torch.rand(n, 1, 28, 28, generator=g)
    a = torch.randn(n, 1, 28, 28, generator=g).abs()  # saliency-like (signed sums near 0 make ratios poles)
    s = torch.zeros(n, 1, 28, 28, dtype=torch.bool)
    for i in range(n):
        r, c = i % 14, (3 * i) % 14
        s[i, 0, r : r + 10, c : c + 12] = True
    xn, an, sn, y = x.numpy(), a.numpy(), s.numpy().astype(float), np.zeros(n, dtype=int)
    print(f"torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} threads, CPU; "
          f"{n} explanations 1x28x28, box masks; each library at its defaults")  # fmt: skip
    for name, (make, ours, masked) in METRICS.items():
        metric = make()

        def theirs(metric=metric, masked=masked):
            return metric(model=None, x_batch=xn, y_batch=y, a_batch=an.copy(), s_batch=sn if masked else None,
                          channel_first=True, batch_size=n)  # fmt: skip

        def mine(ours=ours, masked=masked):
            return ours(a, s) if masked else ours(a)

        got, want = mine().double().numpy(), np.asarray(theirs(), dtype=np.float64)
        diff = float(np.nanmax(np.abs(got - want)))
        t = common.interleaved({"quantus": theirs, "ours": mine}, rounds=5, warmup=1)
        print(f"{name:<24} quantus {t['quantus'] * 1e3:8.2f} ms  pyattrib {t['ours'] * 1e3:7.2f} ms  "
              f"ratio {t['ours'] / t['quantus']:.2f}x (target <= 0.5x)  max |difference| {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
