"""Concepts and concept activation vectors: the named example sets, the CAV of one experimental set at
one layer, and their files in Captum's format (so either library reuses the other's CAVs)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(eq=False)
class Concept:
    """A named set of examples: ``data_iter`` yields batches (tensors or tuples of tensors).

    Args:
        id: A unique integer id.
        name: The concept's name.
        data_iter: Yields the concept's batches (tensors or tuples of tensors).

    Example:
        >>> pa.concepts.Concept(0, "stripes", [torch.randn(4, 8)])
        Concept(0, 'stripes')
    """

    id: int
    name: str
    data_iter: Iterable | None = field(default=None, repr=False)

    @property
    def identifier(self) -> str:
        return f"{self.name}-{self.id}"

    def __repr__(self) -> str:
        return f"Concept({self.id!r}, {self.name!r})"  # Captum's


@dataclass
class CAV:
    """The CAV of one experimental set at one layer: ``stats["weights"]`` (one row per concept),
    ``stats["classes"]`` (concept ids, in row order) and ``stats["accs"]`` (held-out accuracy).

    Args:
        concepts: The concepts of the experimental set.
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.
        stats: ``weights``, ``classes`` and ``accs`` (see above).

    Example:
        >>> loader = lambda t: torch.utils.data.DataLoader(t, batch_size=8)
        >>> stripes = pa.concepts.Concept(0, "stripes", loader(torch.randn(16, 8) + 1.0))
        >>> randoms = [pa.concepts.Concept(i, f"random{i}", loader(torch.randn(16, 8))) for i in (1, 2)]
        >>> tcav = pa.concepts.tcav(model, ["0"])
        >>> cav = tcav.compute_cavs([[stripes, randoms[0]]])["0-1"]["0"]
        >>> cav.stats["weights"].shape
        torch.Size([2, 16])
    """

    concepts: list[Concept]
    layer: str
    stats: dict[str, Any]


def concepts_key(concepts: Sequence[Concept]) -> str:
    """The key of an experimental set, as Captum names its CAV files: the concept ids joined by ``-``.

    Args:
        concepts: The concepts of the set.

    Returns:
        str: e.g. ``"0-1"``.

    Example:
        >>> pa.concepts.concepts_key([pa.concepts.Concept(0, "stripes"), pa.concepts.Concept(1, "random")])
        '0-1'
    """
    return "-".join(str(c.id) for c in concepts)


def cav_file(save_path: str, model_id: str, key: str, layer: str) -> str:
    """``save_path/model_id/<concept ids>-<layer>.pkl``: Captum's name for a saved CAV."""
    return os.path.join(save_path, model_id, f"{key}-{layer}.pkl")


def save_cav(cav: CAV, save_path: str, model_id: str) -> None:
    """Write ``cav`` where and as Captum does (``torch.save`` of ``concept_ids``,
    ``concept_names``, ``layer``, ``stats``), so either library reuses the other's CAVs.

    Args:
        cav: The CAV to write.
        save_path: The folder of CAV files.
        model_id: Names the model in the file names.

    Returns:
        None.

    Example:
        >>> loader = lambda t: torch.utils.data.DataLoader(t, batch_size=8)
        >>> stripes = pa.concepts.Concept(0, "stripes", loader(torch.randn(16, 8) + 1.0))
        >>> randoms = [pa.concepts.Concept(i, f"random{i}", loader(torch.randn(16, 8))) for i in (1, 2)]
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> tcav = pa.concepts.TCAV(model, ["0"], save_path=folder)
        >>> cav = tcav.compute_cavs([[stripes, randoms[0]]])["0-1"]["0"]
        >>> pa.concepts.save_cav(cav, folder, "docs_model")
        >>> pa.concepts.load_cav(folder, "docs_model", "0-1", "0").stats["weights"].shape
        torch.Size([2, 16])
    """
    os.makedirs(os.path.join(save_path, model_id), exist_ok=True)
    saved = {"concept_ids": [c.id for c in cav.concepts], "concept_names": [c.name for c in cav.concepts],
             "layer": cav.layer, "stats": cav.stats}  # fmt: skip
    torch.save(saved, cav_file(save_path, model_id, concepts_key(cav.concepts), cav.layer))


def load_cav(save_path: str, model_id: str, key: str, layer: str) -> CAV | None:
    """The CAV saved by :func:`save_cav` or by Captum, or None.

    Args:
        save_path: The folder of CAV files.
        model_id: Names the model in the file names.
        key: The experimental set's key (:func:`concepts_key`).
        layer: The module whose output (or input) is explained, or a list of modules for several layers
            at once.

    Returns:
        CAV | None: the saved CAV, or None if there is none.

    Example:
        >>> loader = lambda t: torch.utils.data.DataLoader(t, batch_size=8)
        >>> stripes = pa.concepts.Concept(0, "stripes", loader(torch.randn(16, 8) + 1.0))
        >>> randoms = [pa.concepts.Concept(i, f"random{i}", loader(torch.randn(16, 8))) for i in (1, 2)]
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> tcav = pa.concepts.TCAV(model, ["0"], save_path=folder)
        >>> cav = tcav.compute_cavs([[stripes, randoms[0]]])["0-1"]["0"]
        >>> pa.concepts.save_cav(cav, folder, "docs_model")
        >>> pa.concepts.load_cav(folder, "docs_model", "0-1", "0").layer
        '0'
    """
    path = cav_file(save_path, model_id, key, layer)
    if not os.path.exists(path):
        return None
    saved = torch.load(path, weights_only=False)
    concepts = [Concept(i, n) for i, n in zip(saved["concept_ids"], saved["concept_names"])]
    return CAV(concepts, saved["layer"], saved["stats"])
