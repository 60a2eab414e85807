"""pytorch-grad-cam's own tests (tests/libraries/pytorch_grad_cam, copied unchanged) run on
pyattrib.compat.grad_cam: ``import pytorch_grad_cam`` gives the drop-in classes (the plugin
``grad_cam_twin``). With every class broken, the same tests fail: the twin is what ran.

Which tests, and why not the others, in tests/libraries/README.md. Here the ResNet-18 half of
``test_run_all_models.py`` runs (VGG-11's 132M random parameters make the other half take
minutes on two cores; ``PYATTRIB_FULL_LIBRARY_SUITES=1`` runs it too)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.slow

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libraries")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHVISION = os.path.join(ROOT, ".venv-torchvision")
SUITE = os.path.join(HERE, "pytorch_grad_cam")
SELECTED = [] if os.environ.get("PYATTRIB_FULL_LIBRARY_SUITES") else ["-k", "not vgg11"]


def run(mode: str, tmp_path, *tests: str) -> dict[str, str]:
    report = tmp_path / f"{mode}.xml"
    env = {**os.environ, "PYATTRIB_GRAD_CAM": mode,
           "PYTHONPATH": os.pathsep.join([HERE, ROOT, TORCHVISION, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "torchvision_ops", "-p", "grad_cam_twin",
           f"--junitxml={report}", *SELECTED, *tests]  # fmt: skip
    done = subprocess.run(cmd, cwd=SUITE, env=env, capture_output=True, text=True, timeout=1500)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        result[f"{case.get('classname')}::{case.get('name')}"] = kind
    return result


@pytest.fixture(autouse=True)
def _needs_torchvision():
    if not os.path.isdir(TORCHVISION):
        if os.environ.get("PYATTRIB_REQUIRE_REFS"):
            pytest.fail(f"torchvision is not at {TORCHVISION} (PYATTRIB_REQUIRE_REFS is set); see .ci/run")
        pytest.skip(f"torchvision is not at {TORCHVISION}; see .ci/run")


def test_pytorch_grad_cams_own_tests_pass_on_the_drop_in_classes(tmp_path):
    on_twin = run("twin", tmp_path, "tests")
    assert len(on_twin) >= 100
    failed = sorted(t for t, o in on_twin.items() if o != "passed")
    assert not failed, failed[:10]


def test_the_suite_reaches_the_drop_in_classes(tmp_path):
    broken = run("broken", tmp_path, "tests/test_one_channel.py", "tests/test_run_all_models.py", "-k", "GradCAM")
    assert broken and all(o != "passed" for o in broken.values()), broken
