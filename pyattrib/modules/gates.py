r"""Stochastic gates: learnable L0 feature selection (Louizos et al., 2018; Yamada et al., 2020).

A gate module multiplies each input feature (or group of features, by ``mask``) by a random
gate :math:`z_j \in [0, 1]` during training and returns, with the gated input, the
expected number of open gates :math:`\sum_j P(z_j > 0)`: a differentiable L0 penalty. After
training, ``get_gate_values()`` says which features the model needs. The two kinds differ
only in the gate distribution:

- :class:`BinaryConcreteStochasticGates`: a hard concrete gate,
  :math:`s = \sigma((\operatorname{logit} u + \log\alpha)/\tau)`, stretched to
  :math:`(l, r)` and clamped; :math:`P(z > 0) = \sigma(\log\alpha - \tau\log(-l/r))`.
- :class:`GaussianStochasticGates`: :math:`z = \operatorname{clamp}(\mu + \epsilon, 0, 1)`,
  :math:`\epsilon \sim N(0, \sigma^2)`; :math:`P(z > 0) = \Phi(\mu/\sigma)`.

In eval mode the gates are deterministic (the noise-free value). Constructor arguments,
parameter initialisation and random draws follow Captum's ``captum.module``, so seeded runs
give Captum's numbers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError

REDUCTIONS = ("none", "mean", "sum")


class StochasticGates(nn.Module, ABC):
    """What every gate kind shares: masks, the forward pass and the L0 penalty.

    Args:
        n_gates: The number of gates (features gated).
        mask: Maps each input element to its gate (a tensor of gate indices shaped like one example);
            default one gate per element.
        reg_weight: Weight of the L0 regularisation.
        reg_reduction: How the L0 term is reduced over gates: ``"sum"``, ``"mean"`` or ``"none"``.

    References:
        - Louizos, Welling and Kingma, "Learning Sparse Neural Networks through L0 Regularization", ICLR
          2018. https://arxiv.org/abs/1712.01312
        - Yamada, Lindenbaum, Negahban and Kluger, "Feature Selection using Stochastic Gates", ICML
          2020. https://arxiv.org/abs/1810.04247

    Example:
        >>> isinstance(pa.modules.GaussianStochasticGates(8), pa.modules.StochasticGates)
        True
    """

    mask: Tensor | None

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0,
                 reg_reduction: str = "sum") -> None:  # fmt: skip
        super().__init__()
        if mask is not None and int(mask.max()) != n_gates - 1:
            raise ArgumentError(
                f"mask's largest id is {int(mask.max())} but there are {n_gates} gates; "
                "the mask must use ids 0..n_gates-1, one per gate"
            )
        if reg_reduction not in REDUCTIONS:
            raise ArgumentError(f"reg_reduction must be one of none, mean, sum, got {reg_reduction!r}")
        self.n_gates, self.reg_weight, self.reg_reduction = n_gates, reg_weight, reg_reduction
        self.register_buffer("mask", None if mask is None else mask.detach().clone())

    def forward(self, input_tensor: Tensor) -> tuple[Tensor, Tensor]:
        """``(input * gates, reg_weight * reduced P(gate open))``."""
        if input_tensor.dim() < 2:
            raise ArgumentError(
                f"input has shape {tuple(input_tensor.shape)}; gates need a batch dimension first, e.g. x.unsqueeze(0)"
            )
        n = input_tensor.shape[0]
        if self.mask is None and input_tensor[0].numel() != self.n_gates:
            raise ArgumentError(
                f"each example has {input_tensor[0].numel()} elements but there are {self.n_gates} gates; "
                "pass a mask that maps elements to gates"
            )
        gates = self.sample(n).clamp(0, 1)
        if self.mask is not None:
            gates = gates.gather(1, self.mask.expand_as(input_tensor).reshape(n, -1))
        penalty = self.open_probability()
        if self.reg_reduction == "sum":
            penalty = penalty.sum()
        elif self.reg_reduction == "mean":
            penalty = penalty.mean()
        return input_tensor * gates.reshape(input_tensor.shape), penalty * self.reg_weight

    def get_gate_values(self, clamp: bool = True) -> Tensor:
        """The deterministic gate values (clamped to ``[0, 1]`` unless ``clamp=False``)."""
        values = self.gate_values()
        return (values.clamp(0, 1) if clamp else values).detach()

    def get_gate_active_probs(self) -> Tensor:
        """:math:`P(z_j > 0)` per gate."""
        return self.open_probability().detach()

    @abstractmethod
    def sample(self, batch_size: int) -> Tensor:
        """Gate values for a batch, ``(batch, n_gates)``, before clamping."""

    @abstractmethod
    def gate_values(self) -> Tensor:
        """The deterministic (eval-mode) gate values, before clamping."""

    @abstractmethod
    def open_probability(self) -> Tensor:
        """:math:`P(z_j > 0)` per gate, differentiable."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ArgumentError(message)


