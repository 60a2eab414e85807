"""Gradient and path methods: pyattrib vs Captum vs the raw-torch floor, one process.

Run: python benchmarks/bench_gradient.py
The floor is one batched forward + backward over the expanded batch, the least work
any implementation must do.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)).eval()


cnn = common.cnn


def floor(model: nn.Module, x: torch.Tensor, copies: int, target: int):
    def run():
        xs = x.repeat(copies, *([1] * (x.dim() - 1))).requires_grad_()
        torch.autograd.grad(model(xs)[:, target].sum(), xs)

    return run


def ig_case(model: nn.Module, x: torch.Tensor, label: str, target_text: str) -> str:
    ours = pa.integrated_gradients(model, n_steps=50)
    theirs = IntegratedGradients(model)
    t = common.interleaved(
        {
            "pyattrib": lambda: ours(x, target=0),
            "captum": lambda: theirs.attribute(x, target=0, n_steps=50),
            "floor": floor(model, x, 50, 0),
        }
    )
    return common.row(label, t["pyattrib"], t["captum"], t["floor"], target_text)


def smoothgrad_case(model: nn.Module, x: torch.Tensor, label: str) -> str:
    ours = pa.smoothgrad(pa.saliency(model), n_samples=16, stdevs=0.1)
    theirs = NoiseTunnel(Saliency(model))
    t = common.interleaved(
        {
            "pyattrib": lambda: ours(x, target=0),
            "captum": lambda: theirs.attribute(x, nt_type="smoothgrad", nt_samples=16, stdevs=0.1, target=0),
            "floor": floor(model, x, 16, 0),
        }
    )
    return common.row(label, t["pyattrib"], t["captum"], t["floor"], "(target <= 0.5x captum)")


class Standard(nn.Module):
    """The same CNN behind a forward of its own: pyattrib feeds it standard-layout rows."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# -- peak memory: IG with n_steps=500, chunked to 400 rows (50 steps x 8 examples) ----
MEM_STEPS, MEM_CHUNK = 500, 400


def memory_report() -> list[str]:
    model, x, refs = cnn(), torch.randn(8, 3, 32, 32), torch.zeros(4, 3, 32, 32)
    cases = {
        "floor, one chunk": floor(model, x, MEM_CHUNK // 8, 0),
        "pyattrib IG, batch_size=400": lambda: pa.integrated_gradients(model, n_steps=MEM_STEPS, batch_size=MEM_CHUNK)(
            x, target=0
        ),
        "captum IG, internal_batch_size=400": lambda: IntegratedGradients(model).attribute(
            x, target=0, n_steps=MEM_STEPS, internal_batch_size=MEM_CHUNK
        ),
        "pyattrib IG, unchunked": lambda: pa.integrated_gradients(model, n_steps=MEM_STEPS)(x, target=0),
        "captum IG, unchunked": lambda: IntegratedGradients(model).attribute(x, target=0, n_steps=MEM_STEPS),
        "pyattrib GradientSHAP, batch_size=400": lambda: pa.gradient_shap(
            model, n_samples=MEM_STEPS, batch_size=MEM_CHUNK
        )(x, refs, target=0),
        # Captum cannot bound GradientShap's memory (its issue #1350)
        "captum GradientShap": lambda: GradientShap(model).attribute(x, refs, target=0, n_samples=MEM_STEPS),
    }
    mb = {name: common.peak_tensor_mb(fn) for name, fn in cases.items()}
    one = mb["floor, one chunk"]
    lines = [f"peak tensor memory, CNN b8, n_steps = n_samples = {MEM_STEPS} (one chunk = {MEM_CHUNK} rows):"]
    lines += [f"  {name:<40} {v:8.1f} MB   {v / one:5.2f}x one chunk" for name, v in mb.items()]
    return lines


def equal_memory_report() -> list[str]:
    """Channels-last rows cost memory in CPU max-pool backward; compare at equal peak:
    channels-last with batch_size=320 against standard-layout rows with batch_size=400."""
    x = torch.randn(8, 3, 32, 32)
    fed_cl, fed_std = cnn(), Standard(cnn())  # a model with its own forward is fed NCHW rows
    cases = {
        "channels-last rows, batch_size=320": lambda: pa.integrated_gradients(
            fed_cl, n_steps=MEM_STEPS, batch_size=320
        )(x, target=0),
        "standard rows, batch_size=400": lambda: pa.integrated_gradients(fed_std, n_steps=MEM_STEPS, batch_size=400)(
            x, target=0
        ),
    }
    mb = {name: common.peak_tensor_mb(fn) for name, fn in cases.items()}
    t = common.interleaved(cases, rounds=5, warmup=1)
    lines = [f"pyattrib IG, CNN b8, n_steps={MEM_STEPS}, at about equal peak memory:"]
    lines += [f"  {name:<40} {t[name] * 1e3:8.1f} ms {mb[name]:8.1f} MB" for name in cases]
    ratio = t["channels-last rows, batch_size=320"] / t["standard rows, batch_size=400"]
    return lines + [f"  time ratio channels-last / standard: {ratio:.2f}x"]


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(ig_case(mlp(), torch.randn(64, 20), "IG MLP 20-64-64-3 b64 n_steps=50", "(target <= 0.15x captum)"))
    print(
        ig_case(
            cnn(), torch.randn(8, 3, 32, 32), "IG 2-conv CNN b8 3x32x32 n_steps=50", "(target <= 1.0x, <= 1.1x floor)"
        )
    )
    print(smoothgrad_case(mlp(), torch.randn(64, 20), "smoothgrad(saliency) MLP b64 16 samples"))
    print(smoothgrad_case(cnn(), torch.randn(8, 3, 32, 32), "smoothgrad(saliency) CNN b8 16 samples"))
    for line in memory_report() + equal_memory_report():
        print(line)


if __name__ == "__main__":
    main()
