"""Trainable interpretability modules: stochastic gates for L0 feature selection."""

from .gates import BinaryConcreteStochasticGates, GaussianStochasticGates, StochasticGates

__all__ = ["StochasticGates", "BinaryConcreteStochasticGates", "GaussianStochasticGates"]
