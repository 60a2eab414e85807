"""The patching engine: prompts, metrics, and model runs with site values read, swapped or
differentiated, through the capture combinator's interception (``Layers.hooked``).

Patched rows are copies of the batch, site-major: row ``r = s * N + i`` is example ``i`` with
site ``s`` patched. Chunks hold whole copies of the batch, so a metric always sees complete
batches in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from .._core.budget import PATCH_BUDGET, rows_per_chunk
from .._core.capture import Layers
from .._core.errors import ArgumentError, check_per_row
from .._core.overrides import observed
from .._core.progress import progress
from .sites import Sites

Prompt = Tensor | tuple[Tensor, ...] | Mapping[str, Tensor]
Metric = Callable[[Any], Tensor]
DIRECTIONS = ("noising", "denoising")


@dataclass(frozen=True)
class Batch:
    """A prompt as the model takes it: positional tensors, or keyword tensors (a tokenizer's
    ``BatchEncoding`` with ``input_ids`` and ``attention_mask``), ``n`` examples."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    n: int

    @staticmethod
    def of(prompt: Prompt, name: str) -> Batch:
        args: tuple[Any, ...]
        kwargs: dict[str, Any]
        if isinstance(prompt, Tensor):
            args, kwargs = (prompt,), {}
        elif isinstance(prompt, Mapping):
            args, kwargs = (), dict(prompt)
        elif isinstance(prompt, (tuple, list)):
            args, kwargs = tuple(prompt), {}
        else:
            raise ArgumentError(
                f"{name} is a {type(prompt).__name__}; pass a tensor, a tuple of tensors (positional model "
                "inputs), or a mapping of them (keyword inputs, e.g. a tokenizer's output)"
            )
        first = next((t for t in (*args, *kwargs.values()) if isinstance(t, Tensor) and t.dim()), None)
        if first is None:
            raise ArgumentError(f"{name} holds no batched tensor; its tensors' first dimension is the batch")
        return Batch(args, kwargs, first.shape[0])

    def leaves(self) -> list[Any]:
        return [*self.args, *self.kwargs.values()]

    def rows(self, index: Tensor) -> Batch:
        def pick(t: Any) -> Any:
            return t.index_select(0, index) if isinstance(t, Tensor) and t.dim() and t.shape[0] == self.n else t

        return Batch(tuple(map(pick, self.args)), {k: pick(v) for k, v in self.kwargs.items()}, len(index))

    def run(self, model: Callable[..., Any]) -> Any:
        return model(*self.args, **self.kwargs)

    def check_aligned(self, other: Batch, names: tuple[str, str]) -> None:
        mine, theirs = self.leaves(), other.leaves()
        keys = (len(self.args), tuple(self.kwargs))
        if keys != (len(other.args), tuple(other.kwargs)):
            raise ArgumentError(
                f"{names[0]} and {names[1]} must have the same structure (same positional/keyword inputs)"
            )
        for a, b in zip(mine, theirs):
            if isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape != b.shape:
                raise ArgumentError(
                    f"{names[0]} and {names[1]} have shapes {tuple(a.shape)} and {tuple(b.shape)}: patching swaps "
                    "values at the same positions, so the two prompts must be aligned. Pad both to one length "
                    "(tokenizer(..., padding='max_length', max_length=T) with their attention masks), or build "
                    "corrupted prompts with the same number of tokens"
                )


def check_metric(values: Any, rows: int) -> Tensor:
    """The metric's values, or an error naming the fix: one number per row."""
    hint = "return one number per example (reduce over positions and classes, not over the batch: no .mean())"
    check_per_row(values, rows, f"metric, for a batch of {rows} rows,", hint)
    return values


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ArgumentError(
            f"direction={direction!r}; choose 'noising' (run clean, patch in corrupted values) or 'denoising' "
            "(run corrupted, patch in clean values)"
        )


class Watched(NamedTuple):
    """An attention module's softmax output at the base run, its gradient, and its call."""

    pattern: Tensor
    grad: Tensor
    call: tuple[tuple, dict]


class Gradients(NamedTuple):
    """Each key's value and gradient, the metric, and the watched attention modules."""

    values: list[Tensor]
    grads: list[Tensor]
    metric: Tensor
    watched: list[Watched]


