"""Small models shared by the tests (importable as ``tests.models``)."""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int = 6, hidden: int = 8, d_out: int = 3, seed: int = 0, act: type[nn.Module] = nn.Tanh) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, d_out)
    ).eval()


class CNN(nn.Module):
    def __init__(self, n_out: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.tanh(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def relu_cnn(seed: int = 0) -> nn.Sequential:
    """Conv-ReLU-MaxPool-Conv-ReLU-AdaptiveAvgPool-Linear (3x8x8 in, 4 classes): every
    rule-based method applies (module ReLUs, max pooling)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(24, 4),
    ).eval()  # fmt: skip


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CNN().eval()


class LayoutRecorder(nn.Module):
    """A CNN that records the memory layout of every batch it is fed; ``view=True``
    flattens with ``.view``, which needs the standard layout."""

    def __init__(self, view: bool) -> None:
        super().__init__()
        self.inner, self.view, self.seen = cnn(), view, []

    def forward(self, x):
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        h = self.inner.pool(torch.tanh(self.inner.conv1(x)))
        h = torch.relu(self.inner.conv2(h))
        return self.inner.fc(h.view(h.shape[0], -1) if self.view else h.flatten(1))


class TwoInputs(nn.Module):
    """f(x1, x2, scale) with an additional per-example tensor argument."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(3, 5)
        self.mix = nn.Tanh()
        self.head = nn.Linear(5, 3)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, scale: torch.Tensor | None = None, shift: float = 0.0):
        h = self.mix(self.a(x1) + self.b(x2)) + shift
        if scale is not None:
            h = h * scale[:, None]
        return self.head(h)


def two_inputs(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoInputs().eval()


class Grid(nn.Module):
    """An output with two dimensions after the batch: (N, 2, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(x)).reshape(-1, 2, 3)


def grid(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Grid().eval()


class Scalar(nn.Module):
    """One output per example, shape (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)).pow(2).sum(1)


def scalar(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Scalar().eval()


class TokenModel(nn.Module):
    """Embedding + TransformerEncoder over integer token ids, mean-pooled to 3 classes."""

    def __init__(self, vocab: int = 20, d: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_embeddings(self.embedding(ids), mask)

    def from_embeddings(self, emb: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(emb)
        if mask is not None:
            h = h * mask[..., None]
        return self.head(h.mean(1))


def token_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TokenModel().eval()


class FromEmbeddings(nn.Module):
    """A token model fed with float embeddings instead of ids."""

    def __init__(self, model: TokenModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, emb: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.from_embeddings(emb, mask)


class LSTMModel(nn.Module):
    """Embedding + LSTM; the LSTM's value is the nested tuple (out, (h, c))."""

    def __init__(self, vocab: int = 20, d: int = 8, hidden: int = 6) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, (h, c) = self.lstm(self.embedding(ids))
        return self.head(out[:, -1] + h[0] + 0.5 * c[0])


def lstm_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return LSTMModel().eval()


class ModuleCNN(nn.Module):
    """Every nonlinearity a module (as Captum's hooks need), with max pooling."""

    def __init__(self, n_out: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 8)
        self.relu3 = nn.ReLU()
        self.out = nn.Linear(8, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.relu1(self.conv1(x)))
        h = self.pool2(self.relu2(self.conv2(h)))
        return self.out(self.relu3(self.fc(h.flatten(1))))


def module_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ModuleCNN().eval()


class PoolCNN(nn.Module):
    """conv-ReLU-maxpool twice then linear, all modules: a max-pool network on which
    Captum's DeepLift conserves the output difference."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.relu1(self.conv1(x)))
        return self.fc(self.pool2(self.relu2(self.conv2(h))).flatten(1))


def pool_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return PoolCNN().eval()


class Functional(nn.Module):
    """The twin of ``mlp(act=...)`` written with functional calls, in-place ReLU or one
    reused activation module: ``style`` in {"module", "functional", "inplace", "reused"}."""

    def __init__(self, style: str, act: str = "relu", seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.l1, self.l2, self.l3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.style, self.act_name = style, act
        self.a1 = nn.ReLU(inplace=style == "inplace") if act == "relu" else nn.Sigmoid()
        self.a2 = (
            self.a1 if style == "reused" else (nn.ReLU(inplace=style == "inplace") if act == "relu" else nn.Sigmoid())
        )

    def act(self, h: torch.Tensor, module: nn.Module) -> torch.Tensor:
        if self.style == "functional":
            return torch.relu(h) if self.act_name == "relu" else torch.sigmoid(h)
        return module(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(self.act(self.l2(self.act(self.l1(x), self.a1)), self.a2))
