"""Targets: which scalar of the model output each example is explained for.

A target is normalised once per call into a :class:`Target`, whose ``select`` maps
a model output of ``M`` rows (an expanded batch) to ``M`` scalars. Row ``r`` belongs
to example ``index[r]``, so per-example targets follow their example through any
expansion. Selection uses ``gather`` on a flattened output, never Python indexing with
tensor values, so it works under vmap and torch.compile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import ArgumentError, check_per_row

TargetLike = int | tuple[int, ...] | Tensor | Sequence[int] | Sequence[tuple[int, ...]] | Callable | None


class OutputRows:
    """``target`` for a model whose output rows are not the input's examples (pass it as
    ``target=pa.output_rows(...)``): a graph model explaining ``K`` nodes of one graph returns
    ``K`` rows for one input example.

    ``rows`` holds one target per output row (an int, a tuple, a list of ``K`` of them, a
    ``(K,)`` or ``(K, d)`` tensor) or None (each row holds one value). For every input row,
    its ``K`` output rows' selected values are summed: gradient methods differentiate that sum,
    Captum's reading (it differentiates the selected rows together). An evaluation of ``R``
    input rows must return ``R * K`` rows, input row ``r``'s at ``r * K ... r * K + K - 1``.

    ``only_where_needed=True`` (what :mod:`pyattrib.compat` passes, as Captum accepts both)
    reads ``rows`` as an ordinary per-example target whenever the output has one row per input
    row.

    Args:
        rows: ``rows`` holds one target per output row (an int, a tuple, a list of ``K`` of them, a
            ``(K,)`` or ``(K, d)`` tensor) or None (each row holds one value).
        only_where_needed: ``only_where_needed=True`` (what :mod:`pyattrib.compat` passes, as Captum
            accepts both) reads ``rows`` as an ordinary per-example target whenever the output has one
            row per input row.

    Example:
        >>> isinstance(pa.output_rows(0), pa.OutputRows)
        True
    """

    def __init__(self, rows: Any = None, only_where_needed: bool = False) -> None:
        self.rows, self.only_where_needed = rows, only_where_needed

    def __repr__(self) -> str:
        return f"output_rows({self.rows!r})"


def output_rows(rows: Any = None) -> OutputRows:
    """``target=pa.output_rows(targets)``: a target per *output row*, for models whose output
    rows are not the input's examples (see ``OutputRows``); the selected values of each
    input row's output rows are summed. Without it, such an output is an error naming it.

    Args:
        rows: One target per output row: an int, a tuple, a list or tensor of them, or a callable.

    Returns:
        A target (pass it as ``target=``) that selects one value per output row and sums each input
        row's selected values.

    Example:
        >>> pa.saliency(model)(x, target=pa.output_rows(0)).shape
        torch.Size([4, 8])
    """
    return OutputRows(rows)


class ExampleTargets:
    """One callable per example, each applied to its own example's output (pass it as
    ``target=``): ``fns[i](output[r])`` for each row ``r`` of example ``i``, a scalar. The form
    pytorch-grad-cam's targets take (one target object per image, reading that image's output:
    a logit vector, a segmentation map, a detector's dict of boxes). Rows of an expanded batch
    (perturbed copies, augmentations) follow their example.

    Args:
        fns: One callable per example, ``output_row -> scalar tensor``.

    Example:
        >>> t = pa.ExampleTargets([lambda o: o[0], lambda o: o[1], lambda o: o[0], lambda o: o[2]])
        >>> pa.saliency(model)(x, target=t).shape
        torch.Size([4, 8])
    """

    def __init__(self, fns: Sequence[Callable[[Any], Tensor]]) -> None:
        self.fns = list(fns)
        if not all(callable(f) for f in self.fns):
            raise TypeError("ExampleTargets takes one callable per example")

    def __call__(self, output: Any, index: Tensor | None = None) -> Tensor:
        rows = range(len(output)) if index is None else index.tolist()
        return torch.stack([self.fns[i](output[r]).reshape(()) for r, i in enumerate(rows)])

    def repeat_interleave(self, times: int) -> ExampleTargets:
        """Each example's callable for ``times`` consecutive rows (``repeat_examples``'s layout)."""
        return ExampleTargets([f for f in self.fns for _ in range(times)])

    def __len__(self) -> int:
        return len(self.fns)


class Target:
    """A normalised target. Use :func:`as_target` to build one."""

    def __init__(
        self,
        fixed: tuple[int, ...] | None = None,
        per_example: Tensor | None = None,
        fn: Callable[[Tensor], Tensor] | None = None,
        name: str = "target",
        n: int | None = None,
        by_row: OutputRows | None = None,
    ) -> None:
        self.fixed, self.per_example, self.fn, self.name, self.n = fixed, per_example, fn, name, n
        self._checked: torch.Size | None = None
        self.by_row = by_row  # see OutputRows
        self._read: dict[int | None, Target] = {}  # by_row's target, per number of output rows (None: per example)

    @property
    def selects(self) -> bool:
        """Whether a target was given (else the output must be one value per example)."""
        if self.by_row is not None and self.by_row.rows is not None:
            return True
        return self.fixed is not None or self.per_example is not None or self.fn is not None

    def select(self, output: Tensor, index: Tensor | None = None) -> Tensor:
        """Scalars of ``output`` (``M`` rows) for rows that belong to examples ``index``."""
        rows = len(index) if index is not None else self.n
        if self.by_row is not None:
            return self._select_by_row(output, rows, index)
        if self.fn is None:
            output = model_output(output, rows)
            if output.dim() == 0:
                raise ArgumentError(
                    "the model returned a 0-d scalar for the whole batch; attribution needs "
                    "one output per example: return shape (N,) or (N, n_outputs)"
                )
        if self.fn is not None:
            m = rows if rows is not None else _leading(output)
            out = self.fn(output, index) if isinstance(self.fn, ExampleTargets) else self.fn(output)
            if isinstance(out, Tensor) and out.dim() == 0:
                # one total for the batch: an even share per row keeps the sum, and as rows are
                # independent examples, its gradient is each row's own (Captum's reading)
                out = (out / m).expand(m)
            if isinstance(out, Tensor) and out.dim() > 1 and out.shape[0] == m:
                out = out.reshape(m, -1).sum(1)  # several values per row: their sum, as Captum
            check_per_row(out, m, f"{self.name} callable", "map the model output to one scalar per row")
            return out
        m = output.shape[0]
        if not self.selects:
            if output[0].numel() != 1:
                raise ArgumentError(
                    f"{self.name} is None but the model output has shape "
                    f"{_shape(output)}, more than one value per example; pass "
                    f"{self.name}=<class index> (an int, a tuple for outputs with more "
                    "dimensions, or one per example)"
                )
            return output.reshape(m)
        if self.fixed is not None:
            # a neuron selector may name a leading index of a bigger block (Captum: the block's sum)
            partial = self.name == "neuron_selector" and len(self.fixed) < output.dim() - 1
            sliced = partial or any(isinstance(t, slice) for t in self.fixed)
            if not sliced:
                self._check_arity(output, len(self.fixed))
            for d, t in enumerate(self.fixed):
                size = output.shape[1 + d] if d + 1 < output.dim() else 0
                if isinstance(t, int) and not -size <= t < size:
                    raise ArgumentError.also(IndexError)(
                        f"{self.name} {self.fixed if len(self.fixed) > 1 else t} is out of "
                        f"range for model output of shape {_shape(output)}; valid "
                        f"indices along dimension {1 + d} are 0..{size - 1}"
                    )
            picked = output[(slice(None),) + tuple(self.fixed)]
            return picked.reshape(m, -1).sum(1) if sliced else picked
        idx = self.per_example
        assert idx is not None  # a fixed target, a callable or per-example indices: set at construction
        self._check_arity(output, idx.shape[1])
        self._check_range(idx, output)
        if index is not None:
            idx = idx.index_select(0, index)
        dims = output.shape[1:]
        if len(dims) == 1:  # one class index per example: no stride arithmetic
            return output.gather(1, idx.remainder(dims[0])).squeeze(1)
        sizes = torch.tensor(dims, device=idx.device, dtype=idx.dtype)
        strides = torch.tensor([math.prod(dims[d + 1 :]) for d in range(len(dims))], device=idx.device, dtype=idx.dtype)
        flat = (idx.remainder(sizes) * strides).sum(1, keepdim=True)
        return output.reshape(m, -1).gather(1, flat).squeeze(1)

    def _select_by_row(self, output: Any, rows: int | None, index: Tensor | None) -> Tensor:
        """``OutputRows``: each input row's ``K`` output rows, selected per row and summed."""
        assert self.by_row is not None
        out = model_output(output)
        rows = rows if rows is not None else out.shape[0]
        if out.dim() > 0 and out.shape[0] == rows and self.by_row.only_where_needed:
            if None not in self._read:
                self._read[None] = as_target(self.by_row.rows, self.n or rows, out.device, self.name)
            return self._read[None].select(out, index)
        if out.dim() == 0 or out.shape[0] % rows:
            raise ArgumentError(
                f"{self.name}: the model returned {tuple(out.shape)} for {rows} input rows; with output_rows each "
                "input row must give the same number of output rows"
            )
        k = out.shape[0] // rows
        if out.shape[0] not in self._read:
            if isinstance(self.by_row.rows, (Tensor, list)) and len(self.by_row.rows) not in (1, k):
                raise ArgumentError(
                    f"{self.name} has {len(self.by_row.rows)} entries but each input row gives {k} output rows; "
                    "pass one target per output row"
                )
            tiled = self.by_row.rows
            if isinstance(tiled, Tensor) and tiled.dim() > 0 and tiled.numel() > 1:
                tiled = tiled.repeat(rows, *([1] * (tiled.dim() - 1)))  # Captum's expansion: tiled per input row
            elif isinstance(tiled, list) and len(tiled) > 1:
                tiled = tiled * rows
            self._read[out.shape[0]] = as_target(tiled, out.shape[0], out.device, self.name)
        return self._read[out.shape[0]].select(out, None).reshape(rows, k).sum(1)

    def _check_arity(self, output: Tensor, k: int) -> None:
        if k != output.dim() - 1:
            raise ArgumentError(
                f"{self.name} has {k} index(es) per example but the model output has shape "
                f"{_shape(output)}, i.e. {output.dim() - 1} dimension(s) after the "
                f"batch; pass a tuple of {output.dim() - 1} indices per example so that "
                "one scalar per example is selected"
            )

    def _check_range(self, idx: Tensor, output: Tensor) -> None:
        if torch.compiler.is_compiling() or self._checked == output.shape[1:]:
            return  # data-dependent: skipped in compiled graphs, done once per call eagerly
        sizes = torch.tensor(output.shape[1:], device=idx.device, dtype=idx.dtype)
        bad = (idx >= sizes) | (idx < -sizes)
        if bool(bad.any()):
            row = int(bad.any(1).nonzero()[0])
            raise ArgumentError.also(IndexError)(
                f"{self.name} for example {row} is {idx[row].tolist()}, out of range for "
                f"model output of shape {_shape(output)}"
            )
        self._checked = output.shape[1:]


