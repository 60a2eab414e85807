"""XRAI's built-in segmentation: rectangles of a grid at several scales."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

GRID_SCALES = (2, 3, 4, 6, 8)  # the built-in segmentation: squares of 1/2, 1/3, ... of the image's side


def grid_segments(height: int, width: int, scales: Sequence[int] = GRID_SCALES, device: Any = None) -> Tensor:
    """The built-in segmentation: for each ``s`` in ``scales``, the image cut into an ``s x s``
    grid of rectangles; overlapping scales let XRAI grow regions coarse to fine.

    Args:
        height: Image height.
        width: Image width.
        scales: Grid sizes.
        device: Where the masks go.

    Returns:
        Boolean masks ``(M, height, width)``.

    Example:
        >>> pa.cam.grid_segments(4, 4, scales=(2,)).shape
        torch.Size([4, 4, 4])
    """
    masks = []
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    for s in scales:
        r, c = rows * s // height, cols * s // width
        cell = r[:, None] * s + c[None, :]
        masks.append(cell[None] == torch.arange(s * s, device=device)[:, None, None])
    return torch.cat(masks)
