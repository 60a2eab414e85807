r"""TRAK: data attribution from randomly projected gradients of the model output, over checkpoints.

For checkpoint (or independently trained model) :math:`m` with parameters :math:`\theta_m`, every
example's feature is :math:`\phi_m(z) = P_m^\top \nabla_\theta f(z; \theta_m)`, with :math:`f` the
classification margin :math:`\log\frac{p(z)}{1 - p(z)}` and :math:`P_m` a Gaussian
``(n_params, projection_dim)`` projection. With the training features stacked in :math:`\Phi_m` and
:math:`Q_m = \mathrm{diag}(1 - p(z_i; \theta_m))`,

.. math:: \tau(z) = \Big(\frac1M \sum_m \phi_m(z)^\top (\Phi_m^\top \Phi_m + \lambda I)^{-1} \Phi_m^\top\Big)
          \odot \Big(\frac1M \sum_m \mathrm{diag}\, Q_m\Big)

(Park et al. 2023, Algorithm 1, without the final soft-thresholding). A positive score: the
training example raises the test example's margin. Gradients come in chunks of ``batch_size``
examples and are projected inside each chunk (the per-sample gradients of the whole training set
never exist at once); the projection is drawn per checkpoint from the generator's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._core import random
from .._core.errors import check_count
from .._core.state import in_eval
from .._core.targets import model_output
from .tracin import Checkpoints, TracInCP, train_chunks


def margin(outputs: Tensor, labels: Tensor) -> Tensor:
    """The classification margin ``log p_y - log(1 - p_y)`` (TRAK's model output function): the
    correct class's logit minus the log-sum-exp of the others', summed over the batch.

    Args:
        outputs: ``(N, C)`` logits.
        labels: ``(N,)`` correct classes.

    Returns:
        Tensor: the summed margin (a scalar).

    Example:
        >>> pa.influence.margin(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
        tensor(1.3069)
    """
    correct = outputs.gather(1, labels[:, None].long())[:, 0]
    is_label = torch.arange(outputs.shape[1], device=outputs.device)[None] == labels[:, None]
    others = outputs.masked_fill(is_label, float("-inf"))
    return (correct - torch.logsumexp(others, 1)).sum()


def residual(outputs: Any, labels: Tensor) -> Tensor:
    """TRAK's weight ``1 - p_y`` per example (``(N,)``), the probability of the correct class.

    Args:
        outputs: ``(N, C)`` logits.
        labels: ``(N,)`` correct classes.

    Returns:
        Tensor: ``(N,)``.

    Example:
        >>> pa.influence.residual(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
        tensor([0.5000])
    """
    return 1 - model_output(outputs).softmax(1).gather(1, labels[:, None].long())[:, 0]


def _next_tokens(outputs: Any, ids: Tensor) -> tuple[Tensor, Tensor]:
    logits = model_output(outputs)
    return logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)


def sequence_margin(outputs: Any, ids: Tensor) -> Tensor:
    """TRAK's output function for a language model: the margin of every next token (its logit minus
    the log-sum-exp of the others), summed over the positions and the batch.

    Args:
        outputs: ``(N, T, V)`` logits, or a Hugging Face output holding them.
        ids: ``(N, T)`` the sequences (position ``t`` predicts token ``t + 1``).

    Returns:
        Tensor: the summed margin (a scalar).

    Example:
        >>> logits = torch.zeros(1, 3, 4)
        >>> pa.influence.sequence_margin(logits, torch.tensor([[0, 1, 2]]))
        tensor(-2.1972)
    """
    return margin(*_next_tokens(outputs, ids))


def sequence_residual(outputs: Any, ids: Tensor) -> Tensor:
    """TRAK's weight for a sequence: ``1 - p`` of each next token, averaged over the positions
    (the classifier's ``1 - p_y`` per position; pyattrib's extension to sequences).

    Args:
        outputs: ``(N, T, V)`` logits, or a Hugging Face output holding them.
        ids: ``(N, T)`` the sequences.

    Returns:
        Tensor: ``(N,)``.

    Example:
        >>> pa.influence.sequence_residual(torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]))
        tensor([0.7500])
    """
    logits, targets = _next_tokens(outputs, ids)
    return residual(logits, targets).reshape(len(ids), -1).mean(1)


class TRAK:
    """TRAK scores of the training examples of ``train_data`` for test examples (see the module).

    Args:
        model: The classifier (an ``nn.Module``); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tuple of tensors, the
            label last.
        checkpoints: State dicts (or paths of saved ones) of the checkpoints or independently trained
            models averaged over.
        projection_dim: The dimension ``k`` of the projected gradients.
        damping: ``lambda`` added to the diagonal of each ``Phi^T Phi``.
        batch_size: Examples per chunk of per-sample gradients.
        generator: Draws the base seed of the per-checkpoint projections (None: 0).
        output_fn: The model output function ``f`` whose gradients are projected, ``(outputs, labels)``
            summed over a batch (default :func:`margin`; :func:`sequence_margin` for a language model).
        residual_fn: The weights ``Q``, ``(outputs, labels) -> (N,)`` (default :func:`residual`;
            :func:`sequence_residual` for a language model).

    References:
        - Park, Georgiev, Ilyas, Leclerc and Madry, "TRAK: Attributing Model Behavior at Scale",
          ICML 2023. https://arxiv.org/abs/2303.14186

    Example:
        >>> train = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))
        >>> trak = pa.influence.TRAK(model, train, [model.state_dict()], projection_dim=32)
        >>> trak.influence(x, y).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        checkpoints: Checkpoints,
        *,
        projection_dim: int = 512,
        damping: float = 0.0,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
        output_fn: Callable[[Any, Tensor], Tensor] = margin,
        residual_fn: Callable[[Any, Tensor], Tensor] = residual,
    ) -> None:
        check_count("projection_dim", projection_dim)
        self._gradients = TracInCP(model, train_data, checkpoints, loss_fn=output_fn, batch_size=batch_size)
        self.residual_fn = residual_fn
        self.model, self.train_data, self.batch_size = model, train_data, batch_size
        self.projection_dim, self.damping = projection_dim, damping
        self.seed = random.base_seed(0, generator)
        self._fitted: list[tuple[Tensor, Tensor]] = []  # per checkpoint: (G^-1 Phi^T (k, n), 1 - p (n,))
        self._projections: dict[int, Tensor] = {}

    def projection(self, c: int, n_params: int, like: Tensor) -> Tensor:
        """``P_c``: ``(n_params, projection_dim)`` standard normal entries, from checkpoint ``c``'s seed
        (drawn once per checkpoint, kept on the gradients' device and dtype)."""
        if c not in self._projections:
            g = random.item_generator(self.seed, c)
            drawn = torch.randn(n_params, self.projection_dim, generator=g, dtype=torch.float64)
            self._projections[c] = drawn.to(like)
        return self._projections[c].to(like)  # a no-op for the gradients it was made for

    def features(self, c: int, inputs: Tensor | tuple[Tensor, ...], labels: Tensor) -> Tensor:
        """``(N, projection_dim)``: the projected margin gradients of a batch at checkpoint ``c``."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        grads = self._gradients.gradients(c, xs, labels)
        return grads @ self.projection(c, grads.shape[1], grads)

    def _residuals(self, c: int, xs: tuple[Tensor, ...], labels: Tensor) -> Tensor:
        used, rest = self._gradients._params(c)
        with in_eval(self.model), torch.no_grad():
            out = torch.func.functional_call(self.model, {**rest, **used}, xs)
        return self.residual_fn(out, labels)

    def fit(self) -> TRAK:
        """Project the training set's gradients at every checkpoint, chunk by chunk, and keep
        ``(Phi^T Phi + lambda I)^{-1} Phi^T`` and ``1 - p`` per checkpoint."""
        self._fitted = []
        for c in range(len(self._gradients.checkpoints)):
            phis, left = [], []
            for _, xs, y in train_chunks(self.train_data, self.batch_size):
                phis.append(self.features(c, xs, y).double())
                left.append(self._residuals(c, xs, y).double())
            phi = torch.cat(phis)
            gram = phi.T @ phi + self.damping * torch.eye(phi.shape[1], dtype=phi.dtype, device=phi.device)
            self._fitted.append((torch.linalg.solve(gram, phi.T), torch.cat(left)))
        return self

    def influence(self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor) -> Tensor:
        """``(N_test, N_train)`` TRAK scores (fitting the training side first if needed)."""
        if not self._fitted:
            self.fit()
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        kernel = torch.stack([self.features(c, xs, labels).double() @ w for c, (w, _) in enumerate(self._fitted)])
        q = torch.stack([left for _, left in self._fitted]).mean(0)
        return (kernel.mean(0) * q[None]).to(xs[0].dtype if xs[0].is_floating_point() else torch.float32)


def trak(
    model: nn.Module,
    train_data: Any,
    checkpoints: Checkpoints,
    *,
    projection_dim: int = 512,
    damping: float = 0.0,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    output_fn: Callable[[Any, Tensor], Tensor] = margin,
    residual_fn: Callable[[Any, Tensor], Tensor] = residual,
) -> TRAK:
    """A :class:`TRAK` over ``train_data`` (see there).

    Args:
        model: The classifier (an ``nn.Module``); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tuple of tensors, the
            label last.
        checkpoints: State dicts (or paths) of the checkpoints or models averaged over.
        projection_dim: The dimension of the projected gradients.
        damping: Added to the diagonal of each ``Phi^T Phi``.
        batch_size: Examples per chunk of per-sample gradients.
        generator: Draws the base seed of the projections.
        output_fn: The model output function whose gradients are projected (default the margin;
            :func:`sequence_margin` for a language model).
        residual_fn: The weights ``Q`` per example (default ``1 - p_y``; :func:`sequence_residual`).

    Returns:
        TRAK: ``influence(test_inputs, test_labels)`` and ``fit()``.

    References:
        - Park, Georgiev, Ilyas, Leclerc and Madry, "TRAK: Attributing Model Behavior at Scale",
          ICML 2023. https://arxiv.org/abs/2303.14186

    Example:
        >>> train = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))
        >>> pa.influence.trak(model, train, [model.state_dict()], projection_dim=32).influence(x, y).shape
        torch.Size([4, 16])
    """
    return TRAK(model, train_data, checkpoints, projection_dim=projection_dim, damping=damping,
                batch_size=batch_size, generator=generator, output_fn=output_fn, residual_fn=residual_fn)  # fmt: skip
