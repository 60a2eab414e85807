"""Captum's influence classes over :mod:`pyattrib.influence`: ``TracInCP(model, data, checkpoint_dir)``.

Captum loads each checkpoint into the model with ``checkpoints_load_func(model, path)`` (which
returns the learning rate); here every checkpoint is read once at construction through
:func:`pyattrib.influence.loaded_states`, and the native method gets the state dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .. import influence as native
from .._core.errors import ArgumentError
from ..influence.checkpoints import LoadInto, checkpoint_paths, load_flexible, loaded_states
from ..influence.tracin import as_dataset, train_chunks


class KMostInfluentialResults(NamedTuple):
    """Captum's result of ``k_most_influential``: the top ``k`` training examples per test example.

    Args:
        indices: ``(N, k)`` training indices.
        influence_scores: ``(N, k)`` their scores.

    Example:
        >>> from pyattrib.compat import KMostInfluentialResults
        >>> KMostInfluentialResults(torch.tensor([[3]]), torch.tensor([[0.5]])).indices
        tensor([[3]])
    """

    indices: Tensor
    influence_scores: Tensor


def _states(model: nn.Module, paths: list[str], load: LoadInto) -> tuple[list, list[float]]:
    if not paths:  # Captum's message
        raise ArgumentError("Invalid checkpoints provided for TracIn class: no checkpoint files")
    return loaded_states(model, paths, load)


def _batch_size(train_dataset: Any, batch_size: int | None) -> int:
    if batch_size is not None:
        return batch_size
    if isinstance(train_dataset, DataLoader) and train_dataset.batch_size:
        return train_dataset.batch_size
    return len(getattr(train_dataset, "dataset", train_dataset))


def _split(inputs: Any) -> tuple[tuple[Tensor, ...], Tensor]:
    """``(features, labels)`` of one batch ``(features..., labels)``, a Dataset or a DataLoader."""
    assert inputs is not None, "inputs (a batch (features..., labels) or a DataLoader) are required."
    if isinstance(inputs, (tuple, list)) and all(isinstance(t, Tensor) for t in inputs):
        if len(inputs) < 2:
            raise ArgumentError("inputs must be a batch (features..., labels): the labels come last")
        return tuple(inputs[:-1]), inputs[-1]
    dataset = getattr(inputs, "dataset", inputs)
    (_, xs, y), *rest = train_chunks(dataset, len(dataset)) or [(0, (), None)]
    return xs, cast(Tensor, y)


def _layer_name(model: nn.Module, layer: nn.Module | str) -> str:
    if isinstance(layer, str):
        if layer not in dict(model.named_modules()):
            raise ArgumentError(f'Invalid final_fc_layer str: "{layer}" provided! Use a name of model.named_modules()')
        return layer
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise ArgumentError("final_fc_layer is not a module of the model")


class _Influence:
    """What the compat influence classes share: Captum's ``influence`` and ``self_influence``."""

    _native: Any

    @classmethod
    def get_name(cls) -> str:
        return cls.__name__

    def influence(
        self, inputs: Any, k: int | None = None, proponents: bool = True, show_progress: bool = False,
        aggregate: bool = False,
    ) -> Any:  # fmt: skip
        """Influence scores ``(N_test, N_train)`` (``aggregate``: on the summed test loss, ``(1,
        N_train)``), or with ``k`` the ``k`` most influential training examples and their scores."""
        xs, y = _split(inputs)
        if k is None:
            scores = self._native.influence(xs, y, show_progress=show_progress)
            return scores.sum(0, keepdim=True) if aggregate else scores
        if aggregate:
            scores = self._native.influence(xs, y, show_progress=show_progress).sum(0, keepdim=True)
            top = torch.topk(scores if proponents else -scores, min(k, scores.shape[1]), dim=1)
            return KMostInfluentialResults(top.indices, top.values if proponents else -top.values)
        top = self._native.k_most_influential(xs, y, k=k, proponents=proponents, show_progress=show_progress)
        return KMostInfluentialResults(*top)

    #: the power of each checkpoint's learning rate in ``compute_intermediate_quantities``:
    #: Captum's TracInCP scales the gradients by the rate itself (so their dot products are not
    #: the influence scores), TracInCPFast and the influence functions by its square root
    _rate_power = 0.5

    def compute_intermediate_quantities(self, inputs: Any, aggregate: bool = False) -> Tensor:
        """Per example, each checkpoint's loss gradient times a power of its learning rate
        (``_rate_power``, Captum's per class), concatenated (summed over the examples with
        ``aggregate``)."""
        out = torch.cat([self._embed(xs, y) for _, xs, y in train_chunks(as_dataset(inputs), self._native.batch_size)])
        return out.sum(0, keepdim=True) if aggregate else out

    def _embed(self, xs: tuple[Tensor, ...], y: Tensor) -> Tensor:
        return torch.cat([rate**self._rate_power * self._native.gradients(c, xs, y, True)
                          for c, rate in enumerate(self._native.learning_rates)], 1)  # fmt: skip

    def self_influence(
        self, inputs: Any = None, show_progress: bool = False, outer_loop_by_checkpoints: bool = False
    ) -> Tensor:
        return self._native.self_influence(inputs, show_progress, outer_loop_by_checkpoints)


