"""Concept-based interpretability: TCAV with batched CAV fitting and a significance test."""

from .classifier import Classifier, fit_cavs
from .tcav import CAV, TCAV, Concept, concepts_key, tcav

__all__ = ["Concept", "CAV", "TCAV", "tcav", "Classifier", "fit_cavs", "concepts_key"]
