"""``patch_captum()``: code that imports Captum gets :mod:`pyattrib.compat`'s classes.

A library built on Captum (graph, tabular, evaluation libraries) imports Captum itself, so its
users cannot switch by changing an import. After ``patch_captum()`` every way of reaching a
Captum class gives compat's twin:

- ``from captum.attr import IntegratedGradients`` and ``import captum.attr`` after the call
  (each Captum module, its private ones included, holds the twin);
- ``getattr(captum.attr, name)`` (how PyG's ``CaptumExplainer`` picks a method);
- a name a module bound *before* the call (``from captum.attr import Saliency`` at the top of
  a library imported earlier): every loaded module's globals are rewritten.

Where Captum is not installed, ``captum``, ``captum.attr``, ``captum.influence``, ...
become modules of compat's classes. ``unpatch_captum()`` puts everything back.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import types
from typing import Any

# (module, attribute, what it held) for each replacement, and the modules made where Captum is absent
_swapped: list[tuple[Any, str, Any]] = []
_made: list[tuple[str, Any]] = []  # (module name, what sys.modules held before: absent or None)
_ABSENT = object()
PACKAGES = ("captum.attr", "captum.metrics", "captum.robust", "captum.module", "captum.concept", "captum.influence")


def import_captum(packages: tuple[str, ...] = PACKAGES) -> None:
    """Import every module of Captum's public packages (an optional helper whose extra
    dependency is missing is skipped), so each holds its objects before they are swapped."""
    for pkg in packages:
        root = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(root.__path__, pkg + "."):
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: S112  an optional helper whose extra dependency is missing
                continue


def swap(replacement: dict[int, Any], everywhere: bool = True) -> int:
    """Replace each object whose ``id`` is a key of ``replacement`` in the globals of every
    loaded ``captum`` module (and, with ``everywhere``, of every other loaded module but
    pyattrib's); remembered for :func:`unpatch_captum`. Returns the number of names swapped."""
    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith("pyattrib") or not isinstance(module, types.ModuleType):
            continue
        if not everywhere and not (name == "captum" or name.startswith("captum.")):
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            if not attr.startswith("__") and id(value) in replacement:
                try:
                    setattr(module, attr, replacement[id(value)])
                except (AttributeError, TypeError):  # a read-only module attribute
                    continue
                _swapped.append((module, attr, value))
                count += 1
    return count


def patch_captum() -> int:
    """Hand compat's classes to every user of Captum in this process (see the module doc).

    Idempotent; returns how many names now point at compat's twins (or, without Captum
    installed, how many compat objects the stand-in ``captum`` modules hold).

    Returns:
        None.

    Example:
        >>> import pyattrib.compat
        >>> pyattrib.compat.patch_captum()
        319
        >>> import captum.attr
        >>> captum.attr.IntegratedGradients.__module__.startswith("pyattrib")
        True
        >>> pyattrib.compat.unpatch_captum()
    """
    if _swapped or _made:
        return len(_swapped) or len(_made)
    from . import _CAPTUM_HOMES, captum_twins

    if importlib.util.find_spec("captum") is None:
        return _stand_in(_CAPTUM_HOMES)
    import_captum()
    twins = captum_twins()
    return swap({id(original): twin for original, twin in twins.values()})


def unpatch_captum() -> None:
    """Undo :func:`patch_captum`: every swapped name holds Captum's object again.

    Returns:
        None.

    Example:
        >>> import pyattrib.compat
        >>> pyattrib.compat.patch_captum()
        319
        >>> pyattrib.compat.unpatch_captum()
        >>> import captum.attr
        >>> captum.attr.IntegratedGradients.__module__.startswith("captum")
        True
    """
    for module, attr, value in reversed(_swapped):
        setattr(module, attr, value)
    _swapped.clear()
    for name, before in reversed(_made):
        if before is _ABSENT:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = before
    _made.clear()


def patched() -> bool:
    """Whether :func:`patch_captum` is in effect."""
    return bool(_swapped or _made)


def _stand_in(homes: dict[str, list[str]]) -> int:
    """``captum`` and its public packages as modules of compat's objects (Captum absent)."""
    from pyattrib import compat

    count = 0
    for home, names in homes.items():
        parts = home.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if sys.modules.get(name) is None:
                module = types.ModuleType(name, f"pyattrib.compat standing in for {name} (patch_captum)")
                module.__path__ = []  # a package: submodules can be imported from it
                _made.append((name, sys.modules.get(name, _ABSENT)))
                sys.modules[name] = module
                if depth > 1:
                    setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
        public = ".".join(parts[:2])  # captum.influence._core.tracincp's names are captum.influence's too
        for n in names:
            for where in {home, public}:
                setattr(sys.modules[where], n, getattr(compat, n))
            count += 1
    return count


def broken_twin(obj: Any) -> Any:
    """``obj`` with every method a test could reach raising: a twin that proves a patch is reached."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("deliberately broken compat substitute")

    if not isinstance(obj, type):
        if obj.__name__.endswith("decorator"):  # used at import time: its decorated functions fail
            return lambda *args, **kwargs: lambda func: fail
        return fail if obj.__name__ != "default_perturb_func" else obj
    methods = {
        m: fail
        for m in (
            "attribute",
            "perturb",
            "evaluate",
            "forward",
            "update",
            "interpret",
            "compute_cavs",
            "get_gate_values",
            "get_gate_active_probs",
            "influence",
            "self_influence",
            "compute_intermediate_quantities",
        )
        if hasattr(obj, m)
    }
    if not methods:
        return obj
    return type(obj.__name__, (obj,), {**methods, "__module__": obj.__module__})
