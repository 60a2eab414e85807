r"""Influence functions with K-FAC and EK-FAC curvature (Grosse et al., 2023; ``kronfluence``).

The influence of a training example ``z`` on a query ``q`` is

.. math:: \mathcal{I}(q, z) = \nabla L(q)^\top (F + \lambda I)^{-1} \nabla L(z),

with the Fisher ``F`` approximated layer by layer. For a Linear, Conv2d or Embedding layer
with per-position inputs ``a`` and output gradients ``g`` (see ``_kfac``), K-FAC takes
``F = A \otimes G`` (``A = E[a a^T]``, ``G = E[g g^T]``) and EK-FAC keeps their eigenbases
``Q_A``, ``Q_G`` with eigenvalues refitted to the per-example gradients,
``\Lambda = E_n[(Q_G^\top W_n Q_A)^{\odot 2}]``. The preconditioned query gradient of a layer
is ``Q_G ((Q_G^\top W_q Q_A) / (\Lambda + \lambda)) Q_A^\top``; its dot product with a training
example's gradient ``sum_t g_t a_t^T`` is taken without forming that gradient.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from .._core.distributed import summed, world
from .._core.errors import ArgumentError, check_count
from .._core.progress import progress
from .._core.state import in_eval
from .._core.targets import model_output
from ._kfac import Recorder, eigenbasis, per_example, rotate, tracked_modules, unrotate
from .tracin import _per_example_loss, merge_top_k, train_chunks

Loss = Callable[[Tensor, Tensor], Tensor]
FACTORS = ("activation_covariance", "gradient_covariance", "activation_eigenvectors", "gradient_eigenvectors",
           "activation_eigenvalues", "gradient_eigenvalues", "lambda")  # fmt: skip
HEURISTIC_DAMPING = 0.1  # damping=None: this times the mean of a layer's Lambda


class EKFACInfluence:
    """Influence scores from Kronecker-factored curvature; see :func:`ekfac_influence`.

    ``fit_factors()`` reads the training data twice (covariances, then EK-FAC's eigenvalue
    correction); ``influence``, ``self_influence`` and ``k_most_influential`` score with them.
    ``factors`` holds, per layer name, the entries of ``FACTORS``; ``save_factors`` and
    ``load_factors`` keep them on disk.

    Args:
        model: The model; left exactly as found (evaluated in eval mode).
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tuple of tensors, the
            label last.
        loss_fn: The loss, ``(outputs, labels)`` of a batch: each example's loss or their sum (not a mean);
            default cross-entropy, summed.
        test_loss_fn: The query's measurement (default ``loss_fn``).
        layers: Module names whose Linear, Conv2d and Embedding layers are fitted (default all).
        strategy: ``"ekfac"`` or ``"kfac"``.
        damping: ``lambda`` added to the curvature's eigenvalues; ``None``: 0.1 times the mean per layer.
        fisher: ``"sampled"`` (labels drawn from the model's predictions: the true Fisher) or
            ``"empirical"`` (the data's labels).
        batch_size: Examples per forward and backward pass.

    Example:
        >>> ek = pa.influence.ekfac_influence(model, train, fisher="empirical")
        >>> ek.fit_factors().influence(x, y).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        *,
        loss_fn: Loss | None = None,
        test_loss_fn: Loss | None = None,
        layers: Sequence[str] | None = None,
        strategy: Literal["ekfac", "kfac"] = "ekfac",
        damping: float | None = 1e-8,
        fisher: Literal["sampled", "empirical"] = "sampled",
        batch_size: int = 64,
    ) -> None:
        if strategy not in ("ekfac", "kfac"):
            raise ArgumentError(f"strategy={strategy!r}; choose 'ekfac' or 'kfac'")
        if fisher not in ("sampled", "empirical"):
            raise ArgumentError(f"fisher={fisher!r}; choose 'sampled' (true Fisher) or 'empirical' (the labels)")
        if damping is not None and damping < 0:
            raise ArgumentError(f"damping={damping} must be >= 0, or None for 0.1 times the mean eigenvalue")
        check_count("batch_size", batch_size)
        self.model, self.train_data, self.batch_size = model, train_data, batch_size
        self.loss_fn = loss_fn or _per_example_loss
        self.test_loss_fn = test_loss_fn or self.loss_fn
        self.strategy, self.damping, self.fisher = strategy, damping, fisher
        self.modules = tracked_modules(model, layers)
        self.factors: dict[str, dict[str, Tensor]] = {}
        self._inverse: dict[str, Tensor] | None = None

    # fitting -----------------------------------------------------------------------------
    def fit_factors(
        self, data: Any = None, *, generator: torch.Generator | None = None, show_progress: bool = False
    ) -> EKFACInfluence:
        """Fit the curvature on ``data`` (default the training data): the covariances and their
        eigenbases, then (EK-FAC) the eigenvalues refitted to the per-example gradients.
        ``generator`` draws the sampled Fisher's labels. Returns ``self``."""
        data = self.train_data if data is None else data
        sums: dict[str, list[Any]] = {name: [0.0, 0.0, 0, 0] for name, _ in self.modules}  # A, G, positions (twice)
        for _, pairs in self._passes(data, generator, show_progress, "covariances"):
            for (name, _), (a, g) in zip(self.modules, pairs):
                s = sums[name]
                a2, g2 = a.reshape(-1, a.shape[-1]).double(), g.reshape(-1, g.shape[-1]).double()
                s[0], s[1] = s[0] + a2.T @ a2, s[1] + g2.T @ g2
                s[2], s[3] = s[2] + len(a2), s[3] + len(g2)
        for name, (a_sum, g_sum, n_a, n_g) in sums.items():
            a_sum, g_sum = summed(torch.as_tensor(a_sum)), summed(torch.as_tensor(g_sum))  # over the processes
            n_a, n_g = (int(summed(torch.tensor(float(c), dtype=torch.float64))) for c in (n_a, n_g))
            (la, qa), (lg, qg) = eigenbasis(a_sum / n_a), eigenbasis(g_sum / n_g)
            self.factors[name] = {"activation_covariance": a_sum / n_a, "gradient_covariance": g_sum / n_g,
                                  "activation_eigenvectors": qa, "gradient_eigenvectors": qg,
                                  "activation_eigenvalues": la, "gradient_eigenvalues": lg,
                                  "lambda": torch.outer(lg, la)}  # fmt: skip
        if self.strategy == "ekfac":
            corrected = {name: torch.zeros_like(f["lambda"]) for name, f in self.factors.items()}
            count = 0
            for n, pairs in self._passes(data, generator, show_progress, "eigenvalue correction"):
                count += n
                for (name, _), (a, g) in zip(self.modules, pairs):
                    f = self.factors[name]
                    w = per_example(a.double(), g.double())
                    corrected[name] += rotate(w, f["gradient_eigenvectors"], f["activation_eigenvectors"]).pow(2).sum(0)
            count = int(summed(torch.tensor(float(count), dtype=torch.float64)))
            for name, lam in corrected.items():
                self.factors[name]["lambda"] = summed(lam) / count
        self._inverse = None
        return self

    def _passes(
        self, data: Any, generator: torch.Generator | None, show: bool, what: str
    ) -> Iterator[tuple[int, list[tuple[Tensor, Tensor]]]]:
        """One pass over ``data``: per batch, its size and each layer's ``(a, g)`` for the fitted loss."""
        recorder = Recorder(self.model, self.modules)
        chunks = _shard(data, self.batch_size, show, f"EK-FAC {what}")
        with in_eval(self.model):
            for _, xs, y in chunks:
                with torch.enable_grad(), recorder.recording():
                    out = self.model(*xs)
                labels = y if self.fisher == "empirical" else _sampled_labels(out.detach(), generator)
                yield len(xs[0]), recorder.backward(_summed(self.loss_fn, out, labels))

    # scoring -----------------------------------------------------------------------------
    def _inverse_lambda(self) -> dict[str, Tensor]:
        if not self.factors:
            raise ArgumentError("no factors yet: call fit_factors() (or load_factors(path)) first")
        if self._inverse is None:
            self._inverse = {}
            for name, f in self.factors.items():
                lam = f["lambda"]
                damping = HEURISTIC_DAMPING * lam.mean() if self.damping is None else self.damping
                self._inverse[name] = 1 / (lam + damping)
        return self._inverse

    def preconditioned(self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor) -> list[Tensor]:
        """Per layer, the queries' preconditioned gradients ``(N_q, d_out, d_in')``."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        return self._precondition(self._gradients(xs, labels, self.test_loss_fn))

    def _precondition(self, pairs: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """``Q_G ((Q_G^T W Q_A) / (Lambda + damping)) Q_A^T`` of each layer's per-example gradients."""
        inverse, out = self._inverse_lambda(), []
        for (name, _), (a, g) in zip(self.modules, pairs):
            f = self.factors[name]
            qg, qa = f["gradient_eigenvectors"].to(g), f["activation_eigenvectors"].to(g)
            w = rotate(per_example(a, g), qg, qa) * inverse[name].to(g)
            out.append(unrotate(w, qg, qa))
        return out

    def _gradients(self, xs: tuple[Tensor, ...], labels: Tensor, loss_fn: Loss) -> list[tuple[Tensor, Tensor]]:
        recorder = Recorder(self.model, self.modules)
        with in_eval(self.model), torch.enable_grad(), recorder.recording():
            out = self.model(*xs)
        return recorder.backward(_summed(loss_fn, out, labels))

    def influence(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, *, per_token: bool = False,
        out: str | os.PathLike[str] | None = None, show_progress: bool = False,
    ) -> Tensor:  # fmt: skip
        """``(N_test, N_train)`` scores (``per_token``: ``(N_test, N_train, T)``, each training
        position's share, summing to the sequence's score; training sequences of one length).
        ``out``: a folder where each training chunk's block of scores is written as it is done;
        a later call with the same queries reads the blocks already there (a stopped run resumes)."""
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        queries: list[Tensor] | None = None
        kind, key = ("tokens" if per_token else "scores"), _fingerprint(xs, labels)
        parts = []
        chunks = _shard(self.train_data, self.batch_size, show_progress, "EK-FAC scores")
        for start, train_xs, y in chunks:
            block = _stored(out, kind, start, key)
            if block is None:
                queries = self.preconditioned(xs, labels) if queries is None else queries
                pairs = self._gradients(train_xs, y, self.loss_fn)
                block = _scores("qoi,nto,nti->qnt" if per_token else "qoi,nto,nti->qn", queries, pairs)
                _store(out, kind, start, key, block)
            parts.append((start, block))
        return _joined(parts, _length(self.train_data), 1)

    def self_influence(
        self, data: Any = None, *, out: str | os.PathLike[str] | None = None, show_progress: bool = False
    ) -> Tensor:
        """``(N,)``: each training example's score with itself, ``g^T (F + lambda)^{-1} g``
        (``out``: blocks kept on disk as in ``influence``)."""
        data = self.train_data if data is None else data
        parts = []
        for start, xs, y in _shard(data, self.batch_size, show_progress, "EK-FAC self-influence"):
            block = _stored(out, "self", start, None)
            if block is None:  # the training loss's gradients on both sides, taken once
                pairs = self._gradients(xs, y, self.loss_fn)
                block = _scores("noi,nto,nti->n", self._precondition(pairs), pairs)
                _store(out, "self", start, None, block)
            parts.append((start, block))
        return _joined(parts, _length(data), 0)

    def k_most_influential(
        self, inputs: Tensor | tuple[Tensor, ...], labels: Tensor, k: int = 5, proponents: bool = True
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` training examples with the largest scores per query (``proponents=False``: the
        most negative), as ``(indices, scores)``, kept as a running top-k over training chunks."""
        check_count("k", k)
        sign = 1.0 if proponents else -1.0
        if world()[1] > 1:  # the training data is sharded: the gathered scores' top k
            top = torch.topk(sign * self.influence(inputs, labels), min(k, _length(self.train_data)), dim=1)
            return top.indices, sign * top.values
        queries, best = self.preconditioned(inputs, labels), None
        for start, xs, y in train_chunks(self.train_data, self.batch_size):
            pairs = self._gradients(xs, y, self.loss_fn)
            best = merge_top_k(best, sign * _scores("qoi,nto,nti->qn", queries, pairs), start, k)
        assert best is not None
        return best[1], sign * best[0]

    # disk --------------------------------------------------------------------------------
    def save_factors(self, path: str | os.PathLike[str]) -> None:
        """Write the factors to ``path`` (safetensors when installed, else ``torch.save``)."""
        flat = {f"{layer}::{key}": t.contiguous() for layer, fs in self.factors.items() for key, t in fs.items()}
        try:
            from safetensors.torch import save_file
        except ImportError:  # pragma: no cover - safetensors is optional
            torch.save(flat, path)
            return
        save_file(flat, str(path), metadata={"strategy": self.strategy})

    def load_factors(self, path: str | os.PathLike[str]) -> EKFACInfluence:
        """Read factors written by ``save_factors`` (for the same layers). Returns ``self``."""
        try:
            from safetensors.torch import load_file

            flat = load_file(str(path))
        except Exception:  # noqa: BLE001  not a safetensors file: one written by torch.save
            flat = torch.load(path, map_location="cpu", weights_only=True)
        factors: dict[str, dict[str, Tensor]] = {}
        for key, t in flat.items():
            layer, name = key.rsplit("::", 1)
            factors.setdefault(layer, {})[name] = t
        expected = {name for name, _ in self.modules}
        if set(factors) != expected:
            raise ArgumentError(f"path holds factors of layers {sorted(factors)}, not of {sorted(expected)}; "
                                "build the object with the layers the factors were fitted on")  # fmt: skip
        self.factors, self._inverse = factors, None
        return self


def _fingerprint(xs: tuple[Tensor, ...], labels: Tensor) -> Tensor:
    """What identifies a set of queries on disk: shapes, sums and sums of squares."""
    parts = [torch.tensor([float(d) for d in t.shape] + [float(t.double().sum()), float(t.double().pow(2).sum())])
             for t in (*xs, labels)]  # fmt: skip
    return torch.cat(parts)


def _stored(out: Any, kind: str, start: int, key: Tensor | None) -> Tensor | None:
    """A block of scores kept in ``out`` by an earlier call, or None."""
    if out is None:
        return None
    path = os.path.join(out, f"{kind}_{start:09d}.pt")
    if not os.path.exists(path):
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None and not torch.equal(saved["queries"], key):
        raise ArgumentError(f"out={str(out)!r} holds scores of other queries; pass a new folder for these")
    return saved["block"]


def _store(out: Any, kind: str, start: int, key: Tensor | None, block: Tensor) -> None:
    if out is not None:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, f"{kind}_{start:09d}.pt")
        kept = {"block": block.detach().cpu(), "queries": key if key is not None else torch.zeros(0)}
        torch.save(kept, path + ".tmp")
        os.replace(path + ".tmp", path)  # a block is on disk whole or not at all


def _length(data: Any) -> int:
    return len(getattr(data, "dataset", data)) if not isinstance(data, (tuple, list)) else len(data[0])


def _shard(data: Any, batch_size: int, show: bool = False, desc: str = "") -> Iterator[tuple[int, tuple, Any]]:
    """This process's chunks of ``data``, read one at a time (chunk ``c`` goes to rank
    ``c % world_size``; all of them in one process), with a progress bar when ``show``."""
    rank, size = world()
    mine = (chunk for c, chunk in enumerate(train_chunks(data, batch_size)) if c % size == rank)
    n_chunks = -(-_length(data) // batch_size)
    return progress(mine, show, desc, len(range(rank, n_chunks, size)))


def _joined(parts: list[tuple[int, Tensor]], n: int, dim: int) -> Tensor:
    """Scores of this process's chunks (``(start, block)``, blocks along ``dim``) put in place in an
    ``n``-long ``dim`` and summed over the processes: every process gets all the scores."""
    if world()[1] == 1:
        return torch.cat([b for _, b in parts], dim)
    shape = list(parts[0][1].shape)
    shape[dim] = n
    out = parts[0][1].new_zeros(shape)
    for start, block in parts:
        out.narrow(dim, start, block.shape[dim]).copy_(block)
    return summed(out)


def _scores(expr: str, preconditioned: list[Tensor], pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
    """``<P, sum_t g_t a_t^T>`` summed over the layers, without forming the training gradients."""
    return cast(Tensor, sum(torch.einsum(expr, p, g, a) for p, (a, g) in zip(preconditioned, pairs)))


def _summed(loss_fn: Loss, out: Any, labels: Tensor) -> Tensor:
    """The batch's summed loss: ``loss_fn`` on the batch, summed (it returns each example's
    loss, or their sum), so each example's gradient is its own loss's."""
    if isinstance(loss_fn, nn.modules.loss._Loss) and getattr(loss_fn, "reduction", None) == "mean":
        raise ArgumentError("loss_fn averages over the batch (reduction='mean'); use reduction='sum' or 'none'")
    return loss_fn(out, labels).sum()


def _sampled_labels(logits: Any, generator: torch.Generator | None) -> Tensor:
    """Labels drawn from the model's predictive distribution (softmax over the last dimension)."""
    logits = model_output(logits)
    probs = torch.softmax(logits.double(), -1).reshape(-1, logits.shape[-1])
    device = generator.device if generator is not None else probs.device
    draws = torch.multinomial(probs.to(device), 1, generator=generator).to(logits.device)
    return draws.reshape(logits.shape[:-1])


def ekfac_influence(
    model: nn.Module,
    train_data: Any,
    *,
    loss_fn: Loss | None = None,
    test_loss_fn: Loss | None = None,
    layers: Sequence[str] | None = None,
    strategy: Literal["ekfac", "kfac"] = "ekfac",
    damping: float | None = 1e-8,
    fisher: Literal["sampled", "empirical"] = "sampled",
    batch_size: int = 64,
) -> EKFACInfluence:
    r"""Influence functions with EK-FAC (or K-FAC) curvature: ``fit_factors()``, then score.

    .. math:: \mathcal{I}(q, z) = \nabla L(q)^\top (F + \lambda I)^{-1} \nabla L(z)

    with ``F`` block-diagonal over the Linear, Conv2d and Embedding layers (attention and MLP
    projections of transformers included), each block ``A (x) G`` (K-FAC) or its eigenbasis
    with eigenvalues refitted to the per-example gradients (EK-FAC). Defaults are
    kronfluence's: EK-FAC, damping ``1e-8``, the sampled (true) Fisher.

    Args:
        model: The model; left exactly as found (evaluated in eval mode).
        train_data: The training examples: a ``Dataset``, a ``DataLoader`` or a tuple of tensors, the
            label last.
        loss_fn: The loss, ``(outputs, labels)`` of a batch: each example's loss or their sum (not a mean);
            default cross-entropy, summed.
        test_loss_fn: The query's measurement (default ``loss_fn``).
        layers: Module names whose Linear, Conv2d and Embedding layers are fitted (default all).
        strategy: ``"ekfac"`` or ``"kfac"``.
        damping: ``lambda`` added to the curvature's eigenvalues; ``None``: 0.1 times the mean per layer.
        fisher: ``"sampled"`` (labels drawn from the model's predictions: the true Fisher) or
            ``"empirical"`` (the data's labels).
        batch_size: Examples per forward and backward pass (peak memory follows it).

    Returns:
        An :class:`EKFACInfluence`.

    References:
        - Grosse et al., "Studying Large Language Model Generalization with Influence Functions",
          2023. https://arxiv.org/abs/2308.03296
        - George, Laurent, Bouthillier, Ballas and Vincent, "Fast Approximate Natural Gradient Descent
          in a Kronecker-factored Eigenbasis", NeurIPS 2018. https://arxiv.org/abs/1806.03884
        - Martens and Grosse, "Optimizing Neural Networks with Kronecker-factored Approximate
          Curvature", ICML 2015. https://arxiv.org/abs/1503.05671

    Example:
        >>> ek = pa.influence.ekfac_influence(model, train, strategy="kfac", fisher="empirical")
        >>> ek.fit_factors().self_influence().shape
        torch.Size([16])
    """
    return EKFACInfluence(model, train_data, loss_fn=loss_fn, test_loss_fn=test_loss_fn, layers=layers,
                          strategy=strategy, damping=damping, fisher=fisher, batch_size=batch_size)  # fmt: skip
