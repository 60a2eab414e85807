"""The model-parameter randomisation test (Adebayo et al., 2018, https://arxiv.org/abs/1810.03292)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._core import random
from .._core.attributor import call_on_copies
from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_tuple
from .._core.random import base_seed
from ._perturbed import need_generator, pearson


@dataclass(frozen=True)
class Randomisation:
    """``layers``: the names randomised, top first; ``correlation`` (``(L, N)``): the rank
    correlation between each example's attributions under the trained model and after
    randomising every layer down to ``layers[l]`` (cascading).

    Args:
        layers: The names randomised, top first.
        correlation: ``(L, N)``: the rank correlation of each example's attributions under the trained
            model and after randomising every layer down to ``layers[l]``.

    Example:
        >>> check = pa.metrics.mprt(model, lambda m: pa.saliency(m))(x, target=y)
        >>> check.layers
        ['2', '0']
    """

    layers: list[str]
    correlation: Tensor


def ranks(values: Tensor) -> Tensor:
    """Ranks within each row of ``(N, D)`` values, ties sharing their average rank."""
    n, d = values.shape
    sorted_values, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(sorted_values, dtype=torch.long)
    starts[:, 1:] = (sorted_values[:, 1:] != sorted_values[:, :-1]).long()
    run = starts.cumsum(1) - 1 + torch.arange(n, device=values.device)[:, None] * d  # run ids, unique per row
    position = torch.arange(d, device=values.device, dtype=torch.float64).expand(n, d).reshape(-1)
    total = torch.zeros(n * d, dtype=torch.float64, device=values.device).index_add_(0, run.reshape(-1), position)
    count = torch.zeros(n * d, dtype=torch.float64, device=values.device).index_add_(
        0, run.reshape(-1), torch.ones_like(position)
    )
    average = (total / count.clamp_min(1)).index_select(0, run.reshape(-1)).reshape(n, d)
    return torch.empty_like(average).scatter_(1, order, average)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per row of two ``(N, D)`` tensors (average ranks for ties;
    0 where a row is constant).

    Args:
        a: ``(N, D)`` values.
        b: ``(N, D)`` values.

    Returns:
        Tensor: the correlation per row, shape ``(N,)``.

    Example:
        >>> pa.metrics.spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 3.0, 2.0]]))
        tensor([0.5000], dtype=torch.float64)
    """
    return spearman_or_nan(a, b).nan_to_num(0.0)


