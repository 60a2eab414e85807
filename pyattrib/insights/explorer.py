"""What the Insights page shows: predictions, and each method's attributions rendered as HTML.

The explorer computes, never draws pages: :mod:`.page` lays the results out, :mod:`.report`
writes them to one file and :mod:`.server` answers the live page's requests with them.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from .._core.errors import ArgumentError
from .._core.state import evaluating
from .._core.targets import model_output
from ..viz.image import as_hwc, as_pixels, heat_rgba
from ..viz.scale import normalise, to_numpy
from ..viz.text import token_marks

KINDS = ("image", "text", "tabular")
OPTION_TYPES = (bool, int, float, str, tuple)


@dataclass(frozen=True)
class Method:
    """An attribution method as the explorer runs it: ``transform(model, **options)(x, target=t, **call)``.

    ``options`` are the transform's configuration (shown on the page, editable in the live
    page); ``call`` holds call-time arguments such as ``baselines``.

    Args:
        transform: A pyattrib transform, e.g. ``pa.integrated_gradients``.
        options: The transform's configuration (editable on the live page).
        call: Call-time arguments, such as ``baselines``.

    Example:
        >>> method = pa.insights.Method(pa.integrated_gradients, {"n_steps": 8})
        >>> method.options
        {'n_steps': 8}
    """

    transform: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    call: Mapping[str, Any] = field(default_factory=dict)

    def with_options(self, changes: Mapping[str, Any]) -> Method:
        """This method with some options changed; each new value must have the old one's type."""
        checked = {}
        for key, value in changes.items():
            if key not in self.options:
                raise ArgumentError(f"option {key!r} is not one of this method's options {sorted(self.options)}")
            checked[key] = _like(key, value, self.options[key])
        return Method(self.transform, {**self.options, **checked}, self.call)


