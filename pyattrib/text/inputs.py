"""Interpretable inputs: what the features of a prompt are, and the model input with some removed.

Each input has ``values`` (one display name per feature), ``n_itp_features`` (how many
features are attributed: template slots, mask groups, tokens or image segments),
``to_tensor()`` (the all-present indicator, ``(1, n_itp_features)``) and
``to_model_input(keep)``: the prompt with the features whose indicator is 0 replaced by
their baselines. These are Captum's semantics and names, so Captum's code and ours share them.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._core.errors import ArgumentError


class InterpretableInput(ABC):
    """A prompt split into features that can be removed one by one.

    Example:
        >>> isinstance(pa.text.TextTemplateInput("{} is blue", ["sky"]), pa.text.InterpretableInput)
        True
    """

    values: list[str]
    n_itp_features: int

    def to_tensor(self) -> Tensor:
        return torch.ones(1, self.n_itp_features)

    @abstractmethod
    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        """The prompt (str, ids or processor output) with features whose entry is 0 replaced by baselines."""

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """Attributions per attributed feature, ``(..., n_itp_features)``, as one per value."""
        return itp_attr


def _keyed(name: str, given: Any, keys: list[str], what: str) -> list[Any]:
    if not keys:
        if not isinstance(given, (list, tuple)):
            raise ArgumentError(f"values is a list, so {name} must be a list {what}; got {type(given).__name__}")
        return list(given)
    if not isinstance(given, dict):
        raise ArgumentError(f"values is a dict, so {name} must be a dict {what}; got {type(given).__name__}")
    missing = [k for k in keys if k not in given]
    if missing:
        raise ArgumentError(f"{name} has no entry for the slots {missing}; give one per slot")
    return [given[k] for k in keys]


class ProductBaselines:
    """Baselines drawn from a product of per-feature choices: each call picks one value per feature.

    ``baseline_values`` is a list of lists (one list of choices per feature) or a dict from a
    slot name to its choices; a tuple of names as key draws those slots jointly (its choices
    are tuples).

    Args:
        baseline_values: One list of choices per feature, or a dict from a slot name to its choices (a
            tuple of names as key draws those slots jointly).
        generator: Draws the choices (``torch.randint``); ``None`` draws them from Python's ``random``,
            as Captum's ``ProductBaselines`` does (so ``random.seed`` reproduces Captum's draws).

    Example:
        >>> draw = pa.text.ProductBaselines({"name": ["Anna", "Bob"]}, generator=torch.Generator().manual_seed(0))
        >>> sorted(draw())
        ['name']
    """

    def __init__(
        self, baseline_values: list[list[Any]] | dict[Any, list[Any]], generator: torch.Generator | None = None
    ) -> None:
        self.generator = generator
        self.dict_keys = list(baseline_values) if isinstance(baseline_values, dict) else []
        self.baseline_values = [baseline_values[k] for k in self.dict_keys] if self.dict_keys else list(baseline_values)
        if any(len(choices) == 0 for choices in self.baseline_values):
            raise ArgumentError("every feature of baseline_values needs at least one choice")

    def sample(self) -> list[Any] | dict[str, Any]:
        if self.generator is None:
            picked = [random.choice(choices) for choices in self.baseline_values]
        else:
            picked = [c[int(torch.randint(len(c), (), generator=self.generator))] for c in self.baseline_values]
        if not self.dict_keys:
            return picked
        drawn: dict[str, Any] = {}
        for key, value in zip(self.dict_keys, picked):
            keys, vals = (key, value) if isinstance(key, tuple) else ((key,), (value,))
            drawn.update(zip(keys, vals))
        return drawn

    __call__ = sample


class TextTemplateInput(InterpretableInput):
    """Features are the slots of a template: ``template.format(*values)`` (or ``**values``).

    ``baselines`` replace removed slots (default ``""``; a list/dict like ``values``, or a
    callable such as :class:`ProductBaselines` drawn at each perturbation); ``mask`` groups
    slots that are removed together (equal ids, one attributed feature per id).

    Args:
        template: A format string with one slot per feature (``"{} lives in {}"``), or a function of the
            values.
        values: The features' values, a list (positional slots) or a dict (named slots).
        baselines: What a removed slot becomes (default ``""``): a list or dict like ``values``, or a
            callable such as :class:`ProductBaselines` drawn at each perturbation.
        mask: Groups slots that are removed together (equal ids give one feature).

    Example:
        >>> inp = pa.text.TextTemplateInput("{} lives in {}", ["Dave", "Paris"])
        >>> inp.to_model_input(torch.tensor([1, 0]))
        'Dave lives in '
    """

    def __init__(
        self,
        template: str | Callable[..., str],
        values: list[str] | dict[str, str],
        baselines: list[str] | dict[str, str] | Callable[[], Any] | None = None,
        mask: list[int] | dict[str, int] | None = None,
    ) -> None:
        if not isinstance(values, (list, dict)):
            raise ArgumentError(f"values must be a list or a dict of slot values; got {type(values).__name__}")
        self.dict_keys = list(values) if isinstance(values, dict) else []
        self.values = [values[k] for k in self.dict_keys] if isinstance(values, dict) else list(values)
        self.n_features = len(self.values)
        if baselines is None:
            baselines = [""] * self.n_features
        elif not callable(baselines):
            baselines = _keyed("baselines", baselines, self.dict_keys, "or a callable returning one")
            if len(baselines) != self.n_features:
                raise ArgumentError(
                    f"baselines has {len(baselines)} entries for {self.n_features} slots; give one each"
                )
        self.baselines = baselines
        if mask is None:
            self.formatted_mask = list(range(self.n_features))
        else:
            mask = _keyed("mask", mask, self.dict_keys, "of group ids")
            if len(mask) != self.n_features:
                raise ArgumentError(f"mask has {len(mask)} entries for {self.n_features} slots; give one group id each")
            ids = {mid: i for i, mid in enumerate(sorted(set(mask)))}
            self.formatted_mask = [ids[m] for m in mask]
        self.mask = mask
        self.n_itp_features = len(set(self.formatted_mask))
        if isinstance(template, str):
            slots = template.count("{") - 2 * template.count("{{")
            if not self.dict_keys and slots != self.n_features:
                raise ArgumentError(
                    f"template has {slots} slots but values has {self.n_features}; give one value per slot"
                )
            self.format_fn: Callable[..., str] = template.format
        elif callable(template):
            self.format_fn = template
        else:
            raise ArgumentError(f"template must be a str or a callable; got {type(template).__name__}")
        self.template = template

    def _baselines(self) -> list[str]:
        if not callable(self.baselines):
            return self.baselines
        drawn = self.baselines()
        return _keyed("the baselines callable's result", drawn, self.dict_keys, "")

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> str:
        values = list(self.values)
        if perturbed_tensor is not None:
            keep = perturbed_tensor.reshape(-1).tolist()
            if not all(keep[self.formatted_mask[i]] for i in range(self.n_features)):
                baselines = self._baselines()
                values = [v if keep[self.formatted_mask[i]] else baselines[i] for i, v in enumerate(values)]
        if self.dict_keys:
            return self.format_fn(**dict(zip(self.dict_keys, values)))
        return self.format_fn(*values)

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        if self.mask is None:
            return itp_attr
        return itp_attr[..., torch.tensor(self.formatted_mask, device=itp_attr.device)]


class TextTokenInput(InterpretableInput):
    """Features are the prompt's tokens (``tokenizer.encode(text)``), except ``skip_tokens``.

    A removed token becomes ``baselines`` (a token id, or a token string; default id 0).
    ``skip_tokens`` (ids or strings, e.g. a BOS token) stay in every prompt and are never features.

    Args:
        text: The prompt.
        tokenizer: A Hugging Face tokenizer of the model.
        baselines: What a removed token becomes: a token id or a token string (default id 0).
        skip_tokens: Token ids or strings that stay in every prompt and are never features (e.g. a BOS
            token).

    Example:
        >>> inp = pa.text.TextTokenInput("the cat sat", tokenizer, skip_tokens=["[CLS]", "[SEP]"])
        >>> inp.values
        ['the', 'cat', 'sat']
    """

    def __init__(self, text: str, tokenizer: Any, baselines: int | str = 0, skip_tokens: Sequence[Any] | None = None):
        if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "convert_ids_to_tokens"):
            raise ArgumentError(
                "tokenizer must have encode() and convert_ids_to_tokens(), e.g. a transformers tokenizer"
            )
        self.inp_tensor = torch.as_tensor(tokenizer.encode(text, return_tensors="pt")).reshape(1, -1)
        self.itp_tensor, self.itp_mask = self.inp_tensor, None
        if skip_tokens:
            if isinstance(skip_tokens[0], str):
                skip_tokens = _known_ids(tokenizer, list(skip_tokens), "skip_tokens")
            keep = ~torch.isin(self.inp_tensor, torch.tensor(list(skip_tokens)))
            self.itp_tensor, self.itp_mask = self.inp_tensor[keep].unsqueeze(0), keep
        self.skip_tokens = skip_tokens
        self.tokenizer = tokenizer
        self.values = tokenizer.convert_ids_to_tokens(self.itp_tensor[0].tolist())
        self.n_itp_features = len(self.values)
        if self.n_itp_features == 0:
            raise ArgumentError(f"text {text!r} has no tokens left to attribute after skip_tokens; skip fewer")
        if isinstance(baselines, str):
            baselines = _known_ids(tokenizer, [baselines], "baselines")[0]
        if not isinstance(baselines, int):
            raise ArgumentError(f"baselines must be a token id (int) or a token string; got {baselines!r}")
        self.baselines = baselines

    def to_tensor(self) -> Tensor:
        return torch.ones_like(self.itp_tensor)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Tensor:
        if perturbed_tensor is None:
            return self.inp_tensor
        rows = perturbed_tensor.shape[0]
        removed = perturbed_tensor != 1
        tokens = self.itp_tensor.to(perturbed_tensor.device).expand(rows, -1).masked_fill(removed, self.baselines)
        if self.itp_mask is None:
            return tokens
        full = self.inp_tensor.to(perturbed_tensor.device).expand(rows, -1).clone()
        full[self.itp_mask.to(full.device).expand(rows, -1)] = tokens.reshape(-1)
        return full


def _known_ids(tokenizer: Any, tokens: list[str], name: str) -> list[int]:
    """Ids of token strings; one the tokenizer does not know (it would map to its unknown token) is an error."""
    ids = list(tokenizer.convert_tokens_to_ids(tokens))
    unk, unk_token = getattr(tokenizer, "unk_token_id", None), getattr(tokenizer, "unk_token", None)
    unknown = [t for t, i in zip(tokens, ids) if i is None or (unk is not None and i == unk and t != unk_token)]
    if unknown:
        special = getattr(tokenizer, "all_special_tokens", [])
        raise ArgumentError(
            f"{name} {unknown} are not tokens of this tokenizer (they would become its unknown token); "
            f"use its own tokens, e.g. one of its special tokens {special}, or pass token ids"
        )
    return ids


class ImageMaskInput(InterpretableInput):
    """Features are segments of an image (``mask`` of segment ids, or ``mask_list`` of boolean masks).

    A removed segment is painted ``baseline`` (an RGB triple); ``processor_fn`` turns the
    (perturbed) PIL image into the model input of a vision-language model.

    Args:
        image: The image (a PIL image).
        mask: Segment ids per pixel.
        mask_list: Boolean masks, one per segment (instead of ``mask``).
        baseline: The RGB colour a removed segment is painted.
        processor_fn: Turns the (perturbed) PIL image into the model's input.

    Example:
        >>> from PIL import Image
        >>> segments = torch.tensor([[0, 0, 1, 1]] * 4)
        >>> inp = pa.text.ImageMaskInput(Image.new("RGB", (4, 4)), mask=segments)
        >>> len(inp.values), inp.to_tensor().shape
        (2, torch.Size([1, 2]))
    """

    def __init__(
        self,
        image: Any,
        mask: Tensor | None = None,
        mask_list: list[Tensor] | None = None,
        baseline: tuple[int, int, int] = (255, 255, 255),
        processor_fn: Callable[[Any], Any] = lambda x: x,
    ) -> None:
        self.image, self.baseline, self.processor_fn = image, baseline, processor_fn
        shape = (image.size[1], image.size[0])
        if mask_list is not None:
            for i, m in enumerate(mask_list):
                if tuple(m.shape) != shape:
                    raise ArgumentError(f"mask_list[{i}] is {tuple(m.shape)}; it must match the image, {shape}")
            ids: list[int] = list(range(len(mask_list)))
            mask = torch.empty(0)
        else:
            mask = torch.zeros(shape, dtype=torch.int32) if mask is None else mask
            if tuple(mask.shape) != shape:
                raise ArgumentError(f"mask is {tuple(mask.shape)}; it must match the image (height, width), {shape}")
            ids = [int(i) for i in torch.unique(mask).tolist()]
            mask_list = []
        self.mask, self.mask_list = mask, mask_list
        self.mask_id_to_idx = {mid: i for i, mid in enumerate(ids)}
        self.n_itp_features = len(ids)
        self.values = [f"image_feature_{mid}" for mid in ids]
        self.original_model_inputs = processor_fn(image)

    def get_mask_list(self) -> list[Tensor]:
        return self.mask_list or [self.mask == mid for mid in self.mask_id_to_idx]

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        if perturbed_tensor is None:
            return self.original_model_inputs
        import PIL.Image

        pixels = np.array(self.image)
        for segment, keep in zip(self.get_mask_list(), perturbed_tensor.reshape(-1).tolist()):
            if keep == 0:
                pixels[segment.bool().numpy()] = self.baseline
        return self.processor_fn(PIL.Image.fromarray(pixels.astype("uint8")))

    def format_pixel_attr(self, itp_attr: Tensor) -> Tensor:
        """Attributions per segment, ``(..., n_itp_features)``, painted onto pixels, ``(..., H, W)``."""
        segments = torch.stack([m.bool() for m in self.get_mask_list()]).to(itp_attr)
        return torch.einsum("...k,khw->...hw", itp_attr, segments)
