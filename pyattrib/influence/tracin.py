r"""TracIn with checkpoints (Pruthi et al., 2020, https://arxiv.org/abs/2002.08484).

The influence of a training example ``z`` on a test example ``z'`` is the sum over saved
checkpoints of the learning rate times the dot product of their loss gradients,

.. math:: \mathrm{TracInCP}(z, z') = \sum_c \eta_c\, \nabla_\theta L(z; \theta_c) \cdot
          \nabla_\theta L(z'; \theta_c).

Per-sample gradients come from ``torch.func.vmap(torch.func.grad(...))`` over
``functional_call``, so every module type works (not only Linear and Conv2d), and every
checkpoint is applied as a parameter dictionary: the user's model object is never loaded
or changed. Gradients exist for one chunk of ``batch_size`` examples at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError, check_count

Checkpoint = dict[str, Tensor] | str


def _per_example_loss(out: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(out, y, reduction="sum")


def train_chunks(data: Any, batch_size: int, labelled: bool = True) -> Iterator[tuple[int, tuple[Tensor, ...], Any]]:
    """``(first index, inputs, labels)`` of a Dataset (or a DataLoader's dataset), ``batch_size``
    examples at a time; items are ``(inputs..., label)`` (``labelled=False``: the label, if
    any, is dropped only when the item has more than one field)."""
    dataset = getattr(data, "dataset", data)
    n = len(dataset)
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, n))]
        items = [item if isinstance(item, (tuple, list)) else (item,) for item in items]
        columns = [torch.stack([torch.as_tensor(v) for v in col]) for col in zip(*items)]
        if labelled:
            yield start, tuple(columns[:-1]), columns[-1]
        else:
            yield start, tuple(columns[:-1] if len(columns) > 1 else columns), None


class TracInCP:
    """TracIn influence of the examples of ``train_data`` (a Dataset or DataLoader of
    ``(inputs..., label)``), from ``checkpoints`` (state dicts, or paths read by ``load``).

    - ``learning_rates``: one per checkpoint (default 1), :math:`\\eta_c`;
    - ``loss_fn(outputs, labels)``: the loss of one example (called on a batch of one; default
      cross-entropy); ``test_loss_fn`` for the test examples (default ``loss_fn``);
    - ``layers``: module names whose parameters are used (default: every parameter);
    - ``batch_size``: examples per per-sample-gradient chunk.

    ``influence(inputs, labels)`` gives ``(N_test, N_train)``; ``self_influence()`` the
    training examples' :math:`\\sum_c \\eta_c \\lVert \\nabla L(z; \\theta_c) \\rVert^2`;
    ``k_most_influential(inputs, labels, k, proponents=True)`` the top ``k`` training indices
    and scores per test example (opponents: the most negative).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        checkpoints: Sequence[Checkpoint],
        *,
        learning_rates: Sequence[float] | None = None,
        load: Callable[[str], dict[str, Tensor]] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        test_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        layers: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        if not checkpoints:
            raise ArgumentError("checkpoints is empty; pass state dicts (or paths) saved during training")
        check_count("batch_size", batch_size)
        self.model, self.batch_size = model, batch_size
        self.loss_fn = loss_fn or _per_example_loss
        self.test_loss_fn = test_loss_fn or self.loss_fn
        self.checkpoints = list(checkpoints)
        self.learning_rates = list(learning_rates) if learning_rates is not None else [1.0] * len(self.checkpoints)
        if len(self.learning_rates) != len(self.checkpoints):
            raise ArgumentError("learning_rates needs one value per checkpoint")
        self.load = load or (lambda path: torch.load(path, map_location="cpu", weights_only=True))
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        if layers is not None:
            modules = dict(model.named_modules())
            missing = [layer for layer in layers if layer not in modules]
            if missing:
                raise ArgumentError(f"layers {missing} are not modules of the model; use model.named_modules() names")
            names = [n for n in names if any(n.startswith(f"{m}.") for m in layers)]
        self.names = names
        self.train_data = train_data

    # per-sample gradients ----------------------------------------------------------------
    def _params(self, c: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(parameters used, everything else) of checkpoint ``c``, on the model's device."""
        state = self.checkpoints[c]
        state = self.load(state) if isinstance(state, str) else state
        device = next(self.model.parameters()).device
        full = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers()), **state}
        full = {k: v.detach().to(device) for k, v in full.items()}
        used = {k: full[k] for k in self.names}
        return used, {k: v for k, v in full.items() if k not in used}

    def gradients(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, P)``: the flattened per-example loss gradients at checkpoint ``c``."""
        used, rest = self._params(c)
        loss_fn = self.test_loss_fn if test else self.loss_fn

        def loss(params: dict[str, Tensor], xs: tuple[Tensor, ...], y: Tensor) -> Tensor:
            out = torch.func.functional_call(self.model, {**rest, **params}, tuple(x[None] for x in xs))
            return loss_fn(out, y[None])

        was_training = self.model.training
        self.model.eval()
        try:
            grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(used, inputs, labels)
        finally:
            self.model.train(was_training)
        return torch.cat([grads[k].reshape(len(labels), -1) for k in self.names], 1)

    def _train_chunks(self) -> Iterator[tuple[int, tuple[Tensor, ...], Tensor]]:
        return train_chunks(self.train_data, self.batch_size)

    # results -----------------------------------------------------------------------------
    def _features(self, c: int, xs: tuple[Tensor, ...], labels: Tensor, test: bool) -> Any:
        """What the dot products are taken of, per example: here the loss gradients."""
        return self.gradients(c, xs, labels, test)

    @staticmethod
    def _dot(u: Any, v: Any) -> Tensor:
        return u @ v.T

    @staticmethod
    def _square(u: Any) -> Tensor:
        return (u * u).sum(1)

    def influence(self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor) -> Tensor:
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        scores = None
        for c, rate in enumerate(self.learning_rates):
            test = self._features(c, xs, labels, True)
            chunks = self._train_chunks()
            part = torch.cat([self._dot(test, self._features(c, tx, ty, False)) for _, tx, ty in chunks], 1)
            scores = rate * part if scores is None else scores + rate * part
        assert scores is not None
        return scores

    def self_influence(self) -> Tensor:
        rates = list(enumerate(self.learning_rates))
        return torch.cat([
            sum(rate * self._square(self._features(c, tx, ty, False)) for c, rate in rates)
            for _, tx, ty in self._train_chunks()
        ])  # fmt: skip

    def k_most_influential(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, k: int = 5, proponents: bool = True
    ) -> tuple[Tensor, Tensor]:
        scores = self.influence(inputs, labels)
        top = torch.topk(scores if proponents else -scores, min(k, scores.shape[1]), dim=1)
        return top.indices, top.values if proponents else -top.values


def tracin_cp(model: nn.Module, train_data: Any, checkpoints: Sequence[Checkpoint], **options: Any) -> TracInCP:
    """A :class:`TracInCP` over ``train_data`` (see its options)."""
    return TracInCP(model, train_data, checkpoints, **options)


class TracInCPFast(TracInCP):
    r"""TracIn on the final fully connected layer only, in closed form: the gradient of the
    loss with respect to that layer's weight is the outer product of
    :math:`g = \partial L / \partial z` (its output) and :math:`a` (its input), so

    .. math:: \mathrm{TracInCPFast}(z, z') = \sum_c \eta_c\, (g \cdot g')\,(a \cdot a')

    with no per-sample weight gradient ever formed (the bias is left out, as in Captum's
    TracInCPFast). ``final_fc_layer`` names the ``nn.Linear``; the other options are
    :class:`TracInCP`'s.
    """

    def __init__(self, model: nn.Module, final_fc_layer: str, train_data: Any, checkpoints: Sequence[Checkpoint],
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

    def gradients(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, K * D)``: the per-example weight gradients ``g a^T`` of the final layer, flattened
        (only for the dot products below: they factor as ``(g . g')(a . a')``)."""
        g, a = self._factors(c, inputs, labels, test)
        return (g[:, :, None] * a[:, None, :]).reshape(len(g), -1)

    def _factors(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool) -> tuple[Tensor, Tensor]:
        from .._core.capture import Layers

        used, rest = self._params(c)
        loss_fn = self.test_loss_fn if test else self.loss_fn
        seen: dict[str, Tensor] = {}

        def swap(j: int, value: Tensor) -> Tensor:
            seen["a" if j == 0 else "z"] = value.detach()
            if j == 1:  # the output: a leaf whose gradient is dL/dz per example
                seen["z"] = value.detach().requires_grad_()
                return seen["z"]
            return value

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad(), Layers(self.model, self.final, True).hooked(lambda j, v: swap(0, v)), \
                    Layers(self.model, self.final, False).hooked(lambda j, v: swap(1, v)):  # fmt: skip
                out = torch.func.functional_call(self.model, {**rest, **used}, inputs)
                losses = torch.func.vmap(lambda o, t: loss_fn(o[None], t[None]))(out, labels)  # one per example
                (g,) = torch.autograd.grad(losses.sum(), seen["z"])
        finally:
            self.model.train(was_training)
        return g.reshape(len(labels), -1), seen["a"].reshape(len(labels), -1)

    def _features(self, c: int, xs: tuple[Tensor, ...], labels: Tensor, test: bool) -> Any:
        return self._factors(c, xs, labels, test)

    @staticmethod
    def _dot(u: Any, v: Any) -> Tensor:
        return (u[0] @ v[0].T) * (u[1] @ v[1].T)

    @staticmethod
    def _square(u: Any) -> Tensor:
        return (u[0] * u[0]).sum(1) * (u[1] * u[1]).sum(1)


def tracin_cp_fast(model: nn.Module, final_fc_layer: str, train_data: Any, checkpoints: Sequence[Checkpoint],
                   **options: Any) -> TracInCPFast:  # fmt: skip
    """A :class:`TracInCPFast` over ``train_data`` (see its options)."""
    return TracInCPFast(model, final_fc_layer, train_data, checkpoints, **options)
