"""Zennit's composites for CNNs in pyattrib's shape: a composite maps a model to its rules (module
types, and the first layer by instance), named by a string or built with its options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .rules import Rule, RuleMap, alpha_beta, epsilon, flat, gamma, gradient, identity, z_box, z_plus

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
Bound = float | Tensor

# Zennit's base map, shared by its composites: activations and batch norms pass relevance as is,
# average pooling distributes it in proportion (its "norm" rule), max pooling by its gradient
ZENNIT_BASE: dict[type | nn.Module, Rule] = {
    **{t: identity() for t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ELU, nn.Hardshrink, nn.Hardsigmoid,
                               nn.Hardtanh, nn.Hardswish, nn.LeakyReLU, nn.LogSigmoid, nn.PReLU, nn.ReLU6, nn.RReLU,
                               nn.SELU, nn.CELU, nn.GELU, nn.Sigmoid, nn.SiLU, nn.Softplus, nn.Softshrink,
                               nn.Softsign, nn.Tanhshrink, nn.Threshold)},
    **{t: epsilon(1e-6) for t in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                                  nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)},
    **{t: gradient() for t in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                               nn.AdaptiveMaxPool3d)},
}  # fmt: skip


def first_layer(model: nn.Module, types: tuple[type, ...] = (nn.Linear, *CONVS)) -> nn.Module | None:
    """The first module of ``types`` in the model's registration order (Zennit's "first layer":
    the one that touches the input)."""
    return next((m for m in model.modules() if isinstance(m, types)), None)


@dataclass(frozen=True)
class ModuleComposite:
    """Rules for a CNN's module types, with a special rule for its first layer; the other modules
    as Zennit's composites treat them (activations and batch norms pass relevance, average
    pooling distributes it in proportion, max pooling by its gradient).

    Args:
        name: The composite's name.
        linear: The rule of ``nn.Linear`` layers.
        conv: The rule of convolution layers.
        first: The rule of the first layer, or a function of the inputs' ``(low, high)`` range giving
            it (the box rule's bounds); ``None``: its type's rule.
        first_types: The module types the first layer is looked for among.

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
    first_types: tuple[type, ...] = (nn.Linear, *CONVS)

    def rules(self, model: nn.Module, inputs: tuple[Tensor, ...]) -> RuleMap:
        """The rule map for ``model`` (the first layer's rule built from ``inputs``' range if needed)."""
        rules: dict[type | nn.Module, Rule] = {**ZENNIT_BASE, nn.Linear: self.linear, **{c: self.conv for c in CONVS}}
        head = first_layer(model, self.first_types)
        if head is not None and self.first is not None:
            if isinstance(self.first, Rule):
                rules[head] = self.first
            else:
                rules[head] = self.first(min(float(x.min()) for x in inputs), max(float(x.max()) for x in inputs))
        return rules


def epsilon_plus_flat(eps: float = 1e-6) -> ModuleComposite:
    """Zennit's EpsilonPlusFlat: epsilon for dense layers, z+ for convolutions, flat for the first
    linear or convolution layer.

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


def epsilon_gamma_box(low: Bound | None = None, high: Bound | None = None, gamma_: float = 0.25,
                      eps: float = 1e-6) -> ModuleComposite:  # fmt: skip
    """Zennit's EpsilonGammaBox: epsilon for dense layers, (generalized) gamma for convolutions,
    the box rule (inputs in ``[low, high]``) for the first convolution.

    Args:
        low: The smallest input value (a number, or a tensor of one example's shape); ``None``: the
            explained batch's minimum.
        high: The largest input value, likewise; ``None``: the explained batch's maximum.
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

    first = z_box(low, high) if low is not None and high is not None else box  # the batch's range: read if needed

    return ModuleComposite(
        "epsilon_gamma_box", linear=epsilon(eps), conv=gamma(gamma_, generalized=True), first=first, first_types=CONVS
    )


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

