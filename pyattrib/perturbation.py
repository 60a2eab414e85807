"""Perturbation methods: feature ablation, feature permutation, occlusion.

The model is a black box: each method replaces groups of input features, runs the
perturbed copies through the model in batched evaluations of at most ``batch_size``
rows (:func:`pyattrib._core.perturb.evaluate`) and attributes the output change
``f(x) - f(x_perturbed)`` to the replaced features. Inputs may be float, integer or
boolean. With a ``target``, attributions have the inputs' shapes; without one, the
model's output dimensions per example come after the batch:
``(N, *output.shape[1:], *input.shape[1:])``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.call import Call, prepare
from ._core.errors import ArgumentError, check_batch_size
from ._core.inputs import BaselineLike
from ._core.kernel import along_rows
from ._core.perturb import (
    FeatureMask,
    evaluate,
    example_rows,
    prepare_perturbation,
    reference_outputs,
    shared_mask,
    squeeze_outputs,
)
from ._core.state import evaluating
from ._core.targets import TargetLike

Forward = Callable[..., Any]
PER_EXAMPLE = ("baselines", "target", "additional_forward_args", "feature_mask")


def _ablate(
    f: Forward,
    call: Call,
    mask: FeatureMask,
    replace: Callable[[int, Tensor, Tensor, Tensor], Tensor],
    batch_size: int | None,
    show_progress: bool,
    desc: str,
) -> tuple[Tensor, ...]:
    """Attribution ``f(x) - f(x with feature p replaced)`` spread over feature ``p``'s elements.

    ``replace(j, rows_of_input_j, selected, p)`` gives the replaced values of input ``j``.
    """
    reference = reference_outputs(f, call, call.inputs)
    shared_mask(mask, reference.whole)

    def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
        rows = []
        for j, x in enumerate(call.inputs):
            xr = x.index_select(0, i)
            hit = example_rows(mask.ids[j], i) == p.reshape(-1, *[1] * (x.dim() - 1))
            rows.append(torch.where(hit, replace(j, xr, i, p), xr))
        return tuple(rows)

    out = evaluate(f, call, build, mask.n_features, batch_size, show_progress, desc, whole=reference.whole)
    diff = (reference.values[None] - out.values).permute(1, 2, 0)  # (N, K, F); N = 1 for a whole-batch output
    return squeeze_outputs(mask.spread(diff), out.shape, out.whole)


def feature_ablation(f: Forward, *, batch_size: int | None = None, show_progress: bool = False) -> Attributor:
    r"""Feature ablation: replace one feature group at a time by its baseline,
    :math:`\phi_g = f(x) - f(x_{g \leftarrow x'})`, and give every element of group ``g`` that value.

    ``feature_mask`` (per call) holds integer group ids per input, shaped like one example
    (shared) or like the input (per example); equal ids in different inputs form one group.
    Without it every scalar is its own group. All groups of all examples are evaluated in
    batched forwards of at most ``batch_size`` rows (Captum: one group per forward by
    default). Call as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
    feature_mask=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.feature_ablation(model)(x, target=y).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "feature_ablation"
        )
        with evaluating(f):
            attrs = _ablate(
                f,
                call,
                mask,
                lambda j, xr, i, p: example_rows(base[j], i),
                batch_size,
                show_progress,
                "Feature Ablation attribution",
            )
        return call.restore(attrs)

    return Attributor(attribute, f, per_example=PER_EXAMPLE, name="feature_ablation")