class Hooks:
    """The distinct ``(module, to_input)`` pairs of some site grids, intercepted together."""

    def __init__(self, model: nn.Module, grids: Sequence[Sites]) -> None:
        self.keys: list[tuple[nn.Module, bool]] = []
        self.key_of: list[int] = []  # each grid row (module of a grid, grids in order) -> its key
        for sites in grids:
            for m in sites.modules:
                key = next((q for q, (k, inp) in enumerate(self.keys) if k is m and inp == sites.to_input), None)
                if key is None:
                    self.keys.append((m, sites.to_input))
                    key = len(self.keys) - 1
                self.key_of.append(key)
        self.model = model

    @contextmanager
    def on(self, fn: Callable[[int, Tensor], Tensor | None], rows: int) -> Iterator[None]:
        """While the block runs, ``fn(key, value)`` sees each key's value (the first floating-point
        tensor of what the module returns or receives, batch first); a returned tensor replaces it."""
        with ExitStack() as stack:
            for flag in (False, True):
                qs = [q for q, (_, inp) in enumerate(self.keys) if inp == flag]
                if not qs:
                    continue
                layers = Layers(self.model, [self.keys[q][0] for q in qs], flag)

                def on_value(j: int, value: Any, qs: list[int] = qs, names: list[str] = layers.names) -> Any:
                    leaves, spec = pytree.tree_flatten(value)
                    at = next(
                        (a for a, t in enumerate(leaves) if isinstance(t, Tensor) and t.is_floating_point()), None
                    )
                    if at is None:
                        raise ArgumentError(f"site {names[j]!r} holds no floating-point tensor to patch")
                    t = leaves[at]
                    bd = 0 if t.dim() and t.shape[0] == rows else 1 if t.dim() > 1 and t.shape[1] == rows else None
                    if bd is None:
                        raise ArgumentError(
                            f"site {names[j]!r} has a value of shape {tuple(t.shape)} with no batch dimension of "
                            f"{rows}; choose a module whose value is batched"
                        )
                    new = fn(qs[j], t.movedim(bd, 0))
                    if new is None:
                        return None
                    leaves[at] = new.movedim(0, bd)
                    return pytree.tree_unflatten(leaves, spec)

                stack.enter_context(layers.hooked(on_value))
            yield

    def read(self, batch: Batch, rows: int) -> tuple[list[Tensor], Any]:
        """Every key's value and the model's output, from one forward pass of ``batch``."""
        values: list[Tensor | None] = [None] * len(self.keys)

        def keep(q: int, v: Tensor) -> None:
            values[q] = v.detach().clone()

        with torch.no_grad(), self.on(keep, rows):
            out = batch.run(self.model)
        self.check_ran(values)
        return values, out  # type: ignore[return-value]

    def gradients(
        self,
        batch: Batch,
        metric: Metric,
        rows: int,
        drop: Sequence[nn.Module] = (),
        replace: Callable[[int, Tensor], Tensor | None] | None = None,
        watch: Sequence[nn.Module] = (),
    ) -> Gradients:
        """Every key's value, ``d sum(metric) / d value`` and the metric, from one forward and
        one backward pass. The derivative is taken at what the model reads at the key, so a
        module's input is differentiated through that module only (not through a skip connection
        that reads the same tensor). ``drop``: modules whose output passes no gradient (GradDrop).
        ``replace(key, value)``: a value to use instead, before it is differentiated. ``watch``:
        attention modules whose call (arguments) and softmax output (the pattern, differentiated
        too) are kept."""
        values: list[Tensor | None] = [None] * len(self.keys)
        grad_mode = torch.is_grad_enabled()
        calls: list[tuple[tuple, dict] | None] = [None] * len(watch)
        patterns: list[Tensor | None] = [None] * len(watch)

        def swap(q: int, v: Tensor) -> Tensor:
            new = replace(q, v) if replace is not None else None
            v = v if new is None else new
            # the rest of the model reads a copy: an in-place op on it leaves the differentiated value alone
            values[q] = v.clone() if v.grad_fn is not None else v.detach().requires_grad_()
            torch._C._set_grad_enabled(True)
            return values[q].clone()  # type: ignore[union-attr]

        def attend(j: int, forward: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
            calls[j] = (_detached(args), _detached(kwargs))

            def keep(kind: str, pattern: Tensor) -> Tensor:
                if patterns[j] is not None:
                    raise ArgumentError("an attention module ran softmax twice in one call; qk_fix reads one pattern")
                patterns[j] = pattern
                return pattern.clone()

            with observed(("softmax",), keep):
                return forward(*args, **kwargs)

        with ExitStack() as stack:
            stack.callback(torch._C._set_grad_enabled, grad_mode)
            torch._C._set_grad_enabled(False)
            stack.enter_context(self.on(swap, rows))
            if drop:
                stack.enter_context(Layers(self.model, list(drop), False).hooked(lambda j, out: _detached(out)))
            if watch:
                stack.enter_context(Layers(self.model, list(watch), False).around(attend))
            m = check_metric(metric(batch.run(self.model)), rows)
            self.check_ran(values)
            if any(p is None for p in patterns):
                raise ArgumentError(
                    "an attention module computed no softmax: qk_fix needs eager attention "
                    "(attn_implementation='eager'), where the pattern is F.softmax's output"
                )
            targets = [*values, *patterns]
            grads = torch.autograd.grad(m.sum(), targets, allow_unused=True, materialize_grads=True)  # type: ignore[arg-type]
        k = len(values)
        watched = [Watched(p.detach(), g, c) for p, g, c in zip(patterns, grads[k:], calls)]  # type: ignore[union-attr,arg-type]
        return Gradients([v.detach() for v in values], list(grads[:k]), m.detach(), watched)  # type: ignore[union-attr]

    def check_ran(self, values: list[Any]) -> None:
        missing = [self.keys[q][0] for q, v in enumerate(values) if v is None]
        if missing:
            names = {id(m): n for n, m in self.model.named_modules()}
            raise ArgumentError(
                f"site module(s) {[names.get(id(m), type(m).__name__) for m in missing]} did not run in the model's "
                "forward pass; pass modules the model calls (for heads, the attention's output projection it runs)"
            )


def _detached(out: Any) -> Any:
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, out)


