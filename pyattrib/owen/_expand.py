"""The expansion of a hierarchy into Owen values, every example's queue of clusters at once."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core.perturb import FeatureMask, evaluate_rows, example_rows

Forward = Callable[..., Any]


def _members(z: np.ndarray, n_f: int) -> np.ndarray:
    """``(2F - 1, F)`` booleans: the features of each node (leaves, then the linkage's clusters)."""
    m = np.zeros((2 * n_f - 1, n_f), dtype=bool)
    m[np.arange(n_f), np.arange(n_f)] = True
    for k, (a, b) in enumerate(z[:, :2].astype(int)):
        m[n_f + k] = m[a] | m[b]
    return m


def _expand(
    f: Forward,
    call: Any,
    base: tuple,
    mask: FeatureMask,
    zs: list[np.ndarray],
    budget: int,
    per_round: int,
    batch_size: Any,
    fill: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Owen values ``(N, K, F)``; example ``e`` expands its own linkage ``zs[e]`` (the same
    object for all, or one per example: a text's token tree). ``fill(rows, present)``: the
    masked rows made from the inputs and where their features are present (inpainting),
    instead of the baselines."""
    n, n_f = call.n, mask.n_features
    cache: dict[int, tuple[np.ndarray, list]] = {}
    for z in zs:
        if id(z) not in cache:
            cache[id(z)] = (_members(z, n_f), z[:, :2].astype(int).tolist())
    members = [cache[id(z)][0] for z in zs]
    kids = [cache[id(z)][1] for z in zs]  # each cluster's two halves, as Python ints
    root = 2 * n_f - 2

    def evaluate(coalitions: list[np.ndarray], examples: list[int]) -> Tensor:
        present = torch.as_tensor(np.array(coalitions), device=call.device)
        who = torch.as_tensor(examples, device=call.device, dtype=torch.long)

        def build(rows: Tensor) -> tuple[Tensor, ...]:
            i = who[rows]
            out = []
            for j, x in enumerate(call.inputs):
                ids = mask.rows(j, i)
                keep = present[rows].gather(1, ids.reshape(len(i), -1)).reshape(ids.shape)
                if fill is not None:
                    out.append(fill(x.index_select(0, i), keep))
                else:
                    out.append(torch.where(keep, x.index_select(0, i), example_rows(base[j], i)))
            return tuple(out)

        return (
            evaluate_rows(f, call, build, who, batch_size, every_output=True).reshape(len(examples), -1).double().cpu()
        )

    none, full = np.zeros(n_f, dtype=bool), np.ones(n_f, dtype=bool)
    ends = evaluate([none] * n + [full] * n, list(range(n)) * 2)
    k_out = ends.shape[1]
    dvalues = np.zeros((n, 2 * n_f - 1, k_out))
    counter = itertools.count()
    queues: list[list] = [
        [(0.0, next(counter), (none, ends[e].numpy(), ends[n + e].numpy(), root, 1.0))] for e in range(n)
    ]
    spent = [0] * n
    while any(queues):
        plans: list[tuple[int, tuple]] = []
        coalitions: list[np.ndarray] = []
        for e, q in enumerate(queues):
            if spent[e] >= budget:  # out of evaluations: each cluster left keeps its change
                for _, _, (_, f00, f11, ind, w) in q:
                    dvalues[e, ind] += (f11 - f00) * w
                q.clear()
                continue
            planned = 0
            while q and planned < per_round and spent[e] + planned < budget:
                _, _, (m00, f00, f11, ind, w) = heapq.heappop(q)
                if ind < n_f:
                    dvalues[e, ind] += (f11 - f00) * w
                    continue
                left, right = kids[e][ind - n_f]
                m10, m01 = m00 | members[e][left], m00 | members[e][right]
                plans.append((e, (m00, m10, m01, f00, f11, left, right, w)))
                coalitions += [m10, m01]
                planned += 2
        if not plans:
            continue
        out = evaluate(coalitions, [e for e, _ in plans for _ in (0, 1)]).numpy()
        f10s, f01s = out[0::2], out[1::2]
        f00s = np.stack([p[3] for _, p in plans])
        f11s = np.stack([p[4] for _, p in plans])
        halves = np.array([p[7] for _, p in plans]) / 2
        # the four children's priorities, all plans at once: -max_k |change| * weight
        change = np.stack([f10s - f00s, f01s - f00s, f11s - f01s, f11s - f10s], 1)  # (P, 4, K)
        priority = (-np.abs(change).max(2) * halves[:, None]).tolist()
        for k, (e, (m00, m10, m01, f00, f11, left, right, w)) in enumerate(plans):
            f10, f01, half = f10s[k], f01s[k], w / 2
            spent[e] += 2
            children = ((m00, f00, f10, left, half), (m00, f00, f01, right, half),
                        (m01, f01, f11, left, half), (m10, f10, f11, right, half))  # fmt: skip
            for c, args in enumerate(children):
                heapq.heappush(queues[e], (priority[k][c], next(counter), args))
    values = np.stack([_lower_credit(d, z, n_f) for d, z in zip(dvalues, zs)])  # (N, F, K)
    return torch.as_tensor(values, device=call.device).permute(0, 2, 1).to(call.inputs[0].dtype)


def _lower_credit(dvalues: np.ndarray, z: np.ndarray, n_f: int) -> np.ndarray:
    """Each cluster's value shared by its two halves in proportion to their sizes, down to the features."""
    values = dvalues.copy()
    size = lambda i: 1 if i < n_f else int(z[i - n_f, 3])  # noqa: E731
    stack: list[tuple[int, Any]] = [(2 * n_f - 2, 0.0)]
    while stack:
        i, inherited = stack.pop()
        values[i] = values[i] + inherited
        if i < n_f:
            continue
        left, right = (int(c) for c in z[i - n_f, :2])
        total = size(i)
        stack += [(left, values[i] * size(left) / total), (right, values[i] * size(right) / total)]
    return values[:n_f]
