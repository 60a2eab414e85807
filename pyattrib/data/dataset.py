"""Attribute a whole dataset: batches from a DataLoader, results on disk or in summaries,
restartable, and sharded over processes under ``torch.distributed``."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from .._core.distributed import barrier
from .._core.distributed import world as world_of
from .._core.errors import ArgumentError
from .._core.inputs import as_tuple, batch_rows
from .._core.progress import progress
from .._core.random import item_generator
from .._core.targets import TargetLike
from .summary import Summarizer

LABEL_KEYS = ("labels", "label", "target", "targets", "y")
INPUT_KEYS = ("inputs", "input", "x", "pixel_values", "input_ids")


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, labels)`` of a batch: a tensor is all inputs; a tuple or list is
    ``(inputs..., labels)`` (one input: ``(x, y)``); a dict gives its first input key
    (``inputs``, ``input``, ``x``, ``pixel_values``, ``input_ids``) and label key (``labels``,
    ``label``, ``target``, ``targets``, ``y``).

    Args:
        batch: A batch as a DataLoader yields it.

    Returns:
        tuple: ``(inputs, labels)`` (``labels`` None when the batch has none).

    Example:
        >>> inputs, labels = pa.data.split_batch((x, y))
        >>> labels.tolist()
        [0, 1, 2, 0]
    """
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, dict):
        inputs = next((batch[k] for k in INPUT_KEYS if k in batch), None)
        if inputs is None:
            raise ArgumentError(f"batch dict has keys {sorted(batch)}; pass split=lambda batch: (inputs, labels)")
        return inputs, next((batch[k] for k in LABEL_KEYS if k in batch), None)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return (batch[0] if len(batch) == 2 else tuple(batch[:-1])), batch[-1]
    raise ArgumentError(f"cannot read a batch of type {type(batch).__name__}; pass split=")


def _same(batch: Any) -> Any:
    return batch


def _collated(loader: Any, indices: list[int]) -> Any:
    return loader.collate_fn([loader.dataset[i] for i in indices])


def _batches(loader: Any) -> Iterator[tuple[int, list[int], Callable[[], Any]]]:
    """``(batch number, example ids, load)`` for every batch, in loader order. With a batch
    sampler the ids are dataset indices and a batch is only loaded when asked for; otherwise
    (iterable datasets) batches are read in turn and ids count the examples seen."""
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is None or isinstance(getattr(loader, "dataset", None), torch.utils.data.IterableDataset):
        offset = 0
        for b, batch in enumerate(loader):
            n = batch_rows(batch)
            yield b, list(range(offset, offset + n)), functools.partial(_same, batch)
            offset += n
        return
    for b, indices in enumerate(sampler):
        indices = list(indices)
        yield b, indices, functools.partial(_collated, loader, indices)


@dataclass
class DatasetAttribution:
    """What :func:`attribute_dataset` did: ``n_examples`` attributed (by this process),
    ``summary`` (merged over all processes), and ``out`` (the shard folder, or None).

    Args:
        n_examples: Examples attributed by this process.
        summary: The summary, merged over all processes.
        out: The shard folder, or None.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
        >>> run = pa.data.attribute_dataset(pa.saliency(model), loader, out=folder, show_progress=False)
        >>> run.n_examples, run.out == folder
        (4, True)
    """

    n_examples: int
    summary: Summarizer | None
    out: str | None

    def stored(self) -> StoredAttributions:
        if self.out is None:
            raise ArgumentError("no attributions were stored: pass out=<folder> to attribute_dataset")
        return load_attributions(self.out)


