"""Surrogate-model methods: LIME and KernelSHAP.

Both draw binary *interpretable samples* ``z`` (which feature groups keep the input's
values; the rest take the baseline's), evaluate the model on all of them through the
perturbation engine, and fit a weighted linear model ``g(z) = b + sum_g c_g z_g`` to the
outputs per example; the coefficients ``c`` are the attributions.

- LIME (Ribeiro et al., 2016): ``z ~ Bernoulli(1/2)`` per group, weights from a similarity
  kernel, any scikit-learn regressor (default ``Lasso(alpha=0.01)``).
- KernelSHAP (Lundberg & Lee, 2017): ``|z| = k`` drawn with ``p(k) ~ (F-1) / (k (F-k))``, a
  uniform subset of that size, plus the all-ones and all-zeros samples at a very large
  weight; plain weighted least squares, solved for the whole batch at once in torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._core import random
from ._core.attributor import Attributor
from ._core.call import Call
from ._core.calls import SampledFeatureCall
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike
from ._core.perturb import FeatureMask, evaluate, prepare_perturbation
from ._core.state import evaluating
from ._core.targets import TargetLike
from .shapley import coalition_rows

Forward = Callable[..., Any]
Similarity = Callable[[tuple[Tensor, ...], tuple[Tensor, ...], Tensor], Tensor]
PER_EXAMPLE = ("baselines", "target", "additional_forward_args", "feature_mask")
INF_WEIGHT = 1e6
SOLVE_ELEMENTS = 2**12  # float64 design values per batched least-squares solve


def cosine_similarity_kernel(kernel_width: float = 1.0) -> Similarity:
    """``exp(-d^2 / width^2)`` with ``d`` the cosine distance between the flattened original
    and perturbed inputs (Captum's default for LIME), for a batch of rows at once."""

    def similarity(original: tuple[Tensor, ...], perturbed: tuple[Tensor, ...], z: Tensor) -> Tensor:
        a = torch.cat([t.reshape(t.shape[0], -1).double() for t in original], 1)
        b = torch.cat([t.reshape(t.shape[0], -1).double() for t in perturbed], 1)
        d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=1)
        return torch.exp(-(d**2) / kernel_width**2)

    return similarity


def _surrogate_data(
    f: Forward,
    call: Call,
    base: tuple[Tensor, ...],
    mask: FeatureMask,
    z: Tensor,
    similarity: Similarity | None,
    batch_size: int | None,
    show_progress: bool,
    desc: str,
) -> tuple[Tensor, Tensor | None]:
    """Outputs ``(N, S)`` at every interpretable sample ``z (N, S, F)``, and similarity
    weights ``(N, S)`` when a kernel is given."""
    n, s = z.shape[:2]
    sims: list[Tensor] = []
    build_rows = coalition_rows(call, base, mask, lambda p, i, ids: z[i, p].gather(1, ids))

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        rows = build_rows(p, i)
        if similarity is not None:
            sims.append(similarity(tuple(x.index_select(0, i) for x in call.inputs), rows, z[i, p]))
        return rows

    out = evaluate(f, call, build, s, batch_size, show_progress, desc).values  # (S, N, K)
    if out.shape[-1] != 1:
        raise ArgumentError("surrogate methods need one output per example; pass target=<class index>")
    weights = torch.cat(sims).reshape(s, n).T if similarity is not None else None
    return out[..., 0].T, weights


