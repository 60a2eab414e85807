"""An EK-FAC job (factors, pairwise scores, per-token scores, self-influence, top-k), run in-process
by the tests and under torchrun (gloo, two processes) by them: the training data is sharded."""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.utils.data import TensorDataset

import pyattrib as pa


class _Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.mix, self.head = nn.Embedding(11, 6), nn.Linear(6, 6), nn.Linear(6, 11)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.emb(ids))))


def _loss(out: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out.reshape(-1, 11), ids.reshape(-1), reduction="none").reshape(len(ids), -1)


def job() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = _Tokens().eval()
    ids = torch.randint(0, 11, (27, 5))  # 7 chunks of 4, the last one short
    calls = []

    def counted(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        calls.append(len(labels))
        return _loss(out, labels)

    ek = pa.influence.ekfac_influence(model, TensorDataset(ids, ids), loss_fn=counted, fisher="empirical", batch_size=4)
    ek.fit_factors()
    fitted = torch.tensor(calls)  # the batches this process read while fitting (two passes)
    queries = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(1))
    indices, values = ek.k_most_influential(queries, queries, k=4)
    return {"scores": ek.influence(queries, queries), "tokens": ek.influence(queries, queries, per_token=True),
            "self": ek.self_influence(), "top": indices, "top_values": values, "fitted": fitted,
            **{f"{layer}/{k}": v for layer, f in ek.factors.items() for k, v in f.items()}}  # fmt: skip


if __name__ == "__main__":
    torch.distributed.init_process_group("gloo")
    results = job()
    torch.save(results, f"{sys.argv[1]}.{torch.distributed.get_rank()}")
    torch.distributed.destroy_process_group()
