"""Models of the CAM tests: a CNN with BatchNorm, the ResNet of the architecture matrix, a ViT
with a class token, and a Swin-style model whose stages are channels-last grids."""

from __future__ import annotations

import torch
from torch import nn

from .architectures import resnet18, vit


class CNN(nn.Module):
    def __init__(self, n_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


class SwinLike(nn.Module):
    """Patch embedding to a channels-last grid ``(N, h, w, C)``, an MLP and a LayerNorm on it."""

    def __init__(self, d: int = 12, n_classes: int = 5) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.mix = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x):
        h = self.patch(x).permute(0, 2, 3, 1)
        h = self.norm(torch.relu(self.mix(h)))
        return self.head(h.mean((1, 2)))


def cnn(seed: int = 0) -> CNN:
    torch.manual_seed(seed)
    model = CNN().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.7, 1.3)
            m.bias.data.normal_(0, 0.1)
    return model


def cases():
    """``name -> (model, layer, images)``: each model with the layer CAM users pick."""
    torch.manual_seed(0)
    c, r, v = cnn(), resnet18(), vit()
    torch.manual_seed(1)
    s = SwinLike().eval()
    g = torch.Generator().manual_seed(2)
    return {
        "cnn": (c, c.features[6], torch.randn(3, 3, 16, 16, generator=g)),
        "resnet": (r, r.layer4[-1], torch.randn(2, 3, 64, 64, generator=g)),
        "vit": (v, v.blocks[-1]["ln1"], torch.randn(2, 3, 32, 32, generator=g)),
        "swin": (s, s.norm, torch.randn(2, 3, 32, 32, generator=g)),
    }