def attribute_dataset(
    attributor: Callable[..., Any],
    loader: Any,
    *,
    target: TargetLike | str = "batch",
    split: Callable[[Any], tuple[Any, Any]] = split_batch,
    summarize: Summarizer | None = None,
    out: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    show_progress: bool = True,
    **attributor_kwargs: Any,
) -> DatasetAttribution:
    """Run ``attributor`` over every batch of ``loader``.

    - ``split(batch) -> (inputs, labels)`` reads a batch (:func:`split_batch` by default:
      tensors, tuples, dicts); ``target="batch"`` uses the labels, or pass any target
      (an int, None, or a callable ``batch -> target``).
    - ``out``: a folder of shards, one per batch: ``attr<j>-<batch>.npy`` per input tensor
      and ``ids-<batch>.npy`` (the dataset indices of its examples), written atomically, the
      ids last; ``index.json`` lists them. :func:`load_attributions` reads them
      memory-mapped. A rerun skips the batches whose shards exist (their attributions are
      read back for the summary), so an interrupted run loses and duplicates nothing.
    - ``summarize``: a :class:`Summarizer` (every example one value) or ``ClassSummarizer``
      (by label) fed with the attributions.
    - ``device``: where each batch's tensors go before the call (e.g. ``f"cuda:{local_rank}"``
      for one GPU per process); attributions are stored and summarised from there.
    - Under ``torch.distributed`` (e.g. ``torchrun``), batch ``b`` is attributed by rank
      ``b % world_size``: no example is padded or repeated, each rank writes its own shards,
      and the summaries of all ranks are merged (every rank gets the merged one). A random
      attributor gets a generator seeded with ``(seed, b)`` for batch ``b``, so the results do
      not depend on the number of processes.

    Args:
        attributor: The attributor run on every batch.
        loader: The batches (a DataLoader or any iterable).
        target: ``"batch"`` uses the labels; or any target (an int, None, a callable ``batch ->
            target``).
        split: ``split(batch) -> (inputs, labels)``; default :func:`split_batch`.
        summarize: A :class:`Summarizer` or :class:`ClassSummarizer` fed with the attributions.
        out: A folder of shards, one per batch: ``attr<j>-<batch>.npy`` per input tensor and
            ``ids-<batch>.npy`` (the dataset indices of its examples), written atomically, the ids last;
            ``index.json`` lists them. :func:`load_attributions` reads them memory-mapped. A rerun skips
            the batches whose shards exist (their attributions are read back for the summary), so an
            interrupted run loses and duplicates nothing.
        seed: Seeds the generator of a random attributor: ``(seed, b)`` for batch ``b``.
        device: Where each batch's tensors go before the call (e.g. ``f"cuda:{local_rank}"`` for one GPU
            per process); attributions are stored and summarised from there.
        show_progress: Show a progress bar over the model evaluations.
        **attributor_kwargs: Passed to every call of the attributor (e.g. ``baselines``).

    Returns:
        DatasetAttribution: the number of examples attributed, the summary and the shard folder.

    Example:
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
        >>> run = pa.data.attribute_dataset(pa.saliency(model), loader, show_progress=False)
        >>> run.n_examples
        4
    """
    rank, world = world_of()
    if out is not None:
        os.makedirs(out, exist_ok=True)
    random = getattr(attributor, "random", False)
    done = 0
    batches = _batches(loader)
    batches = progress(batches, show_progress and rank == 0, "attribute_dataset", _length(loader))
    for b, indices, load in batches:
        if b % world != rank:
            continue
        attrs = _read_shard(out, b, device) if out is not None else None
        labels = None
        if attrs is None or summarize is not None:
            batch = _to(load(), device)
            inputs, labels = split(batch)
        if attrs is None:
            kwargs = dict(attributor_kwargs)
            kwargs["target"] = labels if isinstance(target, str) and target == "batch" else (
                target(batch) if callable(target) else target
            )  # fmt: skip
            if random:
                kwargs["generator"] = item_generator(seed, b)
            result = attributor(inputs, **kwargs)
            if getattr(attributor, "returns_delta", False):
                result = result[0]
            attrs = tuple(a.detach() for a in as_tuple(result, "attributions")[0])
            if out is not None:
                _write_shard(out, b, attrs, np.asarray(indices, dtype=np.int64))
        if summarize is not None:
            value = attrs if len(attrs) > 1 else attrs[0]
            if hasattr(summarize, "summaries") and labels is not None:
                cast(Any, summarize).update(value, torch.as_tensor(labels).reshape(-1))  # a ClassSummarizer
            else:
                summarize.update_rows(value)
        done += attrs[0].shape[0]
    summary = _merged(summarize, world)
    if out is not None:
        barrier(world)
        if rank == 0:
            _write_index(out)
        barrier(world)
    return DatasetAttribution(done, summary, out)


