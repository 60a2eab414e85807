"""LRP rules: each a few declarative fields over one template (Zennit's split: rules here,
the propagation that applies them in :mod:`.propagation`, the transforms in the package)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Term:
    """One term of a rule with several (Zennit's template): the layer applied to ``input(x)``
    with parameters ``weight(W)``, ``bias(b)`` (``None``: unchanged).

    Args:
        input: Maps the layer's input (``None``: the input itself).
        weight: Maps the layer's weight.
        bias: Maps the layer's bias.

    Example:
        >>> pa.lrp_rules.Term(weight=lambda w: w.clamp(min=0)).input is None
        True
    """

    input: Callable[[Tensor], Tensor] | None = None
    weight: Callable[[Tensor], Tensor] | None = None
    bias: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Rule:
    """An LRP rule: ``weight``/``bias`` map the layer's parameters to the ones relevance is
    distributed with; ``eps`` stabilises the denominator; ``identity`` passes relevance.

    Args:
        name: The rule's name (shown in errors and reprs).
        eps: Stabiliser of the denominator ``z + eps sign(z)``.
        weight: Maps the layer's weight to the weight relevance is distributed with; default the weight
            itself.
        bias: Maps the layer's bias likewise; default the bias itself.
        identity: Pass relevance through unchanged.
        groups: Zennit's general form, ``((coefficient, terms), ...)``: each group's ``z`` is the sum of
            its terms' outputs, and ``R_in = sum_groups coefficient * sum_terms
            input_k(x) * (d term_k / d input)^T (R / (z + eps sign z))``; empty: the one-term form above.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp_rules.Rule("flat", weight=torch.ones_like).name
        'flat'
    """

    name: str
    eps: float = 1e-9
    weight: Callable[[Tensor], Tensor] | None = None
    bias: Callable[[Tensor], Tensor] | None = None
    identity: bool = False
    groups: tuple[tuple[float, tuple[Term, ...]], ...] = ()


def epsilon(eps: float = 1e-9) -> Rule:
    """LRP-epsilon: ``R_i = sum_j x_i w_ij R_j / (z_j + eps sign z_j)``. Conserves relevance
    as ``eps -> 0`` on bias-free layers; larger ``eps`` absorbs weak, noisy contributions.

    Args:
        eps: Stabiliser of the denominator; larger values absorb weak contributions.

    Returns:
        Rule: the epsilon rule.

    References:
        - Bach, Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-
          Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015.
          https://doi.org/10.1371/journal.pone.0130140
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> attr = pa.lrp(model, rules={nn.Linear: pa.lrp_rules.epsilon(0.01)})(x, target=y)
        >>> attr.shape
        torch.Size([4, 8])
    """
    return Rule("epsilon", eps=eps)


def gamma(gamma: float = 0.25, zero_bias: bool = False) -> Rule:
    """LRP-gamma: distribute with ``w + gamma * max(w, 0)``, favouring positive contributions.

    Args:
        gamma: Weight of the positive part added to the weights.
        zero_bias: Distribute with the bias set to zero.

    Returns:
        Rule: the gamma rule.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp(model, rules={nn.Linear: pa.lrp_rules.gamma(0.25)})(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule(
        "gamma",
        weight=lambda w: w + gamma * w.clamp(min=0),
        bias=(lambda b: torch.zeros_like(b)) if zero_bias else None,
    )


def alpha1_beta0(zero_bias: bool = False) -> Rule:
    """LRP-alpha1-beta0 (deep Taylor): distribute with the positive weights ``max(w, 0)`` only.

    Args:
        zero_bias: Distribute with the bias set to zero.

    Returns:
        Rule: the alpha1-beta0 rule.

    References:
        - Bach, Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-
          Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015.
          https://doi.org/10.1371/journal.pone.0130140
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp(model, rules={model[0]: pa.lrp_rules.alpha1_beta0()})(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule(
        "alpha1_beta0", weight=lambda w: w.clamp(min=0), bias=(lambda b: torch.zeros_like(b)) if zero_bias else None
    )


def z_plus() -> Rule:
    """LRP-z+: positive weights, no bias (alpha1-beta0 with the bias removed).

    Returns:
        Rule: the z+ rule.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp(model, rules={model[0]: pa.lrp_rules.z_plus()})(x, target=y).shape
        torch.Size([4, 8])
    """
    return alpha1_beta0(zero_bias=True)


def _positive(t: Tensor) -> Tensor:
    return t.clamp(min=0)


def _negative(t: Tensor) -> Tensor:
    return t.clamp(max=0)


def flat() -> Rule:
    """LRP-flat: relevance spread evenly over each output's receptive field, whatever the input
    and the weights (``x`` and ``w`` taken as ones, no bias); Zennit's rule for a first layer.

    Returns:
        Rule: the flat rule.

    References:
        - Lapuschkin, Wäldchen, Binder, Montavon, Samek and Müller, "Unmasking Clever Hans Predictors
          and Assessing What Machines Really Learn", Nature Communications 2019.
          https://doi.org/10.1038/s41467-019-08987-4

    Example:
        >>> pa.lrp(model, rules={model[0]: pa.lrp_rules.flat()})(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule("flat", groups=((1.0, (Term(torch.ones_like, torch.ones_like, torch.zeros_like),)),))


def alpha_beta(alpha: float = 2.0, beta: float = 1.0) -> Rule:
    """LRP-alpha-beta: positive contributions weighted by ``alpha``, negative ones by ``beta``
    (``alpha - beta = 1``): ``R_i = alpha R_i^+ - beta R_i^-`` with ``R^+`` distributed by
    ``w+ x+ + w- x-`` and ``R^-`` by ``w- x+ + w+ x-`` (biases split the same way, as Zennit's).

    Args:
        alpha: Weight of the positive contributions.
        beta: Weight of the negative contributions.

    Returns:
        Rule: the alpha-beta rule.

    References:
        - Bach, Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-
          Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 2015.
          https://doi.org/10.1371/journal.pone.0130140

    Example:
        >>> pa.lrp(model, rules={nn.Linear: pa.lrp_rules.alpha_beta(2, 1)})(x, target=y).shape
        torch.Size([4, 8])
    """
    if abs(alpha - beta - 1) > 1e-9:
        from .._core.errors import ArgumentError

        raise ArgumentError(f"alpha - beta must be 1 (relevance is conserved); got alpha={alpha}, beta={beta}")
    positive = (Term(_positive, _positive, _positive), Term(_negative, _negative, _negative))
    negative = (Term(_positive, _negative, _negative), Term(_negative, _positive, _positive))
    return Rule(f"alpha{alpha:g}_beta{beta:g}", groups=((alpha, positive), (-beta, negative)))


def z_box(low: float, high: float) -> Rule:
    """LRP-z^B for an input layer whose inputs lie in ``[low, high]``:
    ``z = w x - w+ low - w- high`` (+ bias), ``R_i = (x_i w_ij - low w+_ij - high w-_ij) R_j / z_j``.

    Args:
        low: The smallest value an input takes.
        high: The largest value an input takes.

    Returns:
        Rule: the box rule.

    References:
        - Montavon, Lapuschkin, Binder, Samek and Müller, "Explaining Nonlinear Classification Decisions
          with Deep Taylor Decomposition", Pattern Recognition 2017. https://doi.org/10.1016/j.patcog.2016.11.008

    Example:
        >>> pa.lrp(model, rules={model[0]: pa.lrp_rules.z_box(-3.0, 3.0)})(x, target=y).shape
        torch.Size([4, 8])
    """
    below = Term(lambda x: torch.full_like(x, low), lambda w: -_positive(w), torch.zeros_like)
    above = Term(lambda x: torch.full_like(x, high), lambda w: -_negative(w), torch.zeros_like)
    return Rule("z_box", groups=((1.0, (Term(), below, above)),))


def identity() -> Rule:
    """Pass relevance through unchanged (layers whose input and output have one shape).

    Returns:
        Rule: the identity rule.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp(model, rules={nn.ReLU: pa.lrp_rules.identity()})(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule("identity", identity=True)


#: Rules by module type or by module instance (an instance overrides its type).
RuleMap = Mapping[type | nn.Module, Rule]
#: The rule of each module type when ``rules=`` names none (Captum's defaults): epsilon for layers
#: with weights, pooling and batch norm.
DEFAULT_RULES: dict[type, Rule] = {
    nn.Linear: epsilon(),
    nn.Conv1d: epsilon(),
    nn.Conv2d: epsilon(),
    nn.Conv3d: epsilon(),
    nn.MaxPool1d: epsilon(),
    nn.MaxPool2d: epsilon(),
    nn.MaxPool3d: epsilon(),
    nn.AvgPool1d: epsilon(),
    nn.AvgPool2d: epsilon(),
    nn.AdaptiveAvgPool2d: epsilon(),
    nn.BatchNorm1d: epsilon(),
    nn.BatchNorm2d: epsilon(),
}

# modules that pass relevance as is: ReLU and tanh (relevance is distributed at the
# layers around them), and modules that do nothing in eval mode or only reshape
#: Module types whose relevance passes through unchanged (activations, dropout, reshaping).
PASSED = (
    nn.ReLU, nn.Tanh, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.ParameterDict, nn.ParameterList,
)  # fmt: skip
