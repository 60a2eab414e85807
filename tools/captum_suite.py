"""Run Captum's own test suite against ``pyattrib.compat`` (a tool of this repository, not installed).

``python tools/captum_suite.py PATH [--folders ...] [--broken] [--min-score 0.95] [--record FILE]``

``PATH`` is a checkout of Captum's tests (the folder holding ``tests/``). The same tests run
twice, in parallel processes: once against Captum itself (the baseline) and once with every
public Captum object that compat covers replaced by its compat twin, in every ``captum``
module, before any test module is imported (Captum's helpers in ``captum.testing`` stay). A
test counts for compat when it passes there, passed on Captum, and built no original Captum
class (a class compat does not cover falls back to Captum's, and such a pass proves
nothing). ``--broken`` substitutes twins whose ``attribute`` raises: the compat column then
drops to about zero, which shows that the substitution reaches the tests.

Per folder it prints: baseline passed, compat passed, score, and then every test that passed
on Captum but not on compat. The exit status is 1 when a scored folder is below
``--min-score``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# Files that cannot run here. They are not scored.
OTHER_FAMILIES = {
    "tests/attr/test_llm_attr_hf_compatibility.py": "downloads hf-internal-testing/tiny-random-LlamaForCausalLM "
    "from the Hugging Face hub; no network here (tests/test_text_compat.py runs the same calls on a local tiny Llama)",
}
# Files that test Captum's private helpers, not its public API: no compat twin can pass them
# except by importing Captum's own helper, so they are not scored.
PRIVATE_HELPERS = {
    "tests/attr/test_approximation_methods.py": "captum.attr._utils.approximation_methods (private)",
    "tests/attr/test_utils_batching.py": "captum.attr._utils.batching (private)",
    "tests/attr/test_common.py": "captum.attr._utils.common validators (private)",
    "tests/influence/_utils/test_common.py": "captum.influence._utils.common (private)",
}
# Single tests of Captum's private helpers inside files that also test public classes.
PRIVATE_TESTS = (
    "test_arnoldi_influence.py::TestArnoldiInfluence::test_parameter_arnoldi",  # _parameter_arnoldi
    "test_arnoldi_influence.py::TestArnoldiInfluence::test_parameter_distill",  # _parameter_distill
    "test_arnoldi_influence.py::TestArnoldiInfluence::test_top_eigen",  # _top_eigen
    "test_naive_influence.py::TestNaiveInfluence::test_flatten_unflattener",  # _flatten_params...
    "test_naive_influence.py::TestNaiveInfluence::test_functional_call",  # _functional_call
)
DEFAULT_FOLDERS = (
    "tests/attr",
    "tests/attr/layer",
    "tests/attr/neuron",
    "tests/metrics",
    "tests/robust",
    "tests/module",
    "tests/concept",
    "tests/influence",
)


def run_mode(root: Path, folders: list[str], mode: str, report: Path) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYATTRIB_SUITE_MODE=mode, PYATTRIB_SUITE_REPORT=str(report), OMP_NUM_THREADS="1",
               PYTHONPATH=path)  # fmt: skip
    cmd = [
        sys.executable, "-m", "pytest", *folders, "-q", "-p", "no:cacheprovider", "-p", "captum_suite_plugin",
        "-W", "ignore", "--rootdir", str(root), "--continue-on-collection-errors",
    ]  # fmt: skip
    for name in OTHER_FAMILIES:
        if name.endswith("hf_compatibility.py"):
            cmd += ["--deselect", name]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def folder_of(nodeid: str, folders: list[str]) -> str:
    path = nodeid.split("::")[0]
    best = max((f for f in folders if path.startswith(f.rstrip("/") + "/")), key=len, default="other")
    return best


def score(baseline: dict, compat: dict, folders: list[str]) -> tuple[dict, dict]:
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missing: dict[str, list[str]] = defaultdict(list)
    for nodeid, base in baseline.items():
        path = nodeid.split("::")[0]
        private = path in PRIVATE_HELPERS or any(t in nodeid for t in PRIVATE_TESTS)
        if path in OTHER_FAMILIES or private or base["outcome"] != "passed":
            continue
        folder = folder_of(nodeid, folders)
        table[folder][0] += 1
        got = compat.get(nodeid, {"outcome": "not run", "captum_built": []})
        if got["outcome"] == "passed" and not got["captum_built"]:
            table[folder][1] += 1
        else:
            why = got["outcome"] if got["outcome"] != "passed" else "built Captum's " + ", ".join(got["captum_built"])
            missing[folder].append(f"{nodeid}  [{why}]")
    return table, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="folder holding Captum's tests/ directory")
    parser.add_argument("--folders", nargs="+", default=list(DEFAULT_FOLDERS))
    parser.add_argument("--broken", action="store_true", help="substitute twins that raise (a check of the runner)")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--list-missing", action="store_true", help="print each test that passes on Captum only")
    parser.add_argument("--record", type=Path, help="also write the score table to this file")
    args = parser.parse_args(argv)
    root = args.path.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        reports = {m: Path(tmp) / f"{m}.json" for m in ("captum", "compat")}
        procs = {
            "captum": run_mode(root, args.folders, "captum", reports["captum"]),
            "compat": run_mode(root, args.folders, "broken" if args.broken else "compat", reports["compat"]),
        }
        for p in procs.values():
            p.wait()
        results = {}
        for m, path in reports.items():
            if not path.exists():
                print(f"the {m} run wrote no report (pytest exit {procs[m].returncode})", file=sys.stderr)
                return 2
            results[m] = json.loads(path.read_text())
    table, missing = score(results["captum"], results["compat"], args.folders)
    lines = [f"{'folder':<22}{'baseline passed':>17}{'compat passed':>15}{'score':>8}"]
    low = False
    for folder in sorted(table):
        base, ok = table[folder]
        frac = ok / base if base else 1.0
        low |= frac < args.min_score
        lines.append(f"{folder:<22}{base:>17}{ok:>15}{frac:>8.1%}")
    total_base = sum(b for b, _ in table.values())
    total_ok = sum(o for _, o in table.values())
    lines.append(f"{'all':<22}{total_base:>17}{total_ok:>15}{(total_ok / max(total_base, 1)):>8.1%}")
    print("\n".join(lines))
    if args.record:
        import captum
        import torch

        header = f"torch {torch.__version__}, captum {captum.__version__}, CPU; Captum's tests through pyattrib.compat"
        args.record.write_text("\n".join([header, *lines]) + "\n")
    print("not scored: " + "; ".join(f"{k} ({v})" for k, v in {**OTHER_FAMILIES, **PRIVATE_HELPERS}.items())
          + "; tests of private helpers: " + ", ".join(t.split("::")[-1] for t in PRIVATE_TESTS))  # fmt: skip
    if args.list_missing:
        for folder in sorted(missing):
            for line in missing[folder]:
                print("  " + line)
    if low:
        print(f"below the target score {args.min_score:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
