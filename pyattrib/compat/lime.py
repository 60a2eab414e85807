"""Captum's surrogate-model classes: ``LimeBase``, ``Lime`` and ``KernelShap``.

``LimeBase`` is Captum's callback framework: per sample, a user ``perturb_func`` (or
generator) draws a point, ``from_interp_rep_transform``/``to_interp_rep_transform`` map it
between the input and the interpretable space, ``similarity_func`` weighs it, and a
``Model`` with ``fit(DataLoader)`` and ``representation()`` is trained on the samples.
pyattrib's native :func:`pyattrib.lime` and :func:`pyattrib.kernel_shap` draw every
sample of every example at once and fit in batch; their sampling streams differ from
Captum's. These classes keep Captum's per-sample protocol, draw from the global RNG in
Captum's order (so a seeded run gives Captum's numbers), and evaluate the model in
batches of ``perturbations_per_eval`` samples through pyattrib's target and
forward-argument handling.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from pyattrib._core.inputs import ForwardArgs
from pyattrib._core.targets import as_target

from .._core.progress import progress
from ._base import PerturbationAttribution


class _SkLearnModel:
    """Captum's interpretable ``Model`` protocol over a scikit-learn regressor: ``fit`` takes
    a DataLoader of ``(interpretable inputs, outputs, weights)``; ``representation()`` is
    the ``(1, F)`` coefficients."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name, self.kwargs = name, kwargs
        self.coef: Tensor | None = None

    def fit(self, data: DataLoader) -> None:
        import sklearn.linear_model

        x, y, w = (torch.cat(parts).cpu().numpy() for parts in zip(*data))
        model = getattr(sklearn.linear_model, self.name)(**self.kwargs).fit(x, y, sample_weight=w)
        self.coef = torch.as_tensor(model.coef_, dtype=torch.float32).reshape(1, -1)
        # Captum's wrapper stores the fit in a freshly built nn.Linear, which draws its initial
        # weights from the global RNG; draw the same, so a seeded run continues as Captum's does
        torch.nn.Linear(self.coef.shape[1], 1)

    def representation(self) -> Tensor:
        assert self.coef is not None, "fit the model first"
        return self.coef


def exp_kernel_similarity(distance_mode: str = "cosine", kernel_width: float = 1.0) -> Callable[..., float]:
    """``exp(-d^2 / (2 width^2))`` with ``d`` the cosine or Euclidean distance between the
    flattened original and perturbed inputs (Captum's ``get_exp_kernel_similarity_function``)."""
    if distance_mode not in ("cosine", "euclidean"):
        raise ValueError("distance_mode must be either cosine or euclidean.")

    def similarity(original: Any, perturbed: Any, _interpretable: Any, **kwargs: Any) -> float:
        a, b = _flat(original), _flat(perturbed)
        if distance_mode == "cosine":
            d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)
        else:
            d = torch.norm(a - b)
        return math.exp(-(float(d) ** 2) / (2 * kernel_width**2))

    return similarity


def _flat(x: Any) -> Tensor:
    return torch.cat([t.reshape(-1).float() for t in (x if isinstance(x, tuple) else (x,))])


def bernoulli_sample(original: Any, **kwargs: Any) -> Tensor:
    """One interpretable sample: each of ``num_interp_features`` kept with probability 1/2."""
    device = (original[0] if isinstance(original, tuple) else original).device
    return torch.bernoulli(torch.full((1, int(kwargs["num_interp_features"])), 0.5)).to(device).long()


def from_binary_sample(sample: Tensor, original: Any, **kwargs: Any) -> Any:
    """Inputs where the sample keeps a feature group, baselines elsewhere."""
    masks, baselines = kwargs["feature_mask"], kwargs["baselines"]
    if isinstance(masks, Tensor):
        keep = sample[0][masks].bool()
        return keep.to(original.dtype) * original + (~keep).to(original.dtype) * baselines
    kept = (sample[0][m].bool() for m in masks)
    return tuple(k.to(x.dtype) * x + (~k).to(x.dtype) * b for k, x, b in zip(kept, original, baselines))