class BinaryConcreteStochasticGates(StochasticGates):
    """Hard concrete gates: ``temperature`` in (0, 1), stretch ``(lower_bound < 0, upper_bound > 1)``.

    Args:
        n_gates: The number of gates (features gated).
        mask: Maps each input element to its gate (a tensor of gate indices shaped like one example);
            default one gate per element.
        reg_weight: Weight of the L0 regularisation.
        temperature: Temperature of the binary concrete distribution (lower: closer to 0/1).
        lower_bound: Smallest value an input element may take after the attack.
        upper_bound: Largest value an input element may take after the attack.
        eps: Keeps the concrete distribution's logits finite.
        reg_reduction: How the L0 term is reduced over gates: ``"sum"``, ``"mean"`` or ``"none"``.

    References:
        - Louizos, Welling and Kingma, "Learning Sparse Neural Networks through L0 Regularization", ICLR
          2018. https://arxiv.org/abs/1712.01312

    Example:
        >>> gates = pa.modules.BinaryConcreteStochasticGates(8)
        >>> gated, reg = gates(x)
        >>> gated.shape, reg.shape
        (torch.Size([4, 8]), torch.Size([]))
    """

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0,
                 temperature: float = 2 / 3, lower_bound: float = -0.1, upper_bound: float = 1.1, eps: float = 1e-8,
                 reg_reduction: str = "sum") -> None:  # fmt: skip
        super().__init__(n_gates, mask, reg_weight, reg_reduction)
        self.log_alpha_param = nn.Parameter(nn.init.normal_(torch.empty(n_gates), mean=0.0, std=0.01))
        _check(0 < temperature < 1, f"temperature must be in (0, 1), got {temperature}")
        _check(lower_bound < 0, f"lower_bound (the stretch's left end) must be < 0, got {lower_bound}")
        _check(upper_bound > 1, f"upper_bound (the stretch's right end) must be > 1, got {upper_bound}")
        self.temperature, self.lower_bound, self.upper_bound, self.eps = temperature, lower_bound, upper_bound, eps
        self.active_prob_offset = temperature * math.log(-lower_bound / upper_bound)

    def _stretch(self, s: Tensor) -> Tensor:
        return s * (self.upper_bound - self.lower_bound) + self.lower_bound

    def sample(self, batch_size: int) -> Tensor:
        if not self.training:
            return self._stretch(torch.sigmoid(self.log_alpha_param)).expand(batch_size, self.n_gates)
        u = torch.empty(batch_size, self.n_gates, device=self.log_alpha_param.device)
        u.uniform_(self.eps, 1 - self.eps)
        return self._stretch(torch.sigmoid((torch.logit(u) + self.log_alpha_param) / self.temperature))

    def gate_values(self) -> Tensor:
        return self._stretch(torch.sigmoid(self.log_alpha_param))

    def open_probability(self) -> Tensor:
        return torch.sigmoid(self.log_alpha_param - self.active_prob_offset)

    @classmethod
    def _from_pretrained(cls, log_alpha_param: Tensor, *args: Any, **kwargs: Any) -> BinaryConcreteStochasticGates:
        _check(log_alpha_param.dim() == 1, "log_alpha_param must be 1-D, one value per gate")
        gates = cls(log_alpha_param.numel(), *args, **kwargs)
        gates.load_state_dict({"log_alpha_param": log_alpha_param}, strict=False)
        return gates

    from_pretrained = _from_pretrained


class GaussianStochasticGates(StochasticGates):
    """Gaussian gates of standard deviation ``std`` around a learnt mean ``mu``.

    Args:
        n_gates: The number of gates (features gated).
        mask: Maps each input element to its gate (a tensor of gate indices shaped like one example);
            default one gate per element.
        reg_weight: Weight of the L0 regularisation.
        std: Standard deviation of the Gaussian gates' noise.
        reg_reduction: How the L0 term is reduced over gates: ``"sum"``, ``"mean"`` or ``"none"``.

    References:
        - Yamada, Lindenbaum, Negahban and Kluger, "Feature Selection using Stochastic Gates", ICML
          2020. https://arxiv.org/abs/1810.04247

    Example:
        >>> gates = pa.modules.GaussianStochasticGates(8)
        >>> gated, reg = gates(x)
        >>> gates.get_gate_values().shape
        torch.Size([8])
    """

    def __init__(self, n_gates: int, mask: Tensor | None = None, reg_weight: float = 1.0, std: float = 0.5,
                 reg_reduction: str = "sum") -> None:  # fmt: skip
        super().__init__(n_gates, mask, reg_weight, reg_reduction)
        self.mu = nn.Parameter(nn.init.normal_(torch.empty(n_gates), mean=0.5, std=0.01))
        _check(std > 0, f"std must be positive, got {std}")
        self.std = std

    def sample(self, batch_size: int) -> Tensor:
        if not self.training:
            return self.mu.expand(batch_size, self.n_gates)
        noise = torch.empty(batch_size, self.n_gates, device=self.mu.device)
        return self.mu + noise.normal_(mean=0, std=self.std)

    def gate_values(self) -> Tensor:
        return self.mu

    def open_probability(self) -> Tensor:
        return 0.5 * (1 + torch.erf(self.mu / self.std / math.sqrt(2)))

    @classmethod
    def _from_pretrained(cls, mu: Tensor, *args: Any, **kwargs: Any) -> GaussianStochasticGates:
        gates = cls(mu.numel(), *args, **kwargs)
        gates.load_state_dict({"mu": mu}, strict=False)
        return gates

    from_pretrained = _from_pretrained
