"""Finding induction heads by patching
=====================================

Trains a tiny attention-only transformer (a Hugging Face GPT-2 with 2 layers, 4 heads, d=64 and
its MLPs removed) in seconds on sequences it generates: random filler, then a random segment
of 6 to 12 tokens twice, so the second copy can be predicted by copying from the first
(induction: the segment's length varies, so no fixed offset does it). Then asks which
components carry the behaviour, with a clean prompt (a repeated segment) and a corrupted one
(the first copy replaced by other tokens, so there is nothing to copy):

- activation patching over every (layer, head) and every (layer, position) of the residual
  stream, ``pa.patching.activation_patching`` (denoising: clean values patched into the
  corrupted run, normalised so 1 restores the clean metric);
- attribution patching (AtP) and AtP*'s GradDrop over the same heads, and their correlation
  with activation patching;
- edge attribution patching (EAP-IG), and the faithfulness of the circuit of its top edges.

Draws the maps with ``pa.viz.grid_map`` into ``examples/out/patching.png``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")
VOCAB, HALF, FILLER = 64, 12, 8  # filler tokens 1-7, segment tokens 8-63


class NoMLP(nn.Module):
    """Stands in for a block's MLP: the model is attention-only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def make_model(seed: int = 0) -> Any:  # a Hugging Face GPT2LMHeadModel
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_layer=2, n_head=4, n_embd=64, vocab_size=VOCAB, n_positions=2 * HALF, bos_token_id=0, eos_token_id=0,
        attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,  # type: ignore[call-arg]
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(cfg)
    for block in model.transformer.h:
        block.mlp = NoMLP()
    return model


def repeated(n: int, generator: torch.Generator, length: int | None = None) -> tuple[torch.Tensor, int]:
    """Random filler, then a random segment twice: ``2 * HALF`` tokens. The segment's length
    varies (6 to ``HALF``), so the copy's offset does too and only induction predicts it."""
    length = length or int(torch.randint(6, HALF + 1, (), generator=generator))
    filler = torch.randint(1, FILLER, (n, 2 * (HALF - length)), generator=generator)
    segment = FILLER + torch.rand(n, VOCAB - FILLER, generator=generator).argsort(1)[:, :length]  # no repeats
    return torch.cat([filler, segment, segment], dim=1), length


def train(steps: int = 1500, seed: int = 0) -> tuple[Any, float]:
    model = make_model(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x, length = repeated(64, g)
        copies = slice(2 * HALF - length, -1)  # the second copy, each token predicted from the first
        logits = model(x).logits[:, copies]
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), x[:, copies.start + 1 :].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, length = repeated(256, g, HALF - 3)
    copies = slice(2 * HALF - length, -1)
    with torch.no_grad():
        accuracy = (model(x).logits[:, copies].argmax(-1) == x[:, copies.start + 1 :]).float().mean().item()
    return model, accuracy


def main(steps: int = 1500, n_prompts: int = 16) -> dict:
    model, accuracy = train(steps)
    g = torch.Generator().manual_seed(1)
    clean, length = repeated(n_prompts, g, HALF - 3)
    corrupted = clean.clone()
    first = slice(2 * (HALF - length), 2 * (HALF - length) + length)
    corrupted[:, first] = torch.randint(FILLER, VOCAB, (n_prompts, length), generator=g)  # nothing to copy
    answer = clean[:, -1]  # the last token, predicted at position -2 from its copy in the first half
    metric = pa.patching.logit_diff(answer, position=-2)
    heads = pa.patching.heads(model)
    resid = pa.patching.positions(model.transformer.h, to_input=True)
    patched = pa.patching.activation_patching(model, {"heads": heads, "resid": resid}, metric,
                                              direction="denoising", score="normalized")(clean, corrupted)  # fmt: skip
    atp = pa.patching.attribution_patching(model, heads, metric, direction="denoising", score="normalized")
    atp_heads = atp(clean, corrupted)
    grad_drop = pa.patching.attribution_patching(model, heads, metric, direction="denoising", score="effect",
                                                 grad_drop=True)(clean, corrupted)  # fmt: skip
    exact = patched["heads"].mean(0)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()

    eap = pa.patching.edge_attribution_patching(model, metric, method="eap-ig", n_steps=5)
    edges = eap(clean, corrupted)
    recovered = {}
    for k in (8, 16, 32):
        keep = edges.top(k)
        recovered[k] = pa.patching.circuit_faithfulness(model, metric, keep)(clean, corrupted).recovered.item()
    keep = edges.top(8)
    kept = [f"{edges.writers[u]}->{edges.readers[v]}" for u, v in keep.nonzero().tolist()]
    result: dict[str, Any] = {
        "accuracy": accuracy,
        "top head per layer": [int(row.argmax()) for row in exact],
        "AtP vs patching": corr(atp_heads.mean(0), exact),
        "GradDrop vs |patching|": corr(grad_drop.mean(0), exact.abs()),
        f"circuit recovered (top 8, 16, 32 of {int(edges.valid.sum())} edges)": list(recovered.values()),
        "circuit recovered": recovered[32],
        "edges": kept,
    }
    fig = Figure(figsize=(11, 6))
    axes = fig.subplots(2, 2)
    viz.grid_map(exact, col_labels=[f"H{h}" for h in range(4)], title="activation patching (heads)", ax=axes[0, 0])
    viz.grid_map(atp_heads.mean(0), col_labels=[f"H{h}" for h in range(4)], title="AtP (heads)", ax=axes[0, 1])
    viz.grid_map(patched["resid"].mean(0), title="activation patching (residual stream by position)", ax=axes[1, 0])
    viz.grid_map(grad_drop.mean(0), col_labels=[f"H{h}" for h in range(4)], title="AtP* GradDrop |effect|",
                 ax=axes[1, 1])  # fmt: skip
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "patching.png"), dpi=80)
    for name, value in result.items():
        print(f"{name}: {value}")
    return result


if __name__ == "__main__":
    main()
