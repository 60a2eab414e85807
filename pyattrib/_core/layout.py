"""The memory layout of the rows a black-box model is fed.

On CPU, PyTorch's convolution and max-pooling kernels run two to four times faster on
channels-last (NHWC) tensors than on the standard NCHW layout, forward and backward, and a
convolution keeps the layout of its input. The rows pyattrib evaluates (path points, noise
samples, perturbed copies) are its own, so it may store them channels-last: the model sees
the same values and is not changed, and attributions come back in the standard layout. A
model that needs the standard layout (``.view`` across channels and space) raises on its
first channels-last call; it is then fed standard rows, and remembered. Under
torch.compile and torch.func transforms rows are passed as given. Cost: CPU max pooling's
backward copies when its incoming gradient is NCHW (after a Flatten), ~25% more memory per
gradient chunk of a small CNN; at equal memory it is still faster (benchmarks/bench_gradient.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .state import model_of, transformed

_standard_only: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def feeder(forward: Callable[..., Any], inputs: tuple[Tensor, ...]) -> Callable[..., Any]:
    """``forward``, fed its 4-D float ``inputs`` (its first arguments) channels-last when
    the model is a CNN on CPU, in eager mode."""
    module = model_of(forward)
    if not _channels_last_pays(module, inputs):
        return forward
    k = len(inputs)

    def fed(*args: Any) -> Any:
        if module not in _standard_only:
            try:
                return forward(*(_channels_last(a) for a in args[:k]), *args[k:])
            except RuntimeError:
                _standard_only.add(module)  # e.g. a .view over (C, H, W); retry as given
        return forward(*args)

    return fed


def _channels_last_pays(module: nn.Module | None, inputs: tuple[Tensor, ...]) -> bool:
    return (
        module is not None
        and inputs[0].device.type == "cpu"
        and any(x.dim() == 4 and x.is_floating_point() for x in inputs)
        and not transformed()
        and any(isinstance(m, nn.Conv2d) for m in module.modules())
    )


def _channels_last(x: Tensor) -> Tensor:
    if x.dim() == 4 and x.is_floating_point():
        return x.contiguous(memory_format=torch.channels_last)
    return x
