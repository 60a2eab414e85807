"""Class activation maps (pytorch-grad-cam's family), on CNNs and vision transformers.

Every CAM is a transform ``pa.<cam>(model, layer, ...)`` returning an attributor
``(images, *, target=None, additional_forward_args=None) -> maps (N, H, W)``, built on the
capture combinator (gradient CAMs) or the perturbation engine (Score-CAM, Ablation-CAM).
Blur IG, Guided IG and XRAI (PAIR ``saliency``'s methods) are top-level transforms
(:func:`pyattrib.blur_ig`, ...); their blur and built-in segmentation live here. This package
also holds the layouts of token layers (:func:`vit_reshape`,
:func:`swin_reshape`, :func:`spatial_map`) and the principal-component maps.
"""

from .blur import gaussian_blur
from .full_grad import full_grad
from .gradient import (
    eigen_cam,
    eigen_grad_cam,
    grad_cam,
    grad_cam_elementwise,
    grad_cam_plus_plus,
    hires_cam,
    kpca_cam,
    layer_cam,
    xgrad_cam,
)
from .perturbation import ablation_cam, score_cam
from .projection import kernel_projection, svd_projection
from .reshape import spatial_map, swin_reshape, vit_reshape
from .segments import grid_segments
from .targets import box_score_target, segmentation_target

__all__ = [
    "ablation_cam",
    "box_score_target",
    "eigen_cam",
    "eigen_grad_cam",
    "full_grad",
    "gaussian_blur",
    "grad_cam",
    "grad_cam_elementwise",
    "grad_cam_plus_plus",
    "grid_segments",
    "hires_cam",
    "kernel_projection",
    "kpca_cam",
    "layer_cam",
    "score_cam",
    "segmentation_target",
    "spatial_map",
    "svd_projection",
    "swin_reshape",
    "vit_reshape",
    "xgrad_cam",
]
