"""Per-token attributions for a tiny sentiment classifier, with layer integrated gradients
=======================================================================================

The data is generated: sentences over a vocabulary of neutral words plus a few
"positive" and "negative" words; the label says which kind is more frequent. A small
Embedding + TransformerEncoder model learns it in seconds. We then explain its
predictions at the embedding layer (token ids are integers, so gradients start there),
against a reference of padding tokens that keeps the leading [CLS] token, and write
``examples/out/text_attribution.html`` with every token coloured by its score.
"""

from __future__ import annotations

import os

import torch
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")
PAD, CLS = 0, 1
POSITIVE = ["good", "great", "love", "excellent", "fun"]
NEGATIVE = ["bad", "awful", "hate", "boring", "poor"]
NEUTRAL = ["the", "movie", "was", "a", "plot", "actor", "and", "it", "film", "story", "scene", "very"]
VOCAB = ["[PAD]", "[CLS]", *POSITIVE, *NEGATIVE, *NEUTRAL]
INDEX = {w: i for i, w in enumerate(VOCAB)}


def sentences(n: int, length: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.tensor([INDEX[w] for w in POSITIVE])
    neg = torch.tensor([INDEX[w] for w in NEGATIVE])
    neu = torch.tensor([INDEX[w] for w in NEUTRAL])
    ids = neu[torch.randint(len(neu), (n, length), generator=g)]
    n_pos = torch.randint(0, 4, (n,), generator=g)
    n_neg = torch.randint(0, 4, (n,), generator=g)
    n_neg = torch.where(n_pos == n_neg, (n_neg + 1) % 4, n_neg)  # no ties
    for i in range(n):
        slots = torch.randperm(length - 1, generator=g)[: n_pos[i] + n_neg[i]] + 1
        words = torch.cat(
            [pos[torch.randint(5, (int(n_pos[i]),), generator=g)], neg[torch.randint(5, (int(n_neg[i]),), generator=g)]]
        )
        ids[i, slots] = words
    ids[:, 0] = CLS
    return ids, (n_pos > n_neg).long()


class Classifier(nn.Module):
    def __init__(self, vocab: int = len(VOCAB), d: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d, padding_idx=PAD)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(ids)).mean(1))


def train(steps: int = 300, seed: int = 0) -> tuple[Classifier, float]:
    torch.manual_seed(seed)
    x, y = sentences(2000, seed=seed)
    x_te, y_te = sentences(500, seed=seed + 1)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x_te).argmax(1) == y_te).float().mean())
    return model, acc


def token_scores(model: Classifier, ids: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer IG at the embedding, summed over the embedding dimension: one score per token."""
    reference = pa.token_reference(ids, reference_id=PAD, keep=[CLS])
    lig = pa.layer_integrated_gradients(model, model.embedding, n_steps=50, return_delta=True)
    attr, delta = lig(ids, reference, target=target)
    return attr.sum(-1), delta


def write_html(ids: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, path: str) -> None:
    """Every sentence on one colour scale (the largest |score| of all), so a neutral word stays pale."""
    tokens = [[VOCAB[t] for t in sentence] for sentence in ids.tolist()]
    captions = ["positive" if label else "negative" for label in labels.tolist()]
    page = viz.text_attr(tokens, scores, labels=captions, title="Layer IG per token, for the predicted class")
    page.save(path)
    figure, _ = viz.text_attr_figure(tokens, scores, labels=captions, title="Layer IG per token", width=10)
    figure.savefig(path.replace(".html", ".png"), dpi=80)


def main(n_show: int = 6) -> dict[str, float]:
    model, acc = train()
    print(f"test accuracy: {acc:.3f}")
    ids, _ = sentences(n_show, seed=7)
    with torch.no_grad():
        pred = model(ids).argmax(1)
    scores, delta = token_scores(model, ids, pred)
    for sent, score, p in zip(ids.tolist(), scores, pred.tolist()):
        words = " ".join(f"{VOCAB[t]}({s:+.2f})" for t, s in zip(sent, score.tolist()))
        print(f"[{'pos' if p else 'neg'}] {words}")
    print("completeness delta per sentence:", [f"{d:+.1e}" for d in delta.tolist()])
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "text_attribution.html")
    write_html(ids, scores, pred, path)
    print(f"wrote {path}")
    # sentiment words should carry the evidence for the predicted class
    is_pos = torch.isin(ids, torch.tensor([INDEX[w] for w in POSITIVE]))
    is_neg = torch.isin(ids, torch.tensor([INDEX[w] for w in NEGATIVE]))
    toward = scores  # target = predicted class: positive scores push towards it
    agree = torch.where(pred[:, None] == 1, is_pos, is_neg)
    return {
        "accuracy": acc,
        "max_abs_delta": float(delta.abs().max()),
        "mean_score_agreeing_words": float(toward[agree].mean()),
        "mean_score_neutral_words": float(toward[~(is_pos | is_neg)].abs().mean()),
    }


if __name__ == "__main__":
    main()
