r"""Testing with concept activation vectors (TCAV; Kim et al., 2018, https://arxiv.org/abs/1711.11279).

A concept (e.g. "striped") is a set of examples. Its CAV at a layer is the weight vector of
a linear classifier separating the concept's activations from those of other concepts. The
TCAV score of a concept for a class counts the inputs whose class output increases in the
CAV's direction: with layer gradients :math:`g_i = \partial f_y(x_i) / \partial a_\ell`,

.. math:: \mathrm{sign\_count} = \frac1N \sum_i [g_i \cdot v > 0], \qquad
          \mathrm{magnitude} = \frac1N \sum_i g_i \cdot v

(Captum's definitions). Activations are read with the capture combinator (no hooks
left), once per concept and layer, and kept in memory; the CAVs of all experimental sets
come from one batched solve; the gradients of all inputs at all layers come from one
batched backward pass, and all CAVs are applied in one matrix product.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError
from .._core.inputs import as_tuple, restore, select_examples
from .._core.random import base_seed, item_generator
from .._core.targets import TargetLike
from ..layer import layer_activation, layer_gradient_x_activation
from .cav import CAV, Concept, concepts_key, load_cav, save_cav
from .classifier import Classifier, ConceptStats, fit_cavs

LayerAttr = Callable[[nn.Module, list[nn.Module]], Callable[..., Any]]


class ConceptInterpreter:
    """The base of concept-based interpreters: holds the model.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.

    Example:
        >>> isinstance(pa.concepts.TCAV(model, ["0"]), pa.concepts.ConceptInterpreter)
        True
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model


