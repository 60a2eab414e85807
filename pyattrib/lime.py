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
from ._core.attributor import FEATURE_PER_EXAMPLE, Attributor
from ._core.call import Call
from ._core.calls import SampledFeatureCall
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike
from ._core.perturb import FeatureMask, evaluate, prepare_perturbation, reference_outputs, shared_mask
from ._core.state import evaluating
from ._core.targets import TargetLike
from .shapley import coalition_rows

Forward = Callable[..., Any]
Similarity = Callable[[tuple[Tensor, ...], tuple[Tensor, ...], Tensor], Tensor]
Sampler = Callable[[int, int, int, "torch.Generator | None", torch.device], Tensor]
INF_WEIGHT = 1e6
SOLVE_ELEMENTS = 2**12  # float64 design values per batched least-squares solve


def similarity_kernel(distance: str = "cosine", kernel_width: float = 1.0) -> Similarity:
    """``exp(-d^2 / width^2)`` for a batch of rows, ``d`` the ``"cosine"`` distance (``1 -
    cos``) or the ``"euclidean"`` distance between the flattened original and perturbed inputs.

    Args:
        distance: ``"cosine"`` or ``"euclidean"``.
        kernel_width: The kernel's width ``sigma`` (Captum's ``kernel_width`` is ``sigma / sqrt(2)``).

    Returns:
        ``similarity(original, perturbed, z) -> (M,)`` weights, in float64.

    Example:
        >>> from pyattrib.lime import similarity_kernel
        >>> similarity_kernel("euclidean", 2.0)((x[:2],), (x[:2],), None)
        tensor([1., 1.], dtype=torch.float64)
    """
    if distance not in ("cosine", "euclidean"):
        raise ArgumentError(f"distance must be 'cosine' or 'euclidean', not {distance!r}")

    def similarity(original: tuple[Tensor, ...], perturbed: tuple[Tensor, ...], z: Tensor) -> Tensor:
        a = torch.cat([t.reshape(t.shape[0], -1).double() for t in original], 1)
        b = torch.cat([t.reshape(t.shape[0], -1).double() for t in perturbed], 1)
        d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=1) if distance == "cosine" else (a - b).norm(dim=1)
        return torch.exp(-(d**2) / kernel_width**2)

    return similarity


def cosine_similarity_kernel(kernel_width: float = 1.0) -> Similarity:
    """``exp(-d^2 / width^2)`` with ``d`` the cosine distance: :func:`similarity_kernel` ``("cosine")``.

    Args:
        kernel_width: The kernel's width.

    Returns:
        The batched similarity.

    Example:
        >>> from pyattrib.lime import cosine_similarity_kernel
        >>> cosine_similarity_kernel()((x[:1],), (x[:1],), None)
        tensor([1.], dtype=torch.float64)
    """
    return similarity_kernel("cosine", kernel_width)


def _surrogate_data(
    f: Forward,
    call: Call,
    base: tuple[Tensor, ...],
    mask: FeatureMask,
    draw: Callable[[int], Tensor],
    similarity: Similarity | None,
    batch_size: int | None,
    show_progress: bool,
    desc: str,
) -> tuple[Tensor, Tensor, Tensor | None, bool]:
    """Interpretable samples ``z (N, S, F)`` (``draw(N)``), the outputs ``(N, S)`` at them and
    similarity weights ``(N, S)`` when a kernel is given. A forward that returns one value for
    the whole batch (checked on the unperturbed batch when ``N > 1``) gets one set of samples
    for the batch, the similarity of the flattened batch and ``N = 1`` (the last value: True)."""
    whole = call.n > 1 and reference_outputs(f, call, call.inputs).whole
    shared_mask(mask, whole)
    z = draw(1 if whole else call.n)
    n, s = call.n, z.shape[1]
    zz = z.expand(n, *z.shape[1:]) if whole else z
    sims: list[Tensor] = []
    build_rows = coalition_rows(call, base, mask, lambda p, i, ids: zz[i, p].gather(1, ids))

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        rows = build_rows(p, i)
        if similarity is not None:
            original = tuple(x.index_select(0, i) for x in call.inputs)
            if whole:
                original, rows_ = tuple(t.reshape(1, -1) for t in original), tuple(t.reshape(1, -1) for t in rows)
                sims.append(similarity(original, rows_, zz[i[:1], p[:1]]))
            else:
                sims.append(similarity(original, rows, zz[i, p]))
        return rows

    # one example: a scalar output is its one value, whatever its form (evaluate tells from the first row)
    out = evaluate(f, call, build, s, batch_size, show_progress, desc, whole=None if n == 1 else whole).values
    if out.shape[-1] != 1:
        raise ArgumentError("surrogate methods need one output per example; pass target=<class index>")
    weights = torch.cat(sims).reshape(s, -1).T if similarity is not None else None
    return z, out[..., 0].T, weights, whole


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


def _restore(call: Call, mask: FeatureMask, coef: Tensor, return_input_shape: bool, whole: bool) -> Any:
    coef = coef.to(call.inputs[0].dtype if call.inputs[0].is_floating_point() else torch.get_default_dtype())
    if not return_input_shape:
        return coef
    attrs = tuple(a[:, 0] for a in mask.spread(coef[:, None, :]))
    return call.restore(tuple(a[:1] for a in attrs) if whole else attrs)


