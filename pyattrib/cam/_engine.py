"""One pipeline for every class activation map.

A CAM reads a layer's activations ``A`` (and, for gradient CAMs, ``G = d target / d A``)
through the capture combinator, lays them out as a spatial map ``(N, C, h, w)``
(:mod:`.reshape`), and turns them into one map per example with its :class:`Rule`:

1. weighted activations ``W = rule(A, G)`` of shape ``(N, C, h, w)`` (a channel weight times
   ``A``, or an elementwise product);
2. a map ``M``: the channel sum of ``W``, or the first principal component of ``W``
   (``eigen_smooth``, Eigen-CAM);
3. ``ReLU(M)``, scaled to ``[0, 1]`` per example and resized (bilinear) to the input image;
4. several layers: the mean of their maps, rectified and scaled again.

Steps 3-4 are pytorch-grad-cam's post-processing (its ``scale_cam_image``), so that the
maps equal that library's; ``normalize=False`` and ``resize=False`` switch them off.
``aug_smooth`` averages the maps of six test-time augmentations (horizontal flip x
brightness 0.9, 1, 1.1), undone on each map before the mean, all in one batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.call import Call, prepare
from .._core.calls import InputCall
from .._core.capture import Layers, LayerValue
from .._core.errors import ArgumentError
from .._core.inputs import TensorOrTuple, repeat_examples
from .._core.state import evaluating
from .._core.targets import Target, TargetLike, model_output
from .projection import kernel_projection, svd_projection
from .reshape import ReshapeLike, spatial_map

LayerLike = nn.Module | Sequence[nn.Module]
SCALE_EPS = 1e-7  # pytorch-grad-cam's: x - min(x), then / (max + 1e-7)
AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


@dataclass
class Context:
    """What a perturbation CAM's channel weights need: the model, the call, the layers and
    their captured values, the transform's ``batch_size`` and ``show_progress``."""

    model: Callable[..., Any]
    call: Call
    layers: Layers
    values: list[LayerValue]
    output: Any  # the model's output at the unperturbed inputs
    batch_size: int | None
    show_progress: bool


@dataclass(frozen=True)
class Rule:
    """A CAM, declared. ``weighted(A, G)`` gives the weighted activations; a perturbation CAM
    gives ``channel_weights(ctx, j, A)`` (``(N, C)``, from model evaluations) instead;
    ``reduce`` is ``"sum"`` (the channel sum; ``eigen_smooth`` makes it ``"svd"``), ``"svd"`` or
    ``"kpca"``."""

    weighted: Callable[[Tensor, Tensor], Tensor] | None = None
    channel_weights: Callable[[Context, int, Tensor], Tensor] | None = None
    reduce: str = "sum"
    uses_gradients: bool = True
    smoothing_warning: str | None = None


