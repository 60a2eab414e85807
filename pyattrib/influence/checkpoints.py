"""Checkpoints on disk: which files, in which order, and what each one holds.

Influence methods take checkpoints as state dicts (or paths read by ``load``). Training loops
save them in other shapes; these helpers read the common ones:

- :func:`checkpoint_paths`: the files of a folder, in natural order (``epoch2`` before
  ``epoch10``), or the paths as given;
- :func:`read_checkpoint`: a state dict, or a dict holding one under ``model_state_dict``
  (with a ``learning_rate``), saved from the model or from ``nn.DataParallel``;
- :func:`loaded_states`: for loaders that write into a model (``load_into(model, path) ->
  learning rate``, Captum's protocol), each checkpoint's state dict and rate, the model put
  back as it was afterwards (also after an exception).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .._core.errors import ArgumentError

LoadInto = Callable[[nn.Module, str], "float | None"]


def checkpoint_paths(checkpoints: str | Sequence[str]) -> list[str]:
    """The checkpoint files: every file of a folder in natural order, one path, or the paths given.

    Args:
        checkpoints: A folder, a file, or a sequence of files.

    Returns:
        The paths, in order (``ckpt2`` before ``ckpt10`` for a folder); an empty folder gives none (a
        single path that does not exist is an error naming it).

    Example:
        >>> from pyattrib.influence import checkpoint_paths
        >>> checkpoint_paths(["a.pt", "b.pt"])
        ['a.pt', 'b.pt']
    """
    if isinstance(checkpoints, str):
        if os.path.isdir(checkpoints):
            files = glob.glob(os.path.join(checkpoints, "*"))
            return sorted(files, key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f)])
        if not os.path.exists(checkpoints):
            raise ArgumentError(f"checkpoints: no file or folder at {checkpoints!r}; pass an existing path")
        return [checkpoints]
    return list(checkpoints)


def read_checkpoint(path: str) -> tuple[dict[str, Tensor], float]:
    """A checkpoint's state dict and learning rate.

    The file holds a state dict, or a dict with ``model_state_dict`` (and optionally
    ``learning_rate``, default 1); keys saved from ``nn.DataParallel`` lose their ``module.``
    prefix, and entries that are not tensors are dropped.

    Args:
        path: The file (read with ``torch.load(weights_only=True)`` onto the CPU: tensors and plain
            containers only, never arbitrary pickled objects).

    Returns:
        ``(state_dict, learning_rate)``.

    Example:
        >>> import os, tempfile
        >>> from pyattrib.influence import read_checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "epoch1.pt")
        >>> torch.save({"model_state_dict": model.state_dict(), "learning_rate": 0.1}, path)
        >>> state, rate = read_checkpoint(path)
        >>> rate, sorted(state) == sorted(model.state_dict())
        (0.1, True)
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    rate = checkpoint.get("learning_rate", 1.0) if isinstance(checkpoint, dict) else 1.0
    state = checkpoint.get("model_state_dict", checkpoint)
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}, float(rate)


def load_flexible(model: nn.Module, path: str) -> float:
    """Load :func:`read_checkpoint`'s state into ``model`` and return the learning rate (a
    ``load_into`` loader).

    Args:
        model: The model written to.
        path: The checkpoint file.

    Returns:
        The checkpoint's learning rate (1 when it has none).

    Example:
        >>> import os, tempfile
        >>> from pyattrib.influence import load_flexible
        >>> path = os.path.join(tempfile.mkdtemp(), "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> load_flexible(model, path)
        1.0
    """
    state, rate = read_checkpoint(path)
    model.load_state_dict(state)
    return rate


@contextmanager
def kept_state(model: nn.Module) -> Iterator[None]:
    """Within the block the model's parameters and buffers may be overwritten; they are put back after it."""
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        yield
    finally:
        model.load_state_dict(original)


def loaded_states(
    model: nn.Module, paths: Sequence[str], load_into: LoadInto = load_flexible
) -> tuple[list[dict[str, Tensor]], list[float]]:
    """Each checkpoint's state dict and learning rate, read through a loader that writes into the model.

    ``load_into(model, path)`` loads a checkpoint into ``model`` and returns its learning rate
    (``None``: 1). The model's own state is put back afterwards, also after an exception.

    Args:
        model: The model the loader writes into (left as found).
        paths: The checkpoint files, in order.
        load_into: The loader (default :func:`load_flexible`).

    Returns:
        ``(state_dicts, learning_rates)``, one of each per path.

    Example:
        >>> import os, tempfile
        >>> from pyattrib.influence import loaded_states
        >>> path = os.path.join(tempfile.mkdtemp(), "epoch1.pt")
        >>> torch.save(model.state_dict(), path)
        >>> states, rates = loaded_states(model, [path])
        >>> len(states), rates
        (1, [1.0])
    """
    if not paths:
        raise ArgumentError("checkpoints has no files; pass checkpoint paths or a folder that holds them")
    states, rates = [], []
    with kept_state(model):
        for path in paths:
            rate = load_into(model, path)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            rates.append(float(rate) if rate is not None else 1.0)
    return states, rates
