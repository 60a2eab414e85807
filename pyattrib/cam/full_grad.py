"""FullGrad: the input-gradient term plus the bias-gradient term of every layer with a bias."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core.attributor import Attributor
from .._core.call import prepare
from .._core.calls import InputCall
from .._core.capture import Layers
from .._core.errors import ArgumentError
from .._core.inputs import TensorOrTuple
from .._core.state import evaluating
from .._core.targets import TargetLike
from ._engine import scale, with_default_target
from .projection import svd_projection

BIAS_LAYERS = (nn.Conv2d, nn.BatchNorm2d)


def bias_layers(model: nn.Module) -> list[nn.Module]:
    """Every ``Conv2d`` and ``BatchNorm2d`` (exactly those types) with a bias, in module order."""
    return [m for m in model.modules() if type(m) in BIAS_LAYERS and getattr(m, "bias", None) is not None]


def effective_bias(layer: Any) -> Tensor:
    r"""The bias a layer adds: a convolution's own; a BatchNorm's, in eval mode,
    :math:`\beta - \mu \gamma / \sqrt{\sigma^2 + \epsilon}`."""
    if isinstance(layer, nn.BatchNorm2d):
        norm: Any = layer  # its running statistics exist: built with track_running_stats
        return norm.bias - norm.running_mean * norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return layer.bias


def _per_channel(t: Tensor, size: tuple[int, int]) -> Tensor:
    """Each ``(example, channel)`` map scaled to [0, 1] and resized to ``size``."""
    n, c = t.shape[:2]
    maps = scale(t.reshape(n * c, *t.shape[2:]))
    if maps.shape[-2:] != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return maps.reshape(n, c, *size)


def full_grad(
    model: nn.Module,
    *,
    normalize: bool = True,
    eigen_smooth: bool = False,
    svd_sign: str = "largest",
    bias_pairing: str = "own",
) -> Attributor[InputCall]:
    r"""FullGrad: the input-gradient map plus, for every layer with a bias, the bias-gradient map.

    .. math:: M = \sum_c \psi\big(|x_c \odot \nabla_{x_c} f|\big)
                + \sum_{l} \sum_c \psi\big(|b^{(l)}_c\, \nabla_{z^{(l)}_c} f|\big)

    where :math:`z^{(l)}` is the output of layer :math:`l` (each ``Conv2d`` and ``BatchNorm2d``
    with a bias; a BatchNorm's bias is :math:`\beta - \mu\gamma/\sqrt{\sigma^2 + \epsilon}`),
    and :math:`\psi` scales a map to ``[0, 1]`` and resizes it to the image (pytorch-grad-cam's
    post-processing). ``eigen_smooth`` replaces the sum over the terms by their first principal
    component at 1/8 of the image's resolution. One forward and one backward.

    Args:
        model: The model (an ``nn.Module``); left exactly as found.
        normalize: Scale the final map to ``[0, 1]``.
        eigen_smooth: Combine the terms by their first principal component instead of their sum.
        svd_sign: How the principal component's sign is chosen (see
            :func:`pyattrib.cam.svd_projection`).
        bias_pairing: ``"own"``: each layer's bias times the gradient at that layer's output.
            ``"pytorch-grad-cam"``: that library's pairing, the biases in module order with the
            gradients in the order the layers run; the two differ where a module registered later
            runs earlier (a ResNet block's downsample branch), and there the terms are products of
            one layer's bias and another layer's gradient. For :mod:`pyattrib.compat.grad_cam`.

    Returns:
        Attributor: call it as ``(inputs, *, target=None, additional_forward_args=None)`` with images
        ``(N, C, H, W)`` (``target=None``: the predicted class); it returns the maps ``(N, H, W)``.

    References:
        - Srinivas and Fleuret, "Full-Gradient Representation for Neural Network Visualization", NeurIPS
          2019. https://arxiv.org/abs/1905.00780

    Example:
        >>> pa.full_grad(cnn)(images, target=0).shape
        torch.Size([2, 8, 8])
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError("full_grad needs the model as an nn.Module, to find its layers with a bias")
    if bias_pairing not in ("own", "pytorch-grad-cam"):
        raise ArgumentError(f"bias_pairing must be 'own' or 'pytorch-grad-cam', got {bias_pairing!r}")
    found = bias_layers(model)
    layers = Layers(model, found, False) if found else None
    run_order: list[int] = []

    def attribute(inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None) -> Tensor:
        call = prepare(inputs, target, additional_forward_args, method="full_grad")
        image = call.inputs[0]
        if image.dim() != 4:
            raise ArgumentError(f"full_grad: inputs must be images (N, C, H, W), got shape {tuple(image.shape)}")
        size = (image.shape[-2], image.shape[-1])
        with evaluating(model):
            call = with_default_target(call)
            if layers is None:
                from .._core.kernel import gradients

                grads = list(gradients(model, call.args, call.target, call.inputs, None))
                layer_grads: list[Tensor] = []
            else:
                _, flat = layers.gradients(
                    lambda out: call.target.select(out, None), call.inputs, call.args.values, call.n, with_inputs=True
                )
                layer_grads, grads = flat[: len(found)], flat[len(found) :]
                if bias_pairing == "pytorch-grad-cam":
                    if not run_order:
                        run_order.extend(_run_order(layers, call))
                    layer_grads = [layer_grads[j] for j in run_order]
            terms = [_per_channel((image * grads[0]).abs(), size)]
            for layer, g in zip(found, layer_grads):
                bias = effective_bias(layer).detach().to(g.dtype)
                terms.append(_per_channel((bias[None, :, None, None] * g).abs(), size).sum(1, keepdim=True))
            stacked = torch.cat(terms, 1)
        if eigen_smooth:
            small = (size[0] // 8, size[1] // 8)
            low = _per_channel(stacked, small)
            m = _per_channel(svd_projection(low, svd_sign)[:, None], size)[:, 0]
        else:
            m = stacked.sum(1)
        return scale(m) if normalize else m

    return Attributor(attribute, model, name="full_grad")


def _run_order(layers: Layers, call: Any) -> list[int]:
    """The indices of ``layers`` in the order they run in one forward."""
    order: list[int] = []
    with torch.no_grad(), layers.hooked(lambda j, value: order.append(j)):
        layers.model(*call.inputs, *call.args.values)
    return order
