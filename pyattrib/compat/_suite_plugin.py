"""pytest plugin behind :mod:`pyattrib.compat.captum_suite`.

Loaded with ``-p pyattrib.compat._suite_plugin``. ``PYATTRIB_SUITE_MODE`` says what to run:

- ``captum``: Captum itself (the baseline);
- ``compat``: every public Captum object that :mod:`pyattrib.compat` covers is replaced by its
  compat twin in every loaded ``captum`` module before any test module is imported;
- ``broken``: as ``compat``, but each substitute's ``attribute`` raises, which proves that the
  substitution reaches the tests.

Every test's outcome is written to ``PYATTRIB_SUITE_REPORT`` (JSON), with the names of the
original Captum classes it built: a pass that built one proves nothing about compat.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .patch import PACKAGES, import_captum, swap

_built: set[str] = set()
_results: dict[str, dict[str, Any]] = {}


def _import_captum() -> None:
    import_captum((*PACKAGES, "captum.testing"))


def public_captum_classes() -> dict[str, type]:
    """Every class ``captum.attr`` exports (whether compat covers it or not)."""
    import captum.attr

    return {
        name: getattr(captum.attr, name) for name in captum.attr.__all__ if isinstance(getattr(captum.attr, name), type)
    }


def _watch(originals: dict[str, Any]) -> None:
    """Record the construction of every original public Captum class (a fallback)."""
    for name, cls in originals.items():
        if not isinstance(cls, type) or cls.__init__ is object.__init__:  # a NamedTuple builds in __new__
            continue
        init = cls.__init__

        def watched(self: Any, *args: Any, __init: Any = init, __name: str = name, **kwargs: Any) -> None:
            _built.add(__name)
            __init(self, *args, **kwargs)

        cls.__init__ = watched


def substitute(broken: bool = False) -> dict[str, Any]:
    """Replace Captum's public objects by compat's in every loaded ``captum`` module."""
    from pyattrib import compat

    _import_captum()
    twins = compat.captum_twins()
    originals = {name: original for name, (original, _) in twins.items()}
    replacement = {id(original): twin for original, twin in twins.values()}
    if broken:
        replacement = {k: _broken(v) for k, v in replacement.items()}
    swap(replacement, everywhere=False)
    _watch({**public_captum_classes(), **originals})
    return originals


def _broken(obj: Any) -> Any:
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


def pytest_configure(config: Any) -> None:
    mode = os.environ.get("PYATTRIB_SUITE_MODE", "captum")
    if mode in ("compat", "broken"):
        substitute(broken=mode == "broken")
    else:
        from pyattrib import compat

        _import_captum()
        twins = {name: original for name, (original, _) in compat.captum_twins().items()}
        _watch({**public_captum_classes(), **twins})


def pytest_runtest_setup(item: Any) -> None:
    _built.clear()


def pytest_runtest_logreport(report: Any) -> None:
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "captum_built": []})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    if report.when == "teardown":
        entry["captum_built"] = sorted(_built)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("PYATTRIB_SUITE_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(_results, fh, indent=0)
