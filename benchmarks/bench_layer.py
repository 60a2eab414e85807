"""Layer and neuron methods: pyattrib vs Captum (and a raw-torch floor), one process.

Run: python benchmarks/bench_layer.py
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from captum.attr import LayerConductance, LayerIntegratedGradients, NeuronConductance, NeuronIntegratedGradients
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pyattrib as pa  # noqa: E402

warnings.filterwarnings("ignore")


class TextEncoder(nn.Module):
    """Embedding + 2-layer TransformerEncoder (d=128) + mean pool + linear head."""

    def __init__(self, vocab: int = 1000, d: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=256, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embedding(ids))

    def from_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(emb).mean(1))


class FromEmbeddings(nn.Module):
    def __init__(self, model: TextEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.model.from_embeddings(emb)


def lig_case() -> str:
    torch.manual_seed(0)
    model = TextEncoder().eval()
    ids = torch.randint(1, 1000, (8, 64))
    ref = torch.zeros_like(ids)
    ours = pa.layer_integrated_gradients(model, model.embedding, n_steps=50)
    theirs = LayerIntegratedGradients(model, model.embedding)

    def floor():  # one forward+backward from the embedding output over the interpolated batch
        with torch.no_grad():
            e, b = model.embedding(ids), model.embedding(ref)
        alphas = torch.linspace(0, 1, 50)[:, None, None, None]
        pts = (b + alphas * (e - b)).reshape(-1, *e.shape[1:]).requires_grad_()
        torch.autograd.grad(model.from_embeddings(pts)[:, 1].sum(), pts)

    t = common.interleaved(
        {
            "pyattrib": lambda: ours(ids, ref, target=1),
            "captum": lambda: theirs.attribute(ids, ref, target=1, n_steps=50),
            "floor": floor,
        },
        rounds=15,
        warmup=1,
    )
    return common.row(
        "layer IG, embedding, encoder b8 x 64 tok", t["pyattrib"], t["captum"], t["floor"], "(target <= 1.05x floor)"
    )


def encoder_conductance_case(ours_of, captum_of, layer_index: int, label: str, target: str, **kw) -> str:
    """``ours_of`` / ``captum_of`` build each side from (model, layer); ``kw`` goes to both calls."""
    torch.manual_seed(0)
    model = FromEmbeddings(TextEncoder().eval()).eval()
    layer = model.model.encoder.layers[layer_index]
    emb = torch.randn(4, 64, 128)
    ours, theirs = ours_of(model, layer), captum_of(model, layer)
    t = common.interleaved(
        {
            "pyattrib": lambda: ours(emb, target=1, **kw),
            "captum": lambda: theirs.attribute(emb, target=1, n_steps=20, **kw),
        },
        rounds=15,
        warmup=1,
    )
    return common.row(label, t["pyattrib"], t["captum"], None, target)


def neurons_case() -> str:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)).eval()
    x = torch.randn(16, 20)
    neurons = list(range(32))
    ours = pa.multi_target(
        pa.neuron_integrated_gradients(model, model[2], n_steps=50), neurons, argname="neuron_selector"
    )
    theirs = NeuronIntegratedGradients(model, model[2])

    def captum_loop():
        return torch.stack([theirs.attribute(x, j, n_steps=50) for j in neurons], 1)

    t = common.interleaved({"pyattrib": lambda: ours(x), "captum": captum_loop}, rounds=7, warmup=1)
    return common.row(
        "neuron IG, 32 neurons, MLP b16 (multi_target)", t["pyattrib"], t["captum"], None, "(target <= 0.25x captum)"
    )


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(lig_case())
    print(
        encoder_conductance_case(
            lambda m, layer: pa.layer_conductance(m, layer, n_steps=20), LayerConductance, 0,
            "layer conductance, encoder layer 0, b4", "(target <= 0.9x captum)",
        )
    )  # fmt: skip
    print(
        encoder_conductance_case(
            lambda m, layer: pa.neuron_conductance(m, layer, n_steps=20), NeuronConductance, 1,
            "neuron conductance, encoder layer 1, b4", "(report)", neuron_selector=(3, 5),
        )
    )  # fmt: skip
    print(neurons_case())


if __name__ == "__main__":
    main()
