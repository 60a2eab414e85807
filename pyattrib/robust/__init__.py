"""Robustness: adversarial attacks and the tools that compare models under them.

- :func:`fgsm` and :func:`pgd`: batched gradient attacks (Linf and L2, targeted, masks);
- :func:`attack_comparator`: a metric under several attacks (and any perturbation);
- :func:`min_param_perturbation`: the smallest attack strength that breaks each example.
"""

from .attacks import fgsm, pgd
from .comparator import AttackComparator, attack_comparator
from .min_param import MinParam, argmax_correct, min_param_perturbation

__all__ = [
    "fgsm", "pgd", "attack_comparator", "AttackComparator", "min_param_perturbation", "MinParam", "argmax_correct",
]  # fmt: skip
