"""The smallest attack parameter that makes the model wrong, per example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._core.errors import ArgumentError, check_count
from .._core.inputs import as_args, as_tuple, restore, select_examples
from .._core.targets import TargetLike
from .batches import forward_parts

MODES = ("linear", "binary")


@dataclass(frozen=True)
class MinParam:
    """Per example: ``params`` (shape ``(N,)``, NaN where no parameter in range broke it) and
    ``perturbed`` (the inputs, each broken example replaced by its attack at that parameter).

    Args:
        perturbed: The inputs, each broken example replaced by its attack at that parameter.
        params: ``(N,)``: the smallest breaking parameter per example (NaN where none in range broke
            it).

    Example:
        >>> attack = pa.robust.fgsm(model, loss_fn=torch.nn.functional.cross_entropy)
        >>> grid = dict(arg_name="epsilon", arg_min=0.0, arg_max=1.0, arg_step=0.25)
        >>> search = pa.robust.min_param_perturbation(model, attack, **grid)
        >>> found = search(x, target=y, attack_kwargs={"target": y})
        >>> found.perturbed.shape, found.params.shape
        (torch.Size([4, 8]), torch.Size([4]))
    """

    perturbed: Any
    params: Tensor


def argmax_correct(model_out: Tensor, target: TargetLike) -> Tensor:
    """Per example: the top output is the target.

    Args:
        model_out: The model's output, ``(N, C)``.
        target: The output to explain (see :data:`pyattrib.TargetLike`).

    Returns:
        Tensor: a bool per example.

    Example:
        >>> pa.robust.argmax_correct(model(x), y).shape
        torch.Size([4])
    """
    if not isinstance(model_out, Tensor) or model_out.dim() != 2:
        raise ArgumentError("the default correct_fn needs a 2-D model output (N, classes); pass correct_fn=")
    return model_out.argmax(1) == torch.as_tensor(target, device=model_out.device)


def min_param_perturbation(
    model: Callable[..., Any],
    attack: Callable[..., Any],
    *,
    arg_name: str,
    arg_min: float,
    arg_max: float,
    arg_step: float,
    mode: str = "linear",
    num_attempts: int = 1,
    preproc_fn: Callable | None = None,
    apply_before_preproc: bool = False,
    correct_fn: Callable[..., Any] | None = None,
    per_example: bool = True,
    batch_size: int | None = None,
) -> Callable[..., Any]:
    """Search ``arg_min, arg_min + arg_step, …, < arg_max`` for the smallest value of the
    attack's ``arg_name`` at which the model stops being correct.

    ``mode="linear"`` tries the values in order; ``"binary"`` bisects (assuming that a larger
    value breaks at least what a smaller one breaks). A value breaks when any of
    ``num_attempts`` attacks at it does (the first such attack is kept).
    ``correct_fn(model_out, target, **correct_fn_kwargs)`` says what is correct (default: the
    arg-max is the target).

    With ``per_example=True`` (tensor inputs) every example is searched on its own, all at
    once: at each step the attack runs on the examples still unbroken (per-example attack
    keyword arguments, tensors or lists with ``N`` entries, follow them), ``correct_fn``
    returns one bool per example, and each example stops at its own minimum. The call
    ``(inputs, *, target=None, additional_forward_args=None, attack_kwargs=None,
    correct_fn_kwargs=None)`` returns a :class:`MinParam`. With ``per_example=False`` the
    batch is one unit (Captum's semantics: ``correct_fn`` returns one bool, inputs may be
    anything the attack and ``preproc_fn`` take) and the call returns ``(attacked inputs,
    value)`` or ``(None, None)``. ``batch_size``: attempts per forward (``None``: all).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        attack: The attack: a callable ``(inputs, **kwargs) -> perturbed`` (e.g. an :func:`fgsm`
            attack).
        arg_name: The attack's argument searched over (e.g. ``"epsilon"``).
        arg_min: The first value tried.
        arg_max: Values stay below this.
        arg_step: The step between tried values.
        mode: ``"linear"`` tries the values in order; ``"binary"`` bisects.
        num_attempts: Attacks tried per value (a value breaks when any does).
        preproc_fn: Applied to the inputs before the model (an attack may run before or after it).
        apply_before_preproc: Attack the inputs before ``preproc_fn`` (else after).
        correct_fn: ``correct_fn(model_out, target, **kwargs)`` says which examples are correct; default
            :func:`argmax_correct`.
        per_example: Search every example on its own (else Captum's batch-wide search).
        batch_size: The most rows per model evaluation.

    Returns:
        A function ``(inputs, *, target=None, additional_forward_args=None, attack_kwargs=None,
        correct_fn_kwargs=None) -> MinParam``.

    Example:
        >>> attack = pa.robust.fgsm(model, loss_fn=torch.nn.functional.cross_entropy)
        >>> grid = dict(arg_name="epsilon", arg_min=0.0, arg_max=2.0, arg_step=0.5)
        >>> search = pa.robust.min_param_perturbation(model, attack, **grid)
        >>> search(x, target=y, attack_kwargs={"target": y}).params.shape
        torch.Size([4])
    """
    if mode not in MODES:
        raise ArgumentError(f"mode must be 'linear' or 'binary', got {mode!r}")
    if not arg_max > arg_min + arg_step:
        raise ArgumentError("arg_max must exceed arg_min + arg_step: the range holds no step")
    check_count("num_attempts", num_attempts)
    grid = []
    value = arg_min
    while value < arg_max:
        grid.append(value)
        value += arg_step
    correct = correct_fn or argmax_correct
    per_forward = num_attempts if batch_size is None else max(1, batch_size)

    def attempts(inputs: Any, prepared: Any, kwargs: dict, param: float) -> list[tuple[Any, Any]]:
        """``num_attempts`` pairs (what the model sees, the attacked inputs)."""
        pairs = []
        for _ in range(num_attempts):
            if apply_before_preproc:
                attacked = attack(inputs, **kwargs, **{arg_name: param})
                pairs.append((preproc_fn(attacked) if preproc_fn else attacked, attacked))
            else:
                attacked = attack(prepared, **kwargs, **{arg_name: param})
                pairs.append((attacked, attacked))
        return pairs

    def broken(pairs: list[tuple[Any, Any]], args: tuple, target: TargetLike, extra: dict) -> tuple[Tensor, list[Any]]:
        """Per attempt, which units it broke: ``(attempts, units)`` bools."""
        rows = []
        for start in range(0, len(pairs), per_forward):
            group = [seen for seen, _ in pairs[start : start + per_forward]]
            for out in forward_parts(model, group, args):
                ok = torch.as_tensor(correct(out, **({"target": target} if target is not None else {}), **extra))
                ok = ok.bool().reshape(-1)
                if not per_example:
                    ok = ok.all().reshape(1)
                elif ok.numel() == 1:
                    ok = ok.expand(len(out))
                rows.append(~ok)
        return torch.stack(rows), [attacked for _, attacked in pairs]

    def search(units: int, tries: Callable[[int, Tensor], tuple[Tensor, list[Any]]]) -> tuple[Tensor, dict]:
        """Grid index of the smallest breaking value per unit (``len(grid)``: none) and, for each
        unit found, ``(attempt results, attempt, position among the units tried)``."""
        found = torch.full((units,), len(grid), dtype=torch.long)
        kept: dict[int, tuple[list[Any], int, int]] = {}

        def run(k: int, who: Tensor) -> Tensor:
            hits, attacked = tries(k, who)
            hit = hits.any(0)
            first = hits.int().argmax(0)
            for pos, unit in enumerate(who.tolist()):
                if hit[pos]:
                    kept[unit] = (attacked, int(first[pos]), pos)
            return hit

        if mode == "linear":
            for k in range(len(grid)):
                who = (found == len(grid)).nonzero().reshape(-1)
                if not len(who):
                    break
                found[who[run(k, who)]] = k
            return found, kept
        lo, hi = torch.zeros(units, dtype=torch.long), found.clone()
        while bool((lo < hi).any()):
            mid = (lo + hi) // 2
            for k in torch.unique(mid[lo < hi]).tolist():
                who = ((mid == k) & (lo < hi)).nonzero().reshape(-1)
                hit = run(k, who)
                hi[who[hit]] = k
                lo[who[~hit]] = k + 1
        return hi, kept

    def evaluate(
        inputs: Any, *, target: TargetLike = None, additional_forward_args: Any = None,
        attack_kwargs: dict[str, Any] | None = None, correct_fn_kwargs: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        kwargs, extra, args = dict(attack_kwargs or {}), dict(correct_fn_kwargs or {}), as_args(additional_forward_args)
        prepared = preproc_fn(inputs) if preproc_fn else inputs
        if not per_example:
            found, kept = search(
                1, lambda k, who: broken(attempts(inputs, prepared, kwargs, grid[k]), args, target, extra)
            )
            if int(found[0]) == len(grid):
                return None, None
            attacked, first, _ = kept[0]
            return attacked[first], grid[int(found[0])]
        xs, was_tuple = as_tuple(inputs)
        n = xs[0].shape[0]

        def tries(k: int, who: Tensor) -> tuple[Tensor, list[Any]]:
            pick = who.to(xs[0].device)
            sub = restore([x.index_select(0, pick) for x in xs], was_tuple)
            sub_kwargs = {key: select_examples(v, n, pick) for key, v in kwargs.items()}
            sub_prepared = preproc_fn(sub) if preproc_fn else sub
            sub_args = tuple(select_examples(a, n, pick) for a in args)
            return broken(
                attempts(sub, sub_prepared, sub_kwargs, grid[k]), sub_args, select_examples(target, n, pick), extra
            )

        found, kept = search(n, tries)
        out = [x.clone() for x in xs]
        for unit, (attacked, first, pos) in kept.items():
            if int(found[unit]) == len(grid):
                continue
            for j, a in enumerate(as_tuple(attacked[first], "attacked inputs")[0]):
                out[j][unit] = a[pos]
        params = torch.tensor([grid[k] if k < len(grid) else float("nan") for k in found.tolist()], dtype=torch.float64)
        return MinParam(restore(out, was_tuple), params)

    return evaluate
