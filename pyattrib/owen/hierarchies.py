"""Feature hierarchies for Owen values, as scipy linkage matrices: from data (correlation
clustering, shap's ``Partition`` masker), from a nested tuple, from a text's tokens (shap's
``Text`` masker: words first, then phrases, across commas and sentence ends last) and from an
image's grid (shap's ``Image`` masker: recursive halving of the largest side)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core.errors import ArgumentError


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


_OPEN, _CLOSE = {"(": ")"}, {")": "("}
_CONNECTORS = ("but", "and", "or")
_ENDS = (".", "?", "!")


class _Group:
    """A run of adjacent tokens being merged; ``balanced[k]`` for brackets that found their pair."""

    def __init__(self, tokens: list[str], node: int, balanced: list[bool]) -> None:
        self.tokens, self.node, self.balanced = tokens, node, balanced


def _merge_score(a: _Group, b: _Group, special: Sequence[str]) -> float:
    """How much ``a`` and ``b`` belong together (shap's Text masker's rules): word pieces first,
    then apostrophe endings; brackets, connectors, commas and sentence ends are crossed late;
    larger groups later."""
    first, last = b.tokens[0], a.tokens[-1]
    score = 0.0
    if special and last in special and first in special:
        score -= math.inf
    if first.startswith("##"):
        score += 20
    if first == "'" and (len(b.tokens) == 1 or (len(b.tokens) == 2 and b.tokens[1] in ("t", "s"))):
        score += 15
    if last == "'" and first in ("t", "s"):
        score += 15
    control = [t.startswith("[") and t.endswith("]") for t in (a.tokens[0], b.tokens[-1])]
    if control[0] != control[1]:
        score -= 1000
    if first in _OPEN and not b.balanced[0]:
        score -= 100
    if last in _CLOSE and not a.balanced[-1]:
        score -= 100
    if a.tokens[0] in _OPEN:  # shap compares b's last token object with the closers: never equal
        score -= 2
    if last in _CONNECTORS or first in _CONNECTORS:
        score -= 2
    if last == ",":
        score -= 10
    if first == ",":
        score -= 10 if len(b.tokens) > 1 else 1
    if last in _ENDS:
        score -= 20
    if first in _ENDS:
        score -= 20 if len(b.tokens) > 1 else 1
    return score - len(a.tokens) - len(b.tokens)


def token_tree(tokens: Sequence[str], special: Sequence[str] = ()) -> np.ndarray:
    """The linkage matrix of shap's Text masker over token strings: adjacent groups merged, best
    merge first (the rules of shap's Text masker), ties to the leftmost; heights are cluster sizes scaled
    to 1 at the root.

    Args:
        tokens: Token strings; a word piece that continues a word starts with ``##``; special
            tokens are empty strings.
        special: Tokens merged last (a separator between two sentences).

    Returns:
        The ``(T - 1, 4)`` linkage matrix.

    Example:
        >>> pa.owen.token_tree(["the", "cat", "play", "##s"])[:, :2].tolist()
        [[2.0, 3.0], [0.0, 1.0], [5.0, 4.0]]
    """
    n = len(tokens)
    if n < 2:
        raise ArgumentError(f"a token tree needs at least 2 tokens, got {n}")
    groups = [_Group([t], i, [t not in _OPEN and t not in _CLOSE]) for i, t in enumerate(tokens)]
    z = np.zeros((n - 1, 4))
    for row in range(n - 1):
        scores = [_merge_score(groups[k], groups[k + 1], special) for k in range(len(groups) - 1)]
        k = int(np.argmax(scores))
        a, b = groups[k], groups[k + 1]
        size = lambda node: 1 if node < n else z[node - n, 3]  # noqa: E731
        z[row] = [a.node, b.node, 0.0, size(a.node) + size(b.node)]
        merged = _Group(a.tokens + b.tokens, n + row, a.balanced + b.balanced)
        if merged.tokens[0] in _OPEN and b.tokens[-1] == _OPEN[merged.tokens[0]]:
            merged.balanced[0] = merged.balanced[-1] = True
        groups[k : k + 2] = [merged]
    z[:, 2] = z[:, 3] / z[:, 3].max()
    return z


class TextHierarchy:
    """Token trees for a tokenizer's texts (shap's Text masker), and the baseline it masks with.

    Call it with token ids ``(T,)`` for one linkage matrix, ``(N, T)`` for a list of them (one
    per example: pass the object itself as ``owen_values``'s ``hierarchy``), or token strings.
    Special tokens (``[CLS]``, ``[SEP]``, padding) count as empty strings, as in shap.

    Args:
        tokenizer: A Hugging Face tokenizer (WordPiece's ``##`` marks a word's continuation).

    Example:
        >>> tree = pa.owen.text_hierarchy(tokenizer)
        >>> tree(tokenizer("the cat sat", return_tensors="pt")["input_ids"][0]).shape
        (4, 4)
    """

    def __init__(self, tokenizer: Any) -> None:
        if not hasattr(tokenizer, "convert_ids_to_tokens"):
            raise ArgumentError("text_hierarchy needs a Hugging Face tokenizer (with convert_ids_to_tokens)")
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", []))

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The strings the tree is built from: special tokens empty."""
        strings = self.tokenizer.convert_ids_to_tokens(list(ids))
        return ["" if i in self.special else s for i, s in zip(ids, strings)]

    def __call__(self, tokens: Any) -> Any:
        if isinstance(tokens, Tensor) and tokens.dim() == 2:
            return [self(row) for row in tokens]
        if isinstance(tokens, Tensor):
            tokens = self.tokens(tokens.tolist())
        sep = getattr(self.tokenizer, "sep_token", None)
        return token_tree(list(tokens), [sep] if sep else [])

    def baselines(self, ids: Tensor) -> Tensor:
        """``ids`` with every token replaced by the mask token, special tokens kept (shap keeps
        the tokenizer's prefix and suffix tokens and separators)."""
        mask = getattr(self.tokenizer, "mask_token_id", None)
        if mask is None:
            raise ArgumentError("the tokenizer has no mask token; pass baselines= (the id a removed token becomes)")
        special = torch.as_tensor(sorted(self.special), device=ids.device, dtype=ids.dtype)
        return torch.where(torch.isin(ids, special), ids, torch.full_like(ids, mask))


def text_hierarchy(tokenizer: Any) -> TextHierarchy:
    """The token tree of shap's Text masker for ``tokenizer``'s texts: a hierarchy callable on
    token ids, for :func:`owen_values` (``hierarchy=pa.owen.text_hierarchy(tokenizer)``), with
    ``.baselines(ids)`` for its mask-token baseline.

    Args:
        tokenizer: A Hugging Face tokenizer.

    Returns:
        A :class:`TextHierarchy`.

    Example:
        >>> isinstance(pa.owen.text_hierarchy(tokenizer), pa.owen.TextHierarchy)
        True
    """
    return TextHierarchy(tokenizer)


def image_hierarchy(shape: Sequence[int], channels_first: bool = True) -> np.ndarray:
    """shap's Image masker's partition of an image: the box of all pixels and channels split in
    half along its longest spatial side (height first on ties), channels split last; boxes
    taken largest first. Features are the image's elements in the tensor's own order; as in
    shap, a box holds the elements of the image turned by 180 degrees (the same boxes where
    every split is even).

    Args:
        shape: ``(C, H, W)`` (or ``(H, W, C)`` with ``channels_first=False``).
        channels_first: The layout of ``shape`` and of the features' order.

    Returns:
        The ``(C H W - 1, 4)`` linkage matrix.

    Example:
        >>> pa.owen.image_hierarchy((1, 2, 2))[:, :2].tolist()
        [[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]]
    """
    c, h, w = shape if channels_first else (shape[2], shape[0], shape[1])
    m = c * h * w
    z = np.zeros((m - 1, 4))
    queue: list[tuple[int, tuple[int, ...], int, bool]] = [(0, (0, h, 0, w, 0, c), -1, False)]
    node = m - 2  # clusters are numbered from the root down
    while queue:
        _, box, parent, left = heapq.heappop(queue)
        x0, x1, y0, y1, c0, c1 = box
        if x1 - x0 == 1 and y1 - y0 == 1 and c1 - c0 == 1:
            # shap numbers the leaves down from the last element: its boxes hold the elements of
            # the image turned by 180 degrees (the same boxes where every split is even)
            x, y, k = h - 1 - x0, w - 1 - y0, c - 1 - c0
            leaf = k * h * w + x * w + y if channels_first else (x * w + y) * c + k
            if parent >= 0:
                z[parent, 0 if left else 1] = leaf
            continue
        if parent >= 0:
            z[parent, 0 if left else 1] = m + node
        halves = _halve(box)
        for k, part in enumerate(halves):
            size = (part[1] - part[0]) * (part[3] - part[2]) * (part[5] - part[4])
            heapq.heappush(queue, (-size, part, node, k == 0))
        node -= 1
    for i in range(m - 1):
        a, b = (int(v) for v in z[i, :2])
        z[i, 3] = (1 if a < m else z[a - m, 3]) + (1 if b < m else z[b - m, 3])
    z[:, 2] = z[:, 3]
    return z


def _halve(box: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    x0, x1, y0, y1, c0, c1 = box
    if x1 - x0 >= y1 - y0 and x1 - x0 > 1:
        mid = x0 + (x1 - x0) // 2
        return (x0, mid, y0, y1, c0, c1), (mid, x1, y0, y1, c0, c1)
    if y1 - y0 > 1:
        mid = y0 + (y1 - y0) // 2
        return (x0, x1, y0, mid, c0, c1), (x0, x1, mid, y1, c0, c1)
    mid = c0 + (c1 - c0) // 2
    return (x0, x1, y0, y1, c0, mid), (x0, x1, y0, y1, mid, c1)
