"""pyattrib: model interpretability for PyTorch as composable transforms.

A method is a transform: ``pa.integrated_gradients(model, n_steps=64)`` returns an
attributor, and ``attributor(x, target=y)`` returns attributions shaped like ``x``.
"""

import inspect

from . import cam, concepts, data, influence, lrp_rules, metrics, modules, patching, robust, text
from ._core.attributor import Attributor, checked_transform
from ._core.inputs import BaselineLike, TensorOrTuple
from ._core.targets import ExampleTargets, OutputRows, TargetLike, output_rows
from .backprop import (
    deconvolution,
    deep_lift,
    deep_lift_shap,
    guided_backprop,
    guided_gradcam,
    layer_deep_lift,
    layer_deep_lift_shap,
    neuron_deconvolution,
    neuron_deep_lift,
    neuron_deep_lift_shap,
    neuron_guided_backprop,
)
from .cam import (
    ablation_cam,
    eigen_cam,
    eigen_grad_cam,
    full_grad,
    grad_cam,
    grad_cam_elementwise,
    grad_cam_plus_plus,
    hires_cam,
    kpca_cam,
    layer_cam,
    score_cam,
    xgrad_cam,
)
from .cam.targets import box_score_target, segmentation_target
from .gradient import (
    convergence_delta,
    gradient_shap,
    input_x_gradient,
    integrated_gradients,
    saliency,
)
from .guided_paths import blur_ig, guided_ig
from .layer import (
    internal_influence,
    interpolate,
    layer_activation,
    layer_conductance,
    layer_gradcam,
    layer_gradient_shap,
    layer_gradient_x_activation,
    layer_integrated_gradients,
    token_reference,
)
from .lime import kernel_shap, lime
from .lrp_rules import layer_lrp, lrp
from .neuron import (
    neuron_conductance,
    neuron_gradient,
    neuron_gradient_shap,
    neuron_integrated_gradients,
    truncate,
)
from .noise import noise_tunnel, smoothgrad, smoothgrad_sq, vargrad
from .owen import owen_values
from .perturbation import (
    feature_ablation,
    feature_permutation,
    layer_feature_ablation,
    layer_feature_permutation,
    neuron_feature_ablation,
    occlusion,
)
from .shapley import shapley_value_sampling, shapley_values
from .wrappers import multi_target
from .xrai import xrai

__version__ = "0.1.0"


__all__ = [
    "ablation_cam",
    "eigen_cam",
    "eigen_grad_cam",
    "full_grad",
    "grad_cam",
    "grad_cam_elementwise",
    "grad_cam_plus_plus",
    "hires_cam",
    "kpca_cam",
    "layer_cam",
    "score_cam",
    "xgrad_cam",
    "blur_ig",
    "guided_ig",
    "xrai",
    "owen_values",
    "cam",
    "text",
    "patching",
    "Attributor",
    "TargetLike",
    "BaselineLike",
    "TensorOrTuple",
    "OutputRows",
    "ExampleTargets",
    "box_score_target",
    "segmentation_target",
    "lrp_rules",
    "concepts",
    "data",
    "influence",
    "metrics",
    "modules",
    "robust",
    "convergence_delta",
    "feature_ablation",
    "feature_permutation",
    "occlusion",
    "deconvolution",
    "deep_lift",
    "deep_lift_shap",
    "guided_backprop",
    "guided_gradcam",
    "layer_deep_lift",
    "layer_deep_lift_shap",
    "neuron_deconvolution",
    "neuron_deep_lift",
    "neuron_deep_lift_shap",
    "neuron_feature_ablation",
    "neuron_guided_backprop",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "internal_influence",
    "interpolate",
    "layer_activation",
    "layer_conductance",
    "layer_feature_ablation",
    "layer_feature_permutation",
    "layer_gradcam",
    "layer_gradient_shap",
    "layer_gradient_x_activation",
    "layer_integrated_gradients",
    "layer_lrp",
    "lrp",
    "multi_target",
    "output_rows",
    "neuron_conductance",
    "neuron_gradient",
    "neuron_gradient_shap",
    "neuron_integrated_gradients",
    "noise_tunnel",
    "saliency",
    "shapley_value_sampling",
    "shapley_values",
    "token_reference",
    "truncate",
    "smoothgrad",
    "smoothgrad_sq",
    "vargrad",
]


def __getattr__(name: str):
    # pictures need matplotlib (an optional dependency): imported on first use, not with pyattrib
    if name in ("viz", "insights", "testing"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pyattrib' has no attribute {name!r}")


# Captum's names at transform time (internal_batch_size=, nt_type=, ...) get a message saying where they go
for _name in __all__:
    if inspect.isfunction(globals()[_name]):
        globals()[_name] = checked_transform(globals()[_name])
del _name
