"""Dataset-scale IG: throughput in one process vs two torchrun processes (gloo), CPU.

Integrated gradients (50 steps, defaults) of the digits CNN (examples/digits.py, untrained:
timing does not depend on the weights) over 10,000 digits images (scikit-learn's 1,797,
repeated), batches of 64, with a running class mean. One process uses 2 threads; under
torchrun each of the 2 processes uses 1 thread (the same 2 cores). Also prints the peak
resident memory after a quarter, half and all of the data: it stays flat.

Then dataset-level feature ablation (``dataloader_attribution``) against Captum's
DataLoaderAttribution (target: at most 0.3x its time).

``python benchmarks/bench_dataset.py [--ablation-only] 2>/dev/null``
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import pyattrib as pa
from pyattrib.data import ClassSummarizer, Mean, attribute_dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from digits import make_cnn  # noqa: E402

N = 10_000


def data() -> TensorDataset:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    reps = -(-N // len(x))
    return TensorDataset(x.repeat(reps, 1, 1, 1)[:N], y.repeat(reps)[:N])


def run() -> tuple[float, list[float]]:
    torch.manual_seed(0)
    model = make_cnn().eval()
    loader = DataLoader(data(), batch_size=64)
    ig = pa.integrated_gradients(model)
    peaks: list[float] = []
    seen = [0]

    def watched(inputs, **kwargs):
        seen[0] += len(inputs)
        if seen[0] in (64 * 39, 64 * 78, 64 * 156):  # about 1/4, 1/2 and all of this process's batches
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return ig(inputs, **kwargs)

    start = time.perf_counter()
    attribute_dataset(watched, loader, summarize=ClassSummarizer([Mean()]), show_progress=False)
    return time.perf_counter() - start, peaks


def dataloader_ablation() -> None:
    """Dataset-level ablation of 16 pixel blocks (2x2) on the 1,797 digits, metric: the mean
    logits; Captum's DataLoaderAttribution at its defaults vs pyattrib's."""
    from captum.attr import FeatureAblation
    from captum.attr._core.dataloader_attr import DataLoaderAttribution
    from common import interleaved, peak_tensor_mb

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    loader = DataLoader(TensorDataset(x), batch_size=64)  # tuple batches: Captum zips the batch with the roles
    torch.manual_seed(0)
    model = make_cnn().eval()
    mask = ((torch.arange(16).reshape(4, 4).repeat_interleave(2, 0).repeat_interleave(2, 1))[None, None],)

    def metric(accum: torch.Tensor) -> torch.Tensor:
        return accum.mean(0)

    captum = DataLoaderAttribution(FeatureAblation(model))
    ours = pa.data.dataloader_attribution(model, to_metric=metric)
    batches = [b[0] for b in loader]

    def floor() -> None:
        """The least work of any implementation: the model on every batch, unablated and with
        each of the 16 groups ablated (one forward of the dataset per group, plus one)."""
        with torch.no_grad():
            for x_b in batches:
                model(x_b)
                for g in range(16):
                    model(torch.where(mask[0] == g, 0.0, x_b))

    contenders = {
        "captum": lambda: captum.attribute(loader, feature_mask=mask, to_metric=metric),
        "pyattrib": lambda: ours(loader, feature_mask=mask),
        "floor": floor,
    }
    with torch.no_grad():
        same = zip(contenders["captum"](), contenders["pyattrib"]())
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in same)
    times = interleaved(contenders, rounds=3, warmup=1)
    mem = {k: peak_tensor_mb(fn) for k, fn in contenders.items() if k != "floor"}
    print(f"dataloader ablation, 16 groups x 1,797 images: Captum {times['captum'] * 1e3:.0f} ms, pyattrib "
          f"{times['pyattrib'] * 1e3:.0f} ms ({times['pyattrib'] / times['captum']:.2f}x), floor "
          f"{times['floor'] * 1e3:.0f} ms ({times['floor'] / times['captum']:.2f}x of Captum's time); peak tensor "
          f"memory Captum {mem['captum']:.1f} MB, pyattrib {mem['pyattrib']:.1f} MB")  # fmt: skip


def main() -> None:
    if "--worker" in sys.argv:
        torch.set_num_threads(1)
        torch.distributed.init_process_group("gloo")
        torch.distributed.barrier()
        seconds, _ = run()
        torch.distributed.barrier()
        if torch.distributed.get_rank() == 0:
            print(f"WALL {seconds:.3f}")
        torch.distributed.destroy_process_group()
        return
    torch.set_num_threads(2)
    if "--ablation-only" in sys.argv:
        dataloader_ablation()
        return
    seconds, peaks = run()
    print(f"one process, 2 threads:       {N / seconds:8.0f} examples/s ({seconds:.1f} s)")
    print("peak RSS after 1/4, 1/2, all of the data: " + ", ".join(f"{p:.0f} MB" for p in peaks))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", __file__, "--worker"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    wall = float(next(line for line in out.stdout.splitlines() if line.startswith("WALL")).split()[1])
    print(f"torchrun, 2 processes x 1 thread: {N / wall:8.0f} examples/s ({wall:.1f} s)")
    dataloader_ablation()


if __name__ == "__main__":
    main()
