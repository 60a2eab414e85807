"""Owen values over a hierarchy of features (shap's PartitionExplainer), batched over examples.

A binary hierarchy (a scipy linkage matrix over the ``F`` feature groups, or a nested tuple)
splits the features recursively. Explaining a cluster ``C`` in a context ``S`` (the features
outside ``C`` already present) costs two evaluations, ``v(S + L)`` and ``v(S + R)`` for its two
halves; each half is then explained in the contexts ``S`` and ``S + other half``, each with half
the weight. Fully expanded this is the Owen value of the hierarchy (the Shapley value played
between the two halves at every level); ``max_evals`` stops the expansion, largest changes
first, and leaves the unexpanded clusters' changes on them, shared by their features in
proportion to their sizes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._core.attributor import Attributor
from ._core.errors import ArgumentError, check_batch_size, check_count
from ._core.inputs import BaselineLike
from ._core.perturb import FeatureMask, evaluate_rows, example_rows, prepare_perturbation, squeeze_outputs
from ._core.state import evaluating
from ._core.targets import TargetLike

Forward = Callable[..., Any]
PER_EXAMPLE = ("baselines", "target", "additional_forward_args", "feature_mask")


def correlation_hierarchy(data: Any) -> np.ndarray:
    """The hierarchy shap's ``Partition`` masker builds from data: single-linkage clustering of
    the columns by correlation distance (``1 - corr``), as a scipy linkage matrix.

    Args:
        data: ``(samples, F)`` values of the ``F`` features (a tensor or an array).

    Returns:
        The ``(F - 1, 4)`` linkage matrix.

    Example:
        >>> pa.owen.correlation_hierarchy(torch.randn(50, 4)).shape
        (3, 4)
    """
    from scipy.cluster.hierarchy import single
    from scipy.spatial.distance import pdist

    values = np.asarray(data.detach().cpu() if isinstance(data, Tensor) else data, dtype=np.float64)
    return single(pdist(values.T, metric="correlation"))


def tree_hierarchy(tree: Any) -> np.ndarray:
    """A nested tuple of feature ids, e.g. ``((0, 1), (2, (3, 4)))``, as a linkage matrix (each
    tuple of more than two members split into its first member and the rest).

    Args:
        tree: Nested tuples (or lists) of ints ``0 .. F - 1``, each int once.

    Returns:
        The ``(F - 1, 4)`` linkage matrix (distance 1, cluster sizes in the last column).

    Example:
        >>> pa.owen.tree_hierarchy(((0, 1), 2)).tolist()
        [[0.0, 1.0, 1.0, 2.0], [3.0, 2.0, 1.0, 3.0]]
    """
    leaves = sorted(_leaves(tree))
    n_f = len(leaves)
    if leaves != list(range(n_f)):
        raise ArgumentError(f"hierarchy must hold every feature 0..{n_f - 1} exactly once, got {leaves}")
    rows: list[list[float]] = []

    def node(t: Any) -> tuple[int, int]:
        if isinstance(t, (int, np.integer)):
            return int(t), 1
        t = list(t)
        if len(t) == 1:
            return node(t[0])
        left, (right, size_r) = node(t[0]), node(t[1] if len(t) == 2 else tuple(t[1:]))
        rows.append([left[0], right, 1.0, left[1] + size_r])
        return n_f + len(rows) - 1, left[1] + size_r

    node(tree)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _leaves(tree: Any) -> list[int]:
    if isinstance(tree, (int, np.integer)):
        return [int(tree)]
    return [leaf for t in tree for leaf in _leaves(t)]


def _check_linkage(linkage: Any, n_f: int) -> np.ndarray:
    z = np.asarray(linkage, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != n_f - 1 or z.shape[1] < 2:
        raise ArgumentError(
            f"hierarchy: a linkage matrix over {n_f} feature groups has shape ({n_f - 1}, 4), got {z.shape}; its "
            "features are the columns, or the groups of feature_mask"
        )
    children = z[:, :2].astype(int).ravel()
    if sorted(children.tolist()) != list(range(2 * n_f - 2)):
        raise ArgumentError(
            "hierarchy does not cover every feature exactly once: each feature and each inner cluster must be "
            f"merged exactly once (ids 0..{2 * n_f - 3})"
        )
    sizes = np.ones(2 * n_f - 1)
    for k, (a, b) in enumerate(z[:, :2].astype(int)):
        sizes[n_f + k] = sizes[a] + sizes[b]
    return np.column_stack([z[:, :2], z[:, 2] if z.shape[1] > 2 else np.ones(n_f - 1), sizes[n_f:]])


def owen_values(
    f: Forward,
    *,
    hierarchy: Any,
    max_evals: int = 500,
    expansion_batch: int = 10,
    batch_size: int | None = None,
) -> Attributor:
    r"""Owen values of the feature groups over a binary ``hierarchy`` (shap's PartitionExplainer).

    For a cluster :math:`C = L \cup R` explained in context :math:`S` with weight :math:`w`
    (the root: :math:`S = \emptyset`, :math:`w = 1`), with :math:`v(T) = f(x_T, x'_{rest})`:

    .. math:: L \text{ in } S \text{ and in } S \cup R, \quad R \text{ in } S \text{ and in } S \cup L,
              \quad \text{each with weight } w / 2

    and a single feature :math:`i` explained in :math:`S` receives
    :math:`w\,(v(S \cup \{i\}) - v(S))`. Clusters are expanded largest change first
    (:math:`\max |v(S \cup C) - v(S)| \cdot w`), ``expansion_batch`` of each example's evaluations at
    a time (shap's ``batch_size``, which sets the order when ``max_evals`` binds); when ``max_evals``
    evaluations are spent, each cluster left receives :math:`w\,(v(S \cup C) - v(S))`, shared by its
    features in proportion to their number. Every example follows its own order; their rows are
    evaluated together, in chunks of ``batch_size``. The values always add up to
    :math:`f(x) - f(x')`. Ties in the order are broken by insertion (shap breaks them at random).

    Args:
        f: The model, or a function of the inputs returning one output row per example.
        hierarchy: A scipy linkage matrix ``(F - 1, 4)`` over the ``F`` feature groups (the elements
            of a single input, or the groups of ``feature_mask``), e.g. from
            :func:`pyattrib.owen.correlation_hierarchy`; or a nested tuple of group ids
            (:func:`pyattrib.owen.tree_hierarchy`).
        max_evals: Model evaluations per example, the two ends included.
        expansion_batch: Evaluations planned per example before the results reorder the expansion.
        batch_size: Rows per model evaluation (None: pyattrib's rule).

    Returns:
        Attributor: call it as ``(inputs, baselines=None, *, target=None, additional_forward_args=None,
        feature_mask=None)``; it returns attributions shaped like ``inputs``.

    References:
        - Owen, "Values of games with a priori unions", Mathematical Economics and Game Theory, 1977.
          https://doi.org/10.1007/978-3-642-45494-3_7
        - Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
          https://arxiv.org/abs/1705.07874

    Example:
        >>> tree = pa.owen.tree_hierarchy(((0, 1), ((2, 3), ((4, 5), (6, 7)))))
        >>> pa.owen_values(model, hierarchy=tree)(x, target=y).shape
        torch.Size([4, 8])
    """
    check_batch_size(batch_size)
    check_count("expansion_batch", expansion_batch, minimum=2)
    if not isinstance(hierarchy, np.ndarray) and not isinstance(hierarchy, Tensor):
        hierarchy = tree_hierarchy(hierarchy)
    linkage = np.asarray(hierarchy.cpu() if isinstance(hierarchy, Tensor) else hierarchy, dtype=np.float64)
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 4:
        raise ArgumentError(
            f"max_evals must be an int >= 4 (the two ends and the root's two halves), got {max_evals!r}"
        )

    def attribute(
        inputs: Any,
        baselines: BaselineLike = None,
        *,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
    ) -> Any:
        call, base, mask = prepare_perturbation(
            inputs, baselines, target, additional_forward_args, feature_mask, "owen_values"
        )
        z = _check_linkage(linkage, mask.n_features)
        with evaluating(f):
            values = _expand(f, call, base, mask, z, max_evals - 2, expansion_batch, batch_size)
        return call.restore(squeeze_outputs(mask.spread(values), (), False))

    return Attributor(attribute, f, per_example=PER_EXAMPLE, name="owen_values")


def _members(z: np.ndarray, n_f: int) -> np.ndarray:
    """``(2F - 1, F)`` booleans: the features of each node (leaves, then the linkage's clusters)."""
    m = np.zeros((2 * n_f - 1, n_f), dtype=bool)
    m[np.arange(n_f), np.arange(n_f)] = True
    for k, (a, b) in enumerate(z[:, :2].astype(int)):
        m[n_f + k] = m[a] | m[b]
    return m


def _expand(
    f: Forward, call: Any, base: tuple, mask: FeatureMask, z: np.ndarray, budget: int, per_round: int, batch_size: Any
) -> Tensor:
    n, n_f = call.n, mask.n_features
    members = _members(z, n_f)
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
                out.append(torch.where(keep, x.index_select(0, i), example_rows(base[j], i)))
            return tuple(out)

        return evaluate_rows(f, call, build, who, batch_size).reshape(len(examples), -1).double().cpu()

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
                left, right = (int(c) for c in z[ind - n_f, :2])
                m10, m01 = m00 | members[left], m00 | members[right]
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
    values = np.stack([_lower_credit(d, z, n_f) for d in dvalues])  # (N, F, K)
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


__all__: Sequence[str] = ["correlation_hierarchy", "owen_values", "tree_hierarchy"]
