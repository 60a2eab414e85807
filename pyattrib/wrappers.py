"""Transforms of attributors that change which outputs are explained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ._core.attributor import Attributor, bind_baselines, call_on_copies
from ._core.errors import ArgumentError
from ._core.inputs import as_tuple

Selector = int | tuple[int, ...]


def multi_target(
    attributor: Attributor, targets: Sequence[Selector] | Tensor, *, argname: str = "target"
) -> Attributor:
    """Explain several targets in one call: attributions gain a target dimension.

    ``multi_target(a, [t_1, ..., t_T])(x, ...)[:, j]`` equals ``a(x, ..., target=t_j)``,
    with shape ``(N, T, *input.shape[1:])``. The ``T`` copies of the batch go to the
    attributor in one call of ``N * T`` rows (row ``i * T + j``), so its ``batch_size``
    bounds the memory and there is no Python loop over targets. ``argname`` names the
    selector to vary: ``"target"`` for input methods, ``"neuron_selector"`` for neuron
    methods. Deltas, if returned, get shape ``(N, T)``.

    Layer attributions keep the layer's structure, the target dimension right after each
    leaf's batch dimension (``h`` of an ``nn.LSTM``: ``(layers, N, T, hidden)``).

    Each selector is an int or a tuple of ints (a 1-D tensor of ints, or a 2-D tensor of
    index tuples, works too). Per-example selectors are not accepted here.

    Args:
        attributor: The attributor to wrap; the result has the same call signature.
        targets: The targets to explain, one attribution per target (a list, or a tensor of shape
            ``(T,)`` or ``(N, T)``).
        argname: The call argument that takes the targets: ``"target"`` or ``"neuron_selector"``.

    Returns:
        Attributor: the wrapped attributor's call without the target argument; attributions gain a
        target dimension after the batch, ``(N, T, ...)``.

    Example:
        >>> pa.multi_target(pa.saliency(model), [0, 2])(x).shape
        torch.Size([4, 2, 8])
    """
    if not isinstance(attributor, Attributor):
        raise TypeError("multi_target wraps a pyattrib attributor, e.g. pa.integrated_gradients(model)")
    if isinstance(targets, Tensor):
        targets = [t.item() if t.dim() == 0 else tuple(t.tolist()) for t in targets]
    targets = list(targets)
    if not targets:
        raise ArgumentError("targets is empty; pass a list with at least one target")
    for t in targets:
        if not (isinstance(t, int) or (isinstance(t, tuple) and all(isinstance(v, int) for v in t))):
            raise TypeError(f"each entry of targets must be an int or a tuple of ints, got {t!r}")
    if len({isinstance(t, int) or len(t) for t in targets}) != 1:
        raise ArgumentError("targets must all be ints or all tuples of the same length")
    per_example = tuple(attributor.per_example) + (argname,)
    n_targets = len(targets)

    def attribute(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs = bind_baselines(args, kwargs)
        if argname in kwargs:
            raise TypeError(f"{argname} is set by multi_target; do not pass it to the call")
        xs, was_tuple = as_tuple(inputs)
        n = xs[0].shape[0]
        copies = tuple(x.repeat_interleave(n_targets, 0) for x in xs)
        attrs, structure, delta = call_on_copies(
            attributor, copies, was_tuple, kwargs, n, n_targets, per_copy={argname: targets * n}
        )
        result = structure.layout([a.contiguous() for a in attrs], lead=2)
        return (result, delta) if delta is not None else result

    return attributor.with_fn(attribute, per_example=per_example, name=f"multi_target({attributor.name})")
