"""Layer methods: an input method applied to the model spliced at one layer's value.

``activation`` holds the methods from one gradient (activation, gradient x activation,
Grad-CAM) and the helpers ``interpolate`` and ``token_reference``; ``path`` the methods that
integrate along a path (integrated gradients, conductance, internal influence, GradientSHAP).
"""

from .activation import (
    LayerLike,
    interpolate,
    layer_activation,
    layer_gradcam,
    layer_gradient_x_activation,
    token_reference,
)
from .path import internal_influence, layer_conductance, layer_gradient_shap, layer_integrated_gradients

__all__ = [
    "LayerLike", "layer_activation", "layer_gradient_x_activation", "layer_gradcam", "interpolate", "token_reference",
    "layer_integrated_gradients", "layer_conductance", "internal_influence", "layer_gradient_shap",
]  # fmt: skip
