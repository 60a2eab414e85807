"""Perturbation methods: pyattrib vs Captum's defaults, one process (CPU, 2 threads).

Run: python benchmarks/bench_perturbation.py
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from captum.attr import FeatureAblation, KernelShap, Lime, Occlusion, ShapleyValueSampling
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")


def tabular() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)).eval()


cnn = common.cnn


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    mlp, x = tabular(), torch.randn(64, 30)
    fa, cfa = pa.feature_ablation(mlp), FeatureAblation(mlp)
    t = common.interleaved({"pyattrib": lambda: fa(x, target=1), "captum": lambda: cfa.attribute(x, target=1)})
    print(common.row("feature_ablation, 30 features, MLP b64", t["pyattrib"], t["captum"], None, "(target <= 0.25x)"))

    net, xi = cnn(), torch.randn(16, 3, 32, 32)
    occ = pa.occlusion(net, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4))
    occ64 = pa.occlusion(net, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), batch_size=64)
    cocc = Occlusion(net)
    xi_cl = xi.contiguous(memory_format=torch.channels_last)

    def occlusion_floor():  # the 49 occluded batches of 16 as given (NCHW), forward only
        with torch.no_grad():
            for _ in range(49):
                net(xi)

    t = common.interleaved(
        {
            "pyattrib": lambda: occ(xi, target=1),
            "pyattrib64": lambda: occ64(xi, target=1),
            "floor": occlusion_floor,
            "captum": lambda: cocc.attribute(xi, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=1),
            # Captum handed channels-last inputs: how much of our lead is the layout alone
            "captum_cl": lambda: cocc.attribute(xi_cl, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=1),
        },
        rounds=7,
    )
    print(
        common.row(
            "occlusion, CNN b16, 3x8x8 stride 4, all rows", t["pyattrib"], t["captum"], t["floor"], "(target <= 0.5x)"
        )
    )
    print(common.row("occlusion, same, batch_size=64", t["pyattrib64"], t["captum"], t["floor"], "(target <= 0.5x)"))
    print(common.row("occlusion, Captum given channels-last input", t["captum_cl"], t["captum"], t["floor"], ""))

    svs, csvs = pa.shapley_value_sampling(mlp, n_samples=25), ShapleyValueSampling(mlp)
    t = common.interleaved(
        {"pyattrib": lambda: svs(x, target=1), "captum": lambda: csvs.attribute(x, target=1, n_samples=25)}, rounds=10
    )
    print(
        common.row(
            "shapley_value_sampling, 30 feat, 25 samples, b64", t["pyattrib"], t["captum"], None, "(target <= 0.25x)"
        )
    )

    x16 = x[:16]
    ks, cks = pa.kernel_shap(mlp, n_samples=200), KernelShap(mlp)
    t = common.interleaved(
        {"pyattrib": lambda: ks(x16, target=1), "captum": lambda: cks.attribute(x16, target=1, n_samples=200)},
        rounds=5,
        warmup=1,
    )
    print(common.row("kernel_shap, 16 examples, 200 samples", t["pyattrib"], t["captum"], None, "(target <= 0.2x)"))
    lm, clm = pa.lime(mlp, n_samples=200), Lime(mlp)
    t = common.interleaved(
        {"pyattrib": lambda: lm(x16, target=1), "captum": lambda: clm.attribute(x16, target=1, n_samples=200)},
        rounds=5,
        warmup=1,
    )
    print(
        common.row(
            "lime, 16 examples, 200 samples (sklearn Lasso)", t["pyattrib"], t["captum"], None, "(target <= 0.2x)"
        )
    )
    lml = pa.lime(mlp, n_samples=200, interpretable_model="linear")
    t = common.interleaved(
        {"pyattrib": lambda: lml(x16, target=1), "captum": lambda: clm.attribute(x16, target=1, n_samples=200)},
        rounds=5,
        warmup=1,
    )
    print(common.row("lime, batched least squares in torch", t["pyattrib"], t["captum"], None, "(target <= 0.2x)"))

    print("peak tensor memory, occlusion CNN b16 (784 perturbed rows):")
    for bs in (None, 256, 64):
        occ_bs = pa.occlusion(net, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), batch_size=bs)
        mb = common.peak_tensor_mb(lambda a=occ_bs: a(xi, target=1))
        print(f"  batch_size={str(bs):<5} {mb:8.1f} MB")
    mb = common.peak_tensor_mb(
        lambda: cocc.attribute(
            xi, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=1, perturbations_per_eval=49
        )
    )
    print(f"  captum perturbations_per_eval=49 (all at once) {mb:8.1f} MB")


if __name__ == "__main__":
    main()
