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

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from .._core.capture import Layers
from .._core.errors import ArgumentError, check_count
from .._core.progress import progress
from .._core.state import in_eval
from .checkpoints import checkpoint_paths, read_checkpoint

Checkpoint = dict[str, Tensor] | str
Checkpoints = Sequence[Checkpoint] | str  # a folder: its files in natural order


def _per_example_loss(out: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(out, y, reduction="sum")


def batch_sum(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor] | None:
    """``loss_fn`` summed over a batch in one call, where that is known to equal the sum of its
    per-example values (the default loss; a torch loss module with reduction "sum" or "none"),
    else None (the caller maps it over examples)."""
    if loss_fn is _per_example_loss:
        return loss_fn
    reduction = getattr(loss_fn, "reduction", None) if isinstance(loss_fn, nn.modules.loss._Loss) else None
    if reduction in ("sum", "none"):
        return lambda out, y: loss_fn(out, y).sum()
    return None


class Factored(NamedTuple):
    """The per-example gradients ``delta_i a_i^T`` of a ``Linear`` weight, kept as their factors:
    dot products are ``(delta . delta')(a . a')`` and norms ``|delta|^2 |a|^2`` (Pruthi et al.)."""

    delta: Tensor
    a: Tensor


def _dense(block: Any) -> Tensor:
    if isinstance(block, Factored):
        return (block.delta[:, :, None] * block.a[:, None, :]).reshape(len(block.a), -1)
    return block


def _block_dot(u: Any, v: Any) -> Tensor:
    if isinstance(u, Factored):
        return (u.delta @ v.delta.T) * (u.a @ v.a.T)
    return u @ v.T


def _block_square(u: Any) -> Tensor:
    if isinstance(u, Factored):
        return torch.linalg.vector_norm(u.delta, dim=1).square() * torch.linalg.vector_norm(u.a, dim=1).square()
    return torch.linalg.vector_norm(u, dim=1).square()  # no (N, P_k) temporary


def as_dataset(data: Any) -> Any:
    """A Dataset, DataLoader, or one batch given as a tuple/list of tensors (a TensorDataset)."""
    if isinstance(data, (tuple, list)) and all(isinstance(t, Tensor) for t in data):
        return torch.utils.data.TensorDataset(*data)
    return data


def train_chunks(data: Any, batch_size: int, labelled: bool = True) -> Iterator[tuple[int, tuple[Tensor, ...], Any]]:
    """``(first index, inputs, labels)`` of a Dataset (or a DataLoader's dataset), ``batch_size``
    examples at a time; items are ``(inputs..., label)`` (``labelled=False``: the label, if
    any, is dropped only when the item has more than one field)."""
    dataset = getattr(data, "dataset", data)
    n = len(dataset)
    if isinstance(dataset, torch.utils.data.TensorDataset):  # slices, not one item at a time
        for start in range(0, n, batch_size):
            columns = [t[start : start + batch_size] for t in dataset.tensors]
            if labelled:
                yield start, tuple(columns[:-1]), columns[-1]
            else:
                yield start, tuple(columns[:-1] if len(columns) > 1 else columns), None
        return
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, n))]
        items = [item if isinstance(item, (tuple, list)) else (item,) for item in items]
        columns = [torch.stack([torch.as_tensor(v) for v in col]) for col in zip(*items)]
        if labelled:
            yield start, tuple(columns[:-1]), columns[-1]
        else:
            yield start, tuple(columns[:-1] if len(columns) > 1 else columns), None