def _to(batch: Any, device: torch.device | str | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _merged(summary: Summarizer | None, world: int) -> Summarizer | None:
    if summary is None or world == 1:
        return summary
    parts: list[Any] = [None] * world
    torch.distributed.all_gather_object(parts, summary)
    merged = type(summary)(summary.stats)
    for part in parts:  # rank order: the same merge on every rank
        merged.merge(part)
    return merged


def _shard_file(out: str, kind: str, b: int) -> str:
    return os.path.join(out, f"{kind}-{b:07d}.npy")


def _write_shard(out: str, b: int, attrs: tuple[Tensor, ...], ids: np.ndarray) -> None:
    for j, a in enumerate(attrs):
        _atomic_save(_shard_file(out, f"attr{j}", b), a.cpu().numpy())
    _atomic_save(_shard_file(out, "ids", b), ids)  # last: its presence marks the shard complete


def _atomic_save(path: str, array: np.ndarray) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def _read_shard(out: str, b: int, device: torch.device | str | None = None) -> tuple[Tensor, ...] | None:
    if not os.path.exists(_shard_file(out, "ids", b)):
        return None
    arrays, j = [], 0
    while os.path.exists(_shard_file(out, f"attr{j}", b)):
        arrays.append(torch.from_numpy(np.load(_shard_file(out, f"attr{j}", b))).to(device or "cpu"))
        j += 1
    return tuple(arrays)


def _write_index(out: str) -> None:
    batches = sorted(int(name[4:11]) for name in os.listdir(out) if name.startswith("ids-") and name.endswith(".npy"))
    inputs = sum(1 for name in os.listdir(out) if name.endswith(f"-{batches[0]:07d}.npy")) - 1 if batches else 0
    sizes = [int(np.load(_shard_file(out, "ids", b), mmap_mode="r").shape[0]) for b in batches]
    with open(os.path.join(out, "index.json.tmp"), "w") as fh:
        json.dump({"batches": batches, "sizes": sizes, "inputs": inputs}, fh)
    os.replace(os.path.join(out, "index.json.tmp"), os.path.join(out, "index.json"))


class StoredAttributions:
    """Attributions written by :func:`attribute_dataset`, read memory-mapped.

    ``ids`` (all dataset indices, in shard order), ``len()``, ``get(example_ids)`` (one array
    per input tensor, rows in the order asked), and ``array(j)`` (input ``j`` of every example,
    concatenated: this one loads them all).

    Args:
        out: A folder for the attribution shards (``None``: keep nothing on disk).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
        >>> run = pa.data.attribute_dataset(pa.saliency(model), loader, out=folder, show_progress=False)
        >>> stored = pa.data.load_attributions(folder)
        >>> stored.ids
        array([0, 1, 2, 3])
    """

    def __init__(self, out: str) -> None:
        with open(os.path.join(out, "index.json")) as fh:
            index = json.load(fh)
        self.out, self.batches, self.inputs = out, index["batches"], index["inputs"]
        self._ids = [np.load(_shard_file(out, "ids", b), mmap_mode="r") for b in self.batches]
        self.ids = np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)
        self._where = {int(i): (s, k) for s, ids in enumerate(self._ids) for k, i in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def _shard(self, s: int, j: int) -> np.ndarray:
        return np.load(_shard_file(self.out, f"attr{j}", self.batches[s]), mmap_mode="r")

    def get(self, example_ids: Any) -> tuple[np.ndarray, ...]:
        places = [self._where[int(i)] for i in np.atleast_1d(example_ids)]
        return tuple(np.stack([self._shard(s, j)[k] for s, k in places]) for j in range(self.inputs))

    def array(self, j: int = 0) -> np.ndarray:
        return np.concatenate([self._shard(s, j) for s in range(len(self.batches))])


def load_attributions(out: str) -> StoredAttributions:
    """Open the shards that :func:`attribute_dataset` wrote to ``out``.

    Args:
        out: A folder for the attribution shards (``None``: keep nothing on disk).

    Returns:
        StoredAttributions: the shards, read memory-mapped.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
        >>> run = pa.data.attribute_dataset(pa.saliency(model), loader, out=folder, show_progress=False)
        >>> stored = pa.data.load_attributions(folder)
        >>> len(stored), stored.get([1, 3])[0].shape
        (4, (2, 8))
    """
    if not os.path.exists(os.path.join(out, "index.json")):
        raise ArgumentError(f"{out} has no index.json: run attribute_dataset(..., out={out!r}) to the end first")
    return StoredAttributions(out)
