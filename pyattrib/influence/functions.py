r"""Influence functions (Koh & Liang, 2017, https://arxiv.org/abs/1703.04730).

The influence of a training example :math:`z` on a test example :math:`z'` is

.. math:: I(z, z') = \nabla_\theta L(z')^\top H^{-1} \nabla_\theta L(z),
          \qquad H = \nabla^2_\theta \sum_{x \in D_H} L(x)

(the sign convention of Captum: up-weighting :math:`z` changes the test loss by :math:`-I`).
:math:`H^{-1}` is replaced by a low-rank inverse :math:`R R^\top`, :math:`R = V \Lambda^{-1/2}`,
from the top ``projection_dim`` eigenpairs of :math:`H + \text{hessian\_reg}\, I` whose
eigenvalues exceed ``hessian_inverse_tol``. Then every example has an embedding
:math:`\nabla L(z)^\top R` and influences are their dot products. The eigenpairs come from:

- :func:`naive_influence_function`: the explicit ``(P, P)`` Hessian (small models);
- :func:`arnoldi_influence_function`: Arnoldi iteration (Schioppa et al., 2021,
  https://arxiv.org/abs/2112.03052) with Hessian-vector products from ``torch.func.jvp`` of
  ``torch.func.grad`` (forward over reverse), never forming :math:`H`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError, check_count
from .._core.random import base_seed
from .._core.state import in_eval
from .._core.targets import model_output
from .tracin import TracInCP, batch_sum, train_chunks

NAIVE_MAX_PARAMETERS = 20_000  # a (P, P) float32 Hessian of 1.6 GB


def top_eigen(h: Tensor, k: int | None, reg: float, tol: float) -> tuple[Tensor, Tensor]:
    """Eigenpairs of the symmetric ``h + reg I`` with eigenvalue above ``tol``, the ``k`` largest
    (ascending; eigenvectors as columns)."""
    h = (h + h.T) / 2 + reg * torch.eye(len(h), dtype=h.dtype, device=h.device)
    values, vectors = torch.linalg.eigh(h)
    keep = values > tol
    values, vectors = values[keep], vectors[:, keep]
    if k is not None:
        values, vectors = values[-k:], vectors[:, -k:]
    if len(values) == 0:
        raise ArgumentError(
            f"the Hessian has no eigenvalue above hessian_inverse_tol={tol:g} (after hessian_reg={reg:g}); "
            "lower hessian_inverse_tol or raise hessian_reg"
        )
    return values, vectors


class InfluenceFunction(TracInCP, ABC):
    """Influence-function scores of ``train_data`` (see the module docstring); the methods are
    :class:`TracInCP`'s (``influence``, ``self_influence``, ``k_most_influential``) with the
    per-example gradients replaced by their embeddings ``embed(inputs, labels)``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        hessian_data: The examples whose summed loss defines the Hessian; default the training set.
        projection_dim: Project gradients to this dimension with a random matrix (``None``: no
            projection).
        hessian_reg: Added to the Hessian's diagonal (damping).
        hessian_inverse_tol: Eigenvalues below this are dropped when inverting the Hessian.
        **options: Keyword configuration of the class it builds (see there).

    Example:
        >>> isinstance(pa.influence.naive_influence_function(model, train), pa.influence.InfluenceFunction)
        True
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        *,
        hessian_data: Any = None,
        projection_dim: int | None = 50,
        hessian_reg: float = 1e-6,
        hessian_inverse_tol: float = 1e-5,
        **options: Any,
    ) -> None:
        if projection_dim is not None:
            check_count("projection_dim", projection_dim)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # the Hessian's parameters, kept
        super().__init__(model, train_data, [state], **options)
        self.hessian_data = train_data if hessian_data is None else hessian_data
        self.projection_dim, self.hessian_reg, self.hessian_inverse_tol = (
            projection_dim,
            hessian_reg,
            hessian_inverse_tol,
        )
        values, vectors = self._eigenpairs()
        self.R = vectors * values.rsqrt()  # (P, k): H^{-1} ~ R R^T

    @abstractmethod
    def _eigenpairs(self) -> tuple[Tensor, Tensor]:
        """Eigenvalues (ascending) and eigenvectors (columns) for the low-rank inverse Hessian."""

    def embed(self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, k)``: :math:`\\nabla_\\theta L(z)^\\top R` per example."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        return torch.cat(self._gradient_blocks(0, xs, labels, test), 1) @ self.R

    def _features(self, c: int, xs: tuple[Tensor, ...], labels: Tensor, test: bool) -> Any:
        return [self.embed(xs, labels, test)]

    # the training loss as a function of the flat parameter vector ---------------------------
    def _flat(self) -> tuple[Tensor, Any]:
        used, rest = self._params(0)
        shapes = [used[k].shape for k in self.names]
        sizes = [s.numel() for s in shapes]

        def unflatten(theta: Tensor) -> dict[str, Tensor]:
            return {k: t.reshape(s) for k, t, s in zip(self.names, theta.split(sizes), shapes)}

        def total_loss(theta: Tensor, xs: tuple[Tensor, ...], y: Tensor) -> Tensor:
            out = torch.func.functional_call(self.model, {**rest, **unflatten(theta)}, xs)
            summed = batch_sum(self.loss_fn)
            if summed is not None:
                return summed(out, y)
            logits = out if isinstance(out, Tensor) else model_output(out)  # vmap maps tensors (not a HF output)
            return torch.func.vmap(lambda o, t: self.loss_fn(o[None], t[None]).sum())(logits, y).sum()

        theta = torch.cat([used[k].reshape(-1) for k in self.names])
        return theta, total_loss

    def _hessian_chunks(self) -> Any:
        return train_chunks(self.hessian_data, self.batch_size)