class TracInCP(_Influence):
    """Captum's ``TracInCP`` over :func:`pyattrib.influence.tracin_cp` (per-example gradients
    from ``torch.func``, whatever ``sample_wise_grads_per_batch`` says: both give Captum's numbers).

    Args:
        model: The model (an ``nn.Module``).
        train_dataset: The training examples (a ``Dataset`` or ``DataLoader``).
        checkpoints: Checkpoint paths (or a folder of them).
        checkpoints_load_func: Loads a checkpoint into the model and returns its learning rate.
        layers: The layers (module names).
        loss_fn: The loss (a torch loss module or function).
        batch_size: Examples per batch.
        test_loss_fn: The loss of test examples (default ``loss_fn``).
        sample_wise_grads_per_batch: Captum's per-batch gradient hooks; accepted (pyattrib always
            computes per-example gradients with ``torch.func``).

    Example:
        >>> from pyattrib.compat import TracInCP
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> tracin = TracInCP(model, train, [path], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=8)
        >>> tracin.influence((x, y)).shape
        torch.Size([4, 16])
    """

    _rate_power = 1.0  # Captum's TracInCP.compute_intermediate_quantities: learning_rate * gradients

    def __init__(
        self, model: nn.Module, train_dataset: Any, checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible,
        layers: list[str] | None = None, loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        test_loss_fn: Callable[..., Tensor] | None = None, sample_wise_grads_per_batch: bool = False,
    ) -> None:  # fmt: skip
        self.model, self.train_dataset, self.layers = model, train_dataset, layers
        self.loss_fn, self.test_loss_fn, self.batch_size = loss_fn, test_loss_fn, batch_size
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.checkpoints_load_func = checkpoints_load_func
        self.checkpoints = checkpoint_paths(checkpoints)
        states, rates = _states(model, self.checkpoints, checkpoints_load_func)
        self._native = self._build(states, rates)

    def _options(self, rates: list[float]) -> dict[str, Any]:
        return {"learning_rates": rates, "loss_fn": self.loss_fn, "test_loss_fn": self.test_loss_fn,
                "batch_size": _batch_size(self.train_dataset, self.batch_size)}  # fmt: skip

    def _build(self, states: list, rates: list[float]) -> Any:
        return native.tracin_cp(self.model, self.train_dataset, states, layers=self.layers, **self._options(rates))


