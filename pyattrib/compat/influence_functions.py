"""Captum's ``NaiveInfluenceFunction`` and ``ArnoldiInfluenceFunction`` over pyattrib's influence functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .. import influence as native
from ..influence.checkpoints import kept_state, load_flexible
from ..influence.tracin import as_dataset, train_chunks
from .influence import _batch_size, _Influence


class _InfluenceFunction(_Influence):
    _make: Callable[..., Any]
    _seeded = False  # whether the solver draws a random start (Arnoldi)

    def __init__(
        self, model: nn.Module, train_dataset: Any, checkpoint: str,
        checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible,
        layers: list[str] | None = None, loss_fn: Callable[..., Tensor] | None = None, batch_size: int | None = 1,
        hessian_dataset: Any = None, test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False, projection_dim: int = 50, seed: int = 0,
        hessian_reg: float = 1e-6, hessian_inverse_tol: float = 1e-5, projection_on_cpu: bool = True,
        show_progress: bool = False, **solver: Any,
    ) -> None:  # fmt: skip
        self.model, self.train_dataset = model, train_dataset
        if self._seeded:
            solver["seed"] = seed
        with kept_state(model):
            checkpoints_load_func(model, checkpoint)
            self._native = type(self)._make(
                model, train_dataset, hessian_data=hessian_dataset, projection_dim=projection_dim,
                hessian_reg=hessian_reg, hessian_inverse_tol=hessian_inverse_tol, layers=layers,
                loss_fn=loss_fn, test_loss_fn=test_loss_fn, batch_size=_batch_size(train_dataset, batch_size), **solver,
            )  # fmt: skip

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
        checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible,
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
