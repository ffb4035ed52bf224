"""Tests and bench/ share code through tests.support only: never another test module, a conftest, or
anything else under tests/ (pytest imports those on its own terms, and a helper in a test module
makes that module a library)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import project_root

SHARED = "tests.support"
CHECKED = ("tests", "bench")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name `from ... import` refers to, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, full name) of everything an import statement anywhere in `source` imports: `import
    a.b` gives a.b, `from a.b import c` gives a.b.c (c a module or not), relative ones resolved
    from `module`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def is_forbidden(name: str) -> bool:
    """Under tests (the package included) but not under tests.support."""
    inside_tests = name == "tests" or name.startswith("tests.")
    return inside_tests and not (name == SHARED or name.startswith(f"{SHARED}."))


def violations(root: Path) -> list[str]:
    found = []
    for directory in CHECKED:
        for path in sorted((root / directory).rglob("*.py")):
            module = _module_name(path, root)
            source = path.read_text(encoding="utf-8")
            for line, imported in imported_names(source, module, path.name == "__init__.py"):
                if is_forbidden(imported):
                    found.append(f"{path.relative_to(root)}:{line} imports {imported}")
    return found


def test_tests_and_bench_import_no_tests_module_outside_tests_support() -> None:
    found = violations(project_root())
    assert not found, "\n".join(found)


def test_the_check_reads_the_modules_it_should() -> None:
    root = project_root()
    for directory in CHECKED:
        assert any((root / directory).rglob("*.py")), directory
    shared = [
        imported
        for path in (root / "bench").rglob("*.py")
        for _, imported in imported_names(path.read_text(encoding="utf-8"), _module_name(path, root))
        if imported.startswith(f"{SHARED}.")
    ]
    assert shared, "bench/ imports tests.support: the walk reached it"


@pytest.mark.parametrize(
    ("source", "module", "forbidden"),
    [
        ("from tests.support.api import bearer", "tests.unit.test_x", []),
        ("import tests.support.factories as factories", "bench.load", []),
        ("from tests import support", "bench.load", []),
        ("from execution_stream import tests", "bench.load", []),
        ("from tests.e2e.conftest import Pipeline", "tests.faults.test_x", ["tests.e2e.conftest.Pipeline"]),
        ("import tests.unit.test_api_support", "bench.load", ["tests.unit.test_api_support"]),
        ("import tests", "bench.load", ["tests"]),
        ("from tests import conftest", "bench.load", ["tests.conftest"]),
        ("from tests.factories import execution", "bench.load", ["tests.factories.execution"]),
        ("def f():\n    from tests.unit.test_y import g\n", "tests.unit.test_x", ["tests.unit.test_y.g"]),
        ("from .conftest import PATH_TO", "tests.integration.test_x", ["tests.integration.conftest.PATH_TO"]),
        ("from ..support import api", "tests.unit.test_x", []),
        ("from . import test_y", "tests.unit", ["tests.unit.test_y"]),
    ],
)
def test_the_check_tells_shared_helpers_from_test_modules(
    source: str, module: str, forbidden: list[str]
) -> None:
    is_package = module == "tests.unit"
    names = [name for _, name in imported_names(source, module, is_package) if is_forbidden(name)]
    assert names == forbidden
