"""The bodies of the gradient methods along paths, written once, and where they read gradients.

:func:`gradient_times_value` reads them at one point (saliency, input x gradient, gradient x
activation), :func:`path_of_gradients` integrates gradients along the straight path from the baselines
(integrated gradients; internal influence), :func:`shap_of_gradients` averages them over
GradientSHAP's draws (:class:`ShapDraws`); a reader says where the gradients are read:
:class:`InputGradients` (the input methods) or :class:`LayerGradients` (a layer's value for the
same input points: the layer methods).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import random
from .attributor import Attributor
from .call import Call, completeness_delta, output_ends, prepare
from .capture import Layers, LayerValue
from .errors import ArgumentError, check_batch_size, check_count
from .inputs import BaselineLike, TensorOrTuple
from .kernel import (
    Chunk,
    accumulate,
    along_rows,
    example_major,
    gradients,
    integrate_path,
    outputs,
    path_points,
    rows_of,
)
from .quadrature import quadrature
from .state import evaluating
from .targets import TargetLike

Forward = Callable[..., Any]
Stdevs = float | tuple[float, ...]


class InputGradients:
    """Where a gradient method reads its gradients: at the inputs (the input methods' own)."""

    differentiable = True  # the inputs are what is differentiated

    def __init__(self, f: Callable[..., Any], record: bool = False) -> None:
        self.f, self.record = f, record  # record: keep each chunk's outputs (an adaptive path rule reads them)

    def gradients(self, call: Any, c: Any, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return gradients(self.f, call.args, call.target, points, c.index, record=c if self.record else None)

    def values(self, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """What the gradients were taken with respect to, at the last points: the inputs."""
        return points

    def value_at(self, call: Any, i: Tensor, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The value gradients are read at, for input rows ``points`` of examples ``i``: the inputs."""
        return points

    def difference(self, call: Any, c: Any, xs: tuple[Tensor, ...], bs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(x - b for x, b in zip(xs, bs))

    def result(self, call: Any, attrs: Any) -> Any:
        return call.restore(attrs)


class LayerGradients:
    """Gradients read at a layer's value for the same input points, and differences of the layer's
    value: a gradient method whose path runs through the inputs explains the layer (GradientSHAP
    at a layer). One per call: it keeps the layer's layout for the result."""

    differentiable = False  # gradients start at the layer: integer inputs (token ids) are fine

    def __init__(self, layers: Layers) -> None:
        self.layers, self.templates = layers, list[LayerValue]()

    def values(self, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The layer's value at the last points (detached)."""
        return tuple(t.detach() for v in self.templates for t in v.leaves)

    def value_at(self, call: Any, i: Tensor, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The layer's value for input rows ``points`` of examples ``i``, read up to the layer only."""
        captured = self.layers.capture(points, call.args.rows(i), len(i))
        return tuple(t for v in captured for t in v.leaves)

    def gradients(self, call: Any, c: Any, points: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        rows = call.args.rows(c.i)
        values, grads = self.layers.gradients(lambda out: call.target.select(out, c.i), points, rows, len(c.i))
        self.templates[:] = values
        return tuple(grads)

    def difference(self, call: Any, c: Any, xs: tuple[Tensor, ...], bs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        rows = call.args.rows(c.i)
        at_x, at_b = self.layers.capture_pair(xs, bs, rows, rows, len(c.i))
        return tuple(a - b for u, v in zip(at_x, at_b) for a, b in zip(u.leaves, v.leaves))

    def result(self, call: Any, attrs: Any) -> Any:
        return self.layers.result(self.templates, attrs)


def gradient_times_value(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    multiply: bool,
    batch_size: int | None,
    create_graph: bool = False,
    then: Callable[[Tensor], Tensor] | None = None,
) -> Callable[..., Any]:
    """The call of a local gradient method: the gradients read where ``reader()`` reads them (the
    inputs: saliency, input x gradient; a layer's value: gradient x activation), times the value
    they were taken at with ``multiply``, then ``then`` elementwise (saliency's ``abs``)."""
    check_batch_size(batch_size)

    def attribute(inputs: TensorOrTuple, *, target: TargetLike = None, additional_forward_args: Any = None) -> Any:
        at = reader()
        call = prepare(inputs, target, additional_forward_args, method=name, differentiable=at.differentiable)

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            points = tuple(c.take(x) for x in call.inputs)
            grads = at.gradients(call, c, points)
            out = tuple(g * v for g, v in zip(grads, at.values(points))) if multiply else grads
            return out if then is None else tuple(then(t) for t in out)

        with evaluating(f, create_graph):
            attrs = accumulate(contribution, 1, call.n, call.chunk(batch_size), call.device)
        return at.result(call, list(attrs))

    return attribute


def _path_call(
    inputs: Any, baselines: Any, target: Any, args: Any, name: str, reader: Callable[[], Any]
) -> tuple[Call, tuple[Tensor, ...], tuple[Tensor, ...], Any]:
    """What a path body starts from: the call, its baselines, ``x - x'`` and a fresh reader."""
    call = prepare(inputs, target, args, method=name)
    base = call.baselines(baselines)
    return call, base, tuple(x - b for x, b in zip(call.inputs, base)), reader()


def path_of_gradients(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    rule: Any,
    multiply_by_inputs: bool,
    batch_size: int | None,
    return_delta: bool = False,
    create_graph: bool = False,
) -> Attributor:
    """Gradients integrated along the straight input path from the baselines, read where
    ``reader()`` reads them: at the inputs (integrated gradients) or at a layer's value (internal
    influence); ``multiply_by_inputs`` multiplies by the inputs' ``x - x'``."""
    check_batch_size(batch_size)

    def attribute(
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any:
        call, base, diff, at = _path_call(inputs, baselines, target, additional_forward_args, name, reader)

        def grad_at(points: tuple[Tensor, ...], c: Chunk) -> tuple[Tensor, ...]:
            return at.gradients(call, c, points)

        with evaluating(f, create_graph):
            ends = lambda: output_ends(f, call, base)  # noqa: E731
            total = integrate_path(grad_at, base, diff, rule, call.chunk(batch_size), ends)
            attrs = tuple(t * d for t, d in zip(total, diff)) if multiply_by_inputs else total
            result = at.result(call, attrs)
            if return_delta:
                return result, completeness_delta(f, call, base, attrs)
        return result

    return Attributor(attribute, f, returns_delta=return_delta, name=name)


def path_of_increments(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    n_steps: int,
    method: str,
    batch_size: int | None,
    return_delta: bool = False,
) -> Attributor:
    r"""Gradients along the straight input path times the increments of the value they are read
    at, :math:`\sum_k \partial f/\partial v(x_k)\,(v(x_{k+1}) - v(x_k))` over the ``n_steps + 1``
    nodes of ``method``: at a layer's value, conductance (Dhamdhere et al.). Chunks share one path
    point with their neighbour; a chunk's last point is only read up to where the value is."""
    check_batch_size(batch_size)
    nodes, _ = quadrature(method, n_steps + 1)

    def attribute(
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Any:
        call, base, diff, at = _path_call(inputs, baselines, target, additional_forward_args, name, reader)

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            points = path_points(c, base, diff, nodes)
            n, m = call.n, len(c.i) - call.n  # gradients at every point but the chunk's last
            head = tuple(p[:m] for p in points)
            grads = at.gradients(call, _Rows(c.i[:m]), head)
            here = at.values(head)
            ahead = at.value_at(call, c.i[m:], tuple(p[m:] for p in points))
            return tuple(g * (torch.cat([v[n:], w]) - v).detach() for g, v, w in zip(grads, here, ahead))

        with evaluating(f):
            attrs = accumulate(contribution, n_steps + 1, call.n, call.chunk(batch_size), call.device, overlap=1)
            result = at.result(call, list(attrs))
            if return_delta:
                return result, completeness_delta(f, call, tuple(b.contiguous() for b in base), attrs)
        return result

    return Attributor(attribute, f, returns_delta=return_delta, name=name)


class _Rows:
    """A chunk's first rows, as a reader reads a chunk (``i``, ``index``)."""

    def __init__(self, i: Tensor) -> None:
        self.i = self.index = i


def shap_of_gradients(
    f: Forward,
    reader: Callable[[], Any],
    name: str,
    *,
    n_samples: int,
    stdevs: Stdevs,
    multiply_by_inputs: bool,
    batch_size: int | None,
    return_delta: bool,
    delta_per_sample: bool,
    captum_rng: bool,
    create_graph: bool = False,
) -> Attributor:
    """GradientSHAP with its gradients read where ``reader()`` reads them: at the inputs
    (:class:`InputGradients`) or at a layer's value (:class:`LayerGradients`), the draws, the
    input path and the delta being the same."""
    check_batch_size(batch_size)
    check_count("n_samples", n_samples)

    def attribute(
        inputs: TensorOrTuple,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        call = prepare(inputs, target, additional_forward_args, method=name)
        draws = ShapDraws(call, call.references(baselines), n_samples, stdevs, generator, captum_rng)
        at, s = reader(), n_samples

        def contribution(c: Chunk) -> tuple[Tensor, ...]:
            xs, bs = draws.ends(c)
            grads = at.gradients(call, c, draws.points(c, xs, bs))
            if multiply_by_inputs:
                return tuple(g * d / s for g, d in zip(grads, at.difference(call, c, xs, bs)))
            return tuple(g / s for g in grads)

        with evaluating(f, create_graph):
            out = accumulate(contribution, s, call.n, call.chunk(batch_size), call.device, row_totals=delta_per_sample)
            attrs, totals = (out[:-1], out[-1] * s) if delta_per_sample else (out, None)
            result = at.result(call, attrs)
            if return_delta:
                return result, draws.delta(f, call, attrs, batch_size, totals)
        return result

    return Attributor(
        attribute,
        f,
        per_example=("target", "additional_forward_args"),
        random=True,
        returns_delta=return_delta,
        name=name,
    )


class ShapDraws:
    """GradientSHAP's random draws for ``n_samples`` rows per example, made up front.

    Row ``r`` (sample ``r // N`` of example ``r % N``) gets a reference ``x'`` drawn from
    ``refs``, Gaussian input noise ``eps`` and a path point ``alpha ~ U(0, 1)``.
    """

    def __init__(
        self,
        call: Call,
        refs: tuple[Tensor, ...],
        n_samples: int,
        stdevs: Stdevs,
        generator: torch.Generator | None,
        captum_rng: bool = False,
    ) -> None:
        rows, x0 = n_samples * call.n, call.inputs[0]
        stds = per_input_stdevs(stdevs, len(call.inputs))
        self.inputs, self.refs = call.inputs, refs
        if captum_rng:
            self.noise, self.choices, self.alpha = random.captum_order(
                call.n, n_samples, x0, stds, call.inputs, refs[0].shape[0]
            )
            return
        self.choices = (random.integers(refs[0].shape[0], (rows,), x0, generator),) * len(refs)
        self.alpha = random.uniform((rows,), x0, generator)
        self.noise = tuple(
            random.normal((rows, *x.shape[1:]), sd, x, generator) if sd else None for x, sd in zip(call.inputs, stds)
        )

    def ends(self, c: Chunk) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Noisy inputs ``x + eps`` and drawn references ``x'`` for the rows of a chunk."""
        xs = tuple(c.take(x) if e is None else c.take(x) + rows_of(e, c.r) for x, e in zip(self.inputs, self.noise))
        return xs, tuple(rows_of(b, rows_of(choice, c.r)) for b, choice in zip(self.refs, self.choices))

    def points(self, c: Chunk, xs: tuple[Tensor, ...], bs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """``x' + alpha (x + eps - x')``."""
        a = rows_of(self.alpha, c.r)
        return tuple(b + along_rows(a, b) * (x - b) for x, b in zip(xs, bs))

    def delta(
        self, f: Forward, call: Call, attrs: Sequence[Tensor], batch_size: int | None, sample_totals: Tensor | None
    ) -> Tensor:
        """Per example ``sum(attrs) - mean_s (f(x + eps_s) - f(x'_s))``: the mean per-sample
        completeness error. Given each sample's attribution sum (``sample_totals``, rows in
        kernel order), the per-sample errors instead, example-major."""
        s = self.alpha.shape[0] // call.n

        def gap(c: Chunk) -> tuple[Tensor, ...]:
            xs, bs = self.ends(c)
            return (outputs(f, call.args, call.target, xs, c.i) - outputs(f, call.args, call.target, bs, c.i),)

        *_, gaps = accumulate(gap, s, call.n, call.chunk(batch_size), call.device, row_totals=True)
        if sample_totals is not None:
            return example_major(sample_totals - gaps, call.n)
        return sum(a.reshape(call.n, -1).sum(1) for a in attrs) - gaps.reshape(s, call.n).mean(0)


def per_input_stdevs(stdevs: Stdevs, n_inputs: int) -> tuple[float, ...]:
    """One standard deviation per input tensor, validated."""
    if isinstance(stdevs, (tuple, list)):
        if len(stdevs) != n_inputs:
            raise ArgumentError(
                f"stdevs has {len(stdevs)} entries but inputs has {n_inputs} tensors; pass "
                "one float for all inputs or a tuple with one float per input"
            )
        values = tuple(stdevs)
    else:
        values = (stdevs,) * n_inputs
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ArgumentError(f"stdevs must be non-negative floats, got {stdevs!r}")
    return tuple(float(v) for v in values)
