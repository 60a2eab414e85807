"""Libraries built on Captum run their own test suites on pyattrib.compat, patched in with
``patch_captum()`` (the plugin ``pyattrib.compat.patched``): every test that passes with Captum
passes on compat. See tests/libraries/README.md for the suites, their versions and the
environment they run in (``PYATTRIB_LIBS_PYTHON``: a Python with the libraries installed;
``.ci/run`` makes one, and sets ``PYATTRIB_REQUIRE_LIBS=1`` so that none is skipped there)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.slow

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libraries")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.environ.get("PYATTRIB_LIBS_PYTHON") or sys.executable
# suite folder: (module it tests, test paths, the least number of its tests that must pass with Captum)
SUITES = {
    "pyg": ("torch_geometric", ["test"], 250),
    "pnpxai": ("pnpxai", ["tests/explainers/test_explainers.py", "tests/evaluator/test_metrics.py", "tests/detector"], 20),
}  # fmt: skip


def installed(module: str) -> bool:
    found = subprocess.run(
        [PYTHON, "-c", f"import torchvision_ops, {module}"], capture_output=True, env=_env(), timeout=300
    )
    return found.returncode == 0


def _env(extra: dict | None = None) -> dict:
    path = os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def outcomes(suite: str, tmp_path, *plugin: str, env: dict | None = None) -> dict[str, str]:
    """{test id: passed | failed | skipped} of one run of ``suite``'s own tests."""
    report = tmp_path / f"{suite}-{len(plugin)}-{bool(env)}.xml"
    cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "torchvision_ops", *plugin,
           f"--junitxml={report}", *SUITES[suite][1]]  # fmt: skip
    done = subprocess.run(cmd, cwd=os.path.join(HERE, suite), env=_env(env), capture_output=True, text=True,
                          timeout=1500)  # fmt: skip
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        result[f"{case.get('classname')}::{case.get('name')}"] = {"error": "failed", "failure": "failed"}.get(
            kind, kind
        )
    return result


def needs(suite: str) -> None:
    if not installed(SUITES[suite][0]):
        if os.environ.get("PYATTRIB_REQUIRE_LIBS"):
            pytest.fail(f"{SUITES[suite][0]} is not installed in {PYTHON} (PYATTRIB_REQUIRE_LIBS is set)")
        pytest.skip(f"{SUITES[suite][0]} is not installed in {PYTHON}; see tests/libraries/README.md")


@pytest.mark.parametrize("suite", list(SUITES))
def test_a_library_built_on_captum_passes_its_own_tests_on_compat(suite, tmp_path):
    needs(suite)
    with_captum = outcomes(suite, tmp_path)
    on_compat = outcomes(suite, tmp_path, "-p", "pyattrib.compat.patched")
    passed = {t for t, o in with_captum.items() if o == "passed"}
    assert len(passed) >= SUITES[suite][2] and set(on_compat) == set(with_captum)
    lost = sorted(t for t in passed if on_compat[t] != "passed")
    assert not lost, f"{len(lost)} of the tests that pass with Captum fail on compat: {lost[:10]}"
    print(f"{suite}: Captum {len(passed)}/{len(with_captum)} passed, compat "
          f"{sum(o == 'passed' for o in on_compat.values())}/{len(on_compat)} passed")  # fmt: skip


@pytest.mark.parametrize("suite, at_least", [("pyg", 150), ("pnpxai", 5)])
def test_the_patch_reaches_the_library(suite, at_least, tmp_path):
    """With every compat twin broken, the same suite fails wherever it calls Captum: the
    passes above ran on compat, not on Captum."""
    needs(suite)
    broken = outcomes(suite, tmp_path, "-p", "pyattrib.compat.patched", env={"PYATTRIB_PATCH_BROKEN": "1"})
    with_captum = outcomes(suite, tmp_path)
    newly_failed = [t for t, o in broken.items() if o == "failed" and with_captum[t] == "passed"]
    assert len(newly_failed) >= at_least