class LimeBase(PerturbationAttribution):
    """Captum's ``LimeBase``: fit ``interpretable_model`` to samples drawn by ``perturb_func``.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        interpretable_model: The surrogate model fitted to the samples (Captum's ``Model`` protocol);
            default a linear regression.
        similarity_func: Captum's per-sample similarity, ``(original, perturbed, interpretable sample,
            **kwargs) -> weight``.
        perturb_func: Captum's sampler: a function or generator of perturbed samples.
        perturb_interpretable_space: ``perturb_func`` returns interpretable samples (else samples in
            input space).
        from_interp_rep_transform: Maps an interpretable sample to the model's input space.
        to_interp_rep_transform: Maps an input-space sample to the interpretable space.

    Example:
        >>> from pyattrib.compat import Lime, LimeBase
        >>> isinstance(Lime(model), LimeBase)
        True
    """

    _multiply_by_inputs = False

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any,
        similarity_func: Callable[..., Any],
        perturb_func: Callable[..., Any],
        perturb_interpretable_space: bool,
        from_interp_rep_transform: Callable[..., Any] | None,
        to_interp_rep_transform: Callable[..., Any] | None,
    ) -> None:
        super().__init__(forward_func)
        self.interpretable_model, self.similarity_func = interpretable_model, similarity_func
        self.perturb_func, self.perturb_interpretable_space = perturb_func, perturb_interpretable_space
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform
        if perturb_interpretable_space:
            assert from_interp_rep_transform is not None, (
                "Must provide transform from interpretable space to original input space when sampling from "
                "interpretable space."
            )
        else:
            assert to_interp_rep_transform is not None, (
                "Must provide transform from original input space to interpretable space"
            )

    _has_future = False

    @torch.no_grad()
    def attribute(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None, n_samples: int = 50,
        perturbations_per_eval: int = 1, show_progress: bool = False, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Draw ``n_samples`` samples, evaluate them ``perturbations_per_eval`` at a time, fit
        the interpretable model and return its ``representation()``."""
        draw = self._sampler(inputs, kwargs)
        interpretable, weights, outputs, pending = [], [], [], []
        device = (inputs[0] if isinstance(inputs, tuple) else inputs).device
        evaluate = _evaluator(self.forward_func, inputs, target, additional_forward_args, device)
        evals = math.ceil(n_samples / perturbations_per_eval)
        bar = progress(
            None, show_progress, re.sub(r"(?<!^)(?=[A-Z])", " ", type(self).__name__) + " attribution", evals
        )
        for _ in range(n_samples):
            try:
                z, sample = draw()
            except StopIteration:
                warnings.warn("Generator completed prior to given n_samples iterations!", stacklevel=1)
                break
            interpretable.append(z)
            pending.append(sample)
            sim = self.similarity_func(inputs, sample, z, **kwargs)
            weights.append(sim.flatten() if isinstance(sim, Tensor) else torch.tensor([sim], device=device))
            if len(pending) == perturbations_per_eval:
                outputs.append(evaluate(pending))
                pending = []
                bar.update()
        if pending:
            outputs.append(evaluate(pending))
            bar.update()
        bar.close()
        data = TensorDataset(
            torch.cat(interpretable).float(), torch.cat(outputs).float(), torch.cat(weights).float().to(device)
        )
        self.interpretable_model.fit(DataLoader(data, batch_size=len(interpretable)))
        return self.interpretable_model.representation()

    def _sampler(self, inputs: Any, kwargs: dict[str, Any]) -> Callable[[], tuple[Tensor, Any]]:
        """``() -> (interpretable sample, model input)``, from a function or a generator."""
        stream: Iterator[Any] | None = (
            self.perturb_func(inputs, **kwargs) if inspect.isgeneratorfunction(self.perturb_func) else None
        )

        def draw() -> tuple[Tensor, Any]:
            sample = next(stream) if stream is not None else self.perturb_func(inputs, **kwargs)
            if self.perturb_interpretable_space:
                return sample, self.from_interp_rep_transform(sample, inputs, **kwargs)  # type: ignore[misc]
            return self.to_interp_rep_transform(sample, inputs, **kwargs), sample  # type: ignore[misc]

        return draw


def _evaluator(
    forward: Callable[..., Any],
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    device: torch.device,
    check: bool = True,
) -> Callable[[list[Any]], Tensor]:
    """Evaluate a list of samples (each shaped like ``inputs``) in one forward: the selected
    outputs, flattened (with ``check``, exactly one scalar per sample)."""
    n = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
    args, selector = ForwardArgs(additional_forward_args, n), as_target(target, n, device)

    def evaluate(samples: list[Any]) -> Tensor:
        rows = tuple(torch.cat(parts) for parts in zip(*(s if isinstance(s, tuple) else (s,) for s in samples)))
        index = torch.arange(len(samples) * n, device=device) % n
        out = forward(*rows, *args.rows(index))
        if not isinstance(out, Tensor):
            return torch.tensor([out], device=device)
        if selector.selects:
            out = selector.select(out, index)
        assert not check or out.numel() == len(samples), (
            "Number of outputs is not appropriate, must return one output per perturbed input"
        )
        return out.flatten()

    return evaluate


class Lime(LimeBase):
    """Captum's ``Lime``: binary samples over feature groups (``feature_mask``), the other
    groups at ``baselines``; one surrogate per example when the model returns one output per
    example, one for the whole batch when it returns a scalar.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).
        interpretable_model: The surrogate model fitted to the samples (Captum's ``Model`` protocol);
            default a linear regression.
        similarity_func: Captum's per-sample similarity, ``(original, perturbed, interpretable sample,
            **kwargs) -> weight``.
        perturb_func: Captum's sampler: a function or generator of perturbed samples.

    Example:
        >>> from pyattrib.compat import Lime
        >>> Lime(model).attribute(x[:1], target=0, n_samples=20).shape
        torch.Size([1, 8])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any = None,
        similarity_func: Callable[..., Any] | None = None,
        perturb_func: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            forward_func,
            interpretable_model if interpretable_model is not None else _SkLearnModel("Lasso", alpha=0.01),
            similarity_func or exp_kernel_similarity(),
            perturb_func or bernoulli_sample,
            True,
            from_binary_sample,
            None,
        )

    def attribute(  # type: ignore[override]
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, n_samples: int = 25, perturbations_per_eval: int = 1,
        return_input_shape: bool = True, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        return self._explain(
            inputs, baselines, target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
            return_input_shape, show_progress,
        )  # fmt: skip

    def _explain(
        self, inputs: Any, baselines: Any, target: Any, additional_forward_args: Any, feature_mask: Any,
        n_samples: int, perturbations_per_eval: int, return_input_shape: bool, show_progress: bool, **extra: Any,
    ) -> Any:  # fmt: skip
        was_tuple = isinstance(inputs, tuple)
        xs = inputs if was_tuple else (inputs,)
        bases = _as_tuple(baselines, default=tuple(False if x.dtype == torch.bool else 0 for x in xs))
        masks, n_f = feature_groups(feature_mask, xs)
        n = xs[0].shape[0]
        one = (lambda t: t) if was_tuple else (lambda t: t[0])

        def fit(x: tuple[Tensor, ...], tgt: Any, args: Any, b: tuple[Any, ...], m: tuple[Tensor, ...]) -> Tensor:
            return LimeBase.attribute(
                self, one(x), target=tgt, additional_forward_args=args, n_samples=n_samples,
                perturbations_per_eval=perturbations_per_eval, show_progress=show_progress, baselines=one(b),
                feature_mask=one(m), num_interp_features=n_f, **extra,
            )  # fmt: skip

        if n > 1:
            test = _evaluator(self.forward_func, xs, target, additional_forward_args, xs[0].device, check=False)([xs])
            if test.numel() > 1:
                if test.numel() != n:
                    raise AssertionError(
                        "Invalid number of outputs, forward function should return a scalar per example or a "
                        "scalar per input batch."
                    )
                warnings.warn(
                    "You are providing multiple inputs for Lime / Kernel SHAP attributions: one interpretable "
                    "model is trained per example.",
                    stacklevel=2,
                )
                results = []
                for i in range(n):
                    x = tuple(t[i : i + 1] for t in xs)
                    tgt, args, b, m = (_example(a, i, n) for a in (target, additional_forward_args, bases, masks))
                    coef = fit(x, tgt, args, b, m)
                    results.append(_spread(x, m, coef, was_tuple) if return_input_shape else coef.reshape(1, -1))
                if return_input_shape and was_tuple:
                    return tuple(torch.cat(parts) for parts in zip(*results))
                return torch.cat(results)
            assert perturbations_per_eval == 1, (
                "Perturbations per eval must be 1 when forward function returns single value per batch!"
            )
        coef = fit(xs, target, additional_forward_args, bases, masks)
        if not return_input_shape:
            return coef
        attrs = _spread(xs, masks, coef, True)
        if n > 1:  # one surrogate for the whole batch: one row of attributions
            attrs = tuple(a[:1] for a in attrs)
        return attrs if was_tuple else attrs[0]


class KernelShap(Lime):
    """Captum's ``KernelShap``: Lime with the Shapley kernel. Coalition sizes ``k`` are drawn
    with ``p(k) ~ (F-1) / (k (F-k))`` and a uniform coalition of that size, after the full
    and the empty coalition, which get weight ``inf_weight``; a weighted linear regression.

    Args:
        forward_func: The model or forward function (Captum's name for pyattrib's ``f``).

    Example:
        >>> from pyattrib.compat import KernelShap
        >>> KernelShap(model).attribute(x[:1], target=0, n_samples=20).shape
        torch.Size([1, 8])
    """

    inf_weight = 1000000.0

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(
            forward_func, _SkLearnModel("LinearRegression"), self.kernel_shap_similarity_kernel,
            self.kernel_shap_perturb_generator,
        )  # fmt: skip

    def attribute(  # type: ignore[override]
        self, inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None,
        feature_mask: Any = None, n_samples: int = 25, perturbations_per_eval: int = 1,
        return_input_shape: bool = True, show_progress: bool = False,
    ) -> Any:  # fmt: skip
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        _, n_f = feature_groups(feature_mask, xs)
        k = torch.arange(n_f, dtype=torch.float)
        probs = torch.tensor(float(n_f - 1)) / (k * (n_f - k))
        probs[0] = 0.0
        return self._explain(
            inputs, baselines, target, additional_forward_args, feature_mask, n_samples, perturbations_per_eval,
            return_input_shape, show_progress, num_select_distribution=torch.distributions.Categorical(probs),
        )  # fmt: skip

    def kernel_shap_similarity_kernel(self, _original: Any, _perturbed: Any, z: Tensor, **kwargs: Any) -> Tensor:
        selected = int(z.sum())
        full = selected in (0, kwargs["num_interp_features"])
        return torch.tensor([self.inf_weight if full else 1.0])

    def kernel_shap_perturb_generator(self, original: Any, **kwargs: Any) -> Iterator[Tensor]:
        device = (original[0] if isinstance(original, tuple) else original).device
        m = int(kwargs["num_interp_features"])
        yield torch.ones(1, m, dtype=torch.long, device=device)
        yield torch.zeros(1, m, dtype=torch.long, device=device)
        while True:
            size = int(kwargs["num_select_distribution"].sample())
            keys = torch.randn(1, m)  # the `size` largest keys form a uniform coalition of that size
            z = torch.zeros(1, m, dtype=torch.long)
            z[0, keys[0].topk(size).indices] = 1
            yield z.to(device)


def feature_groups(feature_mask: Any, xs: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], int]:
    """Captum's feature groups: one per input element by default (ids running across inputs);
    a given mask is shifted to start at 0 (with a warning)."""
    if feature_mask is None:
        masks, offset = [], 0
        for x in xs:
            size = x[0].numel()
            masks.append(torch.arange(offset, offset + size, device=x.device).reshape(1, *x.shape[1:]))
            offset += size
        return tuple(masks), offset
    given: tuple[Tensor, ...] = _as_tuple(feature_mask, default=())
    lowest = min(int(m.min()) for m in given if m.numel())
    if lowest != 0:
        warnings.warn("Minimum element in feature mask is not 0, shifting indices to start at 0.", stacklevel=3)
        given = tuple(m - lowest for m in given)
    return given, max(int(m.max()) for m in given if m.numel()) + 1


def _as_tuple(value: Any, default: tuple[Any, ...]) -> tuple[Any, ...]:
    if value is None:
        return default
    return tuple(value) if isinstance(value, tuple) else (value,)


def _example(value: Any, i: int, n: int) -> Any:
    """Example ``i`` of a per-example tensor or list (also inside a tuple); anything else as is."""
    if value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    picked = tuple(v[i : i + 1] if isinstance(v, (Tensor, list)) and len(v) == n else v for v in items)
    return picked if isinstance(value, tuple) else picked[0]


def _spread(xs: tuple[Tensor, ...], masks: tuple[Tensor, ...], coef: Tensor, was_tuple: bool) -> Any:
    """Each element gets its feature group's coefficient (float32, the inputs' shape)."""
    coef = coef.reshape(-1).to(xs[0].device)
    attrs = tuple(
        torch.zeros_like(x, dtype=torch.float) + coef.float()[m.long()] if x.numel() else torch.zeros_like(x).float()
        for x, m in zip(xs, masks)
    )
    return attrs if was_tuple else attrs[0]
