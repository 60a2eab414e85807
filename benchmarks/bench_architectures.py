"""Real architectures, pyattrib vs Captum vs the raw-torch floor (CPU, 2 threads, one process).

The architectures of ``tests/architectures.py`` (torchvision's MobileNetV2, EfficientNet-B0
and a ViT, shortened to a few blocks, eval mode with realistic BatchNorm statistics; tiny
Hugging Face BERT and GPT-2 configs with eager and SDPA attention; an LSTM classifier) and
every method of the matrix benchmark (``bench_matrix.py``, which has ResNet-18 at full
width) that applies. Both libraries at their defaults; a Hugging Face model is wrapped to
return its logits (BERT: the classes; GPT-2: the next-token logits) for both.

Run: python benchmarks/bench_architectures.py [--models vit,bert] [--methods saliency,...]
     [--rounds 3] [--no-memory]
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_matrix import Case, arguments, cells, geomean, grid_mask, run_cell, show  # noqa: E402

from tests import architectures as A  # noqa: E402

warnings.filterwarnings("ignore")


class Logits(nn.Module):
    """A Hugging Face model as a function of token ids or embeddings, returning its logits
    (the last position's for a language model)."""

    def __init__(self, hf: nn.Module, embedded: bool, last: bool) -> None:
        super().__init__()
        self.hf, self.embedded, self.last = hf, embedded, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = (self.hf(inputs_embeds=x) if self.embedded else self.hf(input_ids=x)).logits
        return logits[:, -1] if self.last else logits


def text_case(name: str, hf: nn.Module, embedding: nn.Module, last: bool) -> Case:
    ids = torch.randint(1, 60, (8, 16), generator=torch.Generator().manual_seed(0))
    model = Logits(hf, embedded=False, last=last).eval()
    return Case(
        name, model, embedding(ids).detach(), embedding, perturbed=ids,
        grad_model=Logits(hf, embedded=True, last=last).eval(), window=(3,), stride=(1,), relu=False,
    )  # fmt: skip


def cases() -> list[Case]:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mobile, eff, vit = A.mobilenet_v2(), A.efficientnet_b0(), A.vit()
    out = [
        Case("MobileNetV2 b4 32px", mobile, x, mobile.features[0][0], conv=mobile.features[3].conv[-2], relu=False),
        Case("EfficientNet-B0 b4 32px", eff, x, eff.features[0][0], conv=eff.features[3].block[-2], relu=False),
        Case("ViT b4 32px", vit, x, vit.patch, relu=False),
    ]
    for c in out:
        c.window, c.stride, c.mask = (3, 8, 8), (3, 4, 4), grid_mask(x, 8)
    for attn in ("eager", "sdpa"):
        bert = A.bert(attn)
        out.append(text_case(f"BERT {attn} b8 len16", bert, bert.bert.embeddings.word_embeddings, last=False))
        gpt2 = A.gpt2(attn)
        out.append(text_case(f"GPT-2 {attn} b8 len16", gpt2, gpt2.transformer.wte, last=True))
    lstm = A.lstm()
    ids = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(0))
    out.append(
        Case("LSTM b8 len16", lstm, lstm.embedding(ids).detach(), lstm.embedding, perturbed=ids,
             grad_model=A.AfterEmbedding(lstm).eval(), window=(3,), stride=(1,), relu=False)
    )  # fmt: skip
    return out


def main() -> None:
    args = arguments(rounds=3)
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; defaults of both libraries")
    ratios: list[float] = []
    mem_ratios: list[float] = []
    for c in cases():
        if args.models and not any(k.lower() in c.name.lower() for k in args.models.split(",")):
            continue
        for method, cell in cells(c).items():
            if args.methods and method not in args.methods.split(","):
                continue
            t = run_cell(cell, args.rounds, not args.no_memory)
            print(show(c.name, method, t), flush=True)
            if "captum" in t:
                ratios.append(float(t["pyattrib"]) / float(t["captum"]))
            if "mem_captum" in t:
                mem_ratios.append(float(t["mem_pyattrib"]) / max(float(t["mem_captum"]), 1e-3))
    if ratios:
        print(f"geometric mean pyattrib/captum time over {len(ratios)} cells: {geomean(ratios):.2f}x")
    if mem_ratios:
        print(f"peak memory pyattrib/captum: max {max(mem_ratios):.2f}x, "
              f"cells above 1.25x: {sum(r > 1.25 for r in mem_ratios)} of {len(mem_ratios)}")  # fmt: skip


if __name__ == "__main__":
    main()
