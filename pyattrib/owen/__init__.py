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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from .._core.attributor import FEATURE_PER_EXAMPLE, Attributor
from .._core.calls import FeatureCall
from .._core.errors import ArgumentError, check_batch_size, check_count
from .._core.inputs import BaselineLike
from .._core.perturb import prepare_perturbation, squeeze_outputs
from .._core.state import evaluating
from .._core.targets import TargetLike
from ._expand import Tree, _expand
from .hierarchies import (
    TextHierarchy,
    _check_linkage,
    _leaves,
    correlation_hierarchy,
    image_hierarchy,
    text_hierarchy,
    token_tree,
    tree_hierarchy,
)
from .maskers import Background, Inpaint, background, blur, inpaint

Forward = Callable[..., Any]


def owen_values(
    f: Forward,
    *,
    hierarchy: Any,
    max_evals: int = 500,
    expansion_batch: int | None = None,
    batch_size: int | None = None,
) -> Attributor[FeatureCall]:
    r"""Owen values of the feature groups over a ``hierarchy`` (shap's PartitionExplainer for a binary one).

    For a cluster :math:`C = L \cup R` explained in context :math:`S` with weight :math:`w`
    (the root: :math:`S = \emptyset`, :math:`w = 1`), with :math:`v(T) = f(x_T, x'_{rest})`:

    .. math:: L \text{ in } S \text{ and in } S \cup R, \quad R \text{ in } S \text{ and in } S \cup L,
              \quad \text{each with weight } w / 2

    (a node of :math:`m` children: each child :math:`c` in :math:`S \cup T` for every set :math:`T` of
    the other children, with weight :math:`w\,|T|!\,(m - |T| - 1)!/m!`, the Shapley weights of the
    game among the children), and a single feature :math:`i` explained in :math:`S` receives
    :math:`w\,(v(S \cup \{i\}) - v(S))`. Clusters are expanded largest change first
    (:math:`\max |v(S \cup C) - v(S)| \cdot w`), ``expansion_batch`` of each example's evaluations at
    a time (shap's ``batch_size``, which sets the order when ``max_evals`` binds); when ``max_evals``
    evaluations are spent, each cluster left receives :math:`w\,(v(S \cup C) - v(S))`, shared by its
    features in proportion to their number. Every example follows its own order; their rows are
    evaluated together, in chunks of ``batch_size``. The values always add up to
    :math:`f(x) - f(x')`. Ties in the order are broken by insertion (shap breaks them at random).
    An example whose full expansion fits ``max_evals`` (a 16-token text's at 500) needs every
    coalition of it whatever the order: all are evaluated in the first model call, and the rounds
    only read them (the same values and rows, one call instead of dozens).

    Args:
        f: The model, or a function of the inputs returning one output row per example.
        hierarchy: A scipy linkage matrix ``(F - 1, 4)`` over the ``F`` feature groups (the elements
            of a single input, or the groups of ``feature_mask``), e.g. from
            :func:`pyattrib.owen.correlation_hierarchy` or :func:`pyattrib.owen.image_hierarchy`;
            a nested tuple of group ids, taken as written: a node of ``m > 2`` members plays the
            Shapley game among them (``2^m - 2`` evaluations to expand it; a flat tuple of all
            groups gives the Shapley values; :func:`pyattrib.owen.tree_hierarchy` makes it binary,
            as a linkage matrix); or a function of the (first) input returning one of those, or a
            list of one per example, such as :func:`pyattrib.owen.text_hierarchy`'s token trees.
        max_evals: Model evaluations per example, the two ends included (as in shap, a two-child
            cluster opened with one evaluation left spends two; a wider node opens only if its
            ``2^m - 2`` fit). Below what the root's expansion needs (``2^m`` with its ``m`` children:
            4 for a binary hierarchy), an error.
        expansion_batch: Evaluations planned per example before the results reorder the expansion;
            None: shap's choice, 5 for a :func:`pyattrib.owen.text_hierarchy` (its Text masker's)
            and 10 otherwise.
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
    if expansion_batch is None:
        expansion_batch = 5 if isinstance(hierarchy, TextHierarchy) else 10
    check_count("expansion_batch", expansion_batch, minimum=2)
    per_call = callable(hierarchy)  # a function of the inputs: one hierarchy, or one per example
    if not per_call and not isinstance(hierarchy, (np.ndarray, Tensor)):
        leaves = sorted(_leaves(hierarchy))
        if leaves != list(range(len(leaves))):
            raise ArgumentError(f"hierarchy must hold every feature 0..{len(leaves) - 1} exactly once, got {leaves}")
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
        fill = baselines if isinstance(baselines, Inpaint) else None  # removed features made from the rest
        rows = baselines if isinstance(baselines, Background) else None  # averaged over a background
        plain = None if fill is not None or rows is not None else baselines
        call, base, mask = prepare_perturbation(
            inputs, plain, target, additional_forward_args, feature_mask, "owen_values"
        )
        background = rows.check(call.inputs) if rows is not None else None
        found = hierarchy(call.inputs[0]) if per_call else hierarchy
        trees = _trees(found, call.n, mask.n_features, per_call)
        widest = max(len(t.kids[t.root]) for t in trees)
        if max_evals < 2**widest:  # the two ends and the root's 2^m - 2 coalitions
            raise ArgumentError(
                f"max_evals={max_evals} is below what expanding the hierarchy's root needs: its {widest} children "
                f"take 2^{widest} - 2 coalitions plus the two ends, {2**widest} evaluations; raise max_evals or "
                "split the root (pa.owen.tree_hierarchy makes a hierarchy binary)"
            )
        with evaluating(f):
            values = _expand(f, call, base, mask, trees, max_evals - 2, expansion_batch, batch_size, fill, background)
        kept = () if call.target.selects else (values.shape[1],)  # no target: every output, flattened
        return call.restore(squeeze_outputs(mask.spread(values), kept, False))

    return Attributor(attribute, f, per_example=FEATURE_PER_EXAMPLE, name="owen_values")


def _tree(hierarchy: Any, n_f: int) -> Tree:
    """A linkage matrix (an array or tensor) or a nested tuple, checked against ``n_f`` features."""
    if isinstance(hierarchy, (np.ndarray, Tensor)):
        z = np.asarray(hierarchy.cpu() if isinstance(hierarchy, Tensor) else hierarchy, dtype=np.float64)
        return Tree.of_linkage(_check_linkage(z, n_f), n_f)
    leaves = sorted(_leaves(hierarchy))
    if leaves != list(range(n_f)):
        raise ArgumentError(
            f"hierarchy does not cover every feature exactly once: it holds {leaves}, the input has {n_f} "
            "feature groups (0..F-1: the elements of a single input, or the groups of feature_mask)"
        )
    return Tree.of_nested(hierarchy, n_f)


def _trees(found: Any, n: int, n_f: int, from_call: bool) -> list[Tree]:
    """One tree per example: one hierarchy for all, or a hierarchy callable's list of ``n``."""
    if from_call and isinstance(found, list) and found and not isinstance(found[0], (int, np.integer)):
        if len(found) != n:
            raise ArgumentError(f"hierarchy gave {len(found)} hierarchies for a batch of {n}; give one per example")
        return [_tree(h, n_f) for h in found]
    return [_tree(found, n_f)] * n


__all__: Sequence[str] = [
    "Background",
    "Inpaint",
    "TextHierarchy",
    "background",
    "blur",
    "correlation_hierarchy",
    "image_hierarchy",
    "inpaint",
    "owen_values",
    "text_hierarchy",
    "token_tree",
    "tree_hierarchy",
]