class TracInCPFast(TracInCP):
    """Captum's ``TracInCPFast`` over :func:`pyattrib.influence.tracin_cp_fast`.

    Args:
        model: The model (an ``nn.Module``).
        final_fc_layer: The final fully connected layer (module or name).
        train_dataset: The training examples (a ``Dataset`` or ``DataLoader``).
        checkpoints: Checkpoint paths (or a folder of them).
        checkpoints_load_func: Loads a checkpoint into the model and returns its learning rate.
        loss_fn: The loss (a torch loss module or function).
        batch_size: Examples per batch.
        test_loss_fn: The loss of test examples (default ``loss_fn``).
        vectorize: Captum's flag; accepted (pyattrib always vectorises).

    Example:
        >>> from pyattrib.compat import TracInCPFast
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> loss = torch.nn.CrossEntropyLoss(reduction="sum")
        >>> fast = TracInCPFast(model, model[2], train, [path], loss_fn=loss, batch_size=8)
        >>> fast.self_influence().shape
        torch.Size([16])
    """

    _rate_power = 0.5

    def __init__(
        self, model: nn.Module, final_fc_layer: nn.Module | str, train_dataset: Any, checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible,
        loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        test_loss_fn: Callable[..., Tensor] | None = None, vectorize: bool = False,
    ) -> None:  # fmt: skip
        self.final_fc_layer, self.vectorize = _layer_name(model, final_fc_layer), vectorize
        super().__init__(model, train_dataset, checkpoints, checkpoints_load_func, None, loss_fn, batch_size,
                         test_loss_fn)  # fmt: skip

    def _build(self, states: list, rates: list[float]) -> Any:
        return native.tracin_cp_fast(self.model, self.final_fc_layer, self.train_dataset, states,
                                     **self._options(rates))  # fmt: skip


class TracInCPFastRandProj(TracInCPFast):
    """Captum's ``TracInCPFastRandProj`` over :func:`pyattrib.influence.tracin_cp_fast_rand_proj`
    (exact top-k in torch instead of an approximate nearest-neighbour index).

    Args:
        model: The model (an ``nn.Module``).
        final_fc_layer: The final fully connected layer (module or name).
        train_dataset: The training examples (a ``Dataset`` or ``DataLoader``).
        checkpoints: Checkpoint paths (or a folder of them).
        checkpoints_load_func: Loads a checkpoint into the model and returns its learning rate.
        loss_fn: The loss (a torch loss module or function).
        batch_size: Examples per batch.
        test_loss_fn: The loss of test examples (default ``loss_fn``).
        vectorize: Captum's flag; accepted (pyattrib always vectorises).
        nearest_neighbors: Captum's approximate-neighbour index; accepted (pyattrib's top-k is exact).
        projection_dim: Dimension of the random projection.
        seed: Seed of the random draws.

    Example:
        >>> from pyattrib.compat import TracInCPFastRandProj
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> loss = torch.nn.CrossEntropyLoss(reduction="sum")
        >>> proj = TracInCPFastRandProj(model, model[2], train, [path], loss_fn=loss, batch_size=8)
        >>> proj.influence((x, y), k=2).indices.shape
        torch.Size([4, 2])
    """

    def __init__(
        self, model: nn.Module, final_fc_layer: nn.Module | str, train_dataset: Any, checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible,
        loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1, test_loss_fn: Any = None,
        vectorize: bool = False, nearest_neighbors: Any = None, projection_dim: int | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        self.projection_dim, self.seed, self.nearest_neighbors = projection_dim, seed, nearest_neighbors
        super().__init__(model, final_fc_layer, train_dataset, checkpoints, checkpoints_load_func, loss_fn,
                         batch_size, test_loss_fn, vectorize)  # fmt: skip

    def _embed(self, xs: tuple[Tensor, ...], y: Tensor) -> Tensor:
        return self._native.embed(xs, y, test=True)

    def _build(self, states: list, rates: list[float]) -> Any:
        return native.tracin_cp_fast_rand_proj(self.model, self.final_fc_layer, self.train_dataset, states,
                                               projection_dim=self.projection_dim, seed=self.seed,
                                               **self._options(rates))  # fmt: skip

    def influence(
        self, inputs: Any, k: int | None = 5, proponents: bool = True, show_progress: bool = False,
        aggregate: bool = False,
    ) -> Any:  # fmt: skip
        """Captum's defaults: the ``k=5`` most influential training examples (proponents, or
        opponents with ``proponents=False``); ``k=None`` for the ``(N_test, N_train)`` scores."""
        return super().influence(inputs, k=k, proponents=proponents, show_progress=show_progress, aggregate=aggregate)