def weighted_least_squares(z: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Per example, ``argmin_c sum_s w_s (y_s - b - c . z_s)^2``: coefficients ``(N, F)``,
    solved in float64 for as many examples at once as keep the design within
    ``SOLVE_ELEMENTS`` values."""
    out = []
    for part in _example_slices(z.shape[0], z.shape[1] * (z.shape[2] + 1)):
        zc, sw = z[part], w[part].double().sqrt()[..., None]
        x = torch.cat([zc.double(), torch.ones_like(zc[..., :1], dtype=torch.float64)], -1).mul_(sw)
        out.append(torch.linalg.lstsq(x, y[part].double()[..., None] * sw).solution[:, :-1, 0])
    return torch.cat(out)


def _example_slices(n: int, per_example: int) -> list[slice]:
    """Slices of the ``n`` examples holding about ``SOLVE_ELEMENTS`` values each (at least one example)."""
    step = max(1, SOLVE_ELEMENTS // max(per_example, 1))
    return [slice(a, min(a + step, n)) for a in range(0, n, step)]


def _restore(call: Call, mask: FeatureMask, coef: Tensor, return_input_shape: bool) -> Any:
    coef = coef.to(call.inputs[0].dtype if call.inputs[0].is_floating_point() else torch.get_default_dtype())
    if not return_input_shape:
        return coef
    return call.restore(tuple(a[:, 0] for a in mask.spread(coef[:, None, :])))


def lime(
    f: Forward,
    *,
    interpretable_model: Any = None,
    similarity_func: Similarity | None = None,
    perturb_func: Callable[[int, int, int, torch.Generator | None, torch.device], Tensor] | None = None,
    n_samples: int = 50,
    return_input_shape: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[SampledFeatureCall]:
    """LIME: a weighted sparse linear surrogate fitted around each example.

    ``interpretable_model``: a scikit-learn regressor with ``fit(X, y, sample_weight)`` and
    ``coef_`` (default ``Lasso(alpha=0.01)``), cloned per example; or ``"linear"`` for plain
    weighted least squares solved for the whole batch in torch. ``similarity_func(original,
    perturbed, z) -> (M,)`` weights a batch of rows (default ``cosine_similarity_kernel``).
    ``perturb_func(n_examples, n_samples, n_features, generator, device) -> (N, S, F)`` binary
    samples (default Bernoulli(1/2)). With ``return_input_shape=False`` the result is the
    ``(N, F)`` coefficients. Call as ``(inputs, baselines=None, *, target=None,
    additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        interpretable_model: The surrogate fitted to the perturbed samples; default a weighted linear
            (ridge) regression.
        similarity_func: Weights a batch of samples, ``(inputs, perturbed, z) -> (M,)``; default an
            exponential cosine kernel.
        perturb_func: Draws the interpretable samples ``z``; default uniform random subsets of the
            feature groups.
        n_samples: The number of random samples per example.
        return_input_shape: Return attributions shaped like the inputs (``False``: one value per feature
            group).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None, generator=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Ribeiro, Singh and Guestrin, "\"Why Should I Trust You?\": Explaining the Predictions of Any
          Classifier", KDD 2016. https://arxiv.org/abs/1602.04938

    Example:
        >>> pa.lime(model, n_samples=50)(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)
    similarity = similarity_func or cosine_similarity_kernel()

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "lime"
        )
        n, n_f = call.n, mask.n_features
        if perturb_func is None:
            z = random.uniform((n, n_samples, n_f), torch.ones((), dtype=torch.float64, device=call.device), generator)
            z = z < 0.5
        else:
            z = perturb_func(n, n_samples, n_f, generator, call.device).bool()
        with evaluating(f):
            y, w = _surrogate_data(f, call, base, mask, z, similarity, batch_size, show_progress, "Lime attribution")
        assert w is not None  # LIME always weighs by its similarity kernel
        if interpretable_model == "linear":
            coef = weighted_least_squares(z, y, w)
        else:
            coef = _sklearn_fit(interpretable_model, z, y, w)
        return _restore(call, mask, coef, return_input_shape)

    return Attributor(attribute, f, per_example=PER_EXAMPLE, random=True, name="lime")


def _sklearn_fit(model: Any, z: Tensor, y: Tensor, w: Tensor) -> Tensor:
    from sklearn.base import clone
    from sklearn.linear_model import Lasso

    template = Lasso(alpha=0.01) if model is None else model
    coefs = []
    for zi, yi, wi in zip(z.cpu(), y.cpu().double().numpy(), w.cpu().double().numpy()):
        fitted = clone(template).fit(zi.double().numpy(), yi, sample_weight=wi)
        coefs.append(torch.as_tensor(fitted.coef_, dtype=torch.float64).reshape(-1))
    return torch.stack(coefs).to(z.device)


def kernel_shap(
    f: Forward,
    *,
    n_samples: int = 25,
    paired: bool = False,
    return_input_shape: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[SampledFeatureCall]:
    """KernelSHAP: Shapley values as the weighted least-squares fit of the Shapley kernel.

    Draws ``n_samples`` coalitions per example (the first two are all groups and none,
    weighted ``1e6`` so the fit nearly satisfies efficiency), evaluates them in batches of
    at most ``batch_size`` rows and solves all examples' regressions together. Exact on
    models that are linear in the feature groups. Call as ``(inputs, baselines=None, *,
    target=None, additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        n_samples: The number of random samples per example.
        paired: Draw coalitions in complementary pairs (a coalition, then the groups it leaves out):
            the same distribution (the Shapley kernel is symmetric in ``k`` and ``F - k``), a smaller
            error for the same number of evaluations (Covert and Lee, 2021).
        return_input_shape: Return attributions shaped like the inputs (``False``: one value per feature
            group).
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None, generator=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874
        - Covert and Lee, "Improving KernelSHAP: Practical Shapley Value Estimation via Linear
          Regression", AISTATS 2021. https://arxiv.org/abs/2012.01536

    Example:
        >>> pa.kernel_shap(model, n_samples=50)(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)
    check_count("n_samples", n_samples, minimum=3)

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "kernel_shap"
        )
        n, n_f = call.n, mask.n_features
        z = shapley_kernel_samples(n, n_samples, n_f, generator, call.device, paired)
        w = torch.ones(n, n_samples, dtype=torch.float64, device=call.device)
        w[:, :2] = INF_WEIGHT
        with evaluating(f):
            y, _ = _surrogate_data(f, call, base, mask, z, None, batch_size, show_progress, "Kernel Shap attribution")
        return _restore(call, mask, weighted_least_squares(z, y, w), return_input_shape)

    return Attributor(attribute, f, per_example=PER_EXAMPLE, random=True, name="kernel_shap")


def shapley_kernel_samples(
    n: int, s: int, n_f: int, generator: torch.Generator | None, device: torch.device, paired: bool = False
) -> Tensor:
    """``(N, S, F)`` boolean coalitions: all ones, all zeros, then sizes
    ``k ~ (F-1) / (k (F-k))`` with a uniform subset of each size (the groups of the ``k``
    smallest of ``F`` uniform keys), drawn for a few examples at a time. ``paired``: each drawn
    coalition is followed by its complement."""
    if paired and n_f >= 2 and s > 3:
        half = shapley_kernel_samples(n, 2 + (s - 1) // 2, n_f, generator, device)
        drawn = half[:, 2:]
        both = torch.stack([drawn, ~drawn], 2).flatten(1, 2)[:, : s - 2]
        return torch.cat([half[:, :2], both], 1)
    like = torch.ones((), dtype=torch.float64, device=device)
    z = torch.zeros(n, s, n_f, dtype=torch.bool, device=device)
    z[:, 0] = True
    if n_f < 2 or s <= 2:
        return z
    k = torch.arange(1, n_f, dtype=torch.float64, device=device)
    probs = (n_f - 1) / (k * (n_f - k))
    gen_dev = generator.device if generator is not None else device
    sizes = torch.multinomial(probs.to(gen_dev), n * (s - 2), replacement=True, generator=generator).to(device) + 1
    sizes = sizes.reshape(n, s - 2, 1)
    for part in _example_slices(n, (s - 2) * n_f):
        keys = random.uniform((part.stop - part.start, s - 2, n_f), like, generator)
        kth = keys.sort(2).values.gather(2, sizes[part] - 1)  # the k-th smallest key
        z[part, 2:] = keys <= kth
    return z
