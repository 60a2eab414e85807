"""LRP rules: each a few declarative fields over one template (Zennit's split: rules here,
the propagation that applies them in :mod:`.propagation`, the transforms in the package)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError


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


Group = tuple[float, tuple[Term, ...]] | tuple[float, tuple[Term, ...], Callable[[Tensor], Tensor]]


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
        gradient: Pass relevance back by the layer's plain gradient (Zennit's default for a module
            with no rule, e.g. max pooling: all of an output's relevance goes to its maximum).
        groups: Zennit's general form, ``((coefficient, terms), ...)``: each group's ``z`` is the sum of
            its terms' outputs, and ``R_in = sum_groups coefficient * sum_terms
            input_k(x) * (d term_k / d input)^T (R / (z + eps sign z))``; empty: the one-term form above.
            A group ``(coefficient, terms, where)`` distributes only the outputs that ``where`` selects,
            a mask of the layer's own output (the generalized gamma: one group per output sign).

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
    groups: tuple[Group, ...] = ()
    gradient: bool = False


def _positive(t: Tensor) -> Tensor:
    return t.clamp(min=0)


def _negative(t: Tensor) -> Tensor:
    return t.clamp(max=0)


def _above(z: Tensor) -> Tensor:
    return (z > 0).to(z.dtype)


def _below(z: Tensor) -> Tensor:
    return (z < 0).to(z.dtype)


def stabilised(z: Tensor, eps: float) -> Tensor:
    """``z + eps sign(z)`` (``sign(0) = 1``): a denominator kept away from zero, LRP's stabiliser."""
    return z + torch.where(z >= 0, 1.0, -1.0).to(z.dtype) * eps


ZENNIT_EPS = 1e-6  # Zennit's stabiliser, the default of its rules
# the contributions of one sign: x+ w+ (with b+) and x- w- (no bias), Zennit's z+ and alpha's group
_SAME_SIGN = (Term(_positive, _positive, _positive), Term(_negative, _negative, torch.zeros_like))


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


def gamma(gamma: float = 0.25, zero_bias: bool = False, *, generalized: bool = False) -> Rule:
    """LRP-gamma: distribute with ``w + gamma * max(w, 0)``, favouring positive contributions
    (Captum's form: the bias as is).

    ``generalized=True`` is Zennit's generalized gamma (Andéol et al.), right for inputs and
    outputs of either sign: where the layer's output is positive, relevance is distributed by
    ``x+ (w + gamma w+) + (b + gamma b+) + x- (w + gamma w-)``; where it is negative, by
    ``x+ (w + gamma w-) + (b + gamma b-) + x- (w + gamma w+)`` (stabiliser ``1e-6``).

    Args:
        gamma: Weight of the positive part added to the weights.
        zero_bias: Distribute with the bias set to zero.
        generalized: Zennit's generalized gamma (above) instead of Captum's.

    Returns:
        Rule: the gamma rule.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10
        - Andéol, Kawakami, Wada, Kanda and Hamaguchi, "Learning Domain Invariant Representations by
          Joint Wasserstein Distance Minimization", 2021. https://arxiv.org/abs/2106.04923

    Example:
        >>> pa.lrp(model, rules={nn.Linear: pa.lrp_rules.gamma(0.25)})(x, target=y).shape
        torch.Size([4, 8])
    """
    if generalized:
        up = lambda t: t + gamma * t.clamp(min=0)  # noqa: E731
        down = lambda t: t + gamma * t.clamp(max=0)  # noqa: E731
        bias = (lambda b: torch.zeros_like(b)) if zero_bias else None
        positive = (Term(_positive, up, bias or up), Term(_negative, down, torch.zeros_like))
        negative = (Term(_positive, down, bias or down), Term(_negative, up, torch.zeros_like))
        return Rule("gamma", eps=ZENNIT_EPS, groups=((1.0, positive, _above), (1.0, negative, _below)))
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
    """LRP-z+ (Zennit's, general in the input's sign): relevance distributed by the positive
    contributions, ``z+ = w+ x+ + b+ + w- x-``, ``R_i = (x+_i w+_ij + x-_i w-_ij) R_j / z+_j``
    (stabiliser ``1e-6``). On non-negative inputs with no bias it is alpha1-beta0.

    Returns:
        Rule: the z+ rule.

    References:
        - Montavon, Binder, Lapuschkin, Samek and Müller, "Layer-Wise Relevance Propagation: An
          Overview", 2019. https://doi.org/10.1007/978-3-030-28954-6_10

    Example:
        >>> pa.lrp(model, rules={model[0]: pa.lrp_rules.z_plus()})(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule("z_plus", eps=ZENNIT_EPS, groups=((1.0, _SAME_SIGN),))


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
    return Rule("flat", eps=ZENNIT_EPS, groups=((1.0, (Term(torch.ones_like, torch.ones_like, torch.zeros_like),)),))


def alpha_beta(alpha: float = 2.0, beta: float = 1.0) -> Rule:
    """LRP-alpha-beta (Zennit's): positive contributions weighted by ``alpha``, negative ones by
    ``beta`` (``alpha - beta = 1``): ``R_i = alpha R_i^+ - beta R_i^-`` with ``R^+`` distributed by
    ``w+ x+ + b+ + w- x-`` and ``R^-`` by ``w- x+ + b- + w+ x-`` (stabiliser ``1e-6``).

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
    if abs(alpha - beta - 1) > 1e-9 or alpha < 0 or beta < 0:
        raise ArgumentError(f"alpha - beta must be 1 (relevance is conserved), both >= 0; got {alpha=}, {beta=}")
    negative = (Term(_positive, _negative, _negative), Term(_negative, _positive, torch.zeros_like))
    return Rule(f"alpha{alpha:g}_beta{beta:g}", eps=ZENNIT_EPS, groups=((alpha, _SAME_SIGN), (-beta, negative)))


def z_box(low: float | Tensor, high: float | Tensor) -> Rule:
    """LRP-z^B for an input layer whose inputs lie in ``[low, high]`` (numbers, or tensors of one
    example's shape: bounds per pixel): ``z = w x - w+ low - w- high``,
    ``R_i = (x_i w_ij - low_i w+_ij - high_i w-_ij) R_j / z_j`` (Zennit's: the bias cancels out of
    ``z``; stabiliser ``1e-6``).

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

    def bound(value: float | Tensor) -> Callable[[Tensor], Tensor]:
        return lambda x: torch.as_tensor(value).to(x).expand_as(x)

    below = Term(bound(low), lambda w: -_positive(w), lambda b: -_positive(b))
    above = Term(bound(high), lambda w: -_negative(w), lambda b: -_negative(b))
    return Rule("z_box", eps=ZENNIT_EPS, groups=((1.0, (Term(), below, above)),))


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


def gradient() -> Rule:
    """Pass relevance back by the layer's plain gradient: Zennit's behaviour for a module no rule
    names (max pooling hands each output's relevance to its maximum).

    Returns:
        Rule: the gradient rule.

    References:
        - Anders, Neumann, Samek, Müller and Lapuschkin, "Software for Dataset-wide XAI: From Local
          Explanations to Global Insights with Zennit, CoRelAy, and ViRelAy", 2021.
          https://arxiv.org/abs/2106.13200

    Example:
        >>> rules = {nn.Linear: pa.lrp_rules.epsilon(), nn.ReLU: pa.lrp_rules.gradient()}
        >>> pa.lrp(model, rules=rules)(x, target=y).shape
        torch.Size([4, 8])
    """
    return Rule("gradient", gradient=True)


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
