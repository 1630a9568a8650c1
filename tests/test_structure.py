"""The package's structure stays as its contributors' guide describes it.

- No function is longer than :data:`MAX_LINES` lines of body (its docstring not counted),
  unless it is a cohesive algorithm that says why with a ``# cohesive:`` comment in its
  body.
- No module outside the catalogue special-cases a control by its name: what a control
  needs, counts or compares is a field of its catalogue entry.

(The import layers are checked by ``lint-imports``, see ``pyproject.toml``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT
from risk_assets.catalogue import CATALOGUE

PACKAGE = ROOT / "risk_assets"
MAX_LINES = 80


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _body_lines(node: ast.FunctionDef) -> int:
    body = node.body
    first = body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    start = body[1].lineno if is_doc and len(body) > 1 else first.lineno
    return node.end_lineno - start + 1


def test_no_function_is_longer_than_the_limit_without_saying_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in _functions(path):
            n = _body_lines(node)
            body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            if n > MAX_LINES and "# cohesive:" not in body:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions too long (split them, or say why with '# cohesive:'):\n" + (
        "\n".join(long)
    )


def test_no_module_outside_the_catalogue_compares_a_control_name():
    """``control.name == "fairness"`` or a lookup by name such as ``risk_for_control("drift")``
    outside the catalogue
    is a special case the catalogue entry should carry."""
    names = set(CATALOGUE)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "catalogue" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            compared = isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in names
                for c in [node.left, *node.comparators]
            )
            compared = compared and any(
                isinstance(side, ast.Attribute) and side.attr == "name"
                for side in [node.left, *node.comparators]
            )
            called = (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "risk_for_control"
            )
            if compared or called:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "control names special-cased outside the catalogue:\n" + "\n".join(found)


def test_the_readme_tables_follow_the_catalogue():
    """Every control of the catalogue is in the README: a training gate as a row of the
    controls table with its check and asset, a monitoring control in its paragraph."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.replace("\\|", "¦").strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`") and cells[3].startswith("`"):
            rows[cells[1].strip("`")] = (cells[2], cells[3].strip("`"))
    for name, found in CATALOGUE.items():
        if found.monitoring:
            assert f"`{name}` (`{found.check}`" in " ".join(readme.split()), name
            continue
        assert name in rows, f"README controls table has no row for {name}"
        check, asset = rows[name]
        expected = found.check.replace("{attribute}", "<attribute>")
        assert check.startswith(f"`{expected}`") and asset == found.asset, name


def test_the_lazy_controls_namespace_names_each_control_once_and_right():
    """``risk_assets.controls`` imports its names on first use: the type-checking imports
    (what editors and type checkers see) and the map used at run time must agree, and
    each name must resolve to the module the map gives."""
    import importlib

    import risk_assets.controls as controls

    tree = ast.parse((PACKAGE / "controls" / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{alias.name}: write 'x as x'"
                    typed[alias.name] = imp.module.rsplit(".", 1)[-1]
    assert typed == controls._WHERE
    assert controls.__all__ == sorted(controls._WHERE)
    for name, module in controls._WHERE.items():
        value = getattr(controls, name)
        assert value is getattr(importlib.import_module(f"risk_assets.controls.{module}"), name)


def test_every_module_the_workers_start_with_exists():
    """A renamed slow module would silently lose its place at the front of the queue."""
    from conftest import SLOW_MODULES

    missing = [name for name in SLOW_MODULES if not (ROOT / "tests" / name).is_file()]
    assert not missing, missing