def lime(
    f: Forward,
    *,
    interpretable_model: Any = None,
    similarity_func: Similarity | None = None,
    perturb_func: Sampler | None = None,
    n_samples: int = 50,
    return_input_shape: bool = True,
    feature_ids: str = "compact",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor[SampledFeatureCall]:
    """LIME: a weighted sparse linear surrogate fitted around each example.

    ``interpretable_model``: a scikit-learn regressor with ``fit(X, y, sample_weight)`` and
    ``coef_`` (default ``Lasso(alpha=0.01)``), cloned per example (``sklearn.base.clone``; an
    object with ``__sklearn_clone__`` decides for itself); or ``"linear"`` for plain
    weighted least squares solved for the whole batch in torch. ``similarity_func(original,
    perturbed, z) -> (M,)`` weights a batch of rows (default ``cosine_similarity_kernel``).
    ``perturb_func(n_examples, n_samples, n_features, generator, device) -> (N, S, F)`` binary
    samples (default Bernoulli(1/2); ``pyattrib._core.random.captum_coalitions("bernoulli")``
    draws Captum's sequence). With ``return_input_shape=False`` the result is the ``(N, F)``
    coefficients. A forward that returns one value for the whole batch gets one surrogate for
    the batch (attributions of shape ``(1, ...)``). Call as ``(inputs, baselines=None, *,
    target=None, additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        interpretable_model: The surrogate fitted to the perturbed samples; default scikit-learn's
            ``Lasso(alpha=0.01)``; ``"linear"``: weighted least squares in torch.
        similarity_func: Weights a batch of samples, ``(inputs, perturbed, z) -> (M,)``; default an
            exponential cosine kernel.
        perturb_func: Draws the interpretable samples ``z``; default uniform random subsets of the
            feature groups.
        n_samples: The number of random samples per example.
        return_input_shape: Return attributions shaped like the inputs (``False``: one value per feature
            group).
        feature_ids: How ``feature_mask`` ids become features: ``"compact"`` renumbers the ids present
            ``0..F-1``; ``"shift"`` subtracts the smallest, so ``F`` is the largest plus one and an id
            no element carries is still a feature (Captum's interpretable space).
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
            inputs, baselines, target, additional_forward_args, feature_mask, "lime", feature_ids
        )
        n_f, like = mask.n_features, torch.ones((), dtype=torch.float64, device=call.device)

        def draw(n: int) -> Tensor:
            if perturb_func is None:
                return random.uniform((n, n_samples, n_f), like, generator) < 0.5
            return perturb_func(n, n_samples, n_f, generator, call.device).bool()

        with evaluating(f):
            z, y, w, whole = _surrogate_data(
                f, call, base, mask, draw, similarity, batch_size, show_progress, "Lime attribution"
            )
        assert w is not None  # LIME always weighs by its similarity kernel
        if interpretable_model == "linear":
            coef = weighted_least_squares(z, y, w)
        else:
            coef = _sklearn_fit(interpretable_model, z, y, w)
        return _restore(call, mask, coef, return_input_shape, whole)

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, random=True, name="lime")


def _sklearn_fit(model: Any, z: Tensor, y: Tensor, w: Tensor) -> Tensor:
    from sklearn.base import clone
    from sklearn.linear_model import Lasso

    template = Lasso(alpha=0.01) if model is None else model
    coefs = []
    for zi, yi, wi in zip(z.cpu(), y.cpu().double().numpy(), w.cpu().double().numpy()):
        fitted = clone(template).fit(zi.double().numpy(), yi, sample_weight=wi)  # (__sklearn_clone__ honoured)
        coefs.append(torch.as_tensor(fitted.coef_, dtype=torch.float64).reshape(-1))
    return torch.stack(coefs).to(z.device)


def kernel_shap(
    f: Forward,
    *,
    n_samples: int = 25,
    paired: bool = False,
    perturb_func: Sampler | None = None,
    return_input_shape: bool = True,
    feature_ids: str = "compact",
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
        perturb_func: Draws the coalitions instead, ``(n_examples, n_samples, n_features, generator,
            device) -> (N, S, F)``, the first two all groups and none (``pyattrib._core.random.
            captum_coalitions("shapley_kernel")`` draws Captum's sequence).
        return_input_shape: Return attributions shaped like the inputs (``False``: one value per feature
            group).
        feature_ids: How ``feature_mask`` ids become features: ``"compact"`` renumbers the ids present
            ``0..F-1``; ``"shift"`` subtracts the smallest, so ``F`` is the largest plus one and an id
            no element carries is still a feature (Captum's interpretable space).
        feature_ids: How ``feature_mask`` ids become features: ``"compact"`` renumbers the ids present
            ``0..F-1``; ``"shift"`` subtracts the smallest, so ``F`` is the largest plus one and an id
            no element carries is still a feature (Captum's interpretable space).
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
            inputs, baselines, target, additional_forward_args, feature_mask, "kernel_shap", feature_ids
        )
        n_f = mask.n_features

        def draw(n: int) -> Tensor:
            if perturb_func is None:
                return shapley_kernel_samples(n, n_samples, n_f, generator, call.device, paired)
            return perturb_func(n, n_samples, n_f, generator, call.device).bool()

        with evaluating(f):
            z, y, _, whole = _surrogate_data(
                f, call, base, mask, draw, None, batch_size, show_progress, "Kernel Shap attribution"
            )
        w = torch.ones(z.shape[:2], dtype=torch.float64, device=call.device)
        w[:, :2] = INF_WEIGHT
        return _restore(call, mask, weighted_least_squares(z, y, w), return_input_shape, whole)

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, random=True, name="kernel_shap")


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
