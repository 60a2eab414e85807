"""The tolerance policy of tests/README.md, checked on every test file: each comparison of
computed floats names an absolute tolerance, so another CPU's reduction order cannot fail it."""

import ast
import pathlib

HERE = pathlib.Path(__file__).parent


def offenders(source: str) -> list[tuple[int, str]]:
    """(line, call) of each float comparison that gives no absolute tolerance."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        given = {k.arg for k in node.keywords}
        if name == "assert_allclose" and "atol" not in given and len(node.args) < 4:
            found.append((node.lineno, name))  # numpy's default atol is 0
        elif name in ("allclose", "isclose") and "atol" not in given and len(node.args) < 4 and "rtol" in given:
            found.append((node.lineno, name))
        elif name == "approx" and "rel" in given and "abs" not in given:
            found.append((node.lineno, name))
    return found


def test_the_checker_finds_an_rtol_only_comparison():
    rtol_only = ", rtol=1e-6)"  # the offending examples, kept out of this file's own text
    bad = "\n".join(f"{call}(a, b{rtol_only}" for call in ("np.testing.assert_allclose", "torch.allclose"))
    bad += "\npytest.approx(x, rel=1e-3)\n"
    good = "np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)\ntorch.allclose(a, b)\npytest.approx(x)\n"
    assert [line for line, _ in offenders(bad)] == [1, 2, 3] and offenders(good) == []


def test_every_float_comparison_has_an_absolute_tolerance():
    found = {
        f"{path.name}:{line} {call}": None
        for path in sorted(HERE.rglob("*.py"))
        if path.name != "test_tolerance_policy.py"
        for line, call in offenders(path.read_text())
    }
    assert not found, f"float comparisons without atol (see tests/README.md): {sorted(found)}"