class TCAV(ConceptInterpreter):
    """TCAV scores of concepts at ``layers`` (module names or modules) of ``model``.

    - ``classifier``: None for the batched ridge classifier of :func:`fit_cavs` (``regularisation``
      scales its ridge; ``test_split`` of each concept's rows is held out for ``accs``), or a
      :class:`Classifier` fitted set by set (Captum's protocol).
    - ``layer_attr_method(model, modules) -> attributor``: the layer gradients; default
      ``layer_gradient_x_activation(..., multiply_by_inputs=False)``.
    - ``save_path``: where CAVs are saved and loaded (``save_path/model_id/<set>-<layer>.pkl``,
      Captum's files: either library reuses the other's CAVs) and concept activations written
      (``save_path/av/model_id/<concept>/<layer>/<batch>.pt``,
      Captum's layout; they are not read back). None keeps everything in memory.
    - ``seed``: the held-out split. ``batch_size``: input rows per gradient pass in ``interpret``.
    - ``classifier_kwargs``: passed to a custom classifier's ``train_and_eval``.

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layers: The layers (modules, or their names in ``model.named_modules()``).
        classifier: None for the batched ridge classifier of :func:`fit_cavs` (``regularisation`` scales
            its ridge; ``test_split`` of each concept's rows is held out for ``accs``), or a
            :class:`Classifier` fitted set by set (Captum's protocol).
        layer_attr_method: The layer method whose attributions score the concepts; default the layer
            gradients.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        save_path: Where CAVs are saved and loaded (``save_path/model_id/<set>-<layer>.pkl``, Captum's
            files: either library reuses the other's CAVs) and concept activations written
            (``save_path/av/model_id/<concept>/<layer>/<batch>.pt``, Captum's layout; they are not read
            back). None keeps everything in memory.
        model_id: Names the model in the saved CAV files.
        test_split: The share of each concept's examples held out to score its CAV.
        regularisation: The ridge penalty of the CAV classifier.
        seed: Seeds the held-out split of each concept (a convenience naming the base seed).
        batch_size: Input rows per gradient pass in ``interpret``.
        classifier_kwargs: Passed to a custom classifier's ``train_and_eval``.
        generator: Draws the base seed instead (one draw at construction); ``seed`` is the convenience that names
            one.

    References:
        - Kim, Wattenberg, Gilmer, Cai, Wexler, Viégas and Sayres, "Interpretability Beyond Feature
          Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML 2018.
          https://arxiv.org/abs/1711.11279

    Example:
        >>> loader = lambda t: torch.utils.data.DataLoader(t, batch_size=8)
        >>> stripes = pa.concepts.Concept(0, "stripes", loader(torch.randn(16, 8) + 1.0))
        >>> randoms = [pa.concepts.Concept(i, f"random{i}", loader(torch.randn(16, 8))) for i in (1, 2)]
        >>> tcav = pa.concepts.TCAV(model, ["0", "2"])
        >>> scores = tcav.interpret(x, [[stripes, r] for r in randoms], target=0)
        >>> sorted(scores)
        ['0-1', '0-2']
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Sequence[str | nn.Module],
        *,
        classifier: Classifier | None = None,
        layer_attr_method: LayerAttr | None = None,
        attribute_to_layer_input: bool = False,
        save_path: str | None = None,
        model_id: str = "default_model_id",
        test_split: float = 0.33,
        regularisation: float = 1e-2,
        seed: int = 0,
        batch_size: int | None = None,
        classifier_kwargs: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not model_id:
            raise ArgumentError("model_id must be a non-empty name")
        super().__init__(model)
        self._classifier, self.model_id, self.save_path = classifier, model_id, save_path
        self.to_input, self.test_split, self.regularisation = attribute_to_layer_input, test_split, regularisation
        self.seed, self.batch_size = base_seed(seed, generator), batch_size
        self.classifier_kwargs = dict(classifier_kwargs or {})
        given = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
        names = {id(m): n for n, m in model.named_modules()}
        self.layers = [g if isinstance(g, str) else names.get(id(g), type(g).__name__) for g in given]
        try:
            self.modules = [model.get_submodule(g) if isinstance(g, str) else g for g in given]
        except AttributeError as error:
            raise ArgumentError(f"layers: {error}; use names from model.named_modules()") from None
        self.layer_attr = layer_attr_method or (
            lambda m, mods: layer_gradient_x_activation(m, mods, multiply_by_inputs=False,
                                                        attribute_to_layer_input=attribute_to_layer_input)
        )  # fmt: skip
        self.concepts: set[Concept] = set()
        self.cavs: dict[str, dict[str, CAV]] = {}
        self._activations: dict[tuple[int, str], Tensor] = {}

    # activations -------------------------------------------------------------------------
    def activations(self, concept: Concept, layer: str) -> Tensor:
        """``(n, D)`` activations of the concept's examples at ``layer`` (computed once)."""
        if (concept.id, layer) not in self._activations:
            self.generate_activation(self.layers, concept)
        return self._activations[(concept.id, layer)]

    def generate_activation(self, layers: str | Sequence[str], concept: Concept) -> None:
        layers = [layers] if isinstance(layers, str) else list(layers)
        if concept.data_iter is None:
            raise ArgumentError(f"concept {concept.identifier} has no data_iter; give it its examples")
        modules = [self.modules[self.layers.index(name)] for name in layers]
        read = layer_activation(self.model, modules, attribute_to_layer_input=self.to_input)
        parts: list[list[Tensor]] = [[] for _ in layers]
        for i, batch in enumerate(concept.data_iter):
            for j, values in enumerate(zip(*(read(rows) for rows in self._chunks(batch)))):
                flat = torch.cat([_flat(value) for value in values]).detach()
                parts[j].append(flat)
                if self.save_path is not None:  # Captum's layout: save_path/av/model_id/concept/layer/i.pt
                    folder = os.path.join(self.save_path, "av", self.model_id, concept.identifier, layers[j])
                    os.makedirs(folder, exist_ok=True)
                    torch.save(flat, os.path.join(folder, f"{i}.pt"))
        for name, chunks in zip(layers, parts):
            self._activations[(concept.id, name)] = torch.cat(chunks)

    def _chunks(self, batch: Any) -> list[Any]:
        """A data batch in pieces of at most ``batch_size`` rows."""
        xs, was_tuple = as_tuple(batch, "concept batch")
        step = self.batch_size or xs[0].shape[0]
        return [restore([x[k : k + step] for x in xs], was_tuple) for k in range(0, xs[0].shape[0], step)]

    def generate_all_activations(self) -> None:
        for concept in self.concepts:
            self.generate_activation(self.layers, concept)

    # CAVs --------------------------------------------------------------------------------
    @property
    def classifier(self) -> Classifier | None:
        """The classifier CAVs are fitted with; None: the batched ridge fit of :func:`fit_cavs`."""
        return self._classifier

    @classifier.setter
    def classifier(self, value: Classifier | None) -> None:
        self._classifier = value

    def compute_cavs(self, experimental_sets: Sequence[Sequence[Concept]], force_train: bool = False) -> dict:
        """Fit (or load) the CAV of every experimental set at every layer."""
        by_id: dict[int, Concept] = {c.id: c for c in self.concepts}
        for concepts in experimental_sets:
            for c in concepts:
                if by_id.setdefault(c.id, c) is not c:
                    raise ArgumentError(
                        f"two different concepts have id {c.id}; reuse one Concept object per id across sets"
                    )
        self.concepts.update(c for concepts in experimental_sets for c in concepts)
        if force_train:
            self._activations.clear()
        for layer in self.layers:
            todo = []
            for concepts in experimental_sets:
                key = concepts_key(concepts)
                loaded = None if force_train else self._load(key, layer)
                if loaded is not None:
                    self.cavs.setdefault(key, {})[layer] = loaded
                elif force_train or layer not in self.cavs.get(key, {}):
                    todo.append(list(concepts))
            if self._classifier is None:
                self._fit_batched(todo, layer)
            else:
                for concepts in todo:
                    self._fit_one(concepts, layer)
        return self.cavs

    def _fit_batched(self, sets: list[list[Concept]], layer: str) -> None:
        stats: dict[int, ConceptStats] = {}
        for concepts in sets:
            for c in concepts:
                if c.id not in stats:
                    generator = item_generator(self.seed, c.id)
                    stats[c.id] = ConceptStats.of(self.activations(c, layer), self.test_split, generator)
        for size in sorted({len(s) for s in sets}):
            group = [s for s in sets if len(s) == size]
            weights, accs = fit_cavs([[stats[c.id] for c in s] for s in group], self.regularisation)
            for concepts, w, acc in zip(group, weights, accs):
                self._store(CAV(concepts, layer, {"weights": w.float(), "classes": [c.id for c in concepts],
                                                  "accs": acc}))  # fmt: skip

    def _fit_one(self, concepts: list[Concept], layer: str) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        xs = [self.activations(c, layer) for c in concepts]
        labels = torch.cat([torch.full((len(x),), c.id, device=x.device) for x, c in zip(xs, concepts)])
        assert self._classifier is not None
        loader = DataLoader(TensorDataset(torch.cat(xs), labels), batch_size=64)
        stats = self._classifier.train_and_eval(loader, **self.classifier_kwargs) or {}
        weights, classes = self._classifier.weights(), self._classifier.classes()
        if weights is None or len(weights) == 0 or classes is None or len(classes) == 0:
            raise ArgumentError("the classifier returned no weights or classes; train_and_eval must fit it")
        classes = classes.tolist() if hasattr(classes, "tolist") else list(classes)
        self._store(CAV(concepts, layer, {"weights": weights, "classes": classes, **stats}))

    def _store(self, cav: CAV) -> None:
        self.cavs.setdefault(concepts_key(cav.concepts), {})[cav.layer] = cav
        if self.save_path is not None:
            save_cav(cav, self.save_path, self.model_id)

    def _load(self, key: str, layer: str) -> CAV | None:
        return None if self.save_path is None else load_cav(self.save_path, self.model_id, key, layer)

    # scores ------------------------------------------------------------------------------
    def layer_gradients(
        self, inputs: Any, target: TargetLike = None, additional_forward_args: Any = None
    ) -> list[Tensor]:
        """``(N, D)`` gradients of the target output at every layer, from one backward pass."""
        attribute = self.layer_attr(self.model, self.modules)
        xs, was_tuple = as_tuple(inputs)
        n = xs[0].shape[0]
        step = self.batch_size or n
        parts: list[list[Tensor]] = [[] for _ in self.layers]
        for start in range(0, n, step):
            rows = torch.arange(start, min(start + step, n), device=xs[0].device)
            chunk = restore([x.index_select(0, rows) for x in xs], was_tuple)
            out = attribute(chunk, target=select_examples(target, n, rows),
                            additional_forward_args=select_examples(additional_forward_args, n, rows))  # fmt: skip
            for j, value in enumerate(out if isinstance(out, list) else [out]):
                parts[j].append(_flat(value).detach())
        return [torch.cat(p) for p in parts]

    def interpret(self, inputs: Any, experimental_sets: Sequence[Sequence[Concept]], target: TargetLike = None,
                  additional_forward_args: Any = None) -> dict[str, dict[str, dict[str, Tensor]]]:  # fmt: skip
        """``{set key: {layer: {"sign_count": (K,), "magnitude": (K,)}}}``, concepts in set order."""
        self.compute_cavs(experimental_sets)
        grads = self.layer_gradients(inputs, target, additional_forward_args)
        scores: dict[str, dict[str, dict[str, Tensor]]] = {}
        for layer, g in zip(self.layers, grads):
            for size in sorted({len(s) for s in experimental_sets}):
                group = [s for s in experimental_sets if len(s) == size]
                cavs, order = [], []
                for concepts in group:
                    cav = self.cavs[concepts_key(concepts)][layer]
                    w = torch.as_tensor(cav.stats["weights"]).float().to(g.device)
                    rows = {cls: i for i, cls in enumerate(cav.stats["classes"])}
                    order.append([rows[c.id] for c in concepts])
                    cavs.append(w)
                projected = g.float() @ torch.stack(cavs).transpose(1, 2)  # (S, N, K) in one product
                sign = (projected > 0).float().mean(1)
                magnitude = projected.mean(1)
                for concepts, s, m, idx in zip(group, sign, magnitude, order):
                    pick = torch.tensor(idx, device=g.device)
                    scores.setdefault(concepts_key(concepts), {})[layer] = {
                        "sign_count": s.index_select(0, pick), "magnitude": m.index_select(0, pick)
                    }  # fmt: skip
        return scores

    def significance(
        self, inputs: Any, concept: Concept, random_concepts: Sequence[Concept], target: TargetLike = None,
        additional_forward_args: Any = None, alpha: float = 0.05,
    ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """Is the concept's TCAV score different from chance? Per layer, a two-sided Welch t-test
        (the TCAV paper's test) between the sign counts of ``[concept, random_i]`` over all random
        concepts and those of random-vs-random sets ``[random_i, random_i+1]``: ``p_value``,
        ``significant`` (p < alpha), and both score lists. (Chained pairs, not Captum's tutorial's
        ``[random_0, random_i]``: a shared first set makes all chance CAVs point the same way.)"""
        if len(random_concepts) < 3:
            raise ArgumentError("significance needs at least 3 random concepts (2 random-vs-random scores)")
        pairs = zip(random_concepts[:-1], random_concepts[1:])
        sets = [[concept, r] for r in random_concepts] + [[a, b] for a, b in pairs]
        scores = self.interpret(inputs, sets, target, additional_forward_args)
        out = {}
        for layer in self.layers:
            ours = torch.stack([scores[concepts_key(s)][layer]["sign_count"][0] for s in sets[: len(random_concepts)]])
            chance = torch.stack(
                [scores[concepts_key(s)][layer]["sign_count"][0] for s in sets[len(random_concepts) :]]
            )
            p = welch_p_value(ours.double().cpu(), chance.double().cpu())
            out[layer] = {"p_value": p, "significant": p < alpha, "concept_scores": ours, "random_scores": chance}
        return out


def welch_p_value(a: Tensor, b: Tensor) -> float:
    """Two-sided p-value of Welch's t-test of equal means (0 or 1 when both samples are constant)."""
    from scipy.stats import t as student

    va, vb = a.var() / len(a), b.var() / len(b)
    gap = float((a.mean() - b.mean()).abs())
    if float(va + vb) == 0.0:
        return 0.0 if gap > 0 else 1.0
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
    return float(2 * student.sf(gap / float((va + vb).sqrt()), df))


def _flat(value: Any) -> Tensor:
    """A layer value (a tensor or nested tuple of them) as ``(N, D)``."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in _leaves(value)], 1)


def _leaves(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return [t for v in value for t in _leaves(v)]


def tcav(model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module], **options: Any) -> TCAV:
    """A :class:`TCAV` interpreter of ``model`` at ``layers`` (see its options).

    Args:
        model: The model (an ``nn.Module`` or a function calling modules); left exactly as found.
        layers: The layers (modules, or their names in ``model.named_modules()``).
        **options: Keyword configuration of the class it builds (see there).

    Returns:
        TCAV: call ``interpret(inputs, experimental_sets, target=...)`` for the scores.

    References:
        - Kim, Wattenberg, Gilmer, Cai, Wexler, Viégas and Sayres, "Interpretability Beyond Feature
          Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML 2018.
          https://arxiv.org/abs/1711.11279

    Example:
        >>> loader = lambda t: torch.utils.data.DataLoader(t, batch_size=8)
        >>> stripes = pa.concepts.Concept(0, "stripes", loader(torch.randn(16, 8) + 1.0))
        >>> randoms = [pa.concepts.Concept(i, f"random{i}", loader(torch.randn(16, 8))) for i in (1, 2)]
        >>> tcav = pa.concepts.tcav(model, ["0"])
        >>> scores = tcav.interpret(x, [[stripes, randoms[0]]], target=0)
        >>> sorted(scores["0-1"]["0"])
        ['magnitude', 'sign_count']
    """
    return TCAV(model, layers, **options)
