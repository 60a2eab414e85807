"""Faithfulness of AttnLRP and CP-LRP against IG, gradient x input and attention rollout (issue 34),
measured by deletion: remove the most relevant tokens (or patches) first and follow the explained
score; the area under that curve (its mean over the deletion steps) is lower for a more faithful
ranking. No target: this reports what it measures.

- Text: the 2-layer GPT-2 of ``examples/llm_attribution.py`` (trained in seconds on facts such as
  "the capital of france is" -> "paris", with words dropped to ``[MASK]`` in training), its 16
  prompts; a deleted word becomes ``[MASK]``; the score is the answer's probability.
- Images: a ViT (2 layers, width 32, 2x2 patches) trained on scikit-learn's digits (8x8), 200 test
  images; a deleted patch becomes 0 (the background); the score is the predicted class's probability.

``python benchmarks/bench_lrp_faithfulness.py``
"""

from __future__ import annotations

import copy
import os
import sys
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
warnings.filterwarnings("ignore")

import transformers  # noqa: E402

import pyattrib as pa  # noqa: E402

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()


def area(curve: list[float]) -> float:
    return sum(curve) / len(curve)


def text_scores():
    import llm_attribution as example

    tok = example.tokenizer()
    model, _ = example.train(tok)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    embeddings = model.get_input_embeddings()
    methods = {
        "AttnLRP": lambda ids, t: pa.layer_lrp(model, embeddings, composite="attnlrp")(ids, target=[(-1, t)]),
        "CP-LRP": lambda ids, t: pa.layer_lrp(model, embeddings, composite="cp_lrp")(ids, target=[(-1, t)]),
        "IG (32 steps)": lambda ids, t: pa.layer_integrated_gradients(model, embeddings, n_steps=32)(
            ids, baselines=torch.full_like(ids, tok.mask_token_id), target=[(-1, t)]),
        "gradient x input": lambda ids, t: pa.layer_gradient_x_activation(model, embeddings)(ids, target=[(-1, t)]),
    }  # fmt: skip
    curves: dict[str, list[float]] = {name: [] for name in [*methods, "attention rollout", "random"]}
    g = torch.Generator().manual_seed(0)
    for prompt, answer in example.corpus():
        ids = torch.tensor([tok.encode(prompt)])
        target = tok.encode(answer, add_special_tokens=False)[0]
        words = torch.tensor([i for i, t in enumerate(ids[0].tolist()) if t not in tok.all_special_ids])
        scores = {name: fn(ids, target)[0].sum(-1)[words] for name, fn in methods.items()}
        rollout = pa.text.attention_attribution(eager, tok, method="rollout")(
            pa.text.TextTokenInput(prompt, tok, skip_tokens=tok.all_special_tokens), torch.tensor([target]))
        scores["attention rollout"] = rollout.token_attr[0]
        scores["random"] = torch.rand(len(words), generator=g)
        for name, score in scores.items():
            order = words[score.argsort(descending=True)]
            current, curve = ids.clone(), []
            for k in range(len(order) + 1):
                with torch.no_grad():
                    curve.append(float(model(input_ids=current).logits[0, -1].softmax(-1)[target]))
                if k < len(order):
                    current[0, order[k]] = tok.mask_token_id
            curves[name].append(area(curve))
    return {name: sum(v) / len(v) for name, v in curves.items()}


def digits_vit():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, num_labels=10,
                                    attn_implementation="eager")  # fmt: skip
    model = transformers.ViTForImageClassification(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train, test = slice(0, 1500), slice(1500, 1700)
    for step in range(600):
        batch = torch.randint(0, 1500, (64,), generator=torch.Generator().manual_seed(step))
        loss = torch.nn.functional.cross_entropy(model(x[train][batch]).logits, y[train][batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x[test]).logits.argmax(-1) == y[test]).float().mean())
    return model, x[test], accuracy


def image_scores():
    model, images, accuracy = digits_vit()
    with torch.no_grad():
        predicted = model(images).logits.argmax(-1)
    methods = {
        "AttnLRP": lambda: pa.lrp(model, composite="attnlrp")(images, target=predicted),
        "CP-LRP": lambda: pa.lrp(model, composite="cp_lrp")(images, target=predicted),
        "IG (32 steps)": lambda: pa.integrated_gradients(model, n_steps=32)(images, baselines=0.0, target=predicted),
        "gradient x input": lambda: pa.input_x_gradient(model)(images, target=predicted),
    }
    # per patch: the sum over its 2x2 pixels
    scores = {name: fn().reshape(-1, 4, 2, 4, 2).sum((2, 4)).reshape(len(images), 16) for name, fn in methods.items()}
    with torch.no_grad():
        weights = model(images, output_attentions=True).attentions  # (N, H, 17, 17) per layer
    per_image = []
    for n in range(len(images)):
        per_layer = torch.stack([w[n].mean(0) for w in weights])
        per_image.append(pa.text.attention.rollout(per_layer)[0, 1:])  # the class token's row, to the patches
    scores["attention rollout"] = torch.stack(per_image)
    scores["random"] = torch.rand(len(images), 16, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, score in scores.items():
        order = score.argsort(1, descending=True)
        current, curve = images.clone(), []
        for k in range(17):
            with torch.no_grad():
                curve.append(model(current).logits.softmax(-1).gather(1, predicted[:, None])[:, 0])
            if k < 16:
                patch = order[:, k]
                rows, cols = (patch // 4) * 2, (patch % 4) * 2
                for n in range(len(images)):
                    current[n, 0, rows[n] : rows[n] + 2, cols[n] : cols[n] + 2] = 0
        out[name] = float(torch.stack(curve).mean())
    return out, accuracy


def main() -> None:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, 2 threads, CPU; deletion AUC "
          "(mean explained probability over the deletion steps): lower is more faithful")  # fmt: skip
    text = text_scores()
    images, accuracy = image_scores()
    print(f"{'method':20} {'GPT-2, 16 prompts':>18} {'ViT, 200 digits':>16}")
    for name in text:
        print(f"{name:20} {text[name]:18.4f} {images[name]:16.4f}")
    print(f"(ViT test accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
