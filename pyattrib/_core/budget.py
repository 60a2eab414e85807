"""How many rows one model evaluation gets when the user leaves ``batch_size=None``.

Rule: a chunk holds about ``ROW_BUDGET`` input elements (1 MiB of float32), in whole
batches, and never fewer rows than the batch itself::

    rows = max(N, floor(ROW_BUDGET / c / N) * N)

where ``c`` is the number of input elements per example, counting each integer id as
``ID_WIDTH`` elements (an embedding widens it). A batch the user's model already takes
runs as one evaluation, as in Captum; models with small rows (tabular, small images)
get large chunks, where per-call overhead dominates; large images get chunks of one
batch, where activations dominate memory. Results do not depend on the chunking; an
explicit ``batch_size`` always wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

ROW_BUDGET = 2**18
ID_WIDTH = 64


def row_cost(inputs: Sequence[Tensor]) -> int:
    """Input elements per example, integer ids counted ``ID_WIDTH`` times."""
    cost = 0
    for x in inputs:
        per_row = math.prod(x.shape[1:]) if x.dim() else 1
        cost += per_row * (1 if x.is_floating_point() or x.is_complex() else ID_WIDTH)
    return max(cost, 1)


def rows_per_chunk(batch_size: int | None, inputs: Sequence[Tensor], n: int) -> int:
    """``batch_size`` when given, else the rule above."""
    if batch_size is not None:
        return batch_size
    return max(n, ROW_BUDGET // row_cost(inputs) // max(n, 1) * n)
