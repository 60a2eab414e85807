"""pytest plugin behind ``tools/captum_suite.py`` (not part of the installed package).

Loaded with ``-p captum_suite_plugin`` with ``tools/`` on ``PYTHONPATH`` (the runner sets it).
``PYATTRIB_SUITE_MODE`` says what to run:

- ``captum``: Captum itself (the baseline);
- ``compat``: every public Captum object that ``pyattrib.compat`` covers is replaced by its
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

from pyattrib.compat.patch import PACKAGES, broken_twin, import_captum, swap

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
        replacement = {k: broken_twin(v) for k, v in replacement.items()}
    swap(replacement, everywhere=False)
    _watch({**public_captum_classes(), **originals})
    return originals


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
