"""Captum's ``captum.concept`` classes over :mod:`pyattrib.concepts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .. import concepts
from .._core.errors import ArgumentError
from ..concepts import Classifier, Concept, ConceptInterpreter, RidgeClassifier, concepts_key, load_cav, save_cav

__all__ = ["TCAV", "Concept", "Classifier", "CAV", "DefaultClassifier", "ConceptInterpreter"]


class CAV(concepts.CAV):
    """Captum's ``CAV``: concepts, layer and stats, with ``save()`` / ``CAV.load(...)`` in
    pyattrib's file format.

    Args:
        concepts: The concepts.
        layer: The layer (module) explained, or a list of them where Captum takes one.
        stats: The CAV's weights, classes and accuracies.
        save_path: Where CAVs are stored.
        model_id: Names the model in saved files.

    Example:
        >>> from pyattrib.compat import CAV, Concept
        >>> cav = CAV([Concept(0, "stripes"), Concept(1, "random")], "fc1")
        >>> cav.layer
        'fc1'
    """

    def __init__(self, concepts: list[Concept], layer: str, stats: dict | None = None, save_path: str = "./cav/",
                 model_id: str = "default_model_id") -> None:  # fmt: skip
        super().__init__(concepts, layer, stats or {})
        self.save_path, self.model_id = save_path, model_id

    def save(self) -> None:
        save_cav(self, self.save_path, self.model_id)

    @staticmethod
    def load(cavs_path: str, model_id: str, concepts: list[Concept], layer: str) -> concepts.CAV | None:
        return load_cav(cavs_path, model_id, concepts_key(concepts), layer)


class DefaultClassifier(RidgeClassifier):
    """Captum's default TCAV classifier's place: pyattrib's ridge classifier (Captum uses a
    scikit-learn-style SGD classifier; the CAV directions agree in distribution).

    Example:
        >>> from pyattrib.compat import DefaultClassifier
        >>> isinstance(DefaultClassifier(), pa.concepts.Classifier)
        True
    """

    def __init__(self) -> None:
        super().__init__()


class TCAV(concepts.TCAV):
    """Captum's ``TCAV``: :class:`pyattrib.concepts.TCAV` with Captum's constructor and calls.

    ``layer_attr_method`` is a Captum-style layer attribution object (``.layer`` is set to each
    layer and ``.attribute`` called); without a ``classifier`` the batched ridge classifier fits
    the CAVs (Captum: scikit-learn-style SGD, so CAVs differ in value, not in meaning). CAVs are
    saved under ``save_path`` in pyattrib's format; activations stay in memory. ``processes``
    is accepted and unused: all sets are fitted in one batched solve.

    Args:
        model: The model (an ``nn.Module``).
        layers: The layers (module names).
        model_id: Names the model in saved files.
        classifier: The CAV classifier (Captum's ``Classifier`` protocol); default
            :class:`DefaultClassifier`.
        layer_attr_method: The layer attribution used for the scores; default layer gradients.
        attribute_to_layer_input: Score the layers' inputs instead of their outputs.
        save_path: Where CAVs are stored.
        **classifier_kwargs: Keyword arguments of the classifier's ``train_and_eval``.

    Example:
        >>> from pyattrib.compat import TCAV
        >>> TCAV(model, ["0"]).layers
        ['0']
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str], model_id: str = "default_model_id",
                 classifier: Classifier | None = None, layer_attr_method: Any = None,
                 attribute_to_layer_input: bool = False, save_path: str = "./cav/",
                 **classifier_kwargs: Any) -> None:  # fmt: skip
        self._captum_method = layer_attr_method
        super().__init__(
            model, layers, classifier=classifier, attribute_to_layer_input=attribute_to_layer_input,
            save_path=save_path, model_id=model_id, classifier_kwargs=classifier_kwargs,
            layer_attr_method=None if layer_attr_method is None else self._per_layer,
        )  # fmt: skip
        self._kwargs: dict[str, Any] = {}

    @property
    def classifier(self) -> Classifier:
        """Captum's ``tcav.classifier``: the classifier given, else a :class:`DefaultClassifier`
        standing for the batched ridge fit the CAVs get (the same maths, all sets at once)."""
        if self._classifier is None:
            return self.__dict__.setdefault("_default_classifier", DefaultClassifier())
        return self._classifier

    @classifier.setter
    def classifier(self, value: Classifier | None) -> None:
        self._classifier = value

    def _per_layer(self, model: nn.Module, modules: list[nn.Module]) -> Any:
        method, to_input = self._captum_method, self.to_input

        def attribute(inputs: Any, target: Any = None, additional_forward_args: Any = None) -> list[Any]:
            out = []
            for module in modules:
                method.layer = module
                out.append(method.attribute(inputs, target=target, additional_forward_args=additional_forward_args,
                                            attribute_to_layer_input=to_input, **self._kwargs))  # fmt: skip
            return out

        return attribute

    def compute_cavs(self, experimental_sets: Sequence[Sequence[Concept]], force_train: bool = False,
                     processes: int | None = None) -> dict:  # fmt: skip
        return super().compute_cavs(experimental_sets, force_train)

    def interpret(
        self, inputs: Any, experimental_sets: Sequence[Sequence[Concept]], target: Any = None,
        additional_forward_args: Any = None, processes: int | None = None, **kwargs: Any,
    ) -> dict:  # fmt: skip
        if "attribute_to_layer_input" in kwargs:
            raise ArgumentError("set attribute_to_layer_input on the TCAV constructor, not interpret")
        self._kwargs = kwargs
        return super().interpret(inputs, experimental_sets, target, additional_forward_args)
