"""LXT 2.1's efficient AttnLRP and CP-LRP relevances on tiny GPT-2, Llama, BERT and (torchvision's) ViT,
stored as a test fixture.

LXT 2.1 imports Hugging Face internals that transformers 5 removed, so it cannot share pyattrib's
test environment; this script runs in an environment of its own with a transformers 4.x that LXT
supports (LXT installed without its dependencies; its import of torchvision is served as the
tests serve it)::

    python -m venv /tmp/venv-lxt && /tmp/venv-lxt/bin/pip install torch==2.13.0 "transformers>=4.51,<5" \
        pillow tabulate && /tmp/venv-lxt/bin/pip install --no-deps lxt==2.1 zennit==0.5.1
    /tmp/venv-lxt/bin/python tools/lxt_reference.py   # writes tests/fixtures/lxt/reference.pt

LXT patches the model classes for good, so each (model, composite) runs in its own process. The
fixture holds each model's weights (both sides load them), the token ids, and per composite the
explained logit (the largest at the last position), its token and the relevance of each input
token (``(input embeddings x gradient).sum(-1)``, the gradient seeded with the logit: LXT's recipe).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "lxt", "reference.pt")

import lrp_models  # noqa: E402

# LXT has no CP BERT; its ViT is torchvision's, with CP-LRP and Zennit's gamma rules ("cp_lrp_gamma")
KINDS = {"gpt2": ("attnlrp", "cp_lrp"), "llama": ("attnlrp", "cp_lrp"), "bert": ("attnlrp",), "vit": ("cp_lrp_gamma",)}


def _torchvision() -> None:
    """lxt and the ViT import torchvision: its operator schemas first, as the tests serve it."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "libraries"))
    import torchvision_ops  # noqa: F401

    sys.path.append(os.path.join(ROOT, ".venv-torchvision"))


def explain_vit(out: str) -> None:
    """LXT's ViT recipe (its examples/vit_torch.py): torchvision's ViT patched with LXT's CP-LRP,
    Zennit's gamma on Conv2d and Linear through LXT's Zennit patch; relevance ``x * x.grad``."""
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from torchvision.models import vision_transformer

    monkey_patch(vision_transformer)
    monkey_patch_zennit()
    model = lrp_models.vit(torch.load(FIXTURE + ".weights", weights_only=True)["vit"])
    composite = lrp_models.zennit_vit_composite()
    composite.register(model)
    x = lrp_models.images().requires_grad_()
    top = model(x).max(-1)
    top.values.sum().backward()
    composite.remove()
    torch.save({"target": top.indices, "logit": top.values.detach(), "relevance": (x * x.grad).detach()}, out)


def explain(kind: str, composite: str, out: str) -> None:
    """One (model, composite) with LXT's patches, in this process."""
    _torchvision()
    if kind == "vit":
        return explain_vit(out)
    from lxt.efficient import monkey_patch

    cls = None
    if kind == "gpt2":
        from lxt.efficient.models import gpt2 as maps
        from transformers.models.gpt2 import modeling_gpt2 as module
    elif kind == "llama":
        from lxt.efficient.models import llama as maps
        from transformers.models.llama import modeling_llama as module
    else:  # LXT's BERT is its own copy of the model code, with the rules written in
        from lxt.efficient.models import bert as maps

        module, cls = maps, maps.BertForSequenceClassification
    monkey_patch(module, maps.attnLRP if composite == "attnlrp" else maps.cp_LRP)
    state = torch.load(FIXTURE + ".weights", weights_only=True)[kind]
    model = lrp_models.model(kind, state, cls)
    ids = lrp_models.ids()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = lrp_models.logits(model, model(inputs_embeds=embeds, **({} if kind == "bert" else {"use_cache": False})))
    top = logits.max(-1)
    top.values.backward(top.values.detach())
    torch.save({"target": top.indices, "logit": top.values.detach(), "relevance": (embeds.grad * embeds).sum(-1)
                .detach()}, out)  # fmt: skip


def main() -> None:
    _torchvision()
    weights = {kind: (lrp_models.vit() if kind == "vit" else lrp_models.model(kind)).state_dict() for kind in KINDS}
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    torch.save(weights, FIXTURE + ".weights")
    found: dict[str, object] = {
        "versions": {p: version(p) for p in ("lxt", "zennit", "torch", "torchvision", "transformers")},
        "ids": lrp_models.ids(),
        "images": lrp_models.images(),
    }
    for kind, composites in KINDS.items():
        found[kind] = {"state": weights[kind]}
        for composite in composites:
            out = f"/tmp/lxt_{kind}_{composite}.pt"
            subprocess.run([sys.executable, __file__, kind, composite, out], check=True)
            found[kind][composite] = torch.load(out, weights_only=True)  # type: ignore[index]
    os.remove(FIXTURE + ".weights")
    torch.save(found, FIXTURE)
    print("wrote", FIXTURE, found["versions"])


if __name__ == "__main__":
    if len(sys.argv) == 4:
        explain(*sys.argv[1:])
    else:
        main()
