"""Activation patching and its first-order estimate, attribution patching (AtP, AtP*'s GradDrop)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError, check_batch_size
from .._core.state import in_eval
from ._run import Batch, Gradients, Hooks, Metric, Prompt, check_direction, check_metric, patched_metrics
from .qk import qk_effects
from .sites import Sites

SiteSpec = Sites | Mapping[str, Sites]
Patcher = Callable[[Prompt, Prompt], Any]
SCORES = ("metric", "effect", "normalized")


def _grids(sites: Any) -> tuple[list[Sites], list[str] | None]:
    if isinstance(sites, Sites):
        return [sites], None
    if isinstance(sites, Mapping) and sites and all(isinstance(s, Sites) for s in sites.values()):
        return list(sites.values()), list(sites)
    raise ArgumentError(
        "sites must be a pa.patching.Sites grid (pa.patching.layers / positions / heads) or a dict of them"
    )


def _check_config(model: Any, metric: Any, direction: str, score: str) -> None:
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be an nn.Module (patching intercepts its modules), got {type(model).__name__}")
    if not callable(metric):
        raise ArgumentError("metric must be a callable: model output -> one number per example, shape (N,)")
    check_direction(direction)
    if score not in SCORES:
        raise ArgumentError(f"score={score!r}; choose one of {SCORES}")


def _prompts(clean: Prompt, corrupted: Prompt, direction: str) -> tuple[Batch, Batch]:
    """``(base, source)``: the run that is patched and the run the patched values come from."""
    c, x = Batch.of(clean, "clean"), Batch.of(corrupted, "corrupted")
    c.check_aligned(x, ("clean", "corrupted"))
    return (c, x) if direction == "noising" else (x, c)


def _scored(values: Tensor, score: str, base: Tensor, source: Tensor, effect: bool) -> Tensor:
    """``values`` (metric values, or effects with ``effect``) as the ``score`` asked for."""
    shape = (-1,) + (1,) * (values.dim() - 1)
    delta = values if effect else values - base.reshape(shape)
    if score == "effect":
        return delta
    if score == "normalized":
        return delta / (source - base).reshape(shape)
    return base.reshape(shape) + delta


def _out(results: list[Tensor], names: list[str] | None) -> Any:
    return results[0] if names is None else dict(zip(names, results))


def activation_patching(
    model: nn.Module,
    sites: SiteSpec,
    metric: Metric,
    *,
    direction: str = "noising",
    score: str = "metric",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Patcher:
    """Activation patching: the metric with each site's value taken from another run.

    For every site ``s`` and example ``i``: run the model on the *base* prompt with the value
    ``a_s`` replaced by its value on the *source* prompt, and read ``metric``::

        noising:   m_s = metric(f(clean | a_s <- a_s(corrupted)))
        denoising: m_s = metric(f(corrupted | a_s <- a_s(clean)))

    All sites of a call go through the model in batched forwards (copies of the batch, one
    site each, ``batch_size`` rows at most), not one forward per site. Sites on different
    modules and several grids (a dict) share those forwards. The model runs in eval mode
    (each module's flag restored after).

    Args:
        model: The model (an ``nn.Module``; a Hugging Face model as it is).
        sites: A :class:`Sites` grid (:func:`layers`, :func:`positions`, :func:`heads`) or a
            dict of them (the result is then a dict).
        metric: ``model output -> (rows,)``, one number per row, e.g. :func:`logit_diff`. Rows
            come as whole copies of the batch in order, so a per-example tensor ``y`` lines up
            as ``y.repeat(rows // N)``.
        direction: ``"noising"`` (run clean, patch corrupted values in: what breaks the
            behaviour) or ``"denoising"`` (run corrupted, patch clean values in: what restores
            it; TransformerLens's ``get_act_patch_*``).
        score: ``"metric"`` (the patched metric), ``"effect"`` (``m_s - m_base``) or
            ``"normalized"`` (``(m_s - m_base) / (m_source - m_base)``: 0 no effect, 1 the whole
            switch).
        batch_size: Most rows per forward pass; None lets pyattrib choose.
        show_progress: A progress bar over the chunks.

    Returns:
        ``patcher(clean, corrupted) -> (N, *grid)`` scores; ``clean`` and ``corrupted`` are
        tensors, tuples of tensors (positional inputs) or mappings (keyword inputs such as
        ``input_ids`` and ``attention_mask``), aligned position by position.

    Example:
        >>> sites = pa.patching.positions(gpt2.transformer.h, to_input=True)
        >>> patch = pa.patching.activation_patching(gpt2, sites, pa.patching.logit_diff(3, 5))
        >>> patch(clean_ids, corrupted_ids).shape
        torch.Size([2, 2, 6])

    References:
        - Meng et al., `Locating and Editing Factual Associations in GPT
          <https://arxiv.org/abs/2202.05262>`_, NeurIPS 2022.
        - Heimersheim & Nanda, `How to use and interpret activation patching
          <https://arxiv.org/abs/2404.15255>`_, 2024.
    """
    _check_config(model, metric, direction, score)
    check_batch_size(batch_size)
    grids, names = _grids(sites)
    hooks = Hooks(model, grids)

    def patcher(clean: Prompt, corrupted: Prompt) -> Any:
        base, source = _prompts(clean, corrupted, direction)
        with in_eval(model), torch.no_grad():
            values, out = hooks.read(source, source.n)
            m_source = check_metric(metric(out), source.n)
            m_base = check_metric(metric(base.run(model)), base.n) if score != "metric" else m_source
            results = patched_metrics(hooks, grids, metric, base, values, batch_size, show_progress)
        return _out([_scored(r, score, m_base, m_source, False) for r in results], names)

    return patcher


def attribution_patching(
    model: nn.Module,
    sites: SiteSpec,
    metric: Metric,
    *,
    direction: str = "noising",
    score: str = "metric",
    grad_drop: bool | Sequence[nn.Module | Sequence[nn.Module]] = False,
    qk_fix: bool = False,
) -> Patcher:
    """Attribution patching (AtP): activation patching's first-order estimate, for every site
    at once from one forward pass of each prompt and one backward pass::

        m_s ~ m_base + sum_{j in s} (a_j(source) - a_j(base)) * d metric / d a_j |_base

    ``grad_drop`` gives AtP*'s GradDrop instead, which finds the sites whose direct and
    indirect effects cancel at first order: the backward pass is repeated ``L`` times, the
    ``l``-th with no gradient through layer ``l``'s modules, and
    ``c_s = 1 / (L - 1) sum_l |c_s^(l)|`` (an estimate of ``|effect|``; ``score="effect"``).

    Same sites, directions and output shapes as :func:`activation_patching`, so the two can be
    compared directly.

    Args:
        model: The model (an ``nn.Module``).
        sites: A :class:`Sites` grid or a dict of them.
        metric: ``model output -> (N,)``, differentiable.
        direction: ``"noising"`` or ``"denoising"`` (see :func:`activation_patching`).
        score: ``"metric"``, ``"effect"`` or ``"normalized"`` (see :func:`activation_patching`).
        grad_drop: False (AtP); True (GradDrop over the attention and MLP modules of each block
            of a GPT-2 or Llama-style model, found as :func:`residual_stream` finds them); or
            the modules to drop, one entry (a module or a list of them) per layer.
        qk_fix: Recompute the attention softmax for query and key sites (eager attention).

    Returns:
        ``patcher(clean, corrupted) -> (N, *grid)`` estimates.

    Example:
        >>> sites = pa.patching.heads(gpt2)
        >>> atp = pa.patching.attribution_patching(gpt2, sites, pa.patching.logit_diff(3, 5))
        >>> atp(clean_ids, corrupted_ids).shape
        torch.Size([2, 2, 4])

    References:
        - Nanda, `Attribution Patching: Activation Patching At Industrial Scale
          <https://www.neelnanda.io/mechanistic-interpretability/attribution-patching>`_, 2023.
        - Kramár et al., `AtP*: An efficient and scalable method for localizing LLM behaviour
          to components <https://arxiv.org/abs/2403.00745>`_, 2024.
    """
    _check_config(model, metric, direction, score)
    grids, names = _grids(sites)
    hooks = Hooks(model, grids)
    drops = _drop_layers(model, grad_drop)
    watch = [a for s in grids if qk_fix and s.role is not None for a in s.attention or ()]
    if qk_fix and not watch:
        raise ArgumentError("qk_fix applies to query and key sites: pass pa.patching.queries(model) or keys(model)")
    if drops and score == "metric":
        raise ArgumentError("grad_drop estimates |effect|, not the metric: pass score='effect' or 'normalized'")

    def patcher(clean: Prompt, corrupted: Prompt) -> Any:
        base, source = _prompts(clean, corrupted, direction)
        with in_eval(model):
            with torch.no_grad():
                src, out = hooks.read(source, source.n)
                m_source = check_metric(metric(out), source.n)
            grad = hooks.gradients(base, metric, base.n, watch=watch)
            if not drops:
                effects = _estimates(hooks, grids, qk_fix, base, src, grad)
            else:
                per_layer = []
                for layer in drops:
                    dropped = hooks.gradients(base, metric, base.n, drop=layer, watch=watch)
                    per_layer.append(_estimates(hooks, grids, qk_fix, base, src, dropped._replace(values=grad.values)))
                effects = [
                    cast(Tensor, sum(e[k].abs() for e in per_layer)) / (len(drops) - 1) for k in range(len(grids))
                ]
        return _out([_scored(e, score, grad.metric, m_source, True) for e in effects], names)

    return patcher


def _estimates(
    hooks: Hooks, grids: list[Sites], qk: bool, base: Batch, src: list[Tensor], grad: Gradients
) -> list[Tensor]:
    """Per grid ``(N, *grid)``: the first-order estimate, or for query and key grids with
    ``qk``, the estimate through the recomputed attention pattern."""
    out, row, watched = [], 0, 0
    for sites, first in zip(grids, _first_order(hooks, grids, src, grad.values, grad.grads)):
        if qk and sites.role is not None:
            layers = len(sites.modules)
            first = qk_effects(hooks, sites, row, base, src, grad.watched[watched : watched + layers])
            watched += layers
        out.append(first)
        row += len(sites.modules)
    return out


def _first_order(
    hooks: Hooks, grids: list[Sites], src: list[Tensor], at: list[Tensor], grads: list[Tensor]
) -> list[Tensor]:
    """``(N, *grid)`` per grid: ``sum over each site's mask of (src - at) * grad``."""
    out, row = [], 0
    for sites in grids:
        per_module = []
        for r in range(len(sites.modules)):
            q = hooks.key_of[row]
            prod = ((src[q] - at[q]) * grads[q]).flatten(1)
            masks = sites.masks(r, at[q].shape[1:], prod.device).flatten(1).to(prod.dtype)
            sub = sites.sub_grid(r, at[q].shape[1:])
            per_module.append((prod @ masks.T).reshape(len(prod), *sub))
            row += 1
        out.append(torch.stack(per_module, dim=1))
    return out


def _drop_layers(model: nn.Module, grad_drop: Any) -> list[list[nn.Module]]:
    if grad_drop is False or grad_drop is None:
        return []
    if grad_drop is True:
        from .graph import residual_stream

        return [[b.attention, b.mlp] for b in residual_stream(model).blocks]
    layers = [[g] if isinstance(g, nn.Module) else list(g) for g in grad_drop]
    if len(layers) < 2 or not all(isinstance(m, nn.Module) for g in layers for m in g):
        raise ArgumentError(
            "grad_drop takes True or a list of at least two layers (a module or a list of modules each)"
        )
    return layers


def logit_diff(correct: int | Tensor, wrong: int | Tensor | None = None, position: int | Tensor = -1) -> Metric:
    """The metric ``logit[correct] - logit[wrong]`` at one position (``logit[correct]`` alone
    without ``wrong``), one number per example.

    Args:
        correct: The answer's token or class: an int, or one per example ``(N,)``.
        wrong: The contrasting token: an int, one per example, or None.
        position: The sequence position read (default the last); one per example ``(N,)``
            for right-padded prompts of different lengths. Ignored for ``(N, V)`` outputs.

    Returns:
        ``metric(output) -> (rows,)``; reads ``output.logits`` where the output has it, and lines
        per-example values up with rows that are copies of the batch.

    Example:
        >>> metric = pa.patching.logit_diff(torch.tensor([1, 2]), torch.tensor([2, 1]))
        >>> metric(torch.tensor([[0.0, 1.0, 3.0], [0.0, 5.0, 1.0]]))
        tensor([-2., -4.])

    References:
        - Wang et al., `Interpretability in the Wild: a Circuit for Indirect Object
          Identification in GPT-2 small <https://arxiv.org/abs/2211.00593>`_, ICLR 2023.
    """

    def metric(output: Any) -> Tensor:
        logits = getattr(output, "logits", output)
        rows = logits.shape[0]
        if logits.dim() == 3:
            pos = _per_row(position, rows, logits.device)
            logits = logits[torch.arange(rows, device=logits.device), pos.remainder(logits.shape[1])]
        value = logits.gather(1, _per_row(correct, rows, logits.device)[:, None])[:, 0]
        if wrong is not None:
            value = value - logits.gather(1, _per_row(wrong, rows, logits.device)[:, None])[:, 0]
        return value

    return metric


def _per_row(value: int | Tensor, rows: int, device: torch.device) -> Tensor:
    if isinstance(value, int):
        return torch.full((rows,), value, dtype=torch.long, device=device)
    value = torch.as_tensor(value, device=device).long().reshape(-1)
    if rows % len(value):
        raise ArgumentError(f"a per-example value of length {len(value)} does not line up with {rows} rows")
    return value.repeat(rows // len(value))
