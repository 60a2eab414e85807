"""Captum's LRP rule classes. Set one as ``module.rule`` (Captum's convention); compat's
``LRP``/``LayerLRP`` turn them into :mod:`pyattrib.lrp_rules` rules for that module."""

from __future__ import annotations

from torch import nn

from pyattrib import lrp_rules as rules


class PropagationRule:
    """Base class of Captum's rules; ``to_rule`` gives pyattrib's rule.

    Example:
        >>> from pyattrib.compat import EpsilonRule, PropagationRule
        >>> isinstance(EpsilonRule(), PropagationRule)
        True
    """

    def to_rule(self) -> rules.Rule:
        return rules.epsilon()


class EpsilonRule(PropagationRule):
    """LRP-epsilon (:func:`pyattrib.lrp_rules.epsilon`).

    Args:
        epsilon: The rule's stabiliser.

    Example:
        >>> from pyattrib.compat import EpsilonRule, LRP
        >>> lrp_model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
        >>> lrp_model[0].rule = EpsilonRule(epsilon=0.01)
        >>> LRP(lrp_model).attribute(x, target=y).shape
        torch.Size([4, 8])
    """

    def __init__(self, epsilon: float = 1e-9) -> None:
        self.STABILITY_FACTOR = epsilon

    def to_rule(self) -> rules.Rule:
        return rules.epsilon(self.STABILITY_FACTOR)


class GammaRule(PropagationRule):
    """LRP-gamma (:func:`pyattrib.lrp_rules.gamma`).

    Args:
        gamma: Weight of the positive part added to the weights.
        set_bias_to_zero: Distribute with the bias set to zero.

    Example:
        >>> from pyattrib.compat import GammaRule
        >>> GammaRule(gamma=0.25).to_rule().name
        'gamma'
    """

    def __init__(self, gamma: float = 0.25, set_bias_to_zero: bool = False) -> None:
        self.gamma, self.set_bias_to_zero = gamma, set_bias_to_zero

    def to_rule(self) -> rules.Rule:
        return rules.gamma(self.gamma, zero_bias=self.set_bias_to_zero)


class Alpha1_Beta0_Rule(PropagationRule):  # noqa: N801 (Captum's name)
    """LRP-alpha1-beta0 (:func:`pyattrib.lrp_rules.alpha1_beta0`).

    Args:
        set_bias_to_zero: Distribute with the bias set to zero.

    Example:
        >>> from pyattrib.compat import Alpha1_Beta0_Rule
        >>> Alpha1_Beta0_Rule().to_rule().name
        'alpha1_beta0'
    """

    def __init__(self, set_bias_to_zero: bool = False) -> None:
        self.set_bias_to_zero = set_bias_to_zero

    def to_rule(self) -> rules.Rule:
        return rules.alpha1_beta0(zero_bias=self.set_bias_to_zero)


class IdentityRule(EpsilonRule):
    """Pass relevance through unchanged (:func:`pyattrib.lrp_rules.identity`).

    Args:
        epsilon: The rule's stabiliser.

    Example:
        >>> from pyattrib.compat import IdentityRule
        >>> IdentityRule().to_rule().name
        'identity'
    """

    def to_rule(self) -> rules.Rule:
        return rules.identity()


_DEFAULT = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear,
            nn.BatchNorm2d)  # fmt: skip
_PASS_THROUGH = (nn.ReLU, nn.Dropout, nn.Tanh)
_KNOWN = frozenset(_DEFAULT + _PASS_THROUGH)


def check_rules(model: nn.Module) -> dict[nn.Module, PropagationRule]:
    """The ``module.rule`` set on ``model``'s modules; each must be one of these rule classes."""
    found = {}
    for module in model.modules():
        rule = getattr(module, "rule", None)
        if rule is not None and not isinstance(rule, PropagationRule):
            raise TypeError(
                f"{type(module).__name__}.rule is a {type(rule).__name__}; set a rule from "
                "pyattrib.compat.lrp_rules (EpsilonRule, GammaRule, Alpha1_Beta0_Rule, IdentityRule)"
            )
        if rule is not None:
            found[module] = rule
    return found


def rules_of(model: nn.Module) -> dict[nn.Module, rules.Rule]:
    """The rules set as ``module.rule`` on ``model``'s leaf modules. As Captum, a leaf module
    with no rule, no default rule and no pass-through is refused, naming its type."""
    set_rules = check_rules(model)
    found: dict[nn.Module, rules.Rule] = {}
    for module in model.modules():
        rule = set_rules.get(module)
        if rule is not None:
            found[module] = rule.to_rule()
        elif module is not model and next(module.children(), None) is None and type(module) not in _KNOWN:
            raise TypeError(
                f"Module of type {type(module)} has no rule defined and no default rule exists for this "
                "module type. Set module.rule to a rule from pyattrib.compat.lrp_rules."
            )
    return found
