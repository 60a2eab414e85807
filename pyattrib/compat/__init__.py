"""Captum's class API over pyattrib's transforms: change the import, keep the code.

``from pyattrib.compat import IntegratedGradients`` gives a class with Captum's constructor,
``attribute(...)`` signature, defaults, return structures and numbers (Captum's quirks
included: its trapezoid weights, one delta per sample for GradientShap/DeepLiftShap/
NoiseTunnel). Each class is a thin adapter: configuration in the constructor, Captum's
arguments mapped onto one pyattrib transform call. ``python tools/captum_suite.py`` (in the repository)
runs Captum's own test suite against these classes.
"""

from __future__ import annotations

from typing import Any

from ..data import MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, StdDev, Sum, Summarizer, Var
from ..modules import BinaryConcreteStochasticGates, GaussianStochasticGates
from ..text import (
    ImageMaskInput,
    InterpretableInput,
    LLMAttributionResult,
    ProductBaselines,
    RemoteLLMProvider,
    TextTemplateInput,
    TextTokenInput,
    VLLMProvider,
)
from . import lrp_rules
from ._base import (
    Attribution,
    GradientAttribution,
    InternalAttribution,
    LayerAttribution,
    NeuronAttribution,
    PerturbationAttribution,
)
from .attr import (
    LRP,
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from .concept import CAV, TCAV, Classifier, Concept, ConceptInterpreter, DefaultClassifier
from .data import DataLoaderAttribution, InputRole
from .influence import KMostInfluentialResults, TracInCP, TracInCPFast, TracInCPFastRandProj
from .influence_functions import ArnoldiInfluenceFunction, NaiveInfluenceFunction
from .layer import (
    InternalInfluence,
    LayerActivation,
    LayerConductance,
    LayerDeepLift,
    LayerDeepLiftShap,
    LayerFeatureAblation,
    LayerFeaturePermutation,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LayerLRP,
)
from .lime import KernelShap, Lime, LimeBase
from .lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule, PropagationRule
from .metrics import default_perturb_func, infidelity, infidelity_perturb_func_decorator, sensitivity_max
from .models import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)
from .neuron import (
    NeuronConductance,
    NeuronDeconvolution,
    NeuronDeepLift,
    NeuronDeepLiftShap,
    NeuronFeatureAblation,
    NeuronGradient,
    NeuronGradientShap,
    NeuronGuidedBackprop,
    NeuronIntegratedGradients,
)
from .patch import patch_captum, unpatch_captum
from .perturbation import FeatureAblation, FeaturePermutation, Occlusion, ShapleyValues, ShapleyValueSampling
from .robust import FGSM, PGD, AttackComparator, MinParamPerturbation, Perturbation
from .similarity import SimilarityInfluence, cosine_similarity, euclidean_distance
from .text import LLMAttribution, LLMGradientAttribution, RemoteLLMAttribution

