"""Timing and peak-memory helpers shared by the benchmarks.

Timings: median of interleaved runs (each round runs every contender once), on the
CPU with 2 threads. Peak memory: the most tensor memory alive at once during a call,
read from torch.profiler's memory timeline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch

torch.set_num_threads(2)


def cnn() -> torch.nn.Module:
    """The 2-conv CNN of the benchmarks (3x32x32 in, 10 classes), module nonlinearities."""
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    ).eval()  # fmt: skip


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call for each contender."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            _sync()
            t = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _sync() -> None:
    """Wait for queued CUDA work, so that a GPU call's time is its own."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def peak_tensor_mb(fn: Callable[[], object]) -> float:
    """Peak of live tensor memory (MB) while ``fn`` runs, from the profiler's memory
    timeline: exact tensor bytes, unaffected by the allocator's caching. On a GPU (CUDA
    initialised), the allocator's own peak of allocated bytes above what was live before."""
    from torch.profiler import ProfilerActivity, profile

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        _sync()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        _sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    return max(sum(s) for s in sizes) / 2**20


def peak_rss_growth_mb(module: str, case: str) -> float:
    """Run ``module.measure(case)`` in a fresh interpreter and return the growth of its
    peak resident memory (MB) over a warmed-up baseline (Linux ``VmHWM``). Used where the
    profiler's timeline misses frees (custom autograd Functions)."""
    code = f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import {module} as m; print(m.measure({case!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS counter and return the current RSS (MB)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss_mb()


def row(label: str, ours: float, theirs: float, floor: float | None = None, target: str = "") -> str:
    floor_part = f"{ours / floor:6.2f}x floor" if floor else " " * 13
    floor_ms = f"{floor * 1e3:9.2f}" if floor else " " * 9
    return (
        f"{label:<44} pyattrib {ours * 1e3:9.2f} ms  captum {theirs * 1e3:9.2f} ms  floor {floor_ms} ms  "
        f"ratio {ours / theirs:5.2f}x captum  {floor_part}  {target}"
    )
