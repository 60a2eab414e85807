"""Zennit's composites for CNNs in pyattrib's shape: a composite maps a model to its rules (module
types, and the first layer by instance), named by a string or built with its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .rules import Rule, RuleMap, alpha_beta, epsilon, flat, gamma, z_box, z_plus

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def first_layer(model: nn.Module) -> nn.Module | None:
    """The first linear or convolutional module in the model's registration order (Zennit's
    "first layer": the one that touches the input)."""
    return next((m for m in model.modules() if isinstance(m, (nn.Linear, *CONVS))), None)


@dataclass(frozen=True)
class ModuleComposite:
    """Rules for a CNN's module types, with a special rule for its first layer.

    Args:
        name: The composite's name.
        linear: The rule of ``nn.Linear`` layers.
        conv: The rule of convolution layers.
        first: The rule of the first layer, or a function of the inputs' ``(low, high)`` range giving
            it (the box rule's bounds); ``None``: its type's rule.

    References:
        - Anders, Neumann, Samek, Müller and Lapuschkin, "Software for Dataset-wide XAI: From Local
          Explanations to Global Insights with Zennit, CoRelAy, and ViRelAy", 2021.
          https://arxiv.org/abs/2106.13200

    Example:
        >>> mine = pa.lrp_rules.ModuleComposite("mine", linear=pa.lrp_rules.epsilon(1e-6), conv=pa.lrp_rules.z_plus())
        >>> pa.lrp(model, composite=mine)(x, target=y).shape
        torch.Size([4, 8])
    """

    name: str
    linear: Rule
    conv: Rule
    first: Rule | Callable[[float, float], Rule] | None = None

    def rules(self, model: nn.Module, inputs: tuple[Tensor, ...]) -> RuleMap:
        """The rule map for ``model`` (the first layer's rule built from ``inputs``' range if needed)."""
        rules: dict[type | nn.Module, Rule] = {nn.Linear: self.linear, **{c: self.conv for c in CONVS}}
        head = first_layer(model)
        if head is not None and self.first is not None:
            if isinstance(self.first, Rule):
                rules[head] = self.first
            else:
                rules[head] = self.first(min(float(x.min()) for x in inputs), max(float(x.max()) for x in inputs))
        return rules


def epsilon_plus_flat(eps: float = 1e-6) -> ModuleComposite:
    """Zennit's EpsilonPlusFlat: epsilon for dense layers, z+ for convolutions, flat for the first layer.

    Args:
        eps: The epsilon of the dense layers.

    Returns:
        ModuleComposite: the composite.

    References:
        - Kohlbrenner, Bauer, Nakajima, Binder, Samek and Lapuschkin, "Towards Best Practice in
          Explaining Neural Network Decisions with LRP", IJCNN 2020. https://arxiv.org/abs/1910.09840

    Example:
        >>> pa.lrp(model, composite=pa.lrp_rules.epsilon_plus_flat())(x, target=y).shape
        torch.Size([4, 8])
    """
    return ModuleComposite("epsilon_plus_flat", linear=epsilon(eps), conv=z_plus(), first=flat())


def epsilon_gamma_box(low: float | None = None, high: float | None = None, gamma_: float = 0.25,
                      eps: float = 1e-6) -> ModuleComposite:  # fmt: skip
    """Zennit's EpsilonGammaBox: epsilon for dense layers, gamma for convolutions, the box rule
    (inputs in ``[low, high]``) for the first layer.

    Args:
        low: The smallest input value; ``None``: the explained batch's minimum.
        high: The largest input value; ``None``: the explained batch's maximum.
        gamma_: The gamma of the convolutions.
        eps: The epsilon of the dense layers.

    Returns:
        ModuleComposite: the composite.

    References:
        - Kohlbrenner, Bauer, Nakajima, Binder, Samek and Lapuschkin, "Towards Best Practice in
          Explaining Neural Network Decisions with LRP", IJCNN 2020. https://arxiv.org/abs/1910.09840

    Example:
        >>> pa.lrp(model, composite=pa.lrp_rules.epsilon_gamma_box(-3.0, 3.0))(x, target=y).shape
        torch.Size([4, 8])
    """

    def box(seen_low: float, seen_high: float) -> Rule:
        return z_box(seen_low if low is None else low, seen_high if high is None else high)

    return ModuleComposite("epsilon_gamma_box", linear=epsilon(eps), conv=gamma(gamma_), first=box)


def epsilon_alpha2_beta1(eps: float = 1e-6) -> ModuleComposite:
    """Zennit's EpsilonAlpha2Beta1: epsilon for dense layers, alpha2-beta1 for convolutions.

    Args:
        eps: The epsilon of the dense layers.

    Returns:
        ModuleComposite: the composite.

    References:
        - Kohlbrenner, Bauer, Nakajima, Binder, Samek and Lapuschkin, "Towards Best Practice in
          Explaining Neural Network Decisions with LRP", IJCNN 2020. https://arxiv.org/abs/1910.09840

    Example:
        >>> pa.lrp(model, composite=pa.lrp_rules.epsilon_alpha2_beta1())(x, target=y).shape
        torch.Size([4, 8])
    """
    return ModuleComposite("epsilon_alpha2_beta1", linear=epsilon(eps), conv=alpha_beta(2.0, 1.0))


MODULE_COMPOSITES: dict[str, Callable[[], ModuleComposite]] = {
    "epsilon_plus_flat": epsilon_plus_flat, "epsilon_gamma_box": epsilon_gamma_box,
    "epsilon_alpha2_beta1": epsilon_alpha2_beta1,
}  # fmt: skip


def module_composite(name: str) -> ModuleComposite | None:
    """The module composite of that name with its defaults, or None."""
    make = MODULE_COMPOSITES.get(name)
    return make() if make is not None else None