__all__ = [
    "Attribution", "GradientAttribution", "PerturbationAttribution", "InternalAttribution", "LayerAttribution",
    "NeuronAttribution",
    "Saliency", "InputXGradient", "IntegratedGradients", "GradientShap", "NoiseTunnel", "DeepLift", "DeepLiftShap",
    "GuidedBackprop", "Deconvolution", "GuidedGradCam", "LRP", "FeatureAblation", "FeaturePermutation", "Occlusion",
    "ShapleyValueSampling", "ShapleyValues", "LimeBase", "Lime", "KernelShap",
    "LayerActivation", "LayerGradientXActivation", "LayerGradCam", "InternalInfluence", "LayerConductance",
    "LayerIntegratedGradients", "LayerGradientShap", "LayerDeepLift", "LayerDeepLiftShap", "LayerFeatureAblation",
    "LayerFeaturePermutation", "LayerLRP",
    "NeuronGradient", "NeuronIntegratedGradients", "NeuronConductance", "NeuronGradientShap", "NeuronDeepLift",
    "NeuronDeepLiftShap", "NeuronGuidedBackprop", "NeuronDeconvolution", "NeuronFeatureAblation",
    "TokenReferenceBase", "InterpretableEmbeddingBase", "configure_interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
    "LLMAttribution", "LLMGradientAttribution", "RemoteLLMAttribution", "LLMAttributionResult", "InterpretableInput",
    "TextTemplateInput", "TextTokenInput", "ImageMaskInput", "ProductBaselines", "RemoteLLMProvider", "VLLMProvider",
    "PropagationRule", "EpsilonRule", "GammaRule", "Alpha1_Beta0_Rule", "IdentityRule", "lrp_rules",
    "infidelity", "infidelity_perturb_func_decorator", "sensitivity_max", "default_perturb_func",
    "Perturbation", "FGSM", "PGD", "AttackComparator", "MinParamPerturbation",
    "BinaryConcreteStochasticGates", "GaussianStochasticGates",
    "Summarizer", "ClassSummarizer", "Mean", "Var", "StdDev", "Min", "Max", "Sum", "Count", "MSE", "CommonStats",
    "TCAV", "Concept", "Classifier", "CAV", "DefaultClassifier", "ConceptInterpreter",
    "DataLoaderAttribution", "InputRole",
    "TracInCP", "TracInCPFast", "TracInCPFastRandProj", "NaiveInfluenceFunction", "ArnoldiInfluenceFunction",
    "KMostInfluentialResults", "SimilarityInfluence", "cosine_similarity", "euclidean_distance",
    "captum_twins", "patch_captum", "unpatch_captum",
]  # fmt: skip
_CONCEPT = ["TCAV", "Concept", "Classifier", "CAV", "DefaultClassifier", "ConceptInterpreter"]
_MODULE = ["BinaryConcreteStochasticGates", "GaussianStochasticGates"]
_METRICS = ["infidelity", "infidelity_perturb_func_decorator", "sensitivity_max"]
_ROBUST = ["Perturbation", "FGSM", "PGD", "AttackComparator", "MinParamPerturbation"]
_INFLUENCE = {
    "captum.influence._core.tracincp": ["TracInCP"],
    "captum.influence._core.tracincp_fast_rand_proj": ["TracInCPFast", "TracInCPFastRandProj"],
    "captum.influence._core.influence_function": ["NaiveInfluenceFunction"],
    "captum.influence._core.arnoldi_influence_function": ["ArnoldiInfluenceFunction"],
    "captum.influence._core.similarity_influence": ["SimilarityInfluence", "cosine_similarity", "euclidean_distance"],
    "captum.influence._utils.common": ["KMostInfluentialResults"],
}

# Where Captum defines each object compat covers (for the test-suite runner).
_CAPTUM_HOMES = {
    "captum.attr": [n for n in __all__ if n not in ("InternalAttribution", "lrp_rules", "captum_twins", "patch_captum",
                                                    "unpatch_captum", *_METRICS,
                                                    "default_perturb_func", *_MODULE, *_CONCEPT,
                                                    "DataLoaderAttribution", "InputRole",
                                                    *_ROBUST, *(n for ns in _INFLUENCE.values() for n in ns))
                   and not n.endswith("Rule")],
    **_INFLUENCE,
    "captum.metrics": _METRICS,
    "captum.metrics._core.sensitivity": ["default_perturb_func"],
    "captum.robust": _ROBUST,
    "captum.module": _MODULE,
    "captum.concept": _CONCEPT,
    "captum.attr._core.dataloader_attr": ["DataLoaderAttribution", "InputRole"],
    "captum.attr._utils.attribution": ["InternalAttribution"],
    "captum.attr._utils.lrp_rules": ["PropagationRule", "EpsilonRule", "GammaRule", "Alpha1_Beta0_Rule",
                                     "IdentityRule"],
}  # fmt: skip


def captum_twins() -> dict[str, tuple[Any, Any]]:
    """``{name: (Captum's object, compat's twin)}`` for every object compat covers (imports Captum).

    Returns:
        dict: ``{name: (Captum's object, compat's twin)}``.

    Example:
        >>> from pyattrib.compat import captum_twins
        >>> captum, twin = captum_twins()["IntegratedGradients"]
        >>> twin.__module__
        'pyattrib.compat.attr'
    """
    import importlib

    twins = {}
    for module_name, names in _CAPTUM_HOMES.items():
        module = importlib.import_module(module_name)
        for name in names:
            twins[name] = (getattr(module, name), globals()[name])
    return twins