def _like(key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (a JSON list becomes a tuple of numbers)."""
    if isinstance(default, tuple):
        if isinstance(value, (list, tuple)) and len(value) == len(default):
            return tuple(_like(key, v, d) for v, d in zip(value, default))
    elif isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, (int, float)):
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (isinstance(default, float) or value == int(value))
        ):
            return type(default)(value)
    elif isinstance(value, str):
        return value
    raise ArgumentError(f"option {key!r} must be like {default!r} ({type(default).__name__}); got {value!r}")


def as_method(name: str, spec: Any) -> Method:
    """A :class:`Method`, a transform, or ``(transform, options)`` as a Method."""
    if isinstance(spec, Method):
        method = spec
    elif callable(spec):
        method = Method(spec)
    elif isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0]) and isinstance(spec[1], Mapping):
        method = Method(spec[0], dict(spec[1]))
    else:
        raise ArgumentError(
            f"methods[{name!r}] must be a transform (e.g. pa.saliency), (transform, options dict) or "
            f"pyattrib.insights.Method; got {type(spec).__name__}"
        )
    for key, value in method.options.items():
        numbers = not isinstance(value, tuple) or all(isinstance(v, (int, float)) for v in value)
        if not isinstance(value, OPTION_TYPES) or not numbers:
            raise ArgumentError(
                f"methods[{name!r}] option {key!r} must be a bool, number, str or tuple of numbers so the page can "
                f"show and edit it; got {type(value).__name__}. Fix it inside the transform, e.g. functools.partial"
            )
    return method


def as_examples(dataset: Any, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, labels)`` tensors or a Dataset of ``(input, label)`` pairs, as two tensors (first ``limit``)."""
    if isinstance(dataset, tuple) and len(dataset) == 2 and all(torch.is_tensor(t) for t in dataset):
        inputs, labels = dataset
    else:
        try:
            pairs = [dataset[i] for i in range(min(len(dataset), limit))]
            inputs = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            labels = torch.as_tensor([int(p[1]) for p in pairs])
        except (TypeError, IndexError, KeyError) as error:
            raise ArgumentError(
                "dataset must be (inputs, labels) tensors or a Dataset whose items are (input, label); "
                f"got {type(dataset).__name__} ({error})"
            ) from error
    if len(inputs) != len(labels):
        raise ArgumentError(f"dataset has {len(inputs)} inputs and {len(labels)} labels; give one label per input")
    return inputs[:limit], labels[:limit].long()


def guess_kind(inputs: torch.Tensor) -> str:
    if not inputs.is_floating_point():
        return "text"
    if inputs.dim() == 4 or (inputs.dim() == 3 and inputs.shape[1] in (1, 3, 4)):
        return "image"
    if inputs.dim() == 2:
        return "tabular"
    raise ArgumentError(f"cannot tell what inputs of shape {tuple(inputs.shape)} are; pass kind= one of {KINDS}")


def png(pixels: np.ndarray) -> str:
    """An image array as a ``data:`` URL (PNG, no file, no network)."""
    from matplotlib.image import imsave

    buffer = io.BytesIO()
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    imsave(buffer, pixels.astype(np.uint8), format="png", cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Explorer:
    """A model, some labelled examples and named methods; computes and renders what the page shows.

    Args:
        model: The model.
        dataset: The examples: a sequence of ``(input, label)`` pairs, or a ``(inputs, labels)`` pair of
            tensors.
        methods: The attribution methods: a mapping from a display name to a transform or a ``Method``.
        classes: The class names, by index.
        kind: ``"image"``, ``"text"`` or ``"tabular"``; default inferred from the inputs.
        tokens: Turns one example's token ids into strings (text).
        feature_names: Names of tabular features.
        target: ``"predicted"`` or ``"label"``: which class is explained.
        sign: Which attributions to show: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``.
        limit: Show at most this many examples.

    Example:
        >>> methods = {"saliency": pa.saliency, "IG": (pa.integrated_gradients, {"n_steps": 8})}
        >>> explorer = pa.insights.Explorer(cnn, (images, torch.tensor([0, 1])), methods)
        >>> explorer.kind
        'image'
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        methods: Mapping[str, Any],
        classes: Sequence[str] | None = None,
        kind: str | None = None,
        tokens: Callable[[torch.Tensor], list[str]] | None = None,
        feature_names: Sequence[str] | None = None,
        target: str = "predicted",
        sign: str = "all",
        limit: int = 200,
    ) -> None:
        if not methods:
            raise ArgumentError("methods is empty; give at least one, e.g. {'saliency': pa.saliency}")
        if target not in ("predicted", "label"):
            raise ArgumentError(f"target must be 'predicted' or 'label'; got {target!r}")
        self.model = model
        self.methods = {name: as_method(name, spec) for name, spec in methods.items()}
        self.inputs, self.labels = as_examples(dataset, limit)
        self.kind = kind or guess_kind(self.inputs)
        if self.kind not in KINDS:
            raise ArgumentError(f"kind must be one of {KINDS}; got {kind!r}")
        if self.kind == "text" and tokens is None:
            raise ArgumentError("text inputs need tokens=, a function from one example's ids to token strings")
        self.tokens, self.feature_names, self.target, self.sign = tokens, feature_names, target, sign
        self.probs = self._predict()
        n_classes = self.probs.shape[1]
        self.classes = [str(c) for c in (classes if classes is not None else range(n_classes))]
        if len(self.classes) < n_classes:
            raise ArgumentError(f"classes names {len(self.classes)} classes but the model has {n_classes} outputs")

    def _predict(self) -> torch.Tensor:
        with evaluating(self.model):
            out = self.model(self.inputs)
        try:
            logits = model_output(out)  # the one rule every method reads outputs by
        except TypeError:
            logits = None
        if not torch.is_tensor(logits) or logits.dim() != 2:
            raise ArgumentError("model must return (N, classes) logits (or an output with .logits) for Insights")
        return logits.float().softmax(dim=1)

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """One record per example: index, label, prediction, confidence, rendered input (rendered once)."""
        pred = self.probs.argmax(dim=1)
        return [
            {
                "index": i,
                "label": int(self.labels[i]),
                "pred": int(pred[i]),
                "conf": round(float(self.probs[i].max()), 4),
                "input": self.render_input(i),
            }  # fmt: skip
            for i in range(len(self.labels))
        ]

    def check_indices(self, indices: Any) -> list[int]:
        if not isinstance(indices, list) or not indices or not all(type(i) is int for i in indices):
            raise ArgumentError("indices must be a non-empty list of example numbers (ints)")
        bad = [i for i in indices if not 0 <= i < len(self.labels)]
        if bad:
            raise ArgumentError(f"indices {bad} are outside 0..{len(self.labels) - 1}")
        return indices

    def attribute(self, name: str, options: Mapping[str, Any] | None = None, indices: Any = None) -> dict[int, str]:
        """Attributions of method ``name`` (with ``options`` changed) for ``indices``, as HTML per example."""
        if name not in self.methods:
            raise ArgumentError(f"method {name!r} is not one of {sorted(self.methods)}")
        method = self.methods[name].with_options(options or {})
        chosen = self.check_indices(list(range(len(self.labels))) if indices is None else indices)
        index = torch.tensor(chosen)
        target = (self.probs.argmax(dim=1) if self.target == "predicted" else self.labels)[index]
        attributor = method.transform(self.model, **method.options)
        result = attributor(self.inputs[index], target=target.tolist(), **method.call)
        attributions = result[0] if isinstance(result, tuple) else result
        maps = self._per_position(to_numpy(attributions, "attributions"))
        scale = None if self.kind == "image" else max(float(np.abs(maps).max()), 1e-12)  # one scale per method
        return {i: self.render_attribution(i, maps[k], scale) for k, i in enumerate(chosen)}

    def _per_position(self, values: np.ndarray) -> np.ndarray:
        """Sum what goes beyond one score per input position: image channels, embedding dimensions."""
        if self.kind == "image":
            return values.sum(axis=1) if values.ndim == 4 else values
        return values.reshape(*values.shape[:2], -1).sum(axis=2) if values.ndim > 2 else values

    def render_input(self, i: int) -> str:
        x = self.inputs[i]
        if self.kind == "image":
            return f'<img class="pa-img" alt="input {i}" src="{png(as_pixels(as_hwc(x, "inputs")))}">'
        if self.kind == "text" and self.tokens is not None:  # text is only chosen with tokens
            return html.escape(" ".join(self.tokens(x)))
        names = self._names(len(x))
        return "<br>".join(f"{html.escape(n)} = {float(v):.3g}" for n, v in zip(names, x))

    def _names(self, count: int) -> list[str]:
        return list(self.feature_names) if self.feature_names is not None else [f"x{j}" for j in range(count)]

    def render_attribution(self, i: int, values: np.ndarray, scale: float | None) -> str:
        if self.kind == "image":
            norm = normalise(values, self.sign)
            return (f'<img class="pa-img" alt="attribution {i}" src="{png(heat_rgba(norm))}">'
                    f'<div class="pa-scale">÷ {norm.scale:.3g}</div>')  # fmt: skip
        if self.kind == "text" and self.tokens is not None:
            return token_marks(self.tokens(self.inputs[i]), values, 1.0 if scale is None else scale)
        bars = []
        for name, value in zip(self._names(len(values)), values):
            width, colour = min(abs(value) / scale, 1.0) * 100, "#3a3" if value > 0 else "#d33"
            bars.append(
                f'<div class="pa-bar-row"><span class="pa-feat">{html.escape(name)}</span>'
                f'<span class="pa-bar-track"><span class="pa-bar-fill" style="width:{width:.1f}%;'
                f'background:{colour}"></span></span> {value:.3g}</div>'
            )
        return "".join(bars)
