"""TracIn on the final fully connected layer in closed form (TracInCPFast), and with the training set
embedded once for fast queries (TracInCPFastRandProj)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError, check_count
from .._core.random import base_seed, item_generator
from .._core.state import in_eval
from .tracin import Checkpoints, TracInCP, as_dataset, batch_sum, merge_top_k, train_chunks


class TracInCPFast(TracInCP):
    r"""TracIn on the final fully connected layer only, in closed form: the gradient of the
    loss with respect to that layer's weight is the outer product of
    :math:`g = \partial L / \partial z` (its output) and :math:`a` (its input), so

    .. math:: \mathrm{TracInCPFast}(z, z') = \sum_c \eta_c\, (g \cdot g')\,(a \cdot a')

    with no per-sample weight gradient ever formed (the bias is left out, as in Captum's
    TracInCPFast). ``final_fc_layer`` names the ``nn.Linear``; the other options are
    :class:`TracInCP`'s.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        final_fc_layer: The final ``nn.Linear`` layer, whose input and output gradient give the score in
            closed form.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or models.
        **options: Keyword configuration of the class it builds (see there).

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> fast = pa.influence.TracInCPFast(model, "2", train, [model.state_dict()])
        >>> fast.self_influence().shape
        torch.Size([16])
    """

    def __init__(self, model: nn.Module, final_fc_layer: str, train_data: Any, checkpoints: Checkpoints,
                 **options: Any) -> None:  # fmt: skip
        if "layers" in options:
            raise ArgumentError("TracInCPFast uses final_fc_layer only; do not pass layers")
        super().__init__(model, train_data, checkpoints, **options)
        try:
            self.final = model.get_submodule(final_fc_layer)
        except AttributeError:
            raise ArgumentError(f"final_fc_layer {final_fc_layer!r} is not a module of the model") from None
        if not isinstance(self.final, nn.Linear):
            raise ArgumentError(f"final_fc_layer must name an nn.Linear, got {type(self.final).__name__}")
        self._final_in, self._final_out = Layers(model, self.final, True), Layers(model, self.final, False)

    def gradients(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, K * D)``: the per-example weight gradients ``g a^T`` of the final layer, flattened
        (only for the dot products below: they factor as ``(g . g')(a . a')``)."""
        g, a = self._factors(c, inputs, labels, test)
        return (g[:, :, None] * a[:, None, :]).reshape(len(g), -1)

    def _factors(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool) -> tuple[Tensor, Tensor]:
        used, rest = self._params(c)
        loss_fn = self.test_loss_fn if test else self.loss_fn
        seen: dict[str, Tensor] = {}

        def swap(j: int, value: Tensor) -> Tensor:
            seen["a" if j == 0 else "z"] = value.detach()
            if j == 1:  # the output: a leaf whose gradient is dL/dz per example
                seen["z"] = value.detach().requires_grad_()
                return seen["z"]
            return value

        with in_eval(self.model), torch.enable_grad(), self._final_in.hooked(lambda j, v: swap(0, v)), \
                self._final_out.hooked(lambda j, v: swap(1, v)):  # fmt: skip
            out = torch.func.functional_call(self.model, {**rest, **used}, inputs)
            summed = batch_sum(loss_fn)  # examples are independent: d(sum)/dz_i is example i's gradient
            total = (
                summed(out, labels)
                if summed
                else torch.func.vmap(lambda o, t: loss_fn(o[None], t[None]).sum())(out, labels).sum()
            )
            (g,) = torch.autograd.grad(total, seen["z"])
        return g.reshape(len(labels), -1), seen["a"].reshape(len(labels), -1)

    def _features(self, c: int, xs: tuple[Tensor, ...], labels: Tensor, test: bool) -> Any:
        return self._factors(c, xs, labels, test)

    @staticmethod
    def _dot(u: Any, v: Any) -> Tensor:
        return (u[0] @ v[0].T) * (u[1] @ v[1].T)

    @staticmethod
    def _square(u: Any) -> Tensor:
        return (u[0] * u[0]).sum(1) * (u[1] * u[1]).sum(1)


def tracin_cp_fast(
    model: nn.Module,
    final_fc_layer: str,
    train_data: Any,
    checkpoints: Checkpoints,
    *,
    learning_rates: Sequence[float] | None = None,
    load: Callable[[str], dict[str, Tensor]] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    test_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int = 64,
) -> TracInCPFast:
    """A :class:`TracInCPFast` over ``train_data`` (see its options).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        final_fc_layer: The final ``nn.Linear`` layer, whose input and output gradient give the score in
            closed form.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or models.
        learning_rates: One per checkpoint (default 1), :math:`\\eta_c`.
        load: Reads a checkpoint path into a ``state_dict`` (default ``torch.load``).
        loss_fn: The loss of one example, ``(outputs, labels)``; default cross-entropy.
        test_loss_fn: The loss of the test examples (default ``loss_fn``).
        batch_size: Examples per per-sample-gradient chunk.

    Returns:
        TracInCPFast.

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> fast = pa.influence.tracin_cp_fast(model, "2", train, [model.state_dict()])
        >>> fast.influence(x, y).shape
        torch.Size([4, 16])
    """
    return TracInCPFast(
        model, final_fc_layer, train_data, checkpoints, learning_rates=learning_rates, load=load, loss_fn=loss_fn,
        test_loss_fn=test_loss_fn, batch_size=batch_size,
    )  # fmt: skip


class TracInCPFastRandProj(TracInCPFast):
    r""":class:`TracInCPFast` with the training set embedded once, for fast queries.

    Each example's final-layer gradient :math:`g a^\top` of every checkpoint becomes one row
    of an embedding, scaled by :math:`\sqrt{\eta_c}`, so that influence is a dot product of
    embeddings. With ``projection_dim``, both factors are first projected by Gaussian random
    matrices (:math:`g P / \sqrt{p_g}`, :math:`a Q / \sqrt{p_a}`, :math:`p_g p_a \le`
    ``projection_dim``, drawn from ``seed``), which keeps the dot products in expectation
    (Johnson-Lindenstrauss) at a fraction of the size; without it the scores equal
    :class:`TracInCPFast`'s. The training embeddings are computed on the first query and
    kept; ``k_most_influential`` takes an exact top-k over them in chunks.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        final_fc_layer: The final ``nn.Linear`` layer, whose input and output gradient give the score in
            closed form.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or models.
        projection_dim: Project gradients to this dimension with a random matrix (``None``: no
            projection).
        seed: Seed of the generator built for the draws (a convenience: the same seed gives the same
            draws).
        generator: Draws the base seed instead (one draw at construction); ``seed`` is the convenience that names
            one.
        **options: Keyword configuration of the class it builds (see there).

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> proj = pa.influence.TracInCPFastRandProj(model, "2", train, [model.state_dict()], projection_dim=4)
        >>> proj.influence(x, y).shape
        torch.Size([4, 16])
    """

    def __init__(self, model: nn.Module, final_fc_layer: str, train_data: Any, checkpoints: Checkpoints, *,
                 projection_dim: int | None = None, seed: int = 0, generator: torch.Generator | None = None,
                 **options: Any) -> None:  # fmt: skip
        super().__init__(model, final_fc_layer, train_data, checkpoints, **options)
        if projection_dim is not None:
            check_count("projection_dim", projection_dim)
        self.projection_dim, self.seed = projection_dim, base_seed(seed, generator)
        self._projections: dict[int, tuple[Tensor, Tensor]] = {}
        self._train: Tensor | None = None

    def _projection(self, c: int, k: int, d: int, like: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.projection_dim is None or self.projection_dim >= k * d:
            return None  # the exact embedding is no larger
        if c not in self._projections:
            # each factor to at most sqrt(projection_dim) dimensions (Captum's rule)
            generator = item_generator(self.seed, c)
            pk = max(1, min(k, math.isqrt(self.projection_dim)))
            pd = max(1, min(d, math.isqrt(self.projection_dim)))
            p = torch.randn(k, pk, generator=generator) / pk**0.5
            q = torch.randn(d, pd, generator=generator) / pd**0.5
            self._projections[c] = (p.to(like), q.to(like))
        return self._projections[c]

    def embed(self, xs: tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, E)``: the examples' embeddings over all checkpoints."""
        parts = []
        for c, rate in enumerate(self.learning_rates):
            g, a = self._factors(c, xs, labels, test)
            proj = self._projection(c, g.shape[1], a.shape[1], g)
            if proj is not None:
                g, a = g @ proj[0], a @ proj[1]
            parts.append(rate**0.5 * (g[:, :, None] * a[:, None, :]).reshape(len(g), -1))
        return torch.cat(parts, 1)

    def train_embeddings(self) -> Tensor:
        if self._train is None:
            self._train = torch.cat([self.embed(tx, ty) for _, tx, ty in self._train_chunks()])
        return self._train

    def influence(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, show_progress: bool = False, _task: str = ""
    ) -> Tensor:
        """(``show_progress``: nothing to show, the scores are one matrix product.)"""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        return self.embed(xs, labels, test=True) @ self.train_embeddings().T

    def self_influence(
        self, data: Any = None, show_progress: bool = False, outer_loop_by_checkpoints: bool = False
    ) -> Tensor:
        """Squared norms of the embeddings: of the training data, or of ``data`` (a Dataset,
        DataLoader or one batch ``(inputs..., labels)``)."""
        if data is None:
            return (self.train_embeddings() ** 2).sum(1)
        chunks = self._progress(train_chunks(as_dataset(data), self.batch_size), show_progress,
                                "compute self influence. Processing batch", as_dataset(data))  # fmt: skip
        return torch.cat([(self.embed(xs, y) ** 2).sum(1) for _, xs, y in chunks])

    def k_most_influential(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, k: int = 5, proponents: bool = True,
        show_progress: bool = False,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        test, train = self.embed(xs, labels, test=True), self.train_embeddings()
        sign = 1.0 if proponents else -1.0
        best = None
        for start in range(0, len(train), self.batch_size):  # exact top-k, one chunk of scores at a time
            best = merge_top_k(best, sign * (test @ train[start : start + self.batch_size].T), start, k)
        assert best is not None
        return best[1], sign * best[0]


def tracin_cp_fast_rand_proj(model: nn.Module, final_fc_layer: str, train_data: Any,
                             checkpoints: Checkpoints, **options: Any) -> TracInCPFastRandProj:  # fmt: skip
    """A :class:`TracInCPFastRandProj` over ``train_data`` (see its options).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        final_fc_layer: The final ``nn.Linear`` layer, whose input and output gradient give the score in
            closed form.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or models.
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        TracInCPFastRandProj.

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> proj = pa.influence.tracin_cp_fast_rand_proj(model, "2", train, [model.state_dict()])
        >>> indices, scores = proj.k_most_influential(x, y, k=3)
        >>> indices.shape
        torch.Size([4, 3])
    """
    return TracInCPFastRandProj(model, final_fc_layer, train_data, checkpoints, **options)