def merge_top_k(best: tuple[Tensor, Tensor] | None, scores: Tensor, start: int, k: int) -> tuple[Tensor, Tensor]:
    """A running top-k per row: ``(values, indices)`` of the best so far and of ``scores``, a
    chunk of columns starting at index ``start``."""
    index = torch.arange(start, start + scores.shape[1], device=scores.device).expand_as(scores)
    if best is not None:
        scores, index = torch.cat([best[0], scores], 1), torch.cat([best[1], index], 1)
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    return top.values, index.gather(1, top.indices)


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

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or a folder of them (natural order).
        learning_rates: One per checkpoint (default 1), :math:`\\eta_c`.
        load: Reads a checkpoint path into a ``state_dict`` (default :func:`read_checkpoint`'s state).
        loss_fn: The loss of one example, ``(outputs, labels)``; default cross-entropy.
        test_loss_fn: The loss of the test examples (default ``loss_fn``).
        layers: Module names whose parameters are used (default every parameter).
        batch_size: Examples per per-sample-gradient chunk.

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> tracin = pa.influence.TracInCP(model, train, [model.state_dict()])
        >>> tracin.self_influence().shape
        torch.Size([16])
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        checkpoints: Checkpoints,
        *,
        learning_rates: Sequence[float] | None = None,
        load: Callable[[str], dict[str, Tensor]] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        test_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        layers: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        checkpoints = checkpoint_paths(checkpoints) if isinstance(checkpoints, str) else checkpoints
        if not checkpoints:
            raise ArgumentError("checkpoints is empty; pass state dicts, paths or their folder saved during training")
        check_count("batch_size", batch_size)
        self.model, self.batch_size = model, batch_size
        self.loss_fn = loss_fn or _per_example_loss
        self.test_loss_fn = test_loss_fn or self.loss_fn
        self.checkpoints = list(checkpoints)
        self.learning_rates = list(learning_rates) if learning_rates is not None else [1.0] * len(self.checkpoints)
        if len(self.learning_rates) != len(self.checkpoints):
            raise ArgumentError("learning_rates needs one value per checkpoint")
        self.load = load or (lambda path: read_checkpoint(path)[0])
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        if layers is not None:
            modules = dict(model.named_modules())
            missing = [layer for layer in layers if layer not in modules]
            if missing:
                raise ArgumentError(f"layers {missing} are not modules of the model; use model.named_modules() names")
            names = [n for n in names if any(n.startswith(f"{m}.") for m in layers)]
        self.names = names
        self.train_data = train_data
        self._loaded: dict[int, dict[str, Tensor]] = {}
        self._linear: list[tuple[str, nn.Linear]] | None = None  # layers with rank-one gradients

    # per-sample gradients ----------------------------------------------------------------
    def _params(self, c: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(parameters used, everything else) of checkpoint ``c``, on the model's device. Each
        checkpoint is read once per object (not once per chunk) and kept."""
        if c not in self._loaded:
            state = self.checkpoints[c]
            state = self.load(state) if isinstance(state, str) else state
            device = next(self.model.parameters()).device
            own = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
            # a state dict also names tied parameters under their second name (GPT-2's lm_head.weight):
            # functional_call takes each tensor once, under the name named_parameters() gives it
            full = {**own, **{k: v for k, v in state.items() if k in own}}
            self._loaded[c] = {k: v.detach().to(device) for k, v in full.items()}
        full = self._loaded[c]
        used = {k: full[k] for k in self.names}
        return used, {k: v for k, v in full.items() if k not in used}

    def gradients(self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool = False) -> Tensor:
        """``(N, P)``: the flattened per-example loss gradients at checkpoint ``c``."""
        return torch.cat(self._gradient_blocks(c, inputs, labels, test), 1)

    def _gradient_blocks(
        self, c: int, inputs: tuple[Tensor, ...], labels: Tensor, test: bool, factored: bool = False
    ) -> list[Any]:
        """The per-example gradients as one ``(N, P_k)`` block per parameter (never concatenated
        for the scores: dot products and norms add up over blocks). With ``factored``, the weight
        of a ``Linear`` layer on 2-D inputs comes as :class:`Factored` ``(delta, a)``: its
        per-example gradient is the outer product ``delta a^T`` and is never formed."""
        used, rest = self._params(c)
        loss_fn = self.test_loss_fn if test else self.loss_fn
        linear = self._factorable(inputs, labels) if factored else []
        if not linear:

            def loss(params: dict[str, Tensor], xs: tuple[Tensor, ...], y: Tensor) -> Tensor:
                out = torch.func.functional_call(self.model, {**rest, **params}, tuple(x[None] for x in xs))
                return loss_fn(out, y[None]).sum()  # .sum(): a reduction="none" loss gives one value per output

            with in_eval(self.model):
                grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(used, inputs, labels)
            return [grads[k].reshape(len(labels), -1) for k in self.names]

        weights = {f"{name}.weight" for name, _ in linear}
        plain = {k: v for k, v in used.items() if k not in weights}
        fixed = {**rest, **{k: used[k] for k in weights}}
        modules = [m for _, m in linear]
        inputs_of, outputs_of = Layers(self.model, modules, True), Layers(self.model, modules, False)

        def factored_loss(params: dict[str, Tensor], shifts: list[Tensor], xs: tuple[Tensor, ...], y: Tensor) -> Any:
            seen: list[Tensor | None] = [None] * len(modules)

            def read(j: int, value: Tensor) -> None:
                seen[j] = value

            with inputs_of.hooked(read), outputs_of.hooked(lambda j, value: value + shifts[j]):
                out = torch.func.functional_call(self.model, {**fixed, **params}, tuple(x[None] for x in xs))
            return loss_fn(out, y[None]).sum(), seen

        shifts = [used[f"{name}.weight"].new_zeros(1, m.out_features) for name, m in linear]
        with in_eval(self.model):
            (grads, deltas), acts = torch.func.vmap(
                torch.func.grad(factored_loss, argnums=(0, 1), has_aux=True), in_dims=(None, None, 0, 0)
            )(plain, shifts, inputs, labels)
        n = len(labels)
        factors = {f"{name}.weight": Factored(d.reshape(n, -1), a.reshape(n, -1))
                   for (name, _), d, a in zip(linear, deltas, acts)}  # fmt: skip
        return [factors[k] if k in factors else grads[k].reshape(n, -1) for k in self.names]

    def _factorable(self, inputs: tuple[Tensor, ...], labels: Tensor) -> list[tuple[str, nn.Linear]]:
        """The ``Linear`` layers whose per-example weight gradient is rank one (2-D inputs, the
        weight used by that layer only), found once; checked once against the plain gradient."""
        if self._linear is None:
            counts = Counter(id(p) for _, p in self.model.named_parameters(remove_duplicate=False))
            candidates = [(name, m) for name, m in self.model.named_modules()
                          if isinstance(m, nn.Linear) and f"{name}.weight" in self.names
                          and counts[id(m.weight)] == 1]  # fmt: skip
            if candidates:
                with in_eval(self.model), torch.no_grad():
                    values = Layers(self.model, [m for _, m in candidates], True).capture(
                        tuple(x[:1] for x in inputs), (), 1
                    )
                candidates = [c for c, v in zip(candidates, values) if v.leaves[0].dim() == 2]
            self._linear = candidates
            if candidates:  # the model might use a weight outside its layer: compare once
                xs, y = tuple(x[:2] for x in inputs), labels[:2]
                plain = dict(zip(self.names, self._gradient_blocks(0, xs, y, False)))
                fast = dict(zip(self.names, self._gradient_blocks(0, xs, y, False, factored=True)))
                self._linear = [(name, m) for name, m in candidates  # keep the layers whose gradient agrees
                                if torch.allclose(_dense(fast[f"{name}.weight"]), plain[f"{name}.weight"],
                                                  rtol=1e-4, atol=1e-6)]  # fmt: skip
        return self._linear

    def _train_chunks(self) -> Iterator[tuple[int, tuple[Tensor, ...], Tensor]]:
        return train_chunks(self.train_data, self.batch_size)

    # results -----------------------------------------------------------------------------
    def _features(self, c: int, xs: tuple[Tensor, ...], labels: Tensor, test: bool) -> Any:
        """What the dot products are taken of, per example: here the loss gradients' blocks."""
        return self._gradient_blocks(c, xs, labels, test, factored=True)

    @staticmethod
    def _dot(u: Any, v: Any) -> Tensor:
        return cast(Tensor, sum(_block_dot(a, b) for a, b in zip(u, v)))

    @staticmethod
    def _square(u: Any) -> Tensor:
        return cast(Tensor, sum(_block_square(a) for a in u))

    def influence(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, show_progress: bool = False, _task: str = ""
    ) -> Tensor:
        """``(N_test, N_train)`` influence scores; ``show_progress`` shows the training batches done."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        tests = [self._features(c, xs, labels, True) for c in range(len(self.learning_rates))]
        task = _task or "compute influence for training batches"
        parts: list[Tensor] = [
            sum(self._dot(test, self._features(c, tx, ty, False)) * rate  # type: ignore[misc]
                for (c, rate), test in zip(enumerate(self.learning_rates), tests))
            for _, tx, ty in self._progress(self._train_chunks(), show_progress, task)
        ]  # fmt: skip
        return torch.cat(parts, 1)

    def self_influence(
        self, data: Any = None, show_progress: bool = False, outer_loop_by_checkpoints: bool = False
    ) -> Tensor:
        """Self-influence of the training examples, or of ``data`` (a Dataset, DataLoader or one
        batch ``(inputs..., labels)``). The loops run over batches, then checkpoints (or the other
        way round: the same sums); ``show_progress`` shows them."""
        rates = list(enumerate(self.learning_rates))
        data = None if data is None else as_dataset(data)

        def chunks() -> Iterator[tuple[int, tuple[Tensor, ...], Any]]:
            return self._train_chunks() if data is None else train_chunks(data, self.batch_size)

        task = "compute self influence. Processing"
        if outer_loop_by_checkpoints:
            return sum(  # type: ignore[return-value]
                torch.cat([self._square(self._features(c, tx, ty, False)) * rate
                           for _, tx, ty in self._progress(chunks(), show_progress, f"{task} batch", data)])
                for c, rate in self._progress(rates, show_progress, f"{task} checkpoint")
            )  # fmt: skip
        return torch.cat([
            sum(self._square(self._features(c, tx, ty, False)) * rate for c, rate in rates)  # type: ignore[misc]
            for _, tx, ty in self._progress(chunks(), show_progress, f"{task} batch", data)
        ])  # fmt: skip

    def k_most_influential(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, k: int = 5, proponents: bool = True,
        show_progress: bool = False,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        kind = "proponents" if proponents else "opponents"
        task = f"perform computation for getting {kind}. Processing training batches"
        scores = self.influence(inputs, labels, show_progress, task)
        top = torch.topk(scores if proponents else -scores, min(k, scores.shape[1]), dim=1)
        return top.indices, top.values if proponents else -top.values

    def _progress(self, items: Any, show: bool, task: str, data: Any = None) -> Any:
        """``items`` (checkpoints, or the chunks of ``data``, default the training data), with a
        tqdm bar on stderr reading "Using <method> to <task>" when ``show``."""
        if not show:
            return items
        if isinstance(items, list):
            total = len(items)
        else:
            dataset = getattr(
                self.train_data if data is None else data, "dataset", self.train_data if data is None else data
            )
            total = -(-len(dataset) // self.batch_size)
        return progress(items, True, f"Using {type(self).__name__} to {task}", total)


def tracin_cp(
    model: nn.Module,
    train_data: Any,
    checkpoints: Checkpoints,
    *,
    learning_rates: Sequence[float] | None = None,
    load: Callable[[str], dict[str, Tensor]] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    test_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
) -> TracInCP:
    """A :class:`TracInCP` over ``train_data`` (see its options).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tensor (or tuple of
            tensors), the label last.
        checkpoints: The checkpoints: state dicts, paths of saved ones, or a folder of them (natural order).
        learning_rates: One per checkpoint (default 1), :math:`\\eta_c`.
        load: Reads a checkpoint path into a ``state_dict`` (default :func:`read_checkpoint`'s state).
        loss_fn: The loss of one example, ``(outputs, labels)``; default cross-entropy.
        test_loss_fn: The loss of the test examples (default ``loss_fn``).
        layers: Module names whose parameters are used (default every parameter).
        batch_size: Examples per per-sample-gradient chunk.

    Returns:
        TracInCP: ``influence``, ``self_influence`` and ``k_most_influential``.

    References:
        - Pruthi, Liu, Kale and Sundararajan, "Estimating Training Data Influence by Tracing Gradient
          Descent", NeurIPS 2020. https://arxiv.org/abs/2002.08484

    Example:
        >>> train = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))
        >>> tracin = pa.influence.tracin_cp(model, train, [model.state_dict()])
        >>> tracin.influence(x, y).shape
        torch.Size([4, 16])
    """
    return TracInCP(
        model, train_data, checkpoints, learning_rates=learning_rates, load=load, loss_fn=loss_fn,
        test_loss_fn=test_loss_fn, layers=layers, batch_size=batch_size,
    )  # fmt: skip
