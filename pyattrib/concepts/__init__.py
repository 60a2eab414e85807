"""Concept-based interpretability: TCAV with batched CAV fitting and a significance test."""

from .cav import CAV, Concept, concepts_key, load_cav, save_cav
from .classifier import Classifier, ConceptStats, RidgeClassifier, fit_cavs
from .tcav import TCAV, ConceptInterpreter, tcav

__all__ = [
    "Concept", "CAV", "TCAV", "tcav", "ConceptInterpreter", "Classifier", "RidgeClassifier", "fit_cavs",
    "ConceptStats",    "concepts_key", "save_cav", "load_cav",
]  # fmt: skip