def as_target(target: Any, n: int, device: torch.device, name: str = "target") -> Target:
    """Normalise ``target`` for a batch of ``n`` examples (see DESIGN.md for the forms)."""
    if isinstance(target, Target):
        return target
    if isinstance(target, OutputRows):
        return Target(name=name, n=n, by_row=target)
    target = _from_numpy(target)
    if target is None:
        return Target(name=name, n=n)
    if isinstance(target, ExampleTargets) and len(target) != n:
        raise ArgumentError(f"{name} has {len(target)} callables but inputs have {n} examples; pass one per example")
    if callable(target) and not isinstance(target, Tensor):
        return Target(fn=target, name=name, n=n)
    if isinstance(target, bool):
        raise TypeError(f"{name} is a bool; pass an int class index")
    if isinstance(target, int):
        return Target(fixed=(target,), name=name, n=n)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError(f"{name} tensor has dtype {target.dtype}; use integer indices")
        if target.numel() == 1 and (target.dim() == 0 or n != 1):
            return Target(fixed=(int(target.reshape(())),), name=name, n=n)
        if target.dim() == 1 and target.shape[0] == n:
            return Target(per_example=target.to(device=device, dtype=torch.long)[:, None], name=name, n=n)
        if target.dim() == 2 and target.shape[0] == n:
            return Target(per_example=target.to(device=device, dtype=torch.long), name=name, n=n)
        raise ArgumentError(
            f"{name} tensor has shape {tuple(target.shape)} but inputs have {n} examples; "
            f"pass one index per example (shape ({n},)) or a single index"
        )
    if isinstance(target, tuple):
        if not all(isinstance(t, (int, slice)) for t in target):
            raise TypeError(f"{name} tuple must contain ints (or slices, summed over), got {target!r}")
        return Target(fixed=tuple(target), name=name, n=n)
    if isinstance(target, list):
        if len(target) != n:
            raise ArgumentError(
                f"{name} has {len(target)} entries but inputs have {n} examples; pass one "
                f"target per example, or a single int/tuple for all"
            )
        rows = [_from_numpy(t) for t in target]
        rows = [(t,) if isinstance(t, int) else t for t in rows]
        if not all(isinstance(t, tuple) for t in rows) or len({len(t) for t in rows}) != 1:
            raise TypeError(f"{name} list must hold ints, or tuples of the same length, one per example")
        return Target(per_example=torch.tensor(rows, device=device, dtype=torch.long), name=name, n=n)
    raise TypeError(
        f"{name} of type {type(target).__name__} is not supported; use None, an int, a tuple, "
        "a list or 1-D tensor with one entry per example, or a callable output -> (N,)"
    )


