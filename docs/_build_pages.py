"""Pages the docs build writes itself, so that none of them is kept by hand.

- ``api/*.rst``: one page per package, listing every name of its ``__all__`` (a public
  name cannot be missing from the reference);
- ``guides/benchmarks.md``: every ``benchmarks/results_*.txt``, with the machine and
  versions its first line states and the date git recorded for it;
- :class:`OutputImages`: the gallery's image scraper, which shows the PNG files an example
  writes under ``examples/out`` (the examples save and close their figures).
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = {
    "pyattrib": "Attribution methods and wrappers",
    "pyattrib.cam": "Class activation maps: reshapes, projections, blur, segments",
    "pyattrib.owen": "Owen values and feature hierarchies",
    "pyattrib.patching": "Patching: activation patching, AtP, edges and circuits",
    "pyattrib.lrp_rules": "Layer-wise relevance propagation: rules and the transform",
    "pyattrib.text": "Text and LLMs",
    "pyattrib.metrics": "Evaluating explanations",
    "pyattrib.robust": "Robustness",
    "pyattrib.concepts": "Concepts (TCAV)",
    "pyattrib.modules": "Stochastic gates",
    "pyattrib.data": "Whole datasets",
    "pyattrib.influence": "Training-data influence",
    "pyattrib.viz": "Pictures",
    "pyattrib.insights": "Insights",
    "pyattrib.testing": "Axioms as checks",
    "pyattrib.compat": "Captum's class API",
    "pyattrib.compat.grad_cam": "pytorch-grad-cam's class API",
}


TYPES = {
    "TargetLike": "What ``target=`` accepts: None (the model returns one value per example), an int (the "
    "same output index for every example), a tuple of ints (one output element, for outputs with more "
    "dimensions), a list or 1-D tensor with one index per example, a list of tuples, or a callable "
    "``output -> (N,)`` that reads the value to explain from the raw output.",
    "BaselineLike": "What ``baselines=`` accepts: None (zeros), a number, a tensor shaped like the input or "
    "like one example (leading dimension 1), or a tuple of those, one per input tensor. Distribution "
    "methods (gradient_shap, deep_lift_shap) take a tensor whose first dimension counts reference samples.",
    "TensorOrTuple": "Inputs and attributions: a tensor, or a tuple of tensors that share the batch "
    "dimension. Attributions come back in the structure of the inputs.",
}


def public_names(package: str) -> list[str]:
    """The documented names of ``package``: its ``__all__`` without its sub-packages."""
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", "") == package
        ]
    names = [n for n in names if not isinstance(getattr(module, n), type(module)) and n not in TYPES]
    names = [n for n in names if inspect.isroutine(getattr(module, n)) or inspect.isclass(getattr(module, n))]
    return [n for n in names if _home(getattr(module, n), package) == package]


def constants(package: str) -> list[tuple[str, str]]:
    """The public constants of ``package`` (not routines, classes or type aliases) and the module defining each."""
    module = importlib.import_module(package)
    found = []
    for name in getattr(module, "__all__", []):
        value = getattr(module, name)
        if name in TYPES or inspect.isroutine(value) or inspect.isclass(value) or isinstance(value, type(module)):
            continue
        files = sorted(Path(module.__file__).parent.glob("*.py"))
        home = next(f for f in files if re.search(rf"^{name}\b[^=\n]*=", f.read_text(), re.M))
        found.append((name, f"{package}.{home.stem}" if home.stem != "__init__" else package))
    return found


def _home(obj: Any, package: str) -> str:
    """The package that documents ``obj``: the deepest of PACKAGES its module lies in (compat re-exports)."""
    module = getattr(obj, "__module__", None) or package
    homes = [p for p in PACKAGES if p != "pyattrib" and (module == p or module.startswith(p + "."))]
    return max(homes, key=len) if homes else "pyattrib"


def write_api_pages(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    for package, title in PACKAGES.items():
        index.append(f"   {package}")
        heading = f"``{package}``: {title}"
        lines = [heading, "=" * len(heading), "", f".. automodule:: {package}", "   :no-members:", ""]
        lines += [".. currentmodule:: " + package, "", ".. autosummary::", "   :toctree: generated", ""]
        lines += [f"   {name}" for name in public_names(package)]
        for name, where in constants(package):
            lines += ["", f".. autodata:: {where}.{name}", "   :no-value:"]
        if package == "pyattrib":
            lines += ["", "Types", "-----", ""]
            for name, text in TYPES.items():
                lines += [f".. py:data:: {name}", "", f"   {text}", ""]
        module, own, consts = importlib.import_module(package), set(public_names(package)), dict(constants(package))
        elsewhere = [
            n for n in sorted(getattr(module, "__all__", []))
            if n not in own and n not in consts and n not in TYPES and not isinstance(getattr(module, n), type(sys))
        ]  # fmt: skip
        if elsewhere:
            refs = ", ".join(f":obj:`{n} <{_home(getattr(module, n), package)}.{n}>`" for n in elsewhere)
            lines += ["", f"Also exported here, documented where they live: {refs}."]
        _write_if_changed(folder / f"{package}.rst", "\n".join(lines) + "\n")
    _write_if_changed(folder / "index.rst", "\n".join(index) + "\n")


def _git_date(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    return out or "not committed"


def write_benchmark_page(benchmarks: Path, page: Path) -> None:
    """The benchmark page: every results file as recorded, with its machine, versions and date."""
    parts = [
        "# Benchmarks",
        "",
        "Generated by the docs build from `benchmarks/results_*.txt`: each section is one file as",
        "its script printed it. pyattrib and the reference run side by side in one process on the",
        "same model and data; the ratio is pyattrib over the reference (lower is better) and",
        "*floor* is the least work any implementation must do (the batched forward and backward",
        "over all rows it needs). Rerun a script to refresh its file.",
        "",
    ]
    for results in sorted(benchmarks.glob("results_*.txt")):
        name = results.stem.removeprefix("results_")
        lines = results.read_text().splitlines()
        script = benchmarks / f"bench_{re.sub(r'_compiled.*', '', name)}.py"
        machine = lines[0] if lines and ("torch" in lines[0] or "CPU" in lines[0]) else "see the file"
        parts += [f"## {name.replace('_', ' ')}", ""]
        parts += [f"- script: `python benchmarks/{script.name}`" if script.exists() else f"- file: `{results.name}`"]
        parts += [f"- machine and versions: {machine}", f"- recorded: {_git_date(results)}", ""]
        parts += ["```text", *lines, "```", ""]
    _write_if_changed(page, "\n".join(parts))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


class OutputImages:
    """Gallery image scraper: the PNG files an example block wrote under ``examples/out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen = {png: png.stat().st_mtime for png in out.rglob("*.png")} if out.exists() else {}

    def __repr__(self) -> str:  # sphinx-gallery caches the configuration by its repr
        return f"OutputImages({self.out.name})"

    def __call__(self, block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
        from sphinx_gallery.scrapers import figure_rst

        if not self.out.exists():
            return ""
        new = []
        for png in sorted(self.out.rglob("*.png")):
            stamp = png.stat().st_mtime
            if self.seen.get(png) != stamp:
                self.seen[png] = stamp
                new.append(png)
        targets = []
        names = block_vars["image_path_iterator"]
        for png, target in zip(new, names):
            shutil.copyfile(png, target)
            targets.append(target)
        return figure_rst(targets, gallery_conf["src_dir"])


# --- README's headline figures -----------------------------------------------------------
README_MARKERS = ("<!-- figures -->", "<!-- /figures -->")


def _find(path: Path, pattern: str) -> re.Match[str]:
    match = re.search(pattern, path.read_text(), re.M)
    if match is None:
        raise ValueError(f"{path} has no line matching {pattern!r}: rerun its benchmark")
    return match


def headline_table(benchmarks: Path) -> str:
    """README's table of headline figures, read from the recorded runs in ``benchmarks``."""
    suite = benchmarks / "results_captum_suite.txt"
    matrix = benchmarks / "results_matrix.txt"
    archs = benchmarks / "results_architectures.txt"
    s = _find(suite, r"^all\s+(\d+)\s+(\d+)\s+([\d.]+%)")
    m = _find(matrix, r"^geometric mean pyattrib/captum over (\d+) cells: ([\d.]+x)")
    a = _find(archs, r"^geometric mean pyattrib/captum time over (\d+) cells: ([\d.]+x)")
    mem = _find(archs, r"^peak memory pyattrib/captum: max ([\d.]+x)")
    rows = [
        ("Captum's own tests passing through `pyattrib.compat`", f"{s[2]} of {s[1]} ({s[3]})", suite),
        ("time vs Captum, architecture matrix (geometric mean)", f"{m[2]} over {m[1]} cells", matrix),
        ("time vs Captum, real architectures (geometric mean)", f"{a[2]} over {a[1]} cells", archs),
        ("peak memory vs Captum, real architectures (worst cell)", mem[1], archs),
    ]
    lines = ["| figure | value | from |", "|---|---|---|"]
    lines += [f"| {what} | {value} | `benchmarks/{path.name}` |" for what, value, path in rows]
    return "\n".join(lines)


CAM_MARKERS = ("<!-- cam figures -->", "<!-- /cam figures -->")


def cam_table(benchmarks: Path) -> str:
    """README's per-method table of the CAMs against pytorch-grad-cam, from ``results_cam.txt``."""
    path = benchmarks / "results_cam.txt"
    rows = re.findall(r"^(\w+)\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+x)\s+(.*)$", path.read_text(), re.M)
    if not rows:
        raise ValueError(f"{path} has no per-method rows: rerun benchmarks/bench_cam.py")
    lines = ["| method | pytorch-grad-cam | pyattrib | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {a} ms | {b} ms | {r} | {t.strip()} |" for m, a, b, r, t in rows]
    return "\n".join(lines)


QUANTUS_MARKERS = ("<!-- quantus figures -->", "<!-- /quantus figures -->")


def quantus_table(benchmarks: Path) -> str:
    """README's per-metric table against Quantus, from ``results_quantus_faithfulness.txt``."""
    path = benchmarks / "results_quantus_faithfulness.txt"
    rows = re.findall(
        r"^(\w+)\s+quantus\s+([\d.]+) ms\s+pyattrib\s+([\d.]+) ms\s+ratio ([\d.]+x) \(target <= ([\d.]+x), (met|NOT met)\)"
        r"\s+(?:floor ([\d.]+x))?",
        path.read_text(),
        re.M,
    )
    if not rows:
        raise ValueError(f"{path} has no per-metric rows: rerun benchmarks/bench_quantus_faithfulness.py")
    lines = ["| metric | Quantus | pyattrib | ratio | floor | target |", "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {a} ms | {b} ms | {r} | {f or '-'} | <= {t} ({ok}) |" for m, a, b, r, t, ok, f in rows]
    return "\n".join(lines)


def _fill(readme: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def readme_with_figures(readme: str, benchmarks: Path) -> str:
    readme = _fill(readme, README_MARKERS, headline_table(benchmarks))
    if QUANTUS_MARKERS[0] in readme:
        readme = _fill(readme, QUANTUS_MARKERS, quantus_table(benchmarks))
    return _fill(readme, CAM_MARKERS, cam_table(benchmarks)) if CAM_MARKERS[0] in readme else readme


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Rewrite README's headline figures from benchmarks/results_*.txt")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md in place")
    root = Path(__file__).resolve().parent.parent
    if parser.parse_args().readme:
        readme = root / "README.md"
        readme.write_text(readme_with_figures(readme.read_text(), root / "benchmarks"))
    else:
        print(headline_table(root / "benchmarks"))
