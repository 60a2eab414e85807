"""Patching: which component carries a behaviour, on any ``nn.Module``.

Run the model on one prompt with some activations taken from another and measure a metric:
activation patching (:func:`activation_patching`, every site in batched forwards), its
first-order estimate from one backward pass (:func:`attribution_patching`, with AtP*'s
GradDrop), and the edges between the components of a residual-stream transformer
(:func:`edge_attribution_patching`, EAP and EAP-IG) with the faithfulness of the circuit they
make (:func:`circuit_faithfulness`). Sites are grids of masks over module values
(:func:`layers`, :func:`positions`, :func:`heads`), all built on the capture combinator of
``pyattrib._core``: Hugging Face models run unpatched, no re-implementation of the
architecture.
"""

from .activation import activation_patching, attribution_patching, logit_diff
from .circuit import CircuitScore, circuit_faithfulness
from .edges import Edges, edge_attribution_patching
from .graph import Block, Read, Residual, residual_stream
from .sites import Sites, heads, keys, layers, positions, queries

__all__ = [
    "Block",
    "CircuitScore",
    "Edges",
    "Read",
    "Residual",
    "Sites",
    "activation_patching",
    "attribution_patching",
    "circuit_faithfulness",
    "edge_attribution_patching",
    "heads",
    "keys",
    "layers",
    "logit_diff",
    "positions",
    "queries",
    "residual_stream",
]
