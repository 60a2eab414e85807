"""The expansion of a hierarchy into Owen values, every example's queue of clusters at once."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core.budget import row_cost
from .._core.layout import feeder
from .._core.perturb import FeatureMask, evaluate_rows, example_rows

Forward = Callable[..., Any]
LOOKAHEAD_COST = 256  # input elements per example from which a single example evaluates ahead


class Tree:
    """A hierarchy as each node's children: leaves ``0 .. F - 1`` (none), inner nodes after them,
    the root last. A linkage matrix gives two children per node; a nested tuple as many as it
    holds."""

    def __init__(self, kids: list[list[int]], n_f: int) -> None:
        self.kids, self.n_f, self.root = kids, n_f, len(kids) - 1
        self.members = np.zeros((len(kids), n_f), dtype=bool)
        self.members[np.arange(n_f), np.arange(n_f)] = True
        for node in range(n_f, len(kids)):
            self.members[node] = self.members[kids[node]].any(0)
        self.sizes = self.members.sum(1)

    @staticmethod
    def of_linkage(z: np.ndarray, n_f: int) -> Tree:
        return Tree([[] for _ in range(n_f)] + z[:, :2].astype(int).tolist(), n_f)

    @staticmethod
    def of_nested(tree: Any, n_f: int) -> Tree:
        """A nested tuple of feature ids as written (a tuple of one member is that member)."""
        kids: list[list[int]] = [[] for _ in range(n_f)]

        def node(t: Any) -> int:
            if isinstance(t, (int, np.integer)):
                return int(t)
            members = [node(c) for c in t]
            if len(members) == 1:
                return members[0]
            kids.append(members)
            return len(kids) - 1

        node(tree)
        return Tree(kids, n_f)


def _expand(
    f: Forward,
    call: Any,
    base: tuple,
    mask: FeatureMask,
    trees: list[Tree],
    budget: int,
    per_round: int,
    batch_size: Any,
    fill: Callable[[Tensor, Tensor], Tensor] | None = None,
    background: tuple[Tensor, ...] | None = None,
    lookahead: int | None = None,
) -> Tensor:
    """Owen values ``(N, K, F)``; example ``e`` expands its own tree ``trees[e]`` (the same object
    for all, or one per example: a text's token tree). ``fill(rows, present)``: the masked rows
    made from the inputs and where their features are present (inpainting), instead of the
    baselines. ``background``: ``B`` rows per input; each coalition's value is the mean output
    over them, every row completing the coalition (shap's maskers with a background dataset).
    ``lookahead``: levels of coalitions that this round's halves will need, evaluated with this
    round's (the contexts are known before the values, so the order and values are unchanged):
    fewer, larger model calls. None: three levels for a single example whose rows are large
    (``LOOKAHEAD_COST`` input elements, token ids counting ``ID_WIDTH`` each: a round's call is
    mostly the model's work; measured on a 16-token BERT explanation at max_evals=500: 42.6 ms
    with one level, 29.1 ms with two, 20.1 ms with three, 20.6 ms with four; a 30-feature MLP's
    takes 7.8 ms with none and 9.5 ms with one, so small rows keep none); none for a batch, whose
    rounds are large already (16 MLP rows: 53 ms with none, 100 ms with one)."""
    n, n_f = call.n, mask.n_features
    if lookahead is None:  # one example with large rows: its rounds' calls cost mostly the model call itself
        lookahead = 3 if n == 1 and row_cost(call.inputs) >= LOOKAHEAD_COST else 0
    dtype: list[torch.dtype] = []  # the model's output dtype: the values' (inputs may be token ids)

    copies = len(background[0]) if background is not None else 1
    fed = feeder(f, call.inputs, backward=False)  # once: the rounds are many and small

    def evaluate(coalitions: list[np.ndarray], examples: list[int]) -> Tensor:
        present = torch.as_tensor(np.array(coalitions), device=call.device)
        who = torch.as_tensor(examples, device=call.device, dtype=torch.long)
        which = who
        if copies > 1:  # each coalition once per background row
            present, who = present.repeat_interleave(copies, 0), who.repeat_interleave(copies)
            which = torch.arange(copies, device=call.device).repeat(len(examples))

        def build(rows: Tensor) -> tuple[Tensor, ...]:
            whole = len(rows) == len(who)  # one evaluation: rows are all of them, in order
            i, here, out = (who, present, []) if whole else (who[rows], present[rows], [])
            for j, x in enumerate(call.inputs):
                keep = mask.present(j, i, here)
                if fill is not None:
                    out.append(fill(x.index_select(0, i), keep))
                else:
                    rest = background[j].index_select(0, which[rows]) if background else example_rows(base[j], i)
                    out.append(torch.where(keep, x.index_select(0, i), rest))
            return tuple(out)

        out = evaluate_rows(f, call, build, who, batch_size, every_output=True, fed=fed)
        if not dtype:
            dtype.append(out.dtype)
        out = out.reshape(len(examples), copies, -1).double()
        return (out.mean(1) if copies > 1 else out[:, 0]).cpu()

    none, full = np.zeros(n_f, dtype=bool), np.ones(n_f, dtype=bool)
    ends = evaluate([none] * n + [full] * n, list(range(n)) * 2)
    k_out = ends.shape[1]
    dvalues = [np.zeros((len(t.kids), k_out)) for t in trees]
    counter = itertools.count()
    queues: list[list] = [
        [(0.0, next(counter), (none, ends[e].numpy(), ends[n + e].numpy(), trees[e].root, 1.0))] for e in range(n)
    ]
    spent = [0] * n
    known: dict[tuple[int, bytes], np.ndarray] = {}  # (example, coalition) -> value, evaluated ahead

    def values_of(coalitions: list[np.ndarray], examples: list[int], pairs: list) -> np.ndarray:
        """The coalitions' values: those evaluated ahead from ``known``, the rest in one evaluation
        together with the coalitions that expanding this round's halves will need (``lookahead``
        levels down: the contexts are known before the values, so the order is unchanged)."""
        if not lookahead:
            return evaluate(coalitions, examples).numpy()
        keys = [(e, c.tobytes()) for e, c in zip(examples, coalitions)]
        missing = {k: (e, c) for k, e, c in zip(keys, examples, coalitions) if k not in known}
        if missing:
            for e, plan in pairs:
                m00, m10, m01, _, _, left, right, *_ = plan
                frontier = [(m00, left), (m00, right), (m01, left), (m10, right)]
                for _ in range(lookahead):
                    ahead = []
                    for context, node in frontier:
                        kids = trees[e].kids[node]
                        if len(kids) != 2:
                            continue
                        a, b = context | trees[e].members[kids[0]], context | trees[e].members[kids[1]]
                        for c in (a, b):
                            k = (e, c.tobytes())
                            if k not in known and k not in missing:
                                missing[k] = (e, c)
                        ahead += [(context, kids[0]), (context, kids[1]), (b, kids[0]), (a, kids[1])]
                    frontier = ahead
            rows = list(missing.items())
            out = evaluate([c for _, (_, c) in rows], [e for _, (e, _) in rows]).numpy()
            known.update((k, v) for (k, _), v in zip(rows, out))
        return np.stack([known[k] for k in keys])

    while any(queues):
        pairs: list[tuple[int, tuple]] = []  # two children: shap's expansion
        wide: list[tuple[int, tuple, int]] = []  # more: every coalition of the children
        coalitions: list[np.ndarray] = []
        examples: list[int] = []
        for e, q in enumerate(queues):
            if spent[e] >= budget:  # out of evaluations: each cluster left keeps its change
                for _, _, (_, f00, f11, ind, w) in q:
                    dvalues[e][ind] += (f11 - f00) * w
                q.clear()
                continue
            tree, planned = trees[e], 0
            while q and planned < per_round and spent[e] + planned < budget:
                _, _, (m00, f00, f11, ind, w) = heapq.heappop(q)
                kids = tree.kids[ind]
                cost = 2 ** len(kids) - 2
                if not kids or spent[e] + planned + cost > budget:
                    dvalues[e][ind] += (f11 - f00) * w
                    continue
                if len(kids) == 2:
                    m10, m01 = m00 | tree.members[kids[0]], m00 | tree.members[kids[1]]
                    pairs.append((e, (m00, m10, m01, f00, f11, kids[0], kids[1], w, len(coalitions))))
                    coalitions += [m10, m01]
                else:
                    masks = [m00 | tree.members[[k for b, k in enumerate(kids) if t >> b & 1]].any(0)
                             for t in range(1, 2 ** len(kids) - 1)]  # fmt: skip
                    wide.append((e, (m00, f00, f11, kids, w), len(coalitions)))
                    coalitions += masks
                examples += [e] * cost
                planned += cost
        if not coalitions:
            continue
        out = values_of(coalitions, examples, pairs)
        _push_pairs(pairs, out, queues, spent, counter)
        _push_wide(wide, out, queues, spent, counter, trees)
    values = np.stack([_lower_credit(d, t) for d, t in zip(dvalues, trees)])  # (N, F, K)
    first = call.inputs[0]
    kind = first.dtype if first.is_floating_point() else dtype[0] if dtype[0].is_floating_point else torch.float32
    return torch.as_tensor(values, device=call.device).permute(0, 2, 1).to(kind)


def _push_pairs(pairs: list, out: np.ndarray, queues: list, spent: list, counter: Any) -> None:
    """Each half of a two-child cluster in the contexts without and with the other half, at
    half the weight, prioritised by ``max |change| * weight`` (all plans at once)."""
    if not pairs:
        return
    at = np.array([p[8] for _, p in pairs])
    f10s, f01s = out[at], out[at + 1]
    f00s = np.array([p[3] for _, p in pairs])
    f11s = np.array([p[4] for _, p in pairs])
    halves = np.array([p[7] for _, p in pairs]) / 2
    change = np.stack([f10s - f00s, f01s - f00s, f11s - f01s, f11s - f10s], 1)  # (P, 4, K)
    priority = (-np.abs(change).max(2) * halves[:, None]).tolist()
    for k, (e, (m00, m10, m01, f00, f11, left, right, w, _)) in enumerate(pairs):
        f10, f01, half = f10s[k], f01s[k], w / 2
        spent[e] += 2
        children = ((m00, f00, f10, left, half), (m00, f00, f01, right, half),
                    (m01, f01, f11, left, half), (m10, f10, f11, right, half))  # fmt: skip
        for c, args in enumerate(children):
            heapq.heappush(queues[e], (priority[k][c], next(counter), args))


def _push_wide(wide: list, out: np.ndarray, queues: list, spent: list, counter: Any, trees: list[Tree]) -> None:
    """Each child of an ``m``-ary cluster in every context ``T`` of the other children, with the
    Shapley weight ``|T|! (m - |T| - 1)! / m!`` of the game among the children."""
    for e, (m00, f00, f11, kids, w), at in wide:
        m = len(kids)
        spent[e] += 2**m - 2
        value = {0: f00, 2**m - 1: f11} | {t: out[at + t - 1] for t in range(1, 2**m - 1)}
        for b, kid in enumerate(kids):
            for t in range(2**m):
                if t >> b & 1:
                    continue
                size = bin(t).count("1")
                weight = w * math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                context = m00 | trees[e].members[[k for j, k in enumerate(kids) if t >> j & 1]].any(0)
                before, after = value[t], value[t | 1 << b]
                priority = -float(np.abs(after - before).max()) * weight
                heapq.heappush(queues[e], (priority, next(counter), (context, before, after, kid, weight)))


def _lower_credit(dvalues: np.ndarray, tree: Tree) -> np.ndarray:
    """Each cluster's value shared by its children in proportion to their sizes, down to the features."""
    values = dvalues.copy()
    stack: list[tuple[int, Any]] = [(tree.root, 0.0)]
    while stack:
        i, inherited = stack.pop()
        values[i] = values[i] + inherited
        total = tree.sizes[i]
        stack += [(k, values[i] * tree.sizes[k] / total) for k in tree.kids[i]]
    return values[: tree.n_f]
