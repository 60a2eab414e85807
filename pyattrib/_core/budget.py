"""How many rows one model evaluation gets when the user leaves ``batch_size=None``.

Rule: a chunk holds about ``budget`` input elements, in whole batches, and never fewer
rows than the batch itself::

    rows = max(N, floor(budget / c / N) * N)

where ``c`` is the number of input elements per example, counting each integer id as
``ID_WIDTH`` elements (an embedding widens it). The budget depends on what the rows are for:

- ``GRADIENT_BUDGET`` (2^20 elements, 4 MiB of float32) for rows that are differentiated
  (path points, noise samples, DeepLift pairs). Captum sends all of them at once; chunks of
  this size run as fast (measured on the architecture matrix: 25 path points of a batch of
  16 text sequences or 4 64x64 images is the fastest chunk) at a fraction of the memory.
- ``FORWARD_BUDGET`` (2^13 elements, 32 KiB) for forward-only perturbed rows. Captum
  sends one perturbation of the batch per evaluation; so does this rule for images and
  text from a batch of 8 sequences of 16 tokens up (same peak memory), while tabular
  rows, where per-call overhead dominates, get chunks of several perturbations.

- ``PATCH_BUDGET`` (2^18 elements) for patched copies of a prompt (:mod:`pyattrib.patching`):
  forward-only rows through the whole model, several sites per pass. On the patching
  benchmark (a 4-layer d=64 GPT-2, 32-token prompts) 128 rows per pass is the fastest chunk;
  512 rows run 1.75x slower, one site per pass (the forward budget's rule) 2.5x slower.

- ``METRIC_BUDGET`` (2^16 elements) for the copies the evaluation metrics
  (:mod:`pyattrib.metrics`) run through the model or re-explain. On the digits CNN (64 images
  of 8x8), pixel flipping's 4,096 rows take 31 ms in 1,024-row chunks against 43 ms in the
  forward budget's 128-row chunks and 46 ms in 4,096-row ones; average sensitivity's 12,800
  re-explained rows 164 ms in 1,024-row chunks against 399 ms all at once.
A batch the user's model already takes runs as one evaluation, as in Captum. Results do
not depend on the chunking; an explicit ``batch_size`` always wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

GRADIENT_BUDGET = 2**20
FORWARD_BUDGET = 2**13
PATCH_BUDGET = 2**18
METRIC_BUDGET = 2**16
ID_WIDTH = 64


def row_cost(inputs: Sequence[Tensor]) -> int:
    """Input elements per example, integer ids counted ``ID_WIDTH`` times."""
    cost = 0
    for x in inputs:
        per_row = math.prod(x.shape[1:]) if x.dim() else 1
        cost += per_row * (1 if x.is_floating_point() or x.is_complex() else ID_WIDTH)
    return max(cost, 1)


def rows_per_chunk(batch_size: int | None, inputs: Sequence[Tensor], n: int, budget: int = GRADIENT_BUDGET) -> int:
    """``batch_size`` when given, else the rule above."""
    if batch_size is not None:
        return batch_size
    return max(n, budget // row_cost(inputs) // max(n, 1) * n)
