"""Modified backpropagation: DeepLift(+SHAP), guided backpropagation, deconvolution, Guided Grad-CAM.

Each method is a gradient method run on ``overridden(model, rules)``: the same model with the
backward rule of its nonlinearities replaced (``pyattrib/_core/overrides.py``). ``deep_lift``
holds the input methods and their rules, ``internal`` the layer and neuron compositions,
``guided`` guided backpropagation, deconvolution and Guided Grad-CAM.
"""

from .deep_lift import CAPTUM_NONLINEAR, deep_lift, deep_lift_handoff, deep_lift_rules, deep_lift_shap
from .guided import deconvolution, guided_backprop, guided_gradcam, neuron_deconvolution, neuron_guided_backprop
from .internal import layer_deep_lift, layer_deep_lift_shap, neuron_deep_lift, neuron_deep_lift_shap

__all__ = [
    "CAPTUM_NONLINEAR", "deep_lift", "deep_lift_shap", "deep_lift_rules", "deep_lift_handoff", "layer_deep_lift",
    "layer_deep_lift_shap", "neuron_deep_lift", "neuron_deep_lift_shap", "guided_backprop", "deconvolution",
    "neuron_guided_backprop", "neuron_deconvolution", "guided_gradcam",
]  # fmt: skip