def spearman_or_nan(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation per row (average ranks); NaN where a row is constant (as scipy)."""
    return pearson(ranks(a.double()), ranks(b.double()))


def mprt(
    model: nn.Module,
    explain: Callable[[nn.Module], Callable[..., Any]],
    *,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 0,
    order: str = "top_down",
    seed_each_layer: bool = False,
    generator: torch.Generator | None = None,
) -> Callable[..., Randomisation]:
    """Cascading model randomisation: does the explanation depend on what the model learnt?

    ``explain(m)`` builds the attributor for a model ``m`` (e.g. ``lambda m:
    pa.integrated_gradients(m)``). The attributions of the trained model are compared with
    those of a copy whose layers are re-initialised one after another, from the output
    towards the input (``layers``: module names in that order; default every module that
    holds parameters directly, in reverse order of ``model.named_modules()``). Each layer is
    re-initialised with its ``reset_parameters()`` (else its parameters are redrawn from a
    normal distribution of their own std), from a generator seeded with ``seed``; the user's
    model is never touched. Returns a :class:`Randomisation` of Spearman correlations of the
    (``absolute``: absolute) attributions, per layer and example: a method that passes the
    sanity check drops towards 0 as more layers are randomised. Call as ``(inputs,
    *args, **attributor_kwargs)``.

    Args:
        model: The trained model (copied; never changed).
        explain: ``explain(m)`` builds the attributor for a model ``m`` (e.g. ``lambda m:
            pa.saliency(m)``).
        layers: Module names, randomised in this order (default: every module with parameters, from the
            output down).
        absolute: Compare absolute attributions.
        seed: Seed of the generator built for the draws (a convenience: the same seed gives the same
            draws).
        order: ``"top_down"`` (from the output, the paper's cascade) or ``"bottom_up"`` (from the input,
            Quantus's smooth and efficient MPRT) for the default ``layers``.
        seed_each_layer: Seed torch's generator with ``seed`` before each layer's re-initialisation
            (Quantus seeds ``seed + 1`` before each: its ``seed=42`` is ``seed=43`` here).
        generator: Draws the seed instead (one draw when the check is built); ``seed`` is the convenience
            that names one. Layers are re-initialised by their own ``reset_parameters()``, which draws
            from torch's global generator: it is seeded with the seed inside a forked random state, so
            the caller's random state is left as it was.

    Returns:
        A function ``(inputs, *args, **attributor_kwargs) -> Randomisation``.

    References:
        - Adebayo, Gilmer, Goodfellow and Kim, "Local Explanation Methods for Deep Neural Networks Lack
          Sensitivity to Parameter Values", 2018. https://arxiv.org/abs/1810.03307

    Example:
        >>> check = pa.metrics.mprt(model, lambda m: pa.saliency(m))
        >>> check(x, target=y).correlation.shape
        torch.Size([2, 4])
    """
    layers, seed = _layer_names(model, layers, order), base_seed(seed, generator)

    def measure(inputs: Any, *args: Any, **kwargs: Any) -> Randomisation:
        trained = _explained(explain, model, absolute, inputs, args, kwargs)
        rows = [spearman(trained, _explained(explain, copied, absolute, inputs, args, kwargs))
                for copied in _cascade(model, layers, seed, seed_each_layer)]  # fmt: skip
        return Randomisation(list(layers), torch.stack(rows))

    return measure


def _layer_names(model: nn.Module, layers: Sequence[str] | None, order: str) -> list[str]:
    """The modules to randomise, checked: ``layers``, or every module that holds parameters
    directly, from the output down (``"top_down"``) or from the input up (``"bottom_up"``)."""
    if order not in ("top_down", "bottom_up"):
        raise ArgumentError(f"order={order!r}; choose 'top_down' or 'bottom_up'")
    named = dict(model.named_modules())
    if layers is None:
        layers = [name for name, m in named.items() if next(m.parameters(recurse=False), None) is not None]
        layers = layers[::-1] if order == "top_down" else layers
    missing = [name for name in layers if name not in named]
    if missing:
        raise ArgumentError(f"layers {missing} are not modules of the model; use names from model.named_modules()")
    if not layers:
        raise ArgumentError("the model has no module with parameters to randomise; pass layers=")
    return list(layers)


def _cascade(model: nn.Module, layers: Sequence[str], seed: int, seed_each_layer: bool) -> Iterator[nn.Module]:
    """A copy of ``model`` after re-initialising each of ``layers`` in turn (cascading), torch's
    generator seeded with ``seed`` once (``seed_each_layer``: before each layer); the caller's
    random state is restored afterwards and ``model`` is never touched."""
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            if seed_each_layer:
                torch.manual_seed(seed)
            _reinitialise(modules[name])
            yield copied


def _explained(
    explain: Callable[[nn.Module], Callable[..., Any]], m: nn.Module, absolute: bool, inputs: Any, args: tuple,
    kwargs: dict[str, Any],
) -> Tensor:  # fmt: skip
    """``(N, D)``: the attributions of ``explain(m)``, flattened and detached (``absolute``: magnitudes)."""
    attributor = explain(m)
    out = attributor(inputs, *args, **kwargs)
    if getattr(attributor, "returns_delta", False):
        out = out[0]
    attrs, _ = as_tuple(out, "attributions")
    values = torch.cat([a.reshape(a.shape[0], -1) for a in attrs], 1).detach()
    return values.abs() if absolute else values


@torch.no_grad()
def _reinitialise(module: Any) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for p in module.parameters(recurse=False):
        p.copy_(torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))


def denoised(
    attributor: Callable[..., Any], n_samples: int, noise: float, generator: torch.Generator | None
) -> Callable[..., Any]:
    """``attributor`` averaged over ``n_samples`` copies of each example, all but the last with
    Gaussian noise of standard deviation ``noise * (max - min)`` of the example (sMPRT's
    denoising), the copies explained in one call of the attributor."""

    def explain(inputs: Tensor, **kwargs: Any) -> Tensor:
        n = inputs.shape[0]
        dims = tuple(range(1, inputs.dim()))
        std = noise * (inputs.amax(dims, keepdim=True) - inputs.amin(dims, keepdim=True))
        draws = random.normal((n_samples - 1, *inputs.shape), 1.0, inputs, generator) * std
        copies = torch.cat([inputs[None] + draws, inputs[None]]).transpose(0, 1)  # (N, S, ...): copy s of example i
        attrs, _, _ = call_on_copies(attributor, (copies.reshape(n * n_samples, *inputs.shape[1:]),), False, kwargs,
                                     n, n_samples)  # fmt: skip
        return attrs[0].mean(1)

    return explain


def smooth_mprt(
    model: nn.Module,
    explain: Callable[[nn.Module], Callable[..., Any]],
    *,
    n_samples: int = 50,
    noise: float = 0.1,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 43,
    order: str = "bottom_up",
    generator: torch.Generator | None = None,
) -> Callable[..., Randomisation]:
    r"""Smooth MPRT: :func:`mprt` on denoised explanations, each the mean of the attributor over
    ``n_samples`` copies of the input, all but one with Gaussian noise of standard deviation
    ``noise * (max - min)`` of the example: the noise of gradient explanations no longer hides
    whether they change as the layers are randomised. Defaults are Quantus's (layers from the
    input up, each re-initialised after seeding 43: Quantus's ``seed=42``).

    Args:
        model: The trained model (copied; never changed).
        explain: ``explain(m)`` builds the attributor for a model ``m``.
        n_samples: Copies averaged per explanation (the last without noise).
        noise: The noise's standard deviation over each example's value range.
        layers: Module names, randomised in this order (default: every module with parameters, in
            ``order``).
        absolute: Compare absolute attributions.
        seed: The seed set before each layer's re-initialisation.
        generator: Draws the seed instead (one draw when the check is built); ``seed`` is the convenience
            that names one.
        order: ``"bottom_up"`` or ``"top_down"``.

    Returns:
        A function ``(inputs, *, generator, **attributor_kwargs) -> Randomisation``.

    References:
        - Hedström et al., "Sanity Checks Revisited: An Exploration to Repair the Model Parameter
          Randomisation Test", 2024. https://arxiv.org/abs/2401.06465

    Example:
        >>> check = pa.metrics.smooth_mprt(model, lambda m: pa.saliency(m), n_samples=4)
        >>> check(x, target=y, generator=generator).correlation.shape
        torch.Size([2, 4])
    """
    check_count("n_samples", n_samples)
    layer_seed = base_seed(seed, generator)

    def measure(inputs: Tensor, *, generator: torch.Generator | None = None, **kwargs: Any) -> Randomisation:
        need_generator(generator, "smooth_mprt", "the noise of its denoised explanations")

        def smoothed(m: nn.Module) -> Callable[..., Any]:
            return denoised(explain(m), n_samples, noise, generator)

        check = mprt(
            model, smoothed, layers=layers, absolute=absolute, seed=layer_seed, order=order, seed_each_layer=True
        )
        return check(inputs, **kwargs)

    return measure


def discrete_entropy(values: Tensor, n_bins: int = 100) -> Tensor:
    r"""The entropy of the histogram of each row's values (``n_bins`` equal bins from the row's
    smallest to its largest value, as ``np.histogram``), :math:`-\sum_b p_b \log p_b`.

    Args:
        values: ``(N, D)`` values.
        n_bins: The number of bins.

    Returns:
        Tensor: ``(N,)`` entropies (float64).

    Example:
        >>> pa.metrics.discrete_entropy(torch.tensor([[0.0, 1.0], [0.0, 0.0]]), n_bins=2)
        tensor([0.6931, 0.0000], dtype=torch.float64)

    References:
        - Hedström et al., "Sanity Checks Revisited: An Exploration to Repair the Model Parameter
          Randomisation Test", 2024. https://arxiv.org/abs/2401.06465
    """
    v = values.double()
    low, high = v.amin(1, keepdim=True), v.amax(1, keepdim=True)
    same = high == low
    low, high = torch.where(same, low - 0.5, low), torch.where(same, high + 0.5, high)  # numpy's range for a constant
    index = ((v - low) * (n_bins / (high - low))).long().clamp(0, n_bins - 1)
    counts = torch.zeros(v.shape[0], n_bins, dtype=torch.float64, device=v.device).scatter_add_(
        1, index, torch.ones_like(v)
    )
    p = counts / counts.sum(1, keepdim=True)
    return (p * torch.log(torch.where(p > 0, 1 / p, torch.ones_like(p)))).sum(1)  # sum p log(1/p): no -0.0


def efficient_mprt(
    model: nn.Module,
    explain: Callable[[nn.Module], Callable[..., Any]],
    *,
    n_bins: int = 100,
    absolute: bool = False,
    seed: int = 43,
    layers: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
) -> Callable[..., Tensor]:
    r"""Efficient MPRT: the relative rise of an explanation's complexity when every layer of the
    model is randomised, :math:`(H(\Phi_{\tilde f}(x)) - H(\Phi_f(x))) / H(\Phi_f(x))`, with
    :math:`H` the :func:`discrete_entropy` of the attribution values over ``n_bins`` bins. A
    method that depends on what the model learnt scores well above 0. Only the fully
    randomised model is explained (Quantus's defaults: its layers re-initialised from the
    input up, each after seeding 43).

    Args:
        model: The trained model (copied; never changed).
        explain: ``explain(m)`` builds the attributor for a model ``m``.
        n_bins: Histogram bins of the entropy.
        absolute: Use absolute attributions.
        seed: The seed set before each layer's re-initialisation.
        generator: Draws the seed instead (one draw when the check is built); ``seed`` is the convenience
            that names one.
        layers: Module names to randomise (default: every module with parameters).

    Returns:
        A function ``(inputs, **attributor_kwargs) -> (N,)``.

    References:
        - Hedström et al., "Sanity Checks Revisited: An Exploration to Repair the Model Parameter
          Randomisation Test", 2024. https://arxiv.org/abs/2401.06465

    Example:
        >>> pa.metrics.efficient_mprt(model, lambda m: pa.saliency(m))(x, target=y).shape
        torch.Size([4])
    """
    check_count("n_bins", n_bins)
    chosen, seed = _layer_names(model, layers, "bottom_up"), base_seed(seed, generator)

    def measure(inputs: Any, *args: Any, **kwargs: Any) -> Tensor:
        before = discrete_entropy(_explained(explain, model, absolute, inputs, args, kwargs), n_bins)
        for k, randomised in enumerate(_cascade(model, chosen, seed, seed_each_layer=True)):
            if k == len(chosen) - 1:  # every layer re-initialised (explained inside the forked random state)
                after = discrete_entropy(_explained(explain, randomised, absolute, inputs, args, kwargs), n_bins)
        return ((after - before) / before).to(before.dtype)

    return measure
