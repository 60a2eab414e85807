"""Captum's influence classes over :mod:`pyattrib.influence`: ``TracInCP(model, data, checkpoint_dir)``.

Captum loads each checkpoint into the model with ``checkpoints_load_func(model, path)`` (which
returns the learning rate); here every checkpoint is loaded once at construction, kept as a
state dict, and the model's own state is put back afterwards.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .. import influence as native
from .._core.errors import ArgumentError
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


def _load_flexible_state_dict(model: nn.Module, path: str) -> float:
    """Captum's default loader: a state dict (or a dict holding ``model_state_dict``), optionally
    saved from ``nn.DataParallel``; returns its ``learning_rate`` (default 1)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    rate = checkpoint.get("learning_rate", 1.0) if isinstance(checkpoint, dict) else 1.0
    state = checkpoint.get("model_state_dict", checkpoint)
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    model.load_state_dict(state)
    return float(rate)


def _paths(checkpoints: Any) -> list[str]:
    if isinstance(checkpoints, str):
        if os.path.isdir(checkpoints):
            files = glob.glob(os.path.join(checkpoints, "*"))
            return sorted(files, key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f)])
        return [checkpoints]
    return list(checkpoints)


def _states(model: nn.Module, paths: list[str], load: Callable[[nn.Module, str], float]) -> tuple[list, list[float]]:
    """State dicts and learning rates of the checkpoints, read through ``load``; the model's state is kept."""
    if not paths:
        raise ArgumentError("Invalid checkpoints provided for TracIn class: no checkpoint files")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    states, rates = [], []
    try:
        for path in paths:
            rate = load(model, path)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            rates.append(float(rate) if rate is not None else 1.0)
    finally:
        model.load_state_dict(original)
    return states, rates


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
    return xs, y


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
        checkpoints_load_func: Callable[[nn.Module, str], float] = _load_flexible_state_dict,
        layers: list[str] | None = None, loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        test_loss_fn: Callable[..., Tensor] | None = None, sample_wise_grads_per_batch: bool = False,
    ) -> None:  # fmt: skip
        self.model, self.train_dataset, self.layers = model, train_dataset, layers
        self.loss_fn, self.test_loss_fn, self.batch_size = loss_fn, test_loss_fn, batch_size
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.checkpoints_load_func = checkpoints_load_func
        self.checkpoints = _paths(checkpoints)
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
        checkpoints_load_func: Callable[[nn.Module, str], float] = _load_flexible_state_dict,
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
        checkpoints_load_func: Callable[[nn.Module, str], float] = _load_flexible_state_dict,
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

    def influence(  # type: ignore[override]
        self, inputs: Any, k: int | None = 5, proponents: bool = True, show_progress: bool = False,
        aggregate: bool = False,
    ) -> Any:  # fmt: skip
        """Captum's defaults: the ``k=5`` most influential training examples (proponents, or
        opponents with ``proponents=False``); ``k=None`` for the ``(N_test, N_train)`` scores."""
        return super().influence(inputs, k=k, proponents=proponents, show_progress=show_progress, aggregate=aggregate)


