"""The shape docs/architecture.md describes: short modules, imports that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

PACKAGE = REPO / "ocrwatch"
MAX_MODULE_LINES = 450
"""Modules stay readable in one sitting; a module growing past this is the moment to split it."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules ``path`` imports anywhere (top level, functions, TYPE_CHECKING blocks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def test_no_module_imports_a_module_that_imports_it() -> None:
    """The import graph of ocrwatch/ has no cycle, counting imports inside functions and for types."""
    known = modules()
    graph = {name: imports(path, set(known)) - {name} for name, path in known.items()}
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for target in graph[node]:
                if target == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert [] == cycles


def test_no_module_is_much_over_400_lines() -> None:
    """Every module of the package fits in one reading."""
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert {} == long


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md mentions each module or package of ocrwatch/, so the map stays whole."""
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for name, path in modules().items():
        short = path.relative_to(PACKAGE)
        if short.name == "__init__.py" and short.parent == Path():
            continue
        mentioned = (
            f"`{short}`" in page
            or f"`{short.parent}/`" in page
            or f"`{short.stem}`" in page
            or f"`{short.parent.name}/`" in page
        )
        if not mentioned:
            missing.append(name)
    assert [] == missing
