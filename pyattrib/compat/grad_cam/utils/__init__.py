"""pytorch-grad-cam's ``utils``: targets, reshape transforms, images, projections."""

from . import image, model_targets, reshape_transforms, svd_on_activations

__all__ = ["image", "model_targets", "reshape_transforms", "svd_on_activations"]