class _InfluenceFunction(_Influence):
    _make: Callable[..., Any]
    _seeded = False  # whether the solver draws a random start (Arnoldi)

    def __init__(
        self, model: nn.Module, train_dataset: Any, checkpoint: str,
        checkpoints_load_func: Callable[[nn.Module, str], float] = _load_flexible_state_dict,
        layers: list[str] | None = None, loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        hessian_dataset: Any = None, test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False, projection_dim: int = 50, seed: int = 0,
        hessian_reg: float = 1e-6, hessian_inverse_tol: float = 1e-5, projection_on_cpu: bool = True,
        show_progress: bool = False, **solver: Any,
    ) -> None:  # fmt: skip
        self.model, self.train_dataset = model, train_dataset
        original = {k: v.clone() for k, v in model.state_dict().items()}
        checkpoints_load_func(model, checkpoint)
        if self._seeded:
            solver["seed"] = seed
        try:
            self._native = type(self)._make(
                model, train_dataset, hessian_data=hessian_dataset, projection_dim=projection_dim,
                hessian_reg=hessian_reg, hessian_inverse_tol=hessian_inverse_tol, layers=layers,
                loss_fn=loss_fn, test_loss_fn=test_loss_fn, batch_size=_batch_size(train_dataset, batch_size), **solver,
            )  # fmt: skip
        finally:
            model.load_state_dict(original)

    def compute_intermediate_quantities(
        self, inputs_dataset: Any, aggregate: bool = False, show_progress: bool = False, return_on_cpu: bool = True,
        test: bool = False,
    ) -> Tensor:  # fmt: skip
        """Each example's embedding ``grad L(z)^T R`` (their sum with ``aggregate``)."""
        chunks: Iterator = train_chunks(as_dataset(inputs_dataset), self._native.batch_size)
        out = torch.cat([self._native.embed(xs, y, test=test) for _, xs, y in chunks])
        out = out.sum(0, keepdim=True) if aggregate else out
        return out.cpu() if return_on_cpu else out


class NaiveInfluenceFunction(_InfluenceFunction):
    """Captum's ``NaiveInfluenceFunction`` over :func:`pyattrib.influence.naive_influence_function`.

    Args:
        model: The model (an ``nn.Module``).
        train_dataset: The training examples (a ``Dataset`` or ``DataLoader``).
        checkpoint: The checkpoint path.
        checkpoints_load_func: Loads a checkpoint into the model and returns its learning rate.
        layers: The layers (module names).
        loss_fn: The loss (a torch loss module or function).
        batch_size: Examples per batch.
        hessian_dataset: The examples whose loss defines the Hessian.
        test_loss_fn: The loss of test examples (default ``loss_fn``).
        sample_wise_grads_per_batch: Captum's per-batch gradient hooks; accepted (pyattrib always
            computes per-example gradients with ``torch.func``).
        projection_dim: Dimension of the random projection.
        seed: Seed of the random draws.
        hessian_reg: Damping added to the Hessian's diagonal.
        hessian_inverse_tol: Eigenvalues below this are dropped.
        projection_on_cpu: Captum's flag; accepted (the projection stays on the inputs' device).
        show_progress: Show progress bars.
        **solver: How the Hessian is inverted: ``"eig"`` or ``"linalg"``.

    Example:
        >>> from pyattrib.compat import NaiveInfluenceFunction
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> loss = torch.nn.CrossEntropyLoss(reduction="none")
        >>> naive = NaiveInfluenceFunction(model, train, path, loss_fn=loss, batch_size=8)
        >>> naive.influence((x, y)).shape
        torch.Size([4, 16])
    """

    _make = staticmethod(native.naive_influence_function)


