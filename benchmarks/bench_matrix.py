"""The architecture matrix: every method at its defaults on six models, pyattrib vs Captum
vs the raw-torch floor, side by side in one process (CPU, 2 threads).

Run: python benchmarks/bench_matrix.py [--models resnet18,lstm] [--methods saliency,...]
     [--rounds 5] [--no-memory]

Each cell calls both libraries as a user would, at their defaults (Captum: no
``internal_batch_size``, ``perturbations_per_eval=1``; pyattrib: ``batch_size=None``).
The floor is the least work any implementation must do: the batched forward + backward
over all gradient rows, or the forwards over all perturbed rows. Peak memory is the most
tensor memory alive at once during one call (torch.profiler's memory timeline).
A second table counts the model evaluations of integrated gradients with
``n_steps="auto"`` at the max |delta| of fixed 50-step Gauss-Legendre.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from captum import attr as ca
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402
from tests.architectures import resnet18  # noqa: E402

warnings.filterwarnings("ignore")


class Text(nn.Module):
    """Embedding + encoder (TransformerEncoder or LSTM) + mean-pool + linear, over token ids."""

    def __init__(self, kind: str, vocab: int = 1000, d: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        if kind == "transformer":
            layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
            self.encoder: nn.Module = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        else:
            self.encoder = nn.LSTM(d, d, batch_first=True)
        self.head = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embedding(ids))

    def from_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        h = self.encoder(emb)
        return self.head((h[0] if isinstance(h, tuple) else h).mean(1))


class Embedded(nn.Module):
    """A text model fed embeddings: what input-gradient methods explain."""

    def __init__(self, text: Text) -> None:
        super().__init__()
        self.text = text

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.text.from_embeddings(emb)


def gap_bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


def grid_mask(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Square patches of ``patch`` pixels as features, shared by every example and channel."""
    h, w = x.shape[-2:]
    rows = torch.arange(h) // patch
    cols = torch.arange(w) // patch
    return (rows[:, None] * ((w + patch - 1) // patch) + cols[None, :]).expand(1, 1, h, w)


@dataclass
class Case:
    """One model as a user brings it: float inputs for gradient methods, the inputs that
    perturbation methods change (token ids for text), and the per-method settings."""

    name: str
    model: nn.Module
    x: torch.Tensor
    layer: nn.Module
    perturbed: torch.Tensor | None = None  # default: x
    grad_model: nn.Module | None = None  # default: model (text: the embedding-fed model)
    conv: nn.Module | None = None
    window: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    mask: torch.Tensor | None = None
    relu: bool = True
    skip: set[str] = field(default_factory=set)

    def to(self, device: str) -> Case:
        """The case with its model (and the embedding-fed view of it) and tensors on ``device``."""
        self.model.to(device)  # grad_model, layer and conv are inside it
        moved = {k: getattr(self, k).to(device) for k in ("x", "perturbed", "mask") if getattr(self, k) is not None}
        return replace(self, **moved)


def cases() -> list[Case]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)).eval()
    cnn = common.cnn()
    torch.manual_seed(0)
    gap = gap_bn_cnn()
    res = resnet18(shrink=1)
    out = [
        Case("tabular MLP b64", mlp, torch.randn(64, 30), mlp[0], window=(3,), stride=(3,)),
        Case("CNN+maxpool b16 32px", cnn, torch.randn(16, 3, 32, 32), cnn[0], conv=cnn[3]),
        Case("CNN+GAP+BN b16 32px", gap, torch.randn(16, 3, 32, 32), gap[0], conv=gap[3]),
        Case("ResNet-18 b4 64px", res, torch.randn(4, 3, 64, 64), res.conv1, conv=res.layer4[1].conv2),
    ]
    for c in out[1:]:
        side = c.x.shape[-1]
        c.window, c.stride, c.mask = (3, side // 4, side // 4), (3, side // 8, side // 8), grid_mask(c.x, side // 4)
    for kind in ("transformer", "lstm"):
        torch.manual_seed(0)
        text = Text(kind).eval()
        ids = torch.randint(1, 1000, (16, 32))
        emb = text.embedding(ids).detach()
        out.append(
            Case(
                f"{kind} text b16 len32", text, emb, text.embedding, perturbed=ids, grad_model=Embedded(text),
                window=(3,), stride=(1,), relu=False,
            )
        )  # fmt: skip
    return out


# -- cells: (pyattrib, captum, floor) callables per method --------------------------------


def grad_floor(model: nn.Module, x: torch.Tensor, copies: int) -> Callable[[], object]:
    def run() -> None:
        xs = x.repeat(copies, *([1] * (x.dim() - 1))).requires_grad_()
        torch.autograd.grad(model(xs)[:, 0].sum(), xs)

    return run


def forward_floor(model: nn.Module, x: torch.Tensor, batches: int) -> Callable[[], object]:
    def run() -> None:
        with torch.no_grad():
            for _ in range(batches):
                model(x)

    return run


Cell = tuple[Callable[[], object], Callable[[], object], Callable[[], object] | None]


def gradient_attributors(c: Case) -> dict[str, tuple[Callable[[], pa.Attributor], tuple[torch.Tensor, ...]]]:
    """The gradient-family attributors of a case, as factories and their positional inputs:
    the eager cells build one per call (as a user would), the compiled column compiles one."""
    m, x = c.grad_model or c.model, c.x
    refs = torch.zeros(4, *x.shape[1:], device=x.device)
    out = {
        "saliency": (lambda: pa.saliency(m), (x,)),
        "integrated_gradients": (lambda: pa.integrated_gradients(m), (x,)),
        "smoothgrad(saliency)": (lambda: pa.smoothgrad(pa.saliency(m)), (x,)),
        "gradient_shap": (lambda: pa.gradient_shap(m), (x, refs)),
        "deep_lift": (lambda: pa.deep_lift(m), (x,)),
    }
    if c.relu:
        out["guided_backprop"] = (lambda: pa.guided_backprop(m), (x,))
    if c.conv is not None:
        out["layer_gradcam"] = (lambda: pa.layer_gradcam(m, c.conv), (x,))
    p = c.perturbed if c.perturbed is not None else x
    out["layer_integrated_gradients"] = (lambda: pa.layer_integrated_gradients(c.model, c.layer), (p,))
    return out


def compiled(c: Case, method: str) -> Callable[[], object] | None:
    """``torch.compile(attributor, fullgraph=True)`` for a gradient-family cell (None for the
    others); compiling happens on the first call, the benchmark's warm-up. The target is a
    tensor so that no call recompiles."""
    spec = gradient_attributors(c).get(method)
    if spec is None:
        return None
    make, args = spec
    torch._dynamo.reset()  # every attributor is a new graph of one function: start each cell afresh
    fn = torch.compile(make(), fullgraph=True)
    target = torch.zeros(len(c.x), dtype=torch.long, device=c.x.device)
    return lambda: fn(*args, target=target)


def _ours(make: Callable[[], pa.Attributor], args: tuple[torch.Tensor, ...]) -> Callable[[], object]:
    return lambda: make()(*args, target=0)


def cells(c: Case) -> dict[str, Cell]:
    m, x, t = c.grad_model or c.model, c.x, 0
    refs = torch.zeros(4, *x.shape[1:], device=x.device)
    ours = {k: _ours(make, args) for k, (make, args) in gradient_attributors(c).items()}
    out: dict[str, Cell] = {
        "saliency": (ours["saliency"], lambda: ca.Saliency(m).attribute(x, target=t), grad_floor(m, x, 1)),
        "integrated_gradients": (
            ours["integrated_gradients"],
            lambda: ca.IntegratedGradients(m).attribute(x, target=t),
            grad_floor(m, x, 50),
        ),
        "smoothgrad(saliency)": (
            ours["smoothgrad(saliency)"],
            lambda: ca.NoiseTunnel(ca.Saliency(m)).attribute(x, nt_type="smoothgrad", target=t),
            grad_floor(m, x, 5),
        ),
        "gradient_shap": (
            ours["gradient_shap"],
            lambda: ca.GradientShap(m).attribute(x, refs, target=t),
            grad_floor(m, x, 5),
        ),
        "deep_lift": (ours["deep_lift"], lambda: ca.DeepLift(m).attribute(x, target=t), grad_floor(m, x, 2)),
    }
    if c.relu:
        out["guided_backprop"] = (
            ours["guided_backprop"],
            lambda: ca.GuidedBackprop(m).attribute(x, target=t),
            grad_floor(m, x, 1),
        )
    if c.conv is not None:
        out["layer_gradcam"] = (
            ours["layer_gradcam"],
            lambda: ca.LayerGradCam(m, c.conv).attribute(x, target=t),
            grad_floor(m, x, 1),
        )
    p, model = (c.perturbed if c.perturbed is not None else x), c.model
    out["layer_integrated_gradients"] = (
        ours["layer_integrated_gradients"],
        lambda: ca.LayerIntegratedGradients(model, c.layer).attribute(p, target=t),
        grad_floor(m, x, 50),
    )
    positions = math.prod((s - w) // st + 1 for s, w, st in zip(p.shape[1:], c.window, c.stride))
    out["occlusion"] = (
        lambda: pa.occlusion(model, sliding_window_shapes=c.window, strides=c.stride)(p, target=t),
        lambda: ca.Occlusion(model).attribute(p, sliding_window_shapes=c.window, strides=c.stride, target=t),
        forward_floor(model, p, positions + 1),
    )
    mask = c.mask
    n_features = int(mask.max()) + 1 if mask is not None else p[0].numel()
    kw = {} if mask is None else {"feature_mask": mask}
    out["feature_ablation"] = (
        lambda: pa.feature_ablation(model)(p, target=t, **kw),
        lambda: ca.FeatureAblation(model).attribute(p, target=t, **kw),
        forward_floor(model, p, n_features + 1),
    )
    out["shapley_value_sampling"] = (
        lambda: pa.shapley_value_sampling(model)(p, target=t, **kw),
        lambda: ca.ShapleyValueSampling(model).attribute(p, target=t, **kw),
        forward_floor(model, p, 25 * n_features + 1),
    )
    out["kernel_shap"] = (
        lambda: pa.kernel_shap(model)(p, target=t, **kw),
        lambda: ca.KernelShap(model).attribute(p, target=t, **kw),
        forward_floor(model, p[:1], len(p) * 25),
    )
    return out


def run_cell(cell: Cell, rounds: int, memory: bool) -> dict[str, float | str]:
    ours, theirs, floor = cell
    contenders = {"pyattrib": ours, "captum": theirs} | ({"floor": floor} if floor else {})
    try:
        theirs()
    except Exception as e:  # Captum refuses some cells (e.g. DeepLift on reused ReLUs)
        contenders.pop("captum")
        error = f"captum raises {type(e).__name__}"
    else:
        error = ""
    t: dict[str, float | str] = dict(common.interleaved(contenders, rounds=rounds, warmup=1))
    if error:
        t["error"] = error
    if memory:
        t["mem_pyattrib"] = common.peak_tensor_mb(ours)
        if not error:
            t["mem_captum"] = common.peak_tensor_mb(theirs)
    return t


def show_compiled(c: Case, method: str, cell: Cell, rounds: int, memory: bool) -> str:
    """The compiled attributor against Captum eager (and pyattrib eager) on one cell."""
    label = f"{c.name:<24} {method + ' [compiled]':<27}"
    try:
        fn = compiled(c, method)
        assert fn is not None
        fn()  # compiles
    except Exception as e:  # a method whose overrides dynamo cannot trace
        return f"{label} does not compile (fullgraph): {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    ours, theirs, _ = cell
    t = common.interleaved({"compiled": fn, "eager": ours, "captum": theirs}, rounds=rounds, warmup=1)
    line = (
        f"{label} pyattrib {t['compiled'] * 1e3:9.1f} ms  captum {t['captum'] * 1e3:9.1f} ms  "
        f"{t['compiled'] / t['captum']:5.2f}x  ({t['compiled'] / t['eager']:4.2f}x pyattrib eager)"
    )
    if memory:
        line += f"  mem {common.peak_tensor_mb(fn):7.1f} MB"
    return line


def show(model: str, method: str, t: dict[str, float | str]) -> str:
    ours = float(t["pyattrib"])
    line = f"{model:<24} {method:<27} pyattrib {ours * 1e3:9.1f} ms"
    if "captum" in t:
        line += f"  captum {float(t['captum']) * 1e3:9.1f} ms  {ours / float(t['captum']):5.2f}x"
    else:
        line += f"  {t['error']:<32}"
    line += f"  {ours / float(t['floor']):5.2f}x floor" if "floor" in t else " " * 13
    if "mem_pyattrib" in t:
        line += f"  mem {float(t['mem_pyattrib']):7.1f} MB"
        if "mem_captum" in t:
            line += f" / {float(t['mem_captum']):7.1f} MB = {float(t['mem_pyattrib']) / float(t['mem_captum']):4.2f}x"
    return line


# -- integrated gradients to a tolerance: evaluations at the accuracy of 50-step GL -------------


class Rows(nn.Module):
    """Counts the rows the wrapped model is differentiated through."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0] if torch.is_grad_enabled() else 0
        return self.model(x)


def auto_steps(c: Case) -> str:
    counted = Rows(c.grad_model or c.model)
    x = c.x
    _, d50 = pa.integrated_gradients(counted, return_delta=True)(x, target=0)
    fixed_rows, counted.rows = counted.rows, 0
    tol = float(d50.abs().max())
    _, d = pa.integrated_gradients(counted, n_steps="auto", tolerance=tol, return_delta=True)(x, target=0)
    per_example = counted.rows / len(x)
    model = c.grad_model or c.model
    fixed, auto = pa.integrated_gradients(model), pa.integrated_gradients(model, n_steps="auto", tolerance=tol)
    t = common.interleaved({"fixed": lambda: fixed(x, target=0), "auto": lambda: auto(x, target=0)}, rounds=3, warmup=1)
    return (
        f"{c.name:<24} GL50: {fixed_rows / len(x):5.1f} evals/example, max|delta| {tol:.2e}   "
        f"auto(tolerance={tol:.2e}): {per_example:5.1f} evals/example ({per_example / 50:4.2f}x), "
        f"max|delta| {float(d.abs().max()):.2e}   time {t['auto'] * 1e3:7.1f} / {t['fixed'] * 1e3:7.1f} ms "
        f"= {t['auto'] / t['fixed']:4.2f}x"
    )


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def arguments(rounds: int) -> argparse.Namespace:
    """The command line shared by the matrix benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="")
    parser.add_argument("--methods", default="")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where models and data live")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd gradient-family rows")
    return parser.parse_args()


