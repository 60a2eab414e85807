"""Insights: browse the digits CNN's test predictions with four attribution methods
================================================================================

Trains the digits CNN of ``examples/digits.py`` (seconds, nothing downloaded), then writes
``examples/out/insights_report.html``: one self-contained page (open it from disk, no network)
with each test image, its label, the prediction and saliency, integrated gradients,
smoothgrad(integrated gradients) and occlusion maps side by side; filter by class and by
correct/incorrect, sort by confidence. ``--serve`` serves the same page with live attribution
(change a method's options and recompute) on http://127.0.0.1:8600/ until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os

import pyattrib as pa
from pyattrib import insights

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd

try:
    from digits import OUT, train
except ImportError:  # loaded by path (tests)
    import importlib.util

    _spec = importlib.util.spec_from_file_location("digits", os.path.join(HERE, "digits.py"))
    assert _spec is not None and _spec.loader is not None
    _digits = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_digits)
    OUT, train = _digits.OUT, _digits.train


def smoothgrad_ig(model, n_steps: int = 16, n_samples: int = 8, stdevs: float = 0.1):
    """smoothgrad(integrated_gradients): a composed method is a transform like any other."""
    return pa.smoothgrad(pa.integrated_gradients(model, n_steps=n_steps), n_samples=n_samples, stdevs=stdevs)


METHODS = {
    "saliency": pa.saliency,
    "integrated gradients": (pa.integrated_gradients, {"n_steps": 32}),
    "smoothgrad(IG)": (smoothgrad_ig, {"n_steps": 16, "n_samples": 8, "stdevs": 0.1}),
    "occlusion": (pa.occlusion, {"sliding_window_shapes": (1, 2, 2)}),
}


def main(n_examples: int = 120, serve: bool = False, out: str | None = None) -> dict[str, float]:
    model, x_te, y_te, acc = train()
    print(f"test accuracy: {acc:.3f}")
    data, classes = (x_te[:n_examples], y_te[:n_examples]), [str(d) for d in range(10)]
    path = os.path.join(out or OUT, "insights_report.html")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    page = insights.report(model, data, METHODS, classes, path=path, title="digits CNN: test predictions")
    print(f"wrote {path} ({len(page) / 1e6:.1f} MB, {n_examples} examples x {len(METHODS)} methods)")
    print("serve it with live attribution: python examples/insights.py --serve")
    if serve:
        server = insights.serve(model, data, METHODS, classes, title="digits CNN: live")
        print("Ctrl-C to stop")
        server.wait()
    return {"accuracy": acc, "bytes": len(page)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Insights report of the digits CNN")
    parser.add_argument("--serve", action="store_true", help="serve the page with live attribution")
    parser.add_argument("--examples", type=int, default=120)
    args = parser.parse_args()
    main(args.examples, args.serve)