class ArnoldiInfluenceFunction(_InfluenceFunction):
    """Captum's ``ArnoldiInfluenceFunction`` over :func:`pyattrib.influence.arnoldi_influence_function`.

    Args:
        model: The model (an ``nn.Module``).
        train_dataset: The training examples (a ``Dataset`` or ``DataLoader``).
        checkpoint: The checkpoint path.
        checkpoints_load_func: Loads a checkpoint into the model and returns its learning rate.
        layers: The layers (module names).
        loss_fn: The loss (a torch loss module or function).
        batch_size: Examples per batch.
        hessian_dataset: The examples whose loss defines the Hessian.
        test_loss_fn: The loss of test examples (default ``loss_fn``).
        sample_wise_grads_per_batch: Captum's per-batch gradient hooks; accepted (pyattrib always
            computes per-example gradients with ``torch.func``).
        projection_dim: Dimension of the random projection.
        seed: Seed of the random draws.
        arnoldi_dim: Steps of Arnoldi iteration.
        arnoldi_tol: Tolerance ending an invariant Krylov subspace.
        hessian_reg: Damping added to the Hessian's diagonal.
        hessian_inverse_tol: Eigenvalues below this are dropped.
        projection_on_cpu: Captum's flag; accepted (the projection stays on the inputs' device).
        show_progress: Show progress bars.

    Example:
        >>> from pyattrib.compat import ArnoldiInfluenceFunction
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> loss = torch.nn.CrossEntropyLoss(reduction="none")
        >>> options = dict(loss_fn=loss, batch_size=8, arnoldi_dim=20, projection_dim=5)
        >>> arnoldi = ArnoldiInfluenceFunction(model, train, path, **options)
        >>> arnoldi.influence((x, y)).shape
        torch.Size([4, 16])
    """

    _make = staticmethod(native.arnoldi_influence_function)
    _seeded = True

    def __init__(
        self, model: nn.Module, train_dataset: Any, checkpoint: str,
        checkpoints_load_func: Callable[[nn.Module, str], float] = _load_flexible_state_dict,
        layers: list[str] | None = None, loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        hessian_dataset: Any = None, test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False, projection_dim: int = 50, seed: int = 0, arnoldi_dim: int = 200,
        arnoldi_tol: float = 1e-1, hessian_reg: float = 1e-3, hessian_inverse_tol: float = 1e-4,
        projection_on_cpu: bool = True, show_progress: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(model, train_dataset, checkpoint, checkpoints_load_func, layers, loss_fn, batch_size,
                         hessian_dataset, test_loss_fn, sample_wise_grads_per_batch, projection_dim, seed, hessian_reg,
                         hessian_inverse_tol, projection_on_cpu, show_progress, arnoldi_dim=arnoldi_dim,
                         arnoldi_tol=arnoldi_tol)  # fmt: skip


def euclidean_distance(test: Tensor, train: Tensor) -> Tensor:
    """``(N_test, N_train)`` euclidean distances of the flattened rows.

    Args:
        test: Test activations.
        train: Training activations.

    Returns:
        Tensor: ``(N_test, N_train)`` distances.

    Example:
        >>> from pyattrib.compat import euclidean_distance
        >>> euclidean_distance(torch.eye(2), torch.eye(2))
        tensor([[0.0000, 1.4142],
                [1.4142, 0.0000]])
    """
    return native.euclidean_distance(test, train)


def cosine_similarity(test: Tensor, train: Tensor, replace_nan: int = 0) -> Tensor:
    """``(N_test, N_train)`` cosine similarities of the flattened rows; every entry of an all-zero
    row is set to ``replace_nan`` before the product (Captum's rule, which makes them findable).

    Args:
        test: Test activations.
        train: Training activations.
        replace_nan: The value of entries with an all-zero row.

    Returns:
        Tensor: ``(N_test, N_train)`` similarities.

    Example:
        >>> from pyattrib.compat import cosine_similarity
        >>> cosine_similarity(torch.eye(2), torch.eye(2))
        tensor([[1., 0.],
                [0., 1.]])
    """
    test, train = test.reshape(len(test), -1), train.reshape(len(train), -1)
    fill = torch.tensor(float(replace_nan), dtype=test.dtype)
    t_norm, r_norm = test.norm(dim=1, keepdim=True), train.norm(dim=1, keepdim=True)
    test = torch.where(t_norm != 0, test / torch.where(t_norm != 0, t_norm, 1), fill)
    train = torch.where(r_norm != 0, train / torch.where(r_norm != 0, r_norm, 1), fill)
    return test @ train.T


class SimilarityInfluence:
    """Captum's ``SimilarityInfluence`` over :class:`pyattrib.influence.SimilarityInfluence`.
    Activations are recomputed chunk by chunk and never written: ``activation_dir``, ``model_id``
    and ``load_src_from_disk`` are accepted for Captum's signature only.

    Args:
        module: The model.
        layers: The layers (module names).
        influence_src_dataset: The training examples.
        activation_dir: Captum's activation folder; accepted and unused (activations stay in memory).
        model_id: Names the model in saved files.
        similarity_metric: ``cosine_similarity``, ``euclidean_distance`` or a function ``(test, train)
            -> scores``.
        similarity_direction: ``"max"`` (larger is closer) or ``"min"``.
        batch_size: Examples per batch.
        **kwargs: Passed on to the explanation function (or the native class).

    Example:
        >>> import tempfile
        >>> from pyattrib.compat import SimilarityInfluence
        >>> near = SimilarityInfluence(model, "1", train, tempfile.mkdtemp(), batch_size=8)
        >>> indices, scores = near.influence(x, top_k=2)["1"]
        >>> indices.shape
        torch.Size([4, 2])
    """

    def __init__(
        self, module: nn.Module, layers: str | list[str], influence_src_dataset: Any, activation_dir: str,
        model_id: str = "", similarity_metric: Callable[..., Tensor] = cosine_similarity,
        similarity_direction: str = "max", batch_size: int = 1, **kwargs: Any,
    ) -> None:  # fmt: skip
        if similarity_direction not in ("max", "min"):
            raise ValueError(f"{similarity_direction} is not a valid value. Must be either 'max' or 'min'")
        self.module, self.layers = module, [layers] if isinstance(layers, str) else list(layers)
        self.influence_src_dataset, self.activation_dir, self.model_id = influence_src_dataset, activation_dir, model_id
        self.similarity_direction, self.batch_size = similarity_direction, batch_size
        self.replace_nan: float | None = None
        if similarity_metric is cosine_similarity:
            self.replace_nan = kwargs.get("replace_nan", -2 if similarity_direction == "max" else 2)
            metric = similarity_metric

            def similarity_metric(test: Tensor, train: Tensor) -> Tensor:
                return metric(test, train, replace_nan=self.replace_nan)

        self.similarity_metric = similarity_metric

    def influence(
        self, inputs: Tensor | tuple[Tensor, ...], top_k: int = 1, additional_forward_args: Any = None,
        load_src_from_disk: bool = True, **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """``{layer: (indices, scores)}`` of the ``top_k`` most similar training examples per input;
        with the cosine metric, ``"zero_acts-<layer>"`` lists the (input, training example) pairs
        whose similarity came from an all-zero activation (and a RuntimeWarning says so)."""
        if additional_forward_args is not None:
            raise ArgumentError("additional_forward_args is not supported here; wrap the model to take them")
        matches: dict[int, list[Tensor]] = {j: [] for j in range(len(self.layers))}
        seen = [0] * len(self.layers)
        calls = [0]

        def metric(test: Tensor, train: Tensor) -> Tensor:
            j = calls[0] % len(self.layers)  # the native loop: every layer per training chunk, in order
            calls[0] += 1
            scores = self.similarity_metric(test, train)
            if scores.shape != (len(test), len(train)):
                raise AssertionError(
                    "Output of custom similarity does not meet required dimensions. "
                    f"Your output has shape {tuple(scores.shape)}; expected {(len(test), len(train))}"
                )
            if self.replace_nan is not None:
                found = (scores == self.replace_nan).nonzero()
                matches[j].append(found + torch.tensor([0, seen[j]]))
            seen[j] += len(train)
            return scores

        finder = native.similarity_influence(
            self.module, self.layers, self.influence_src_dataset, similarity=metric,
            direction=self.similarity_direction, batch_size=self.batch_size,
        )  # fmt: skip
        out: dict[str, Any] = dict(finder.influence(inputs, top_k=top_k))
        for j, layer in enumerate(self.layers):
            zero = torch.cat(matches[j]) if matches[j] else torch.zeros(0, 2, dtype=torch.long)
            if len(zero):
                warnings.warn(
                    f"Layer {layer} has zero-vector activations for some inputs, which makes cosine similarity "
                    f"undefined there; the (input, training example) pairs are under 'zero_acts-{layer}'",
                    RuntimeWarning,
                    stacklevel=2,
                )
                out[f"zero_acts-{layer}"] = zero
        return out