def main() -> None:
    args = arguments(rounds=5)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; defaults of both libraries")
    ratios: list[float] = []
    floors: list[float] = []  # floor / Captum: the ratio of an implementation that runs at the floor
    chosen = [c.to(args.device) for c in cases() if not args.models or any(k in c.name for k in args.models.split(","))]
    for c in chosen:
        for method, cell in cells(c).items():
            if args.methods and method not in args.methods.split(","):
                continue
            rounds = max(2, args.rounds // 2) if "ResNet" in c.name else args.rounds
            t = run_cell(cell, rounds, not args.no_memory)
            print(show(c.name, method, t), flush=True)
            if args.compile and method in gradient_attributors(c):
                print(show_compiled(c, method, cell, rounds, not args.no_memory), flush=True)
            if "captum" in t:
                ratios.append(float(t["pyattrib"]) / float(t["captum"]))
                if "floor" in t:
                    floors.append(float(t["floor"]) / float(t["captum"]))
    if ratios:
        print(f"geometric mean pyattrib/captum over {len(ratios)} cells: {geomean(ratios):.2f}x (target <= 0.5x)")
    if floors:
        print(f"geometric mean floor/captum over {len(floors)} cells with a floor: {geomean(floors):.2f}x "
              "(what running every cell at its standard-layout floor would give)")  # fmt: skip
    print("integrated gradients, n_steps='auto' at the max |delta| of 50-step Gauss-Legendre:")
    for c in chosen:
        print(auto_steps(c), flush=True)


if __name__ == "__main__":
    main()
