"""The engine of the faithfulness metrics: an example's inputs as one flat row of ``D``
elements, a perturbed copy as that row with some elements replaced, and the model's selected
output over every copy of every example in batched forwards.

A metric supplies ``rows(p, i) -> (R, D)``: the perturbed row of step ``p[r]`` of example
``i[r]``. The rows are split back into the inputs' shapes and evaluated in chunks of at most
``batch_size`` rows (default: about ``METRIC_BUDGET`` input elements, whole copies of the
batch) by :func:`pyattrib._core.perturb.evaluate`, without autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._core import random
from .._core.budget import METRIC_BUDGET, rows_per_chunk
from .._core.call import Call, prepare
from .._core.errors import ArgumentError, check_batch_size
from .._core.perturb import evaluate
from .._core.state import evaluating
from .._core.targets import TargetLike, model_output

FILLS = ("black", "white", "mean", "uniform")
Fill = Any  # one of FILLS, a number, or a tensor of the inputs' shape


@dataclass
class Setting:
    """One metric call, prepared: the call, the inputs as ``(N, D)`` rows, the attributions as
    ``(N, D)`` float64 (broadcast to the inputs' shapes), and the forward that is scored."""

    call: Call
    x: Tensor
    a: Tensor
    forward: Callable[..., Any]
    model: Callable[..., Any]

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def outputs(
        self, rows: Callable[[Tensor, Tensor], Tensor], n_steps: int, batch_size: int | None, show_progress: bool,
        desc: str,
    ) -> Tensor:  # fmt: skip
        """``(N, S)``: the selected output of step ``p`` of example ``i`` for the rows ``rows(p, i)``."""
        sizes = [x[0].numel() for x in self.call.inputs]

        def build(p: Tensor, i: Tensor) -> tuple[Tensor, ...]:
            flat = rows(p, i)
            return tuple(
                part.reshape(len(i), *x.shape[1:]) for part, x in zip(flat.split(sizes, dim=1), self.call.inputs)
            )

        rows_at_once = rows_per_chunk(batch_size, self.call.inputs, self.n, METRIC_BUDGET)
        with evaluating(self.model):
            out, shape, _ = evaluate(self.forward, self.call, build, n_steps, rows_at_once, show_progress, desc)
        if out.shape[-1] != 1:
            raise ArgumentError(
                f"{desc} scores one output per example, but the model gives {tuple(shape) or out.shape[-1]} values; "
                "pass target=<class index>"
            )
        return out[..., 0].T.double()

    def with_original(
        self, rows: Callable[[Tensor, Tensor], Tensor], n_steps: int, batch_size: int | None, show_progress: bool,
        desc: str,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """``(f(x)_c (N,), outputs (N, S))``: the unperturbed output evaluated as step 0 of the same pass."""

        def with_x(p: Tensor, i: Tensor) -> Tensor:
            perturbed = rows((p - 1).clamp_min(0), i)
            return torch.where((p == 0)[:, None], self.x.index_select(0, i), perturbed)

        out = self.outputs(with_x, n_steps + 1, batch_size, show_progress, desc)
        return out[:, 0], out[:, 1:]


def setting(
    model: Callable[..., Any],
    inputs: Any,
    attributions: Any,
    target: TargetLike,
    additional_forward_args: Any,
    *,
    abs: bool,
    softmax: bool,
    name: str,
) -> Setting:
    """Normalise a metric call: the attributions must have the inputs' shapes, or broadcast to
    them (one channel for all channels)."""
    call = prepare(inputs, target, additional_forward_args, method=name, differentiable=False)
    x = torch.cat([t.reshape(call.n, -1) for t in call.inputs], 1)
    parts = attributions if isinstance(attributions, (tuple, list)) else (attributions,)
    if len(parts) != len(call.inputs):
        raise ArgumentError(f"attributions has {len(parts)} tensors but inputs has {len(call.inputs)}; give one each")
    shapes = [tuple(torch.as_tensor(t).shape) for t in parts]
    message = f"attributions of shape {shapes} do not fit inputs: give attributions (one channel serves all) that fit"
    a = like_inputs(call, [torch.as_tensor(t).detach() for t in parts], torch.float64, message)
    forward = (lambda *args: torch.softmax(model(*args), dim=-1)) if softmax else model
    return Setting(call, x, a.abs() if abs else a, forward, model)


def check_fill(baselines: Fill, name: str = "baselines") -> None:
    if isinstance(baselines, str) and baselines not in FILLS:
        raise ArgumentError(
            f"{name}={baselines!r}; choose 'black' (the example's smallest value), 'white' (its largest), 'mean', "
            "'uniform' (a U(0, 1) value per perturbed copy), a number, or a tensor of the inputs' shape"
        )


def fill_rows(s: Setting, baselines: Fill, name: str = "baselines") -> Callable[..., Tensor]:
    """``fill(p, i, generator) -> (R, 1 or D)``: the values that replace removed elements (Quantus's
    ``perturb_baseline``): per example its smallest (``"black"``), largest (``"white"``) or mean
    value, a fresh U(0, 1) value per perturbed copy (``"uniform"``), a number, or a tensor of
    the inputs' shape (one row per example)."""
    x = s.x
    if isinstance(baselines, str):
        if baselines == "uniform":
            return lambda p, i, generator=None: random.uniform((len(i), 1), x, generator)
        per = {"black": x.amin(1, keepdim=True), "white": x.amax(1, keepdim=True), "mean": x.mean(1, keepdim=True)}
        values = per[baselines]
    elif isinstance(baselines, (int, float)):
        values = torch.full((s.n, 1), float(baselines), device=x.device, dtype=x.dtype)
    else:
        message = f"{name} must be 'black', 'white', 'mean', 'uniform', a number or tensors that broadcast to"
        values = like_inputs(s.call, baselines, x.dtype, message)
    return lambda p, i, generator=None: values.index_select(0, i)


def like_inputs(call: Call, values: Any, dtype: torch.dtype, message: str) -> Tensor:
    """``(N, D)``: a tensor per input (or one for a single input), each broadcast to its input's
    shape and flattened as the inputs are; ``message`` + the shapes when they do not fit."""
    parts = values if isinstance(values, (tuple, list)) else (values,)
    try:
        return torch.cat(
            [torch.as_tensor(v, device=t.device, dtype=dtype).expand_as(t).reshape(call.n, -1)
             for v, t in zip(parts, call.inputs, strict=True)], 1,
        )  # fmt: skip
    except (RuntimeError, ValueError):
        raise ArgumentError(f"{message} the inputs' shapes {[tuple(t.shape) for t in call.inputs]}") from None


def predicted_classes(model: Callable[..., Any], *inputs: Any) -> Tensor:
    """``(N,)``: the arg-max of the model's output (read by :func:`pyattrib._core.targets.model_output`)
    for a batch, without autograd, in the evaluation state of :func:`pyattrib._core.state.evaluating`."""
    with torch.no_grad(), evaluating(model):
        return model_output(model(*inputs), len(inputs[0])).argmax(-1)


def ascending(scores: Tensor, descending: bool = False) -> Tensor:
    """``(N, F)``: each entry's place when its row is sorted (0 first; ties by index)."""
    order = torch.sort(scores, dim=1, descending=descending, stable=True).indices
    places = torch.arange(scores.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, places)


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation per row of two ``(N, S)`` tensors; NaN where a row is constant (as
    scipy's ``pearsonr``)."""
    a, b = a.double(), b.double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    scale = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(1) / torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, r.clamp(-1, 1), torch.full_like(r, float("nan")))


def check_options(batch_size: int | None, baselines: Fill) -> None:
    check_batch_size(batch_size)
    check_fill(baselines)


def need_generator(generator: torch.Generator | None, name: str, why: str) -> None:
    if generator is None:
        raise ArgumentError(
            f"{name} draws {why}; pass generator=torch.Generator(device=inputs.device).manual_seed(<seed>) so its "
            "scores can be reproduced"
        )