def _from_numpy(target: Any) -> Any:
    """numpy integer scalars become ints, numpy arrays tensors (dtype checks follow)."""
    if type(target).__module__ != "numpy":
        return target
    if getattr(target, "ndim", 0) == 0 and target.dtype.kind in "iu":
        return int(target)
    return torch.as_tensor(target)


def model_output(output: Any, rows: int | None = None, named_logits: bool = False) -> Tensor:
    """The tensor attribution reads from what the model returned.

    One rule for every method (and for the text and Insights readers): a tensor is used as is;
    a mapping (a Hugging Face ``ModelOutput``, a dict) gives its ``"logits"`` entry, or its first
    value when it has none; another object with a ``logits`` tensor gives that; a tuple or list
    gives its first element (``return_dict=False`` puts the logits first). With ``named_logits``
    (language models) a mapping must have ``"logits"``: its first value would be some other
    tensor. Pass a callable ``target`` to read anything else. When ``rows`` is known, the
    tensor's first dimension must be that batch.
    """
    while not isinstance(output, Tensor):
        if not isinstance(output, Mapping) and isinstance(getattr(output, "logits", None), Tensor):
            output = output.logits  # an output object with logits that is not a mapping
            continue
        if isinstance(output, torch.futures.Future):
            raise ArgumentError(
                "the model returned a torch.futures.Future; wait for it in the forward (fut.wait()), or with "
                "pyattrib.compat use attribute_future(...)"
            )
        if isinstance(output, Mapping) and len(output):
            if named_logits and "logits" not in output:
                raise TypeError(f"the model returned a mapping without 'logits' (keys: {list(output)})")
            output = output["logits"] if "logits" in output else next(iter(output.values()))
        elif isinstance(output, (tuple, list)) and len(output):
            output = output[0]
        else:
            raise TypeError(
                f"the model returned a {type(output).__name__}; attribution needs a tensor, a mapping with "
                "'logits', or a tuple whose first element is the output; or pass a callable target"
            )
    if rows is not None and output.dim() > 0 and output.shape[0] != rows and not torch.compiler.is_compiling():
        raise ArgumentError(
            f"the model returned an output of shape {tuple(output.shape)} for a batch of {rows} rows; pyattrib "
            "reads dimension 0 of inputs and outputs as the batch. If your inputs are one example without a "
            "batch dimension, pass x.unsqueeze(0); if the model flattens the batch away, make it return "
            "(N, ...)"
        )
    return output


def _leading(output: Any) -> int:
    """The batch size of an output that may be a tuple of tensors (a layer's value)."""
    while not isinstance(output, Tensor):
        output = output[0]
    return output.shape[0]


def _shape(output: Tensor) -> str:
    """Output shape with the (possibly expanded) batch written as N."""
    return "(" + ", ".join(["N", *map(str, output.shape[1:])]) + ")"
