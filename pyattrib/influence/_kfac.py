"""Kronecker-factored curvature of Linear, Conv2d and Embedding layers (and Hugging Face's
``Conv1D``): what EK-FAC is made of.

A tracked layer's weight gradient for one example is a sum over its positions ``t`` (tokens,
or the patches a convolution slides over) of outer products ``g_t a_t^T``: ``a_t`` the layer's
input at ``t`` (a Conv2d's unfolded patch, an Embedding's one-hot id; a 1 appended for the
bias) and ``g_t`` the loss gradient at its output. K-FAC approximates the Fisher of the layer
by ``A (x) G`` with ``A = E[a a^T]`` and ``G = E[g g^T]`` over positions; EK-FAC keeps the
eigenbases ``Q_A``, ``Q_G`` and refits the eigenvalues per example gradient:
``Lambda = E_n[(Q_G^T W_n Q_A)^2]`` (George et al., 2018; Grosse et al., 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError

TRACKED = (nn.Linear, nn.Conv2d, nn.Embedding)


def _tracked(m: nn.Module) -> bool:
    """Linear, Conv2d, Embedding, and Hugging Face's ``Conv1D`` (GPT-2's projections: a Linear
    with its weight stored transposed)."""
    return isinstance(m, TRACKED) or type(m).__name__ == "Conv1D"


def tracked_modules(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, nn.Module]]:
    """The layers whose curvature is fitted: ``layers`` (module names; every Linear, Conv2d and
    Embedding inside a named module), default every such layer of the model."""
    named = dict(model.named_modules())
    if layers is None:
        chosen = [(n, m) for n, m in named.items() if _tracked(m)]
    else:
        missing = [name for name in layers if name not in named]
        if missing:
            raise ArgumentError(f"layers {missing} are not modules of the model; use model.named_modules() names")
        chosen = [(n, m) for n, m in named.items() if _tracked(m)
                  and any(n == name or n.startswith(f"{name}.") or name == "" for name in layers)]  # fmt: skip
    for name, m in chosen:
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise ArgumentError(f"layer {name!r}: Conv2d with groups={m.groups}, padding={m.padding!r}, padding_mode="
                                f"{m.padding_mode!r} is not supported (groups=1, numeric zero padding are); leave it "
                                "out with layers=")  # fmt: skip
    if not chosen:
        raise ArgumentError("no Linear, Conv2d or Embedding layer to fit; pass layers= naming modules that hold them")
    return chosen


def positions(module: nn.Module, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, T, d_in')`` inputs (with the bias's 1) and ``(N, T, d_out)`` output gradients of one
    call of ``module`` over its ``T`` positions."""
    n = a.shape[0]
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(a, module.kernel_size, module.dilation, cast(tuple[int, ...], module.padding), module.stride)
        a, g = patches.transpose(1, 2), g.reshape(n, g.shape[1], -1).transpose(1, 2)
    elif isinstance(module, nn.Embedding):
        a = F.one_hot(a.reshape(n, -1).long(), module.num_embeddings).to(g.dtype)
        g = g.reshape(n, -1, g.shape[-1])
    else:
        a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
    if getattr(module, "bias", None) is not None:
        a = torch.cat([a, a.new_ones(*a.shape[:-1], 1)], -1)
    return a.to(g.dtype), g


class Recorder:
    """Each tracked layer's input and output gradient for one batch: a forward under
    :meth:`recording`, then :meth:`backward` of the summed loss. Gradients are taken with
    ``torch.autograd.grad`` with respect to zero shifts added to the layers' outputs, so the
    parameters' ``requires_grad`` and ``.grad`` are never touched."""

    def __init__(self, model: nn.Module, modules: list[tuple[str, nn.Module]]) -> None:
        self.modules = [m for _, m in modules]
        self.layers = Layers(model, self.modules, False)
        self.inputs: list[list[Tensor]] = []
        self.shifts: list[list[Tensor]] = []

    @contextmanager
    def recording(self) -> Iterator[None]:
        self.inputs = [[] for _ in self.modules]
        self.shifts = [[] for _ in self.modules]

        def call(j: int, forward: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
            out = forward(*args, **kwargs)
            shift = torch.zeros_like(out, requires_grad=True)
            self.inputs[j].append(args[0].detach())
            self.shifts[j].append(shift)
            return out + shift

        with self.layers.around(call, once=False):
            yield

    def backward(self, loss: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per tracked layer, ``(a, g)`` over all its calls in the batch: ``(N, T, d_in')`` and
        ``(N, T, d_out)`` (a layer called twice has twice the positions)."""
        flat = [s for shifts in self.shifts for s in shifts]
        if not flat:
            raise ArgumentError("the model did not call any tracked layer; check layers=")
        grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        out = []
        for m, inputs, shifts in zip(self.modules, self.inputs, self.shifts):
            pairs = [positions(m, a, torch.zeros_like(s) if g is None else g.detach())
                     for a, s, g in zip(inputs, shifts, [next(grads) for _ in shifts])]  # fmt: skip
            out.append((torch.cat([a for a, _ in pairs], 1), torch.cat([g for _, g in pairs], 1)))
        return out


def per_example(a: Tensor, g: Tensor) -> Tensor:
    """``(N, d_out, d_in')``: each example's weight gradient ``sum_t g_t a_t^T``."""
    return torch.einsum("nto,nti->noi", g, a)


def eigenbasis(covariance: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues and eigenvectors of a covariance (symmetrised, float64)."""
    c = covariance.double()
    return torch.linalg.eigh((c + c.T) / 2)


def rotate(w: Tensor, q_g: Tensor, q_a: Tensor) -> Tensor:
    """``Q_G^T W Q_A`` for a batch of ``(d_out, d_in')`` matrices."""
    return q_g.T @ w @ q_a


def unrotate(w: Tensor, q_g: Tensor, q_a: Tensor) -> Tensor:
    """``Q_G W Q_A^T``: back from the eigenbasis."""
    return q_g @ w @ q_a.T
