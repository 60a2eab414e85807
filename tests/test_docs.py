"""The documentation's contract, without building it: README is a README whose figures come
from the recorded runs, and the API reference's docstrings have their sections."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

import pyattrib as pa

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(ROOT / "docs"))
pages = importlib.import_module("_build_pages")

TRANSFORMS = [n for n in pa.__all__ if inspect.isfunction(getattr(pa, n))]
HELPERS = {"convergence_delta", "interpolate", "token_reference", "truncate", "multi_target", "output_rows",
           "layer_activation", "box_score_target", "segmentation_target"}  # fmt: skip


def test_readme_is_short():
    assert len(README.splitlines()) <= 250


def test_readme_figures_are_the_recorded_ones():
    # python docs/_build_pages.py --readme rewrites the table from benchmarks/results_*.txt
    assert pages.readme_with_figures(README, ROOT / "benchmarks") == README


def test_readme_quick_example_runs_as_written():
    block = re.search(r"```python\n(.*?)```", README, re.S)[1]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["attr"].shape == namespace["x"].shape
    assert float(namespace["delta"].abs().max()) < 0.05


def test_user_docs_say_nothing_about_how_the_project_is_built():
    texts = {"README.md": README} | {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "docs").rglob("*.md")
                                     if "_build" not in p.parts and "node_modules" not in p.parts}  # fmt: skip
    words = re.compile(r"\b(lent|this shared machine|no GPU has|rerun \d{4}-\d\d-\d\d)\b", re.I)
    found = {name: words.findall(text) for name, text in texts.items() if words.search(text)}
    assert not found, found


def _sections(obj) -> set[str]:
    doc = inspect.getdoc(obj) or ""
    return {m for m in ("Args:", "Returns:", "References:", "Example:") if re.search(rf"^{m}$", doc, re.M)}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_public_functions_document_args_returns_references_and_an_example(name):
    fn = inspect.unwrap(getattr(pa, name))
    found = _sections(fn)
    wanted = {"Args:", "Returns:", "Example:"} | (set() if name in HELPERS else {"References:"})
    assert wanted <= found, f"{name} lacks {sorted(wanted - found)}"
    doc = inspect.getdoc(fn)
    args = doc.split("Args:", 1)[1].split("Returns:", 1)[0]
    documented = set(re.findall(r"^\s{4}\**(\w+):", args, re.M))
    assert documented == set(inspect.signature(fn).parameters), name
    if "References:" in found:
        assert re.search(r"https://(arxiv\.org|doi\.org)/\S+", doc.split("References:", 1)[1]), name


SUBPACKAGE_NAMES = [
    (package, name) for package in pages.PACKAGES if package != "pyattrib" for name in pages.public_names(package)
]


def _parameters(obj) -> set[str]:
    try:
        return {p for p in inspect.signature(obj).parameters if p not in ("self", "cls")}
    except (TypeError, ValueError):
        return set()


@pytest.mark.parametrize(("package", "name"), SUBPACKAGE_NAMES, ids=[f"{p}.{n}" for p, n in SUBPACKAGE_NAMES])
def test_subpackage_names_document_every_argument_and_what_they_return(package, name):
    obj = getattr(importlib.import_module(package), name)
    doc = inspect.getdoc(obj) or ""
    params = _parameters(obj)
    if params:
        assert "Args:" in _sections(obj), f"{package}.{name} has no Args section"
        args = re.split(r"^(?:Returns|References|Example):$", doc.split("Args:", 1)[1], flags=re.M)[0]
        assert set(re.findall(r"^\s{4}\**(\w+):", args, re.M)) == params, f"{package}.{name}"
    if not inspect.isclass(obj):
        assert "Returns:" in _sections(obj), f"{package}.{name} has no Returns section"
    assert re.search(r"^\s*>>> ", doc, re.M), f"{package}.{name} has no example (the doctest builder runs them)"


def test_method_docstrings_state_their_formula_or_rule():
    # every attribution method says what it computes: a formula (math) or the rule in words
    lacking = [
        n for n in TRANSFORMS if n not in HELPERS and len((inspect.getdoc(getattr(pa, n)) or "").split("Args:")[0]) < 80
    ]
    assert not lacking, lacking


def test_every_public_name_is_in_the_reference(tmp_path):
    pages.write_api_pages(tmp_path)
    text = "\n".join(p.read_text() for p in tmp_path.glob("*.rst"))
    for package in pages.PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            if inspect.ismodule(value):
                continue
            assert re.search(rf"(\b|\.){re.escape(name)}\b", text), (
                f"{package}.{name} is missing from the API reference"
            )
