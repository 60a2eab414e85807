"""Random draws, always from the caller's generator, made outside any transform.

Draws happen on the generator's device (or the inputs' when there is no generator)
and are then moved to the inputs' device and dtype, so results depend only on the
generator state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _device(generator: torch.Generator | None, like: Tensor) -> torch.device:
    return generator.device if generator is not None else like.device


def normal(shape: tuple[int, ...], std: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    out = torch.normal(0.0, float(std), size=shape, generator=generator, device=_device(generator, like))
    return out.to(device=like.device, dtype=like.dtype)


def uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    out = torch.rand(shape, generator=generator, device=_device(generator, like), dtype=torch.float64)
    return out.to(device=like.device, dtype=like.dtype)


def integers(high: int, shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    out = torch.randint(high, shape, generator=generator, device=_device(generator, like))
    return out.to(device=like.device)