class NaiveInfluenceFunction(InfluenceFunction):
    """Influence functions from the explicit Hessian (``torch.func.hessian``), summed over
    ``hessian_data`` in chunks of ``batch_size``. For models of at most 20,000 parameters (use
    ``layers=`` or :class:`ArnoldiInfluenceFunction` beyond).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        hessian_data: The examples whose summed loss defines the Hessian; default the training set.
        projection_dim: Project gradients to this dimension with a random matrix (``None``: no
            projection).
        hessian_reg: Added to the Hessian's diagonal (damping).
        hessian_inverse_tol: Eigenvalues below this are dropped when inverting the Hessian.
        **options: Keyword configuration of the class it builds (see there).

    References:
        - Koh and Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017.
          https://arxiv.org/abs/1703.04730

    Example:
        >>> naive = pa.influence.NaiveInfluenceFunction(model, train, projection_dim=10)
        >>> naive.self_influence().shape
        torch.Size([16])
    """

    def _eigenpairs(self) -> tuple[Tensor, Tensor]:
        theta, total_loss = self._flat()
        if len(theta) > NAIVE_MAX_PARAMETERS:
            gb = len(theta) ** 2 * theta.element_size() / 1e9
            raise ArgumentError(
                f"naive_influence_function forms the ({len(theta)}, {len(theta)}) Hessian ({gb:.1f} GB); "
                "restrict it with layers=[...] or use arnoldi_influence_function"
            )
        h = theta.new_zeros(len(theta), len(theta))
        with in_eval(self.model):
            for _, xs, y in self._hessian_chunks():
                h = h + torch.func.hessian(total_loss)(theta, xs, y)
        return top_eigen(h, self.projection_dim, self.hessian_reg, self.hessian_inverse_tol)


