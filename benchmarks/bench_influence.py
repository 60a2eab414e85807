"""TracInCP, Captum vs pyattrib side by side (CPU, 2 threads, one process).

The digits CNN (examples/digits.py) with 3 checkpoints along a short training run; the issue's
cases: self-influence of the training examples, and the influence of 200 test examples on
them. Captum's TracInCP with its per-example gradient loop (``sample_wise_grads_per_batch=
False``, its default) and with its batched Linear/Conv2d hooks (``True``); pyattrib with
``torch.func`` per-sample gradients. Same batch size (64) everywhere. Prints times, ratios and
peak tensor memory.

``python benchmarks/bench_influence.py [--train 5000] 2>/dev/null``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from digits import make_cnn  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(2)


def main() -> None:
    from captum.influence import TracInCP
    from common import peak_rss_growth_mb

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    reps = -(-args.train // len(x))
    train_x, train_y = x.repeat(reps, 1, 1, 1)[: args.train], y.repeat(reps)[: args.train]
    test_x, test_y = x[: args.test], y[: args.test]
    torch.manual_seed(0)
    model = make_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tmp = tempfile.mkdtemp()
    paths, states = [], []
    for c in range(3):
        for i in range(0, 640, 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(train_x[i : i + 64]), train_y[i : i + 64]).backward()
            opt.step()
        paths.append(os.path.join(tmp, f"c{c}.pt"))
        torch.save(model.state_dict(), paths[-1])
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    model.eval()

    def load(m: nn.Module, path: str) -> float:
        m.load_state_dict(torch.load(path))
        return 0.05

    data = TensorDataset(train_x, train_y)
    ours = pa.influence.tracin_cp(model, data, states, learning_rates=[0.05] * 3, batch_size=64)
    captum = {
        swg: TracInCP(model, DataLoader(data, batch_size=64), paths, checkpoints_load_func=load,
                      loss_fn=nn.CrossEntropyLoss(reduction="sum" if swg else "none"), batch_size=64,
                      sample_wise_grads_per_batch=swg)
        for swg in (False, True)
    }  # fmt: skip
    cases = {
        f"self-influence of {args.train} train": (
            lambda: ours.self_influence(), {swg: (lambda t=t: t.self_influence()) for swg, t in captum.items()}),
        f"influence {args.test} test x {args.train} train": (
            lambda: ours.influence(test_x, test_y),
            {swg: (lambda t=t: t.influence((test_x, test_y))) for swg, t in captum.items()}),
    }  # fmt: skip
    ours.gradients(0, (train_x[:64],), train_y[:64])  # warm-up: the first torch.func call pays its setup
    print(f"{'case':<38}{'Captum loop':>13}{'Captum hooks':>14}{'pyattrib':>10}{'vs loop':>9}{'vs hooks':>10}")
    for name, (mine, theirs) in cases.items():
        times = {}
        for label, fn in (("ours", mine), ("loop", theirs[False]), ("hooks", theirs[True])):
            start = time.perf_counter()
            fn()
            times[label] = time.perf_counter() - start
        print(f"{name:<38}{times['loop']:>12.1f}s{times['hooks']:>13.1f}s{times['ours']:>9.1f}s"
              f"{times['ours'] / times['loop']:>8.2f}x{times['ours'] / times['hooks']:>9.2f}x", flush=True)  # fmt: skip
    from captum.influence import TracInCPFast

    final = "8"  # the last nn.Linear of the digits CNN
    fast = pa.influence.tracin_cp_fast(model, final, data, states, learning_rates=[0.05] * 3, batch_size=64)
    captum_fast = TracInCPFast(model, model.get_submodule(final), DataLoader(data, batch_size=64), paths,
                               checkpoints_load_func=load, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                               batch_size=64)  # fmt: skip
    for name, mine, theirs in (
        (f"fast self-influence of {args.train}", fast.self_influence, captum_fast.self_influence),
        (f"fast influence {args.test} x {args.train}", lambda: fast.influence(test_x, test_y),
         lambda: captum_fast.influence((test_x, test_y))),
    ):  # fmt: skip
        start = time.perf_counter()
        theirs()
        t_theirs = time.perf_counter() - start
        start = time.perf_counter()
        mine()
        t_mine = time.perf_counter() - start
        print(f"{name:<38}{'TracInCPFast':>13} {t_theirs:>12.2f}s{t_mine:>9.2f}s{t_mine / t_theirs:>8.2f}x", flush=True)
    growth = {bs: peak_rss_growth_mb("bench_influence", str(bs)) for bs in (16, 64, 256)}
    print("peak RSS growth of self-influence (1,000 examples, fresh process) by batch_size: "
          + ", ".join(f"{bs}: {mb:.0f} MB" for bs, mb in growth.items()))  # fmt: skip


def measure(case: str) -> float:
    """RSS growth (MB) of one self-influence run with ``batch_size=int(case)`` (run in a fresh process)."""
    from common import rss_mb

    digits = load_digits()
    x = torch.tensor(digits.images[:1000], dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target[:1000])
    torch.manual_seed(0)
    model = make_cnn().eval()
    states = [{k: v.clone() for k, v in model.state_dict().items()} for _ in range(3)]
    tracin = pa.influence.tracin_cp(model, TensorDataset(x, y), states, batch_size=int(case))
    tracin.self_influence()  # warm up, then measure a second run's peak above the baseline
    base = rss_mb("VmRSS")
    tracin.self_influence()
    return rss_mb("VmHWM") - base


if __name__ == "__main__":
    main()