def sites_per_chunk(batch_size: int | None, base: Batch) -> int:
    """Copies of the batch per evaluation: ``batch_size // N``, or the patching budget's rule
    (``PATCH_BUDGET`` in ``pyattrib._core.budget``)."""
    if batch_size is not None and batch_size < base.n:
        raise ArgumentError(
            f"batch_size={batch_size} is below the batch of {base.n} prompts; patched rows come in whole batches: "
            f"pass batch_size >= {base.n}"
        )
    tensors = [t for t in base.leaves() if isinstance(t, Tensor)]
    return max(1, rows_per_chunk(batch_size, tensors, base.n, PATCH_BUDGET) // base.n)


def patched_metrics(
    hooks: Hooks,
    grids: Sequence[Sites],
    metric: Metric,
    base: Batch,
    source: list[Tensor],
    batch_size: int | None,
    show_progress: bool,
) -> list[Tensor]:
    """The metric with each site of ``grids`` patched from ``source`` (each key's value at the
    source prompt) into a run of ``base``: per grid, ``(N, *grid)``."""
    n, device = base.n, source[0].device
    sites: list[tuple[int, int]] = []  # global site -> (row of hooks.of_row, local site)
    grids_of: list[tuple[int, ...]] = []
    masks: list[Tensor] = []  # per grid row: (K + 1, *shape), the last one patches nothing
    row = 0
    for sites_ in grids:
        shapes = []
        for r in range(len(sites_.modules)):
            value = source[hooks.key_of[row]]
            m = sites_.masks(r, value.shape[1:], device)
            masks.append(torch.cat([m, m.new_zeros((1, *m.shape[1:]))]))
            sites += [(row, k) for k in range(len(m))]
            shapes.append(sites_.sub_grid(r, value.shape[1:]))
            row += 1
        if len(set(shapes)) > 1:
            raise ArgumentError(
                f"the modules of one site grid give different grids {sorted(set(shapes))}; use one grid each"
            )
        grids_of.append((len(sites_.modules), *shapes[0]))
    step = sites_per_chunk(batch_size, base)
    everyone = torch.arange(n, device=device)
    out: list[Tensor] = []
    chunks = progress(range(0, len(sites), step), show_progress, "patching", math.ceil(len(sites) / step))
    with torch.no_grad():
        for first in chunks:
            chunk = sites[first : first + step]
            count = len(chunk)
            example = everyone.repeat(count)
            local: dict[Any, Any] = {}
            for c, (r, k) in enumerate(chunk):
                local.setdefault(r, [len(masks[r]) - 1] * count)[c] = k
            by_key: dict[int, list[tuple[int, Tensor]]] = {}
            for r, ks in local.items():
                idx = torch.tensor(ks, device=device).repeat_interleave(n)
                by_key.setdefault(hooks.key_of[r], []).append((r, idx))

            def patch(q: int, v: Tensor, by_key: dict = by_key, example: Tensor = example) -> Tensor | None:
                if q not in by_key:
                    return None
                src = source[q].index_select(0, example)
                for r, idx in by_key[q]:
                    v = torch.where(masks[r][idx], src, v)
                return v

            with hooks.on(patch, count * n):
                values = check_metric(metric(base.rows(example).run(hooks.model)), count * n)
            out.append(values.reshape(count, n))
    flat = torch.cat(out).T  # (N, S)
    parts = flat.split([math.prod(g) for g in grids_of], dim=1)
    return [part.reshape(n, *g) for part, g in zip(parts, grids_of)]
