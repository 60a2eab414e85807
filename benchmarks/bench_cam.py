"""The CAM family vs pytorch-grad-cam 1.5.7, one process, same model, layer and images.

Run: python benchmarks/bench_cam.py  (torchvision must be importable: see .ci/run)
Targets (issue 33): Score-CAM and Ablation-CAM on the ResNet-18 of the architecture matrix at
3x64x64, batch 8, at most 0.3x pytorch-grad-cam's time at its defaults, peak memory following
``batch_size``; gradient CAMs at most 1.0x.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "tests", "libraries")]
import torchvision_ops  # noqa: E402,F401  (before torchvision: see tests/conftest.py)

sys.path.append(os.path.join(ROOT, ".venv-torchvision"))
import common  # noqa: E402
import pytorch_grad_cam as pgc  # noqa: E402

import pyattrib as pa  # noqa: E402
from tests.architectures import resnet18  # noqa: E402

warnings.filterwarnings("ignore")
METHODS = [("GradCAM", pa.grad_cam), ("GradCAMPlusPlus", pa.grad_cam_plus_plus), ("XGradCAM", pa.xgrad_cam),
           ("HiResCAM", pa.hires_cam), ("GradCAMElementWise", pa.grad_cam_elementwise), ("LayerCAM", pa.layer_cam),
           ("EigenCAM", pa.eigen_cam), ("EigenGradCAM", pa.eigen_grad_cam), ("KPCA_CAM", pa.kpca_cam),
           ("ScoreCAM", pa.score_cam), ("AblationCAM", pa.ablation_cam)]  # fmt: skip
PERTURBATION = {"ScoreCAM", "AblationCAM"}


def reference(name, model, layer, x):
    def run():
        cam = getattr(pgc, name)(model, [layer])
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            out = cam(x, targets=None)
        cam.activations_and_grads.release()
        return out

    return run


def main() -> None:
    model, x = resnet18(), torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    layer = model.layer4[-1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; ResNet-18 (matrix widths), "
          f"layer4[-1], batch 8 x 3x64x64; pytorch-grad-cam 1.5.7 at its defaults")  # fmt: skip
    print(f"{'method':<20} {'pytorch-grad-cam':>17} {'pyattrib':>10} {'ratio':>7}  target")
    ratios = {}
    for name, ours in METHODS:
        rounds = 5 if name in PERTURBATION else 20
        # each side in its own block: after the reference's NumPy SVDs, OpenBLAS's threads keep spinning
        # for a while and slow whatever runs next on the two cores
        t = common.interleaved({"ours": lambda ours=ours: ours(model, layer)(x)}, rounds=rounds, warmup=2)
        t |= common.interleaved({"ref": reference(name, model, layer, x)}, rounds=rounds, warmup=2)
        ratios[name] = t["ours"] / t["ref"]
        target = "<= 0.3x" if name in PERTURBATION else "<= 1.0x"
        print(f"{name:<20} {t['ref'] * 1e3:14.1f} ms {t['ours'] * 1e3:7.1f} ms {ratios[name]:6.2f}x  {target}")
    # Score-CAM's floor: one forward of every distinct masked image at the best chunk, nothing else
    with torch.no_grad():
        acts = {}
        hook = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o.detach().clone()))
        model(x)
        hook.remove()
        flat = acts["a"].flatten(2)
        low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
        keys = (flat - low) / (high - low + 1e-8)
        distinct = sum(len(torch.unique(k, dim=0)) for k in keys)
        rows = x.repeat(flat.shape[1], 1, 1, 1)
        every = common.interleaved({"f": lambda: [model(rows[i : i + 256]) for i in range(0, len(rows), 256)]},
                                   rounds=5, warmup=1)["f"]  # fmt: skip
        some = rows[:distinct]
        floor = common.interleaved({"f": lambda: [model(some[i : i + 256]) for i in range(0, len(some), 256)]},
                                   rounds=5, warmup=1)["f"]  # fmt: skip
    ref = common.interleaved({"ref": reference("ScoreCAM", model, layer, x)}, rounds=3, warmup=1)["ref"]
    print(f"Score-CAM floor: the forwards of the masked images alone, in chunks of 256 rows: all {len(rows)} "
          f"{every * 1e3:.1f} ms = {every / ref:.2f}x pytorch-grad-cam; the {distinct} distinct ones (what pyattrib "
          f"evaluates) {floor * 1e3:.1f} ms = {floor / ref:.2f}x")  # fmt: skip
    print("peak tensor memory (MB) by batch_size:")
    for b in (32, 128, 512):
        s = common.peak_tensor_mb(lambda b=b: pa.score_cam(model, layer, batch_size=b)(x))
        a = common.peak_tensor_mb(lambda b=b: pa.ablation_cam(model, layer, batch_size=b)(x))
        print(f"  batch_size={b:<5} score_cam {s:8.1f}   ablation_cam {a:8.1f}")
    s = common.peak_tensor_mb(reference("ScoreCAM", model, layer, x))
    a = common.peak_tensor_mb(reference("AblationCAM", model, layer, x))
    print(f"  pytorch-grad-cam  ScoreCAM {s:8.1f}   AblationCAM {a:8.1f}")
    grad = [ratios[n] for n, _ in METHODS if n not in PERTURBATION]
    print(f"gradient CAMs: max {max(grad):.2f}x; Score-CAM {ratios['ScoreCAM']:.2f}x; "
          f"Ablation-CAM {ratios['AblationCAM']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
