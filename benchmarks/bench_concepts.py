"""TCAV, Captum vs pyattrib side by side (CPU, 2 threads, one process).

The issue's case: the digits CNN (examples/digits.py, untrained: timing does not depend on
the weights), 2 layers, one concept and 20 random sets of 50 examples each, 50 inputs;
experimental sets ``[concept, random_i]``. Each library at its defaults (Captum: its SGD
classifier, activations and CAVs written to a temporary folder; pyattrib: the batched ridge
fit, in memory). A fresh interpreter object per run, so nothing is cached between runs.
Target: at most 0.3x Captum's time.

``python benchmarks/bench_concepts.py [--rounds 3] [--no-memory] 2>/dev/null``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import torch
from common import interleaved, peak_tensor_mb
from torch.utils.data import DataLoader

import pyattrib as pa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from digits import make_cnn  # noqa: E402

warnings.filterwarnings("ignore")
LAYERS = ["2", "6"]  # second convolution, first fully connected layer


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    concept = torch.rand(50, 1, 8, 8, generator=g).round()
    randoms = [torch.rand(50, 1, 8, 8, generator=g) for _ in range(20)]
    inputs = torch.rand(50, 1, 8, 8, generator=g)
    return concept, randoms, inputs


def run_captum(model, concept, randoms, inputs):
    from captum.concept import TCAV, Concept

    c = Concept(0, "concept", DataLoader(concept, batch_size=50))
    rs = [Concept(i + 1, f"random{i}", DataLoader(r, batch_size=50)) for i, r in enumerate(randoms)]
    with tempfile.TemporaryDirectory() as tmp:
        return TCAV(model, LAYERS, save_path=tmp).interpret(inputs, [[c, r] for r in rs], target=3)


def run_ours(model, concept, randoms, inputs):
    c = pa.concepts.Concept(0, "concept", DataLoader(concept, batch_size=50))
    rs = [pa.concepts.Concept(i + 1, f"random{i}", DataLoader(r, batch_size=50)) for i, r in enumerate(randoms)]
    return pa.concepts.tcav(model, LAYERS).interpret(inputs, [[c, r] for r in rs], target=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = make_cnn().eval()
    concept, randoms, inputs = data()
    contenders = {
        "captum": lambda: run_captum(model, concept, randoms, inputs),
        "pyattrib": lambda: run_ours(model, concept, randoms, inputs),
    }
    times = interleaved(contenders, rounds=args.rounds, warmup=1)
    mem = {k: float("nan") for k in contenders}
    if not args.no_memory:
        mem = {k: peak_tensor_mb(fn) for k, fn in contenders.items()}
    print(f"{'case':<44}{'captum ms':>11}{'pyattrib ms':>13}{'ratio':>8}{'captum MB':>11}{'ours MB':>9}")
    print(f"{'TCAV 1 concept + 20 random sets x 50, 2 layers':<44}{times['captum'] * 1e3:>11.1f}"
          f"{times['pyattrib'] * 1e3:>13.1f}{times['pyattrib'] / times['captum']:>7.2f}x"
          f"{mem['captum']:>11.1f}{mem['pyattrib']:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
