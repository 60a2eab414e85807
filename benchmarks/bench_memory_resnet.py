"""Peak memory of every method at its defaults on ResNet-18 at 224x224 (batch 2), pyattrib
vs Captum (CPU).

Run: python benchmarks/bench_memory_resnet.py [--methods saliency,occlusion] [--time]

Each (library, method) call runs once in a fresh interpreter after a warm-up forward; the
figure is the growth of the process's peak resident memory (Linux ``VmHWM``) over the
warmed-up baseline, which counts everything the call allocates (the profiler's timeline
misses frees inside custom autograd Functions). Target: pyattrib's default within 1.25x of
Captum's default for the same call. ``--time`` instead times the single-pass methods
side by side in one process (interleaved rounds, median), at batch 2 where fixed per-call
costs show most.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

WINDOW, STRIDE, PATCH = (3, 32, 32), (3, 16, 16), 16

METHODS = (
    "saliency",
    "integrated_gradients",
    "smoothgrad(saliency)",
    "gradient_shap",
    "deep_lift",
    "guided_backprop",
    "layer_gradcam",
    "layer_integrated_gradients",
    "occlusion",
    "feature_ablation",
    "kernel_shap",
    "lime",
)


def calls(model, x):  # noqa: ANN001, ANN201
    """``method -> (pyattrib call, Captum call)``, each at its library's defaults."""
    import torch
    from captum import attr as ca

    import pyattrib as pa

    refs = torch.zeros(4, *x.shape[1:])
    side = x.shape[-1] // PATCH
    mask = (torch.arange(x.shape[-2])[:, None] // PATCH * side + torch.arange(x.shape[-1])[None, :] // PATCH).expand(
        1, 1, *x.shape[-2:]
    )
    conv, stem = model.layer4[1].conv2, model.conv1
    return {
        "saliency": (lambda: pa.saliency(model)(x, target=0), lambda: ca.Saliency(model).attribute(x, target=0)),
        "integrated_gradients": (
            lambda: pa.integrated_gradients(model)(x, target=0),
            lambda: ca.IntegratedGradients(model).attribute(x, target=0),
        ),
        "smoothgrad(saliency)": (
            lambda: pa.smoothgrad(pa.saliency(model))(x, target=0),
            lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_type="smoothgrad", target=0),
        ),
        "gradient_shap": (
            lambda: pa.gradient_shap(model)(x, refs, target=0),
            lambda: ca.GradientShap(model).attribute(x, refs, target=0),
        ),
        "deep_lift": (lambda: pa.deep_lift(model)(x, target=0), lambda: ca.DeepLift(model).attribute(x, target=0)),
        "guided_backprop": (
            lambda: pa.guided_backprop(model)(x, target=0),
            lambda: ca.GuidedBackprop(model).attribute(x, target=0),
        ),
        "layer_gradcam": (
            lambda: pa.layer_gradcam(model, conv)(x, target=0),
            lambda: ca.LayerGradCam(model, conv).attribute(x, target=0),
        ),
        "layer_integrated_gradients": (
            lambda: pa.layer_integrated_gradients(model, stem)(x, target=0),
            lambda: ca.LayerIntegratedGradients(model, stem).attribute(x, target=0),
        ),
        "occlusion": (
            lambda: pa.occlusion(model, sliding_window_shapes=WINDOW, strides=STRIDE)(x, target=0),
            lambda: ca.Occlusion(model).attribute(x, sliding_window_shapes=WINDOW, strides=STRIDE, target=0),
        ),
        "feature_ablation": (
            lambda: pa.feature_ablation(model)(x, target=0, feature_mask=mask),
            lambda: ca.FeatureAblation(model).attribute(x, target=0, feature_mask=mask),
        ),
        "kernel_shap": (
            lambda: pa.kernel_shap(model)(x, target=0, feature_mask=mask),
            lambda: ca.KernelShap(model).attribute(x, target=0, feature_mask=mask),
        ),
        "lime": (
            lambda: pa.lime(model)(x, target=0, feature_mask=mask),
            lambda: ca.Lime(model).attribute(x, target=0, feature_mask=mask),
        ),
    }


def measure(case: str) -> float:
    """Peak RSS growth (MB) of one call; ``case`` is ``"library:method"``."""
    import warnings

    import torch

    from tests.architectures import resnet18

    warnings.filterwarnings("ignore")
    library, method = case.split(":", 1)
    model = resnet18(shrink=1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ours, theirs = calls(model, x)[method]
    with torch.no_grad():
        model(x)
    base = common.reset_peak_rss()
    try:
        (ours if library == "pyattrib" else theirs)()
    except Exception as e:  # noqa: BLE001 (Captum refuses some calls; report it)
        print(f"error {type(e).__name__}")
        return float("nan")
    return common.rss_mb("VmHWM") - base


SINGLE_PASS = ("saliency", "smoothgrad(saliency)", "gradient_shap", "deep_lift", "guided_backprop", "layer_gradcam")


def timing(methods: list[str], rounds: int) -> None:
    import torch

    from tests.architectures import resnet18

    torch.manual_seed(0)
    model = resnet18(shrink=1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print(f"time of one call, ResNet-18 batch 2, 3x224x224, CPU, {torch.get_num_threads()} threads (median)")
    for method in methods:
        ours, theirs = calls(model, x)[method]
        try:
            theirs()
        except Exception as e:  # noqa: BLE001
            t = common.interleaved({"pyattrib": ours}, rounds=rounds, warmup=1)
            print(f"{method:<28} pyattrib {t['pyattrib'] * 1e3:8.1f} ms   captum raises {type(e).__name__}")
            continue
        t = common.interleaved({"pyattrib": ours, "captum": theirs}, rounds=rounds, warmup=1)
        print(f"{method:<28} pyattrib {t['pyattrib'] * 1e3:8.1f} ms   captum {t['captum'] * 1e3:8.1f} ms   "
              f"{t['pyattrib'] / t['captum']:5.2f}x", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="")
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.time:
        timing([m for m in SINGLE_PASS if not args.methods or m in args.methods.split(",")], args.rounds)
        return
    chosen = [m for m in METHODS if not args.methods or m in args.methods.split(",")]
    print("peak RSS growth of one call, ResNet-18 (torchvision layout, random weights), batch 2, 3x224x224, CPU")
    for method in chosen:
        ours = common.peak_rss_growth_mb("bench_memory_resnet", f"pyattrib:{method}")
        theirs = common.peak_rss_growth_mb("bench_memory_resnet", f"captum:{method}")
        ratio = "" if theirs != theirs else f"{ours / theirs:5.2f}x"  # NaN: Captum raised
        shown = "captum raises" if theirs != theirs else f"{theirs:8.1f} MB"
        print(f"{method:<28} pyattrib {ours:8.1f} MB   captum {shown:>13}   {ratio}", flush=True)


if __name__ == "__main__":
    main()
