"""Normalise what a caller passes (inputs, baselines, extra forward args) into tuples.

Every attributor works on a tuple of input tensors internally and gives the caller
back the structure they passed: a Tensor for a Tensor, a tuple for a tuple.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import ArgumentError

TensorOrTuple = Tensor | tuple[Tensor, ...]
BaselineLike = int | float | Tensor | tuple[int | float | Tensor | None, ...] | None


def as_tuple(inputs: TensorOrTuple, name: str = "inputs") -> tuple[tuple[Tensor, ...], bool]:
    """Return ``(tuple_of_tensors, was_tuple)``; reject anything that is not tensors."""
    was_tuple = isinstance(inputs, (tuple, list))
    tup = tuple(inputs) if was_tuple else (inputs,)
    if len(tup) == 0:
        raise ArgumentError(f"{name} is empty; pass a tensor or a non-empty tuple of tensors")
    for j, t in enumerate(tup):
        if not isinstance(t, Tensor):
            where = f"{name}[{j}]" if was_tuple else name
            raise TypeError(f"{where} is a {type(t).__name__}; pass a torch.Tensor")
    for j, t in enumerate(tup):
        if t.dim() and t.shape[0] == 0:
            where = f"{name}[{j}]" if was_tuple else name
            raise ArgumentError(f"{where} is an empty batch (0 examples); pass at least one example")
    if was_tuple:
        n = tup[0].shape[0] if tup[0].dim() else None
        for j, t in enumerate(tup):
            if t.dim() == 0:
                raise ArgumentError(f"{name}[{j}] is 0-d; inputs need a leading batch dimension")
            if t.shape[0] != n:
                raise ArgumentError(
                    f"{name}[{j}] has batch size {t.shape[0]} but {name}[0] has {n}; "
                    "every input tensor must have the same first (batch) dimension"
                )
    elif tup[0].dim() == 0:
        raise ArgumentError(f"{name} is 0-d; inputs need a leading batch dimension")
    return tup, was_tuple


def restore(values: Sequence[Tensor], was_tuple: bool) -> TensorOrTuple:
    """Give values back in the caller's structure, in the standard (contiguous) layout."""
    values = [v.contiguous() for v in values]
    return tuple(values) if was_tuple else values[0]


def _where(name: str, j: int, many: bool) -> str:
    return f"{name}[{j}]" if many else name


def require_float(inputs: tuple[Tensor, ...], was_tuple: bool, method: str) -> None:
    """Gradient methods need floating inputs; point token models to the layer variant."""
    for j, x in enumerate(inputs):
        if not torch.is_floating_point(x):
            raise TypeError(
                f"{_where('inputs', j, was_tuple)} has dtype {x.dtype}, but {method} "
                "differentiates with respect to the inputs and needs floating-point "
                "tensors. For token ids or other discrete inputs, attribute at the "
                "embedding output instead: pa.layer_integrated_gradients(model, "
                "model.embedding)(token_ids, ...)."
            )


def per_example_baselines(
    baselines: BaselineLike | Callable[..., Any], inputs: tuple[Tensor, ...], was_tuple: bool
) -> tuple[Tensor, ...]:
    """Baselines as tensors broadcast (as views) to each input's full shape.

    Accepts None (zeros), a number, a tensor shaped like the input, like one example
    (leading dimension 1 or none), or a tuple mixing these, one per input.
    """
    out = []
    for j, (b, x) in enumerate(_baseline_tensors(baselines, inputs, was_tuple)):
        if b.dim() <= x.dim() and _broadcasts(b.shape, x.shape):  # e.g. (N, 1) for (N, 3): one value per row
            out.append(b.expand(x.shape))
        else:
            raise ArgumentError(
                f"{_where('baselines', j, was_tuple)} has shape {tuple(b.shape)} but "
                f"{_where('inputs', j, was_tuple)} has shape {tuple(x.shape)}; pass a "
                f"number, a tensor of shape {tuple(x.shape)}, or one reference example "
                f"of shape {(1, *x.shape[1:])}"
            )
    return tuple(out)