class ArnoldiInfluenceFunction(InfluenceFunction):
    """Influence functions from ``arnoldi_dim`` steps of Arnoldi iteration on Hessian-vector
    products (each one ``torch.func.jvp`` of ``torch.func.grad`` over ``hessian_data``), started
    from a random vector (``seed``). When the next Krylov vector's norm falls below
    ``arnoldi_tol`` the space is invariant: the iteration stops there if it holds at least
    ``projection_dim`` directions, else it goes on from a fresh random direction orthogonal to
    it (a Hessian such as ``2 I`` has a one-dimensional Krylov space from any start). The top
    eigenpairs of the Hessian restricted to the space stand in for the Hessian's (``H`` is never
    formed).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        arnoldi_dim: Steps of Arnoldi iteration.
        arnoldi_tol: Below this norm the next Krylov vector ends an invariant subspace.
        seed: Seed of the starting vectors.
        generator: Draws the base seed instead (one draw at construction); ``seed`` is the convenience that names
            one.
        hessian_reg: Added to the Hessian's diagonal (damping).
        hessian_inverse_tol: Eigenvalues below this are dropped when inverting the Hessian.
        **options: Keyword configuration of the class it builds (see there).

    References:
        - Koh and Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017.
          https://arxiv.org/abs/1703.04730
        - Schioppa, Zablotskaia, Vilar and Sokolov, "Scaling Up Influence Functions", AAAI 2022.
          https://arxiv.org/abs/2112.03052

    Example:
        >>> arnoldi = pa.influence.ArnoldiInfluenceFunction(model, train, arnoldi_dim=20, projection_dim=5)
        >>> arnoldi.embed(x, y).shape
        torch.Size([4, 5])
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        *,
        arnoldi_dim: int = 200,
        arnoldi_tol: float = 1e-1,
        seed: int = 0,
        hessian_reg: float = 1e-3,
        hessian_inverse_tol: float = 1e-4,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> None:
        check_count("arnoldi_dim", arnoldi_dim)
        self.arnoldi_dim, self.arnoldi_tol, self.seed = arnoldi_dim, arnoldi_tol, base_seed(seed, generator)
        super().__init__(model, train_data, hessian_reg=hessian_reg, hessian_inverse_tol=hessian_inverse_tol,
                         **options)  # fmt: skip

    def hvp(self, v: Tensor) -> Tensor:
        """:math:`H v`, summed over ``hessian_data``."""
        theta, total_loss = self._flat()
        out = torch.zeros_like(theta)
        with in_eval(self.model):
            for _, xs, y in self._hessian_chunks():
                grad = torch.func.grad(lambda t, xs=xs, y=y: total_loss(t, xs, y))
                out = out + torch.func.jvp(grad, (theta,), (v,))[1]
        return out

    def _eigenpairs(self) -> tuple[Tensor, Tensor]:
        theta, _ = self._flat()
        g = torch.Generator(device="cpu").manual_seed(self.seed)

        def fresh(basis: list[Tensor]) -> Tensor | None:
            """A random unit vector orthogonal to ``basis`` (None if they span the whole space)."""
            w = torch.randn(len(theta), generator=g, dtype=theta.dtype).to(theta.device)
            w = orthogonalise(w, basis)[0]
            return w / w.norm() if w.norm() > 1e-6 * len(theta) ** 0.5 else None

        steps = min(self.arnoldi_dim, len(theta))  # at most P orthonormal directions
        wanted = min(self.projection_dim or steps, steps)
        first = fresh([])
        assert first is not None  # a random direction of a nonempty space
        basis = [first]
        h = theta.new_zeros(steps + 1, steps)
        for j in range(steps):
            w, h[: j + 1, j] = orthogonalise(self.hvp(basis[j]), basis)
            h[j + 1, j] = w.norm()
            if h[j + 1, j] >= self.arnoldi_tol:
                basis.append(w / h[j + 1, j])
                continue
            # the Krylov space closed: stop if it holds the eigenpairs asked for, else restart from a
            # fresh direction orthogonal to it (H q_j stays in the span, so Q^T H Q is still h)
            h[j + 1, j] = 0.0
            new = fresh(basis) if len(basis) < wanted + 1 else None
            if new is None:
                break
            basis.append(new)
        m = min(len(basis), j + 1)
        q = torch.stack(basis[:m], 1)  # (P, m): orthonormal
        values, small = top_eigen(h[:m, :m], self.projection_dim, self.hessian_reg, self.hessian_inverse_tol)
        return values, q @ small


def orthogonalise(w: Tensor, basis: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``w`` minus its projection on the orthonormal ``basis`` (Gram-Schmidt twice: one pass loses
    orthogonality in float32), and the coefficients removed."""
    coefficients = w.new_zeros(len(basis))
    for _ in range(2):
        for i, q in enumerate(basis):
            c = q @ w
            coefficients[i] += c
            w = w - c * q
    return w, coefficients


def naive_influence_function(model: nn.Module, train_data: Any, **options: Any) -> NaiveInfluenceFunction:
    """A :class:`NaiveInfluenceFunction` over ``train_data``: options ``hessian_data``,
    ``projection_dim`` (50), ``hessian_reg`` (1e-6), ``hessian_inverse_tol`` (1e-5) and
    :class:`pyattrib.influence.TracInCP`'s ``loss_fn``, ``test_loss_fn``, ``layers``, ``batch_size``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        NaiveInfluenceFunction.

    References:
        - Koh and Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017.
          https://arxiv.org/abs/1703.04730

    Example:
        >>> naive = pa.influence.naive_influence_function(model, train, projection_dim=10)
        >>> naive.influence(x, y).shape
        torch.Size([4, 16])
    """
    return NaiveInfluenceFunction(model, train_data, **options)


def arnoldi_influence_function(model: nn.Module, train_data: Any, **options: Any) -> ArnoldiInfluenceFunction:
    """An :class:`ArnoldiInfluenceFunction` over ``train_data``: options ``arnoldi_dim`` (200),
    ``arnoldi_tol`` (0.1), ``seed``, ``projection_dim`` (50), ``hessian_reg`` (1e-3),
    ``hessian_inverse_tol`` (1e-4), ``hessian_data`` and :class:`TracInCP`'s options.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        ArnoldiInfluenceFunction.

    References:
        - Koh and Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017.
          https://arxiv.org/abs/1703.04730
        - Schioppa, Zablotskaia, Vilar and Sokolov, "Scaling Up Influence Functions", AAAI 2022.
          https://arxiv.org/abs/2112.03052

    Example:
        >>> arnoldi = pa.influence.arnoldi_influence_function(model, train, arnoldi_dim=20, projection_dim=5)
        >>> arnoldi.influence(x, y).shape
        torch.Size([4, 16])
    """
    return ArnoldiInfluenceFunction(model, train_data, **options)
