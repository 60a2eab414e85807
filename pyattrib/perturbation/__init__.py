"""Perturbation methods: feature ablation, feature permutation and occlusion, at the input, a layer or a neuron.

``ablation`` and ``occlusion`` hold the input methods on the perturbation engine
(``pyattrib/_core/perturb.py``); ``internal`` their layer and neuron compositions.
"""

from .ablation import feature_ablation, feature_permutation, random_permutation
from .internal import layer_feature_ablation, layer_feature_permutation, neuron_feature_ablation
from .occlusion import occlusion

__all__ = [
    "feature_ablation", "feature_permutation", "random_permutation", "occlusion", "layer_feature_ablation",
    "layer_feature_permutation", "neuron_feature_ablation",
]  # fmt: skip
