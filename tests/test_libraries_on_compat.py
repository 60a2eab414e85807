"""Libraries built on Captum run their own test suites on pyattrib.compat, patched in with
``patch_captum()`` (the plugin ``pyattrib.compat.patched``): every test that passes with Captum
passes on compat. See tests/libraries/README.md for the suites and their versions."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.slow

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libraries")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES = {"pyg": ("torch_geometric", "test")}


def outcomes(suite: str, tmp_path, *plugin: str, env: dict | None = None) -> dict[str, str]:
    """{test id: passed | failed | skipped} of one run of ``suite``'s own tests."""
    report = tmp_path / f"{suite}-{len(plugin)}-{bool(env)}.xml"
    run_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, f"--junitxml={report}",
           SUITES[suite][1]]  # fmt: skip
    done = subprocess.run(cmd, cwd=os.path.join(HERE, suite), env=run_env, capture_output=True, text=True, timeout=1500)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        result[f"{case.get('classname')}::{case.get('name')}"] = {"error": "failed", "failure": "failed"}.get(kind, kind)
    return result


@pytest.mark.parametrize("suite", list(SUITES))
def test_a_library_built_on_captum_passes_its_own_tests_on_compat(suite, tmp_path):
    pytest.importorskip(SUITES[suite][0])
    with_captum = outcomes(suite, tmp_path)
    on_compat = outcomes(suite, tmp_path, "-p", "pyattrib.compat.patched")
    passed = {t for t, o in with_captum.items() if o == "passed"}
    assert len(passed) > 100 and set(on_compat) == set(with_captum)
    lost = sorted(t for t in passed if on_compat[t] != "passed")
    assert not lost, f"{len(lost)} of the tests that pass with Captum fail on compat: {lost[:10]}"
    print(f"{suite}: Captum {len(passed)}/{len(with_captum)} passed, compat "
          f"{sum(o == 'passed' for o in on_compat.values())}/{len(on_compat)} passed")  # fmt: skip


def test_the_patch_reaches_the_library(tmp_path):
    """With every compat twin broken, the same suite fails wherever it calls Captum: the
    passes above ran on compat, not on Captum."""
    pytest.importorskip("torch_geometric")
    broken = outcomes("pyg", tmp_path, "-p", "pyattrib.compat.patched", env={"PYATTRIB_PATCH_BROKEN": "1"})
    assert sum(o == "failed" for o in broken.values()) > 150
