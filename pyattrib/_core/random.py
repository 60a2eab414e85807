"""Random draws, always from the caller's generator, made outside any transform.

Draws happen on the generator's device (or the inputs' when there is no generator)
and are then moved to the inputs' device and dtype, so results depend only on the
generator state.
"""

from __future__ import annotations

import functools

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


@functools.lru_cache
def captum_coalitions(kind: str, fit_draws: bool = True):
    """A sampler ``(n, s, F, generator, device) -> (n, s, F)`` of binary interpretable samples
    drawn in Captum's order, from ``generator`` or, when it is ``None``, the global generator
    (as Captum does), on the CPU: per example, its ``s`` samples one by one, then (with
    ``fit_draws``) what Captum's scikit-learn wrapper draws when it fits: the base seed of the
    DataLoader it reads and the ``F + 1`` initial values of its ``nn.Linear(F, 1)``.

    - ``"bernoulli"`` (Captum's LIME): each group kept with probability 1/2;
    - ``"shapley_kernel"`` (Captum's KernelSHAP): all groups, none, then a size ``k`` from a
      ``Categorical`` over ``(F - 1) / (k (F - k))`` and the ``k`` groups with the largest of
      ``F`` Gaussian keys.
    """

    def sample(n: int, s: int, n_f: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        z = torch.zeros(n, s, n_f, dtype=torch.bool)
        if kind == "shapley_kernel":
            k = torch.arange(n_f, dtype=torch.float)
            probs = torch.tensor(float(n_f - 1)) / (k * (n_f - k))
            probs[0] = 0.0
            probs = (probs / probs.sum()).reshape(1, -1)  # what Categorical samples from
        for i in range(n):
            for r in range(s):
                if kind == "bernoulli":
                    z[i, r] = torch.bernoulli(torch.full((n_f,), 0.5), generator=generator).bool()
                elif r < 2:
                    z[i, r] = r == 0
                else:
                    size = int(torch.multinomial(probs, 1, True, generator=generator))
                    keys = torch.randn(1, n_f, generator=generator)
                    z[i, r, keys[0].topk(size).indices] = True
            if fit_draws:  # the fit's DataLoader's base seed, then nn.Linear(F, 1)'s initial weight and bias
                torch.empty((), dtype=torch.int64).random_(generator=generator)
                torch.empty(1, n_f).uniform_(generator=generator)
                torch.empty(1).uniform_(generator=generator)
        return z.to(device)

    return sample


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
