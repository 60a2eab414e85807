"""The memory layout of the rows a black-box model is fed.

On CPU, PyTorch's convolution and max-pooling kernels run two to four times faster on
channels-last (NHWC) tensors than on the standard NCHW layout, forward and backward, and a
convolution keeps the layout of its input. The rows pyattrib evaluates (path points, noise
samples, perturbed copies) are its own, so it may store them channels-last.

The choice is made by a rule, before the model runs, never by trying: rows go
channels-last only when the model is a CPU CNN (with max pooling, for rows that are
differentiated) built entirely from stock ``torch.nn`` modules whose forward is known to
accept any layout (``nn.Sequential`` of convolutions,
pooling, normalisation, activations, ``Flatten``, ``Linear``, ...). A model with its own
``forward`` (which may ``.view`` across channels and space) gets the standard layout, so
the model computes the same values and runs exactly as often as it would without
pyattrib. Under torch.compile and torch.func transforms rows are passed as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .state import model_of, submodules, transformed

# stock modules whose forward reads any memory layout (no .view across C, H, W)
_LAYOUT_SAFE: tuple[type[nn.Module], ...] = (
    nn.Sequential,
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Hardswish,
    nn.Hardtanh,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
    nn.Linear,
    nn.Softmax,
    nn.LogSoftmax,
)


def feeder(forward: Callable[..., Any], inputs: tuple[Tensor, ...], backward: bool) -> Callable[..., Any]:
    """``forward``, fed its 4-D float ``inputs`` (its first arguments) channels-last when
    :func:`channels_last_pays` for its model; else ``forward`` itself."""
    if not channels_last_pays(model_of(forward), inputs, backward):
        return forward
    k = len(inputs)

    def fed(*args: Any) -> Any:
        return forward(*(_channels_last(a) for a in args[:k]), *args[k:])

    return fed


def channels_last_pays(module: nn.Module | None, inputs: tuple[Tensor, ...], backward: bool) -> bool:
    """CPU, eager, 4-D float inputs, a ``Conv2d`` inside (and a ``MaxPool2d`` when the rows
    are differentiated), and only layout-safe stock modules.

    Forward-only rows (perturbations) gain from channels-last convolutions alone. With a
    backward pass the gain is CPU max pooling's (its NCHW backward is the slow kernel); a
    CNN without max pooling runs its gradient rows as fast or faster in the standard layout
    (measured on the architecture matrix), so it keeps it.
    """
    if module is None or transformed() or inputs[0].device.type != "cpu":
        return False
    if not any(x.dim() == 4 and x.is_floating_point() for x in inputs):
        return False
    kinds = {type(m) for m in submodules(module)}
    return nn.Conv2d in kinds and (not backward or nn.MaxPool2d in kinds) and kinds <= set(_LAYOUT_SAFE)


def _channels_last(x: Tensor) -> Tensor:
    if x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x
