"""pyattrib: model interpretability for PyTorch as composable transforms.

A method is a transform: ``pa.integrated_gradients(model, n_steps=64)`` returns an
attributor, and ``attributor(x, target=y)`` returns attributions shaped like ``x``.
"""

from ._core.attributor import Attributor
from .gradient import (
    convergence_delta,
    gradient_shap,
    input_x_gradient,
    integrated_gradients,
    saliency,
)
from .noise import noise_tunnel, smoothgrad, smoothgrad_sq, vargrad
from .wrappers import multi_target

__version__ = "0.1.0"

__all__ = [
    "Attributor",
    "convergence_delta",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "multi_target",
    "noise_tunnel",
    "saliency",
    "smoothgrad",
    "smoothgrad_sq",
    "vargrad",
]