def random_permutation(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """A permutation of ``0..n-1`` that moves at least one element (for ``n > 1``)."""
    while True:
        perm = torch.randperm(n, generator=generator, device=generator.device if generator else device).to(device)
        if n < 2 or not bool((perm == torch.arange(n, device=device)).all()):
            return perm


def feature_permutation(
    f: Forward,
    *,
    perm_func: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor:
    r"""Permutation feature importance (Breiman, 2001): shuffle one feature group across the
    batch, :math:`\phi_g = f(x) - f(x_{g \leftarrow \pi(x)_g})`.

    ``perm_func(x, group_mask) -> x_permuted`` replaces the default (a random permutation of
    the batch per group, drawn from ``generator``), which needs a batch of at least 2. Call as
    ``(inputs, *, target=None, additional_forward_args=None, feature_mask=None, generator=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation from the call's generator.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None,
        feature_mask=None, generator=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Fisher, Rudin and Dominici, "All Models are Wrong, but Many are Useful: Learning a Variable's
          Importance by Studying an Entire Class of Prediction Models Simultaneously", JMLR 2019.
          https://arxiv.org/abs/1801.01489

    Example:
        >>> pa.feature_permutation(model)(x, target=y, generator=generator).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="feature_permutation", differentiable=False)
        if call.n < 2 and perm_func is None:
            raise ArgumentError(
                "feature_permutation needs a batch of at least 2 examples to permute across (or a perm_func)"
            )
        mask = FeatureMask(feature_mask, call)
        if perm_func is None:
            perms = torch.stack([random_permutation(call.n, call.device, generator) for _ in range(mask.n_features)])

            def replace(j: int, xr: Tensor, i: Tensor, p: Tensor) -> Tensor:
                return call.inputs[j].index_select(0, perms[p, i])
        else:
            permuted = [
                [perm_func(x, _group(mask, j, g)) for j, x in enumerate(call.inputs)] for g in range(mask.n_features)
            ]
            stacked = [torch.stack([permuted[g][j] for g in range(mask.n_features)]) for j in range(len(call.inputs))]

            def replace(j: int, xr: Tensor, i: Tensor, p: Tensor) -> Tensor:
                return stacked[j][p, i]

        with evaluating(f):
            attrs = _ablate(f, call, mask, replace, batch_size, show_progress, "Feature Permutation attribution")
        return call.restore(attrs)

    return Attributor(attribute, f, per_example=PER_EXAMPLE, random=True, name="feature_permutation")


def _group(mask: FeatureMask, j: int, g: int) -> Tensor:
    return mask.ids[j] == g


def occlusion(
    f: Forward,
    *,
    sliding_window_shapes: Sequence[int] | Sequence[Sequence[int]],
    strides: int | Sequence[int] | Sequence[Any] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributor:
    r"""Occlusion (Zeiler & Fergus, 2014): slide a window over each input, replace it by the
    baseline, and give each element the mean output change over the windows covering it,

    .. math:: \phi_e = \frac{1}{|W_e|} \sum_{w \ni e} \big(f(x) - f(x_{w \leftarrow x'})\big).

    ``sliding_window_shapes`` is one window shape (per example, without the batch
    dimension) or one per input tensor; ``strides`` an int, a shape, or one per input
    (default 1). Every window of every input is one perturbation; all of them go through
    the model in batches of at most ``batch_size`` rows. Call as
    ``(inputs, baselines=None, *, target=None, additional_forward_args=None)``.

    Args:
        f: The model or any function of the inputs (and ``additional_forward_args``) returning one
            output row per example.
        sliding_window_shapes: The shape of the occluding window, per input tensor (without the batch
            dimension).
        strides: The window's step per dimension (an int, a tuple, or one per input tensor); default 1.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None,
        additional_forward_args=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> occ = pa.occlusion(cnn, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2))
        >>> occ(images, target=0).shape
        torch.Size([2, 3, 8, 8])
    """
    check_batch_size(batch_size)

    def attribute(
        inputs: Any, baselines: BaselineLike = None, *, target: TargetLike = None, additional_forward_args: Any = None
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method="occlusion", differentiable=False)
        base = call.baselines(baselines)
        windows = _windows(call, sliding_window_shapes, strides)  # per input: the window boxes
        offsets = [0]
        for w in windows:
            offsets.append(offsets[-1] + len(w))

        def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
            rows = []
            for j, x in enumerate(call.inputs):
                if len(windows) == 1:  # every perturbation slides over this input
                    hit = windows[j].masks(p)
                else:  # perturbations that slide over another input hit nothing here
                    local = p - offsets[j]
                    inside = (local >= 0) & (local < len(windows[j]))
                    hit = windows[j].masks(local.clamp(0, len(windows[j]) - 1)) & along_rows(inside, x)
                rows.append(torch.where(hit, example_rows(base[j], i), x.index_select(0, i)))
            return tuple(rows)

        with evaluating(f):
            reference = reference_outputs(f, call, call.inputs)
            out = evaluate(
                f, call, build, offsets[-1], batch_size, show_progress, "Occlusion attribution", whole=reference.whole
            )
        diff = (reference.values[None] - out.values).permute(1, 2, 0)  # (N, K, W); N = 1 for a whole-batch output
        n = diff.shape[0]
        attrs = []
        for j, w in enumerate(windows):
            total = diff.new_zeros(n, diff.shape[1], math.prod(w.dims))
            count = torch.zeros(math.prod(w.dims), dtype=diff.dtype, device=diff.device)
            step = max(1, _MASK_ELEMENTS // math.prod(w.dims))  # a few window masks at a time: bounded memory
            for start in range(0, len(w), step):
                ids = torch.arange(start, min(start + step, len(w)), device=diff.device)
                flat = w.masks(ids).reshape(len(ids), -1).to(diff.dtype)
                total += diff[:, :, offsets[j] + start : offsets[j] + start + len(ids)] @ flat
                count += flat.sum(0)
            attrs.append((total / count.clamp(min=1)).reshape(n, diff.shape[1], *w.dims))
        return call.restore(squeeze_outputs(tuple(attrs), out.shape, out.whole))

    return Attributor(attribute, f, per_example=("baselines", "target", "additional_forward_args"), name="occlusion")


def _windows(call: Call, shapes: Any, strides: Any) -> list[Windows]:
    """The window boxes of every input (positions of each window's corner)."""
    xs = call.inputs
    k = len(xs)
    # one input: a window shape and a stride; several: one of each per input
    nested = isinstance(shapes, (tuple, list)) and len(shapes) > 0 and isinstance(shapes[0], (tuple, list))
    per_input_shapes = list(shapes) if nested or k > 1 else [shapes]
    per_input_strides = (
        [1 if strides is None else strides]
        if k == 1
        else ([1 if strides is None else strides] * k if strides is None or isinstance(strides, int) else list(strides))
    )
    if len(per_input_shapes) != k:
        raise ArgumentError(
            f"sliding_window_shapes has {len(per_input_shapes)} entries but inputs has {k} tensors; "
            "give one window shape per input"
        )
    if len(per_input_strides) != k:
        raise ArgumentError(
            f"strides has {len(per_input_strides)} entries but inputs has {k} tensors; give one per input"
        )
    out = []
    for j, (x, shape, stride) in enumerate(zip(xs, per_input_shapes, per_input_strides)):
        dims = tuple(x.shape[1:])
        shape = tuple(shape)
        stride = (stride,) * len(dims) if isinstance(stride, int) else tuple(stride)
        where = f"[{j}]" if len(xs) > 1 else ""
        if len(shape) != len(dims) or any(s < 1 or s > d for s, d in zip(shape, dims)):
            raise ArgumentError(
                f"sliding_window_shapes{where} is {shape} but one example of the input has shape {tuple(dims)}; "
                f"give {len(dims)} window sizes, each between 1 and the input's size"
            )
        if len(stride) != len(dims) or any(s < 1 for s in stride):
            raise ArgumentError(f"strides{where} is {stride}; give {len(dims)} positive steps (or one int)")
        if any(st > s and s < d for st, s, d in zip(stride, shape, dims)):
            raise ArgumentError(
                f"strides{where} {stride} skips elements: a stride may not exceed the window size {shape} "
                "where the window does not cover the whole dimension"
            )
        if not dims:  # one number per example: the window is that number
            out.append(Windows(torch.zeros(1, 0, dtype=torch.long, device=x.device), (), ()))
            continue
        # as Captum: ceil((d - s) / stride) + 1 positions; the last window may be cut by the edge
        starts = [range(0, (-(-(d - s) // st)) * st + 1, st) for d, s, st in zip(dims, shape, stride)]
        positions = torch.cartesian_prod(*[torch.tensor(list(r)) for r in starts]).reshape(-1, len(dims))
        out.append(Windows(positions.to(x.device), shape, dims))
    return out


_MASK_ELEMENTS = 2**14  # window masks built at once for the final average: a small fixed cost
_KEPT_MASK_ELEMENTS = 2**18  # all windows' masks kept when they fit (256 KiB of bools): one lookup per chunk


class Windows:
    """The window boxes of one input: corner ``positions`` ``(W, D)`` and a box ``shape``.
    Masks are built only for the windows asked for, so memory follows the chunk; when all
    of them fit in ``_KEPT_MASK_ELEMENTS`` they are built once and looked up."""

    def __init__(self, positions: Tensor, shape: tuple[int, ...], dims: tuple[int, ...]) -> None:
        self.positions, self.shape, self.dims = positions, shape, dims
        self.kept: Tensor | None = None
        if len(self) * math.prod(dims) <= _KEPT_MASK_ELEMENTS:
            self.kept = self._build(torch.arange(len(self), device=positions.device))

    def __len__(self) -> int:
        return self.positions.shape[0]

    def masks(self, ids: Tensor) -> Tensor:
        """Boolean masks ``(len(ids), *dims)`` of windows ``ids``."""
        return self.kept.index_select(0, ids) if self.kept is not None else self._build(ids)

    def _build(self, ids: Tensor) -> Tensor:
        lo = self.positions.index_select(0, ids)
        hit = torch.ones(len(ids), *self.dims, dtype=torch.bool, device=ids.device)
        for d, (size, s) in enumerate(zip(self.dims, self.shape)):
            g = torch.arange(size, device=ids.device).reshape(1, *[1] * d, size, *[1] * (len(self.dims) - d - 1))
            start = lo[:, d].reshape(-1, *[1] * len(self.dims))
            hit = hit & (g >= start) & (g < start + s)
        return hit


def _on_layer(
    make_inner: Callable[[Forward], Attributor], model: Any, layer: Any, to_input: bool, name: str
) -> Attributor:
    """Apply a perturbation method to a layer's value: the method sees the spliced model
    ``(layer value, inputs, args) -> output``, with the inputs passed as per-example args."""
    from ._core.capture import Layers

    layers = Layers(model, layer, to_input)

    def attribute(
        inputs: Any,
        layer_baselines: Any = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layer_mask: Any = None,
        **kwargs: Any,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method=name, differentiable=False)
        with evaluating(model):
            values = layers.capture(call.inputs, call.args.values, call.n)
            leaves = tuple(t for v in values for t in v.leaves)
            k, n_in = len(leaves), len(call.inputs)

            def spliced(*a: Any) -> Any:
                return layers.splice(values, a[k : k + n_in], a[k + n_in :])(*a[:k])

            attrs = make_inner(spliced)(
                leaves,
                layer_baselines,
                target=call.target,
                feature_mask=layer_mask,
                additional_forward_args=(*call.inputs, *call.args.values),
                **kwargs,
            )
        return layers.result(values, attrs)

    return Attributor(
        attribute, model, per_example=("layer_baselines", "target", "additional_forward_args", "layer_mask"), name=name
    )


def layer_feature_ablation(
    model: Any,
    layer: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor:
    """Feature ablation of a layer's units: each group of ``layer_mask`` (default: every
    unit) is replaced by ``layer_baselines`` (default 0) in the layer's value and the output
    change recorded. Call as ``(inputs, layer_baselines=None, *, target=None,
    additional_forward_args=None, layer_mask=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, layer_baselines=None, *, target=None,
        additional_forward_args=None, layer_mask=None)``; it returns attributions shaped like the
        layer's output (or input).

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.layer_feature_ablation(model, layer)(x, target=y).shape
        torch.Size([4, 16])
    """
    check_batch_size(batch_size)
    return _on_layer(
        lambda g: feature_ablation(g, batch_size=batch_size, show_progress=show_progress),
        model,
        layer,
        attribute_to_layer_input,
        "layer_feature_ablation",
    )


def layer_feature_permutation(
    model: Any,
    layer: Any,
    *,
    perm_func: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_layer_input: bool = False,
) -> Attributor:
    """Permutation importance of a layer's unit groups (see :func:`feature_permutation`).
    Call as ``(inputs, *, target=None, additional_forward_args=None, layer_mask=None, generator=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        perm_func: Permutes one feature across the batch, ``(x, feature_mask) -> x``; default a random
            permutation from the call's generator.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_layer_input: Explain the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None, layer_mask=None,
        generator=None)``; it returns attributions shaped like the layer's output (or input).

    References:
        - Fisher, Rudin and Dominici, "All Models are Wrong, but Many are Useful: Learning a Variable's
          Importance by Studying an Entire Class of Prediction Models Simultaneously", JMLR 2019.
          https://arxiv.org/abs/1801.01489

    Example:
        >>> pa.layer_feature_permutation(model, layer)(x, target=y, generator=generator).shape
        torch.Size([4, 16])
    """
    check_batch_size(batch_size)

    def make(g: Forward) -> Attributor:
        return _drop_baselines(
            feature_permutation(g, perm_func=perm_func, batch_size=batch_size, show_progress=show_progress)
        )

    inner = _on_layer(make, model, layer, attribute_to_layer_input, "layer_feature_permutation")
    return inner.with_fn(inner.fn, random=True)


def _drop_baselines(attributor: Attributor) -> Attributor:
    return attributor.with_fn(lambda inputs, baselines=None, **kw: attributor(inputs, **kw), {"baselines": None})


def neuron_feature_ablation(
    model: Any,
    layer: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool = False,
    attribute_to_neuron_input: bool = False,
) -> Attributor:
    """Feature ablation of the inputs, measured on the selected neuron. Call as
    ``(inputs, baselines=None, *, neuron_selector, additional_forward_args=None, feature_mask=None)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        batch_size: The most rows sent through the model in one evaluation; ``None`` chooses by one rule
            (see the batch size guide). Results do not depend on it.
        show_progress: Show a progress bar over the model evaluations.
        attribute_to_neuron_input: Select the neuron from the layer's input instead of its output.

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, neuron_selector,
        additional_forward_args=None, feature_mask=None)``; it returns attributions shaped like
        ``inputs``.

    References:
        - Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
          https://arxiv.org/abs/1311.2901

    Example:
        >>> pa.neuron_feature_ablation(model, layer)(x, neuron_selector=3).shape
        torch.Size([4, 8])
    """
    from .neuron import on_neuron, truncate

    inner = feature_ablation(
        truncate(model, layer, attribute_to_neuron_input), batch_size=batch_size, show_progress=show_progress
    )
    return on_neuron(inner, model, "neuron_feature_ablation")