def _broadcasts(shape: torch.Size, to: torch.Size) -> bool:
    return all(a in (1, b) for a, b in zip(reversed(shape), reversed(to)))


def distribution_baselines(
    baselines: BaselineLike | Callable[..., Any], inputs: tuple[Tensor, ...], was_tuple: bool
) -> tuple[Tensor, ...]:
    """Reference samples: tensors of shape (R, *input.shape[1:]) sharing R across inputs."""
    if baselines is None:
        raise ArgumentError(
            "baselines is required: pass a tensor of reference samples of shape "
            "(n_references, *inputs.shape[1:]), e.g. a few training examples or zeros"
        )
    baselines = _resolve(baselines, inputs, was_tuple)
    for b in baselines if isinstance(baselines, tuple) else (baselines,):
        if not isinstance(b, Tensor):
            raise ArgumentError(
                f"baselines holds a {type(b).__name__}; reference samples must be tensors of shape "
                "(n_references, *input.shape[1:]), e.g. torch.zeros(1, *x.shape[1:])"
            )
    out = []
    for j, (b, x) in enumerate(_baseline_tensors(baselines, inputs, was_tuple)):
        if b.dim() == 0:
            b = b.expand(1, *x.shape[1:])
        elif b.shape == x.shape[1:] and b.dim() < x.dim():
            b = b.unsqueeze(0)
        if b.shape[1:] != x.shape[1:]:
            raise ArgumentError(
                f"{_where('baselines', j, was_tuple)} has shape {tuple(b.shape)}; reference "
                f"samples for {_where('inputs', j, was_tuple)} must have shape "
                f"(n_references, {', '.join(map(str, x.shape[1:]))})"
            )
        out.append(b)
    counts = {b.shape[0] for b in out}
    if len(counts) > 1:
        raise ArgumentError(
            f"baselines hold different numbers of reference samples {sorted(counts)}; "
            "every tensor of the tuple must have the same first dimension"
        )
    return tuple(out)


def _baseline_tensors(baselines: Any, inputs: tuple[Tensor, ...], was_tuple: bool) -> list[tuple[Tensor, Tensor]]:
    """``(baseline, input)`` pairs, baselines as tensors on the input's device and dtype;
    a callable baseline is called with the inputs first."""
    baselines = _resolve(baselines, inputs, was_tuple)
    return [(_as_tensor(b, x), x) for b, x in zip(_baseline_tuple(baselines, inputs, was_tuple), inputs)]


def _resolve(baselines: Any, inputs: tuple[Tensor, ...], was_tuple: bool) -> Any:
    """A callable baseline's value (called with the inputs if it takes an argument); else as given."""
    if callable(baselines) and not isinstance(baselines, Tensor):
        takes_inputs = len(inspect.signature(baselines).parameters) > 0
        return baselines(restore(inputs, was_tuple)) if takes_inputs else baselines()
    return baselines


def _baseline_tuple(baselines: Any, inputs: tuple[Tensor, ...], was_tuple: bool) -> tuple:
    if isinstance(baselines, (tuple, list)):
        if len(baselines) != len(inputs):
            raise ArgumentError(
                f"baselines has {len(baselines)} entries but inputs has {len(inputs)}; "
                "pass one baseline (None, a number or a tensor) per input tensor"
            )
        return tuple(baselines)
    if was_tuple and len(inputs) > 1 and isinstance(baselines, Tensor) and baselines.dim() > 0:
        raise ArgumentError(
            "baselines is a single tensor but inputs is a tuple of "
            f"{len(inputs)} tensors; pass a tuple with one baseline per input"
        )
    return (baselines,) * len(inputs)


