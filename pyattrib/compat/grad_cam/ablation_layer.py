"""pytorch-grad-cam's ablation-layer names, accepted by :class:`AblationCAM`; pyattrib reads the
layer's layout (channels first, or tokens with channels last) from its output."""

from __future__ import annotations


class AblationLayer:
    """Channels-first maps ``(N, C, h, w)`` (pytorch-grad-cam's default)."""


class AblationLayerVit(AblationLayer):
    """Tokens ``(N, T, C)``, channels last."""