def channel(weights: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``W = w_c * A`` from a rule for the channel weights ``w`` ``(N, C)``."""
    return lambda a, g: weights(a, g)[:, :, None, None] * a


def spatial_sum(t: Tensor) -> Tensor:
    """The sum over the spatial dimensions, kept for broadcasting: ``(N, C, 1, 1)``."""
    return t.sum((2, 3), keepdim=True)


def scale(maps: Tensor) -> Tensor:
    """Each example's map shifted to minimum 0 and divided by ``max + 1e-7``."""
    flat = maps.flatten(1)
    flat = flat - flat.min(1, keepdim=True).values
    return (flat / (flat.max(1, keepdim=True).values + SCALE_EPS)).reshape(maps.shape)


def predicted(output: Any) -> Tensor:
    """The default target: each row's largest output (its predicted class)."""
    flat = model_output(output).flatten(1)
    return flat.gather(1, flat.argmax(1, keepdim=True))[:, 0]


def cam_transform(
    model: Callable[..., Any],
    layer: LayerLike,
    rule: Rule,
    name: str,
    *,
    reshape_transform: ReshapeLike = None,
    resize: bool = True,
    normalize: bool = True,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
    kernel: str = "sigmoid",
    gamma: float | None = None,
    svd_sign: str = "largest",
) -> Attributor[InputCall]:
    """The attributor of a CAM :class:`Rule` (see the module docstring for the pipeline).
    ``svd_sign`` is :func:`.projection.svd_projection`'s ``sign``."""
    layers = Layers(model, layer, False)
    if reshape_transform is not None and not callable(reshape_transform):
        raise ArgumentError("reshape_transform must be a callable value -> (N, C, h, w), or None")
    reduce = "svd" if eigen_smooth and rule.reduce == "sum" else rule.reduce
    if eigen_smooth and rule.smoothing_warning:
        warnings.warn(rule.smoothing_warning, UserWarning, stacklevel=3)

    def layer_maps(call: Call) -> Tensor:
        image = call.inputs[0]
        if image.dim() != 4:
            raise ArgumentError(f"{name}: inputs must be images (N, C, H, W), got shape {tuple(image.shape)}")
        size = (image.shape[-2], image.shape[-1])
        output = None
        if rule.uses_gradients:
            call = with_default_target(call)
            values, at_layer = layers.gradients(
                lambda out: call.target.select(out, None), call.inputs, call.args.values, call.n
            )
            grads: list[Tensor | None] = list(at_layer)
        else:  # one forward gives the layer values and the unperturbed output (default target, clean scores)
            values, output = layers.capture(call.inputs, call.args.values, call.n, with_output=True)
            call = with_default_target(call, output)
            grads = [None] * sum(len(v.leaves) for v in values)
        ctx = Context(model, call, layers, values, output, batch_size, show_progress)
        maps, at = [], 0
        for j, v in enumerate(values):
            a = spatial_map(v.leaves[0].detach(), size, reshape_transform, layers.names[j])
            g = grads[at]
            at += len(v.leaves)
            if g is not None:
                g = spatial_map(g, size, reshape_transform, layers.names[j])
            if rule.channel_weights is not None:
                weighted = rule.channel_weights(ctx, j, a)[:, :, None, None] * a
            else:
                assert rule.weighted is not None
                weighted = rule.weighted(a, g)  # type: ignore[arg-type]
            if reduce == "svd":
                m = svd_projection(weighted, svd_sign)
            elif reduce == "kpca":
                m = kernel_projection(weighted, kernel, gamma)
            else:
                m = weighted.sum(1)
            m = F.relu(m)
            if normalize:
                m = scale(m)
            if resize and m.shape[-2:] != size:
                m = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
            maps.append(m)
        return combine(maps, normalize, layers.names)

    def attribute(inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method=name, differentiable=rule.uses_gradients)
        if not aug_smooth:
            with evaluating(model):
                return layer_maps(call)
        # the six augmentations of example i at rows i * 6 + t; targets and arguments follow their example
        n, t = call.n, len(AUGMENTATIONS)
        image = torch.stack([_augment(call.inputs[0], flip, f) for flip, f in AUGMENTATIONS], 1).flatten(0, 1)
        rows = (image, *(x.repeat_interleave(t, 0) for x in call.inputs[1:]))
        big = prepare(rows if call.was_tuple else image, repeat_examples(target, n, t),
                      repeat_examples(additional_forward_args, n, t), method=name, differentiable=False)  # fmt: skip
        with evaluating(model):
            maps = layer_maps(big).reshape(n, t, *image.shape[-2:])
        flips = torch.tensor([flip for flip, _ in AUGMENTATIONS], device=maps.device)
        return torch.where(flips[None, :, None, None], maps.flip(-1), maps).mean(1)

    return Attributor(attribute, model, name=name)


def with_default_target(call: Call, output: Any = None) -> Call:
    """``target=None`` means each example's predicted class (pytorch-grad-cam's default): read
    from each row's own output (gradient CAMs), or, given the unperturbed ``output`` (CAMs that
    evaluate perturbed rows), fixed from it as a class index per example."""
    if call.target.selects:
        return call
    if output is None:
        return Call(call.inputs, call.was_tuple, Target(fn=predicted, name="target", n=call.n), call.args)
    out = model_output(output, call.n)
    classes = out.reshape(call.n, -1).argmax(1)
    if out.dim() > 2:
        classes = torch.stack(torch.unravel_index(classes, out.shape[1:]), 1)
    target = Target(per_example=classes.reshape(call.n, -1), name="target", n=call.n)
    return Call(call.inputs, call.was_tuple, target, call.args)


def combine(maps: list[Tensor], normalize: bool, names: list[str]) -> Tensor:
    """The mean of the layers' maps, rectified and scaled (one layer: scaled again, as
    pytorch-grad-cam does)."""
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) > 1:
        raise ArgumentError(
            f"the layers {names} give maps of different sizes {sorted(shapes)}; keep resize=True to combine them"
        )
    out = F.relu(torch.stack(maps, 1)).mean(1)
    return scale(out) if normalize else out


def _augment(x: Tensor, flip: bool, factor: float) -> Tensor:
    return (x.flip(-1) if flip else x) * factor