def _as_tensor(b: Any, x: Tensor) -> Tensor:
    """A baseline on the input's device and dtype; for integer inputs, a baseline with a
    fractional value keeps its float dtype (the replaced rows become float, as in Captum)
    instead of being silently truncated."""
    if b is None:
        return torch.zeros((), device=x.device, dtype=x.dtype)
    if type(b).__module__ == "numpy":  # NumPy arrays and scalars
        b = torch.as_tensor(b)
    if not isinstance(b, (bool, int, float, Tensor, list)):
        raise TypeError(
            f"baselines: a baseline of type {type(b).__name__} is not supported; use None, a number or a tensor"
        )
    t = b.to(x.device) if isinstance(b, Tensor) else torch.tensor(b, device=x.device)  # lists: nested numbers
    if t.is_floating_point() and not x.is_floating_point() and not torch.equal(t, t.round()):
        return t
    return t.to(x.dtype)


def as_args(args: Any) -> tuple:
    """additional_forward_args as a tuple: None is no argument, a non-tuple is one argument."""
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def batch_rows(batch: Any) -> int:
    """The batch size of a tensor, or of the first tensor of a (nested) tuple, list or dict."""
    if isinstance(batch, Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    return batch_rows(next(iter(values)))


def matching_attributions(attributions: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Attributions given to a metric, checked to have the inputs' structure and shapes (detached)."""
    attrs, _ = as_tuple(attributions, "attributions")
    if len(attrs) != len(inputs):
        raise ArgumentError(f"attributions has {len(attrs)} tensors but inputs has {len(inputs)}; pass one per input")
    for j, (a, x) in enumerate(zip(attrs, inputs)):
        if a.shape != x.shape:
            at, xt = (f"attributions[{j}]", f"inputs[{j}]") if len(attrs) > 1 else ("attributions", "inputs")
            raise ArgumentError(
                f"{at} has shape {tuple(a.shape)} but {xt} has {tuple(x.shape)}; "
                "pass attributions with the inputs' shapes (e.g. a layer method's result is not input attributions)"
            )
    return tuple(a.detach() for a in attrs)


class ForwardArgs:
    """additional_forward_args, split into per-example tensors and shared objects.

    A tensor whose first dimension equals the batch size follows the examples: it is
    gathered with the rows of every expanded batch. Everything else is passed as is.
    """

    def __init__(self, args: Any, n: int) -> None:
        args = as_args(args)
        self.values = args
        self.batched = tuple(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n for a in args)

    def rows(self, index: Tensor | None) -> tuple:
        """The arguments for rows that belong to examples ``index`` (None: as given)."""
        if index is None:
            return self.values
        return tuple(a.index_select(0, index) if b else a for a, b in zip(self.values, self.batched))


def repeat_examples(value: Any, n: int, times: int) -> Any:
    """Expand a per-example value to ``n * times`` rows, each example repeated in place.

    Row ``i * times + s`` holds example ``i``: the layout every wrapper uses. Tensors with
    ``n`` leading rows, and lists of ``n`` entries, are expanded; tuples recurse;
    anything else (numbers, callables, shared tensors) is returned unchanged.
    """
    from .targets import ExampleTargets

    if isinstance(value, ExampleTargets) and len(value) == n:
        return value.repeat_interleave(times)
    if isinstance(value, Tensor):
        if value.dim() > 0 and value.shape[0] == n:
            return value.repeat_interleave(times, dim=0)
        return value
    if isinstance(value, tuple):
        return tuple(repeat_examples(v, n, times) for v in value)
    if isinstance(value, list) and len(value) == n:
        return [v for v in value for _ in range(times)]
    return value


def select_examples(value: Any, n: int, index: Tensor) -> Any:
    """The rows of examples ``index`` of a per-example value (tensors with ``n`` leading rows,
    lists of ``n`` entries, tuples recursively); anything else unchanged."""
    from .targets import ExampleTargets

    if isinstance(value, ExampleTargets) and len(value) == n:
        return ExampleTargets([value.fns[i] for i in index.tolist()])
    if isinstance(value, Tensor):
        return value.index_select(0, index.to(value.device)) if value.dim() > 0 and value.shape[0] == n else value
    if isinstance(value, tuple):
        return tuple(select_examples(v, n, index) for v in value)
    if isinstance(value, list) and len(value) == n:
        return [value[i] for i in index.tolist()]
    return value
