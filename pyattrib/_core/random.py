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


def captum_order(n: int, s: int, like: Tensor, stds: tuple[float, ...], inputs: tuple[Tensor, ...], n_refs: int):
    """Captum's draws for ``s`` samples of ``n`` examples, from the global generators in
    Captum's order: Gaussian noise per input (torch, drawn even when its std is 0), then
    reference indices (NumPy, drawn separately for each input: Captum does not pair the
    references of tuple inputs) and path points (NumPy). Rows come back in pyattrib's order
    (``k * n + i``); Captum lays them out example-major. Returns (noise, choices, alpha)."""
    import numpy as np

    to_ours = torch.arange(n * s, device=like.device).reshape(n, s).T.reshape(-1)  # our row -> Captum's row
    noise = []
    for x, sd in zip(inputs, stds):
        e = torch.normal(0.0, float(sd), size=(n * s, *x.shape[1:]), device=x.device).to(x.dtype)
        noise.append(e.index_select(0, to_ours) if sd else None)
    choices = tuple(
        torch.as_tensor(np.random.choice(n_refs, n * s), device=like.device).index_select(0, to_ours) for _ in inputs
    )
    alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, n * s), device=like.device, dtype=like.dtype)
    return tuple(noise), choices, alpha.index_select(0, to_ours)


def base_seed(seed: int, generator: torch.Generator | None) -> int:
    """The seed a family of per-item generators derives from (per concept, per checkpoint):
    ``seed``, or, when a ``generator`` is given, one draw from it. Per-item seeds keep results
    independent of the order items are processed in; ``seed`` is the convenience that names one."""
    if generator is None:
        return seed
    return int(torch.randint(2**31 - 1, (), generator=generator, device=generator.device))


def item_seed(base: int, item: int) -> int:
    """The seed of one item (a concept, a checkpoint, a batch, a model) of a family seeded by ``base``."""
    return base * 1_000_003 + item


def item_generator(base: int, item: int) -> torch.Generator:
    """The generator of one item of a family seeded by ``base`` (seeded by :func:`item_seed`): its
    draws depend on the item, not on the order items are processed in."""
    return torch.Generator().manual_seed(item_seed(base, item))
