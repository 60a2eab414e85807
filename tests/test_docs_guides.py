"""Every Python block of the guides and the docs' index runs, as written, on small stand-ins
for the names a reader brings (``model``, ``x``, a loader, a tokenizer...).

A block that needs a library outside the test environment says so in an HTML comment just
above it, ``<!-- not run: reason -->``; the test lists those reasons and runs everything else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs" / "guides").glob("*.md")) + [ROOT / "docs" / "index.md"]
BLOCK = re.compile(r"(<!-- not run: (?P<why>[^>]*) -->\s*)?```python\n(?P<code>.*?)```", re.S)
BLOCKS = [(page, i, m["code"], m["why"]) for page in PAGES for i, m in enumerate(BLOCK.finditer(page.read_text()))]
SKIPPED_ON_PURPOSE = {"captum.md": 1}  # the blocks that run a library built on Captum (not installed here)


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer3 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.pool, self.fc1, self.out = nn.AdaptiveAvgPool2d(2), nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc1(self.pool(self.layer4(self.layer3(x))).flatten(1))))


class _Text(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding, self.out = nn.Embedding(50, 8), nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embedding(ids).mean(1))


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.out = nn.Linear(8, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc1(x)))


def _namespace(page: str, request) -> dict:
    import torch.nn.functional as F

    import pyattrib as pa

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mlp = _MLP().eval()
    ns = {"torch": torch, "nn": nn, "F": F, "pa": pa, "g": g, "mlp": mlp, "model": mlp, "x": torch.randn(6, 8)}
    ns |= {
        "y": torch.tensor([0, 1, 2, 0, 1, 2]),
        "labels": torch.tensor([0, 1, 2, 0, 1, 2]),
        "refs": torch.randn(10, 8),
    }
    if page in ("metrics.md", "robust.md", "concepts.md", "viz.md", "insights.md"):
        cnn = _CNN().eval()
        ns |= {"model": cnn, "x": torch.rand(4, 3, 8, 8), "y": torch.tensor([0, 1, 2, 0])}
    if page == "cam.md":
        cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()  # fmt: skip
        ns |= {"cnn": cnn, "conv": cnn[0], "images": torch.rand(2, 3, 8, 8)}
    if page == "patching.md":
        import transformers

        config = transformers.GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                         bos_token_id=0, eos_token_id=0, attn_implementation="eager")  # fmt: skip
        clean = torch.randint(1, 60, (2, 6), generator=g)
        corrupted = torch.cat([clean[:, :1], torch.randint(1, 60, (2, 1), generator=g), clean[:, 2:]], 1)
        ns |= {"gpt2": transformers.GPT2LMHeadModel(config).eval(), "clean_ids": clean, "corrupted_ids": corrupted}
    if page == "transforms.md":
        ns |= {"lam": 0.1, "irrelevant": [0, 1]}
    if page == "concepts.md":
        ns |= {
            "striped_images": torch.rand(12, 3, 8, 8) + 0.5,
            "sets": [torch.rand(12, 3, 8, 8) for _ in range(3)],
            "zebra": 1,
        }
    if page == "data.md":
        data = torch.utils.data.TensorDataset(torch.randn(48, 8), torch.tensor([0, 1, 2] * 16))
        ns |= {"loader": torch.utils.data.DataLoader(data, batch_size=16)}
        ns["ClassSummarizer"] = None  # the block imports it; a stale name would hide a failed import
    if page == "influence.md":
        train = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))
        states = [{k: v + 0.01 * i for k, v in mlp.state_dict().items()} for i in range(3)]
        ns |= {"train_dataset": train, "state_dict_1": states[0], "state_dict_2": states[1], "state_dict_3": states[2]}
        ns |= {"test_x": torch.randn(3, 8), "test_y": torch.tensor([0, 1, 2])}
    if page == "insights.md":
        ns |= {"x_test": ns["x"], "y_test": ns["y"], "names": ["a", "b", "c"]}
    if page == "layers.md":
        ns |= {"model": _Text().eval(), "input_ids": torch.randint(3, 50, (4, 6)), "PAD": 0, "CLS": 1, "SEP": 2,
               "label": torch.tensor([0, 1, 0, 1]), "cnn": _CNN().eval(), "images": torch.rand(2, 3, 8, 8),
               "y": torch.tensor([0, 1])}  # fmt: skip
    if page == "viz.md":
        import matplotlib

        matplotlib.use("Agg")
        attr = pa.saliency(ns["model"])(ns["x"], target=ns["y"])
        ns |= {"attr": attr, "token_lists": [["a", "good", "film"], ["not", "good"]],
               "score_rows": [torch.tensor([0.0, 0.9, 0.1]), torch.tensor([-0.5, 0.4])],
               "attr_tc": torch.randn(20, 2), "data_tc": torch.randn(20, 2),
               "ig_attr": torch.randn(5, 4), "shap_attr": torch.randn(5, 4), "feature_names": ["a", "b", "c", "d"]}  # fmt: skip
    if page == "text.md":
        ns |= {"model": request.getfixturevalue("gpt2"), "tokenizer": request.getfixturevalue("tokenizer")}
    return ns


@pytest.mark.parametrize(("page", "index", "code", "why"), BLOCKS, ids=[f"{p.name}[{i}]" for p, i, _, _ in BLOCKS])
def test_guide_block_runs(page, index, code, why, request, tmp_path, monkeypatch):
    if why:
        assert SKIPPED_ON_PURPOSE.get(page.name, 0) > 0, f"{page.name}[{index}] is not run ({why}): list it here"
        pytest.skip(f"not run: {why}")
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    ns = _namespace(page.name, request)
    try:
        exec(compile(code, f"{page.name}[{index}]", "exec"), ns)
    finally:
        if "server" in ns and hasattr(ns["server"], "stop"):
            ns["server"].stop()


def test_blocks_not_run_are_the_listed_ones():
    skipped: dict[str, int] = {}
    for page, _, _, why in BLOCKS:
        if why:
            skipped[page.name] = skipped.get(page.name, 0) + 1
    assert skipped == SKIPPED_ON_PURPOSE
