"""The layers stay apart: protocol ← base ← agent | central ← sim, and no module imports itself in a circle.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions: a cycle
hidden there is still a cycle for the reader. See docs/ARCHITECTURE.md for the picture.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "base", "agent", "central", "sim")
# What each top-level package may import from the project (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "base": frozenset({"protocol"}),
    "agent": frozenset({"protocol", "base"}),
    "central": frozenset({"protocol", "base"}),
    "sim": frozenset({"protocol", "base", "agent", "central"}),
}


def module_name(root: Path, path: Path) -> str:
    """agent/store/db.py → agent.store.db; a package's __init__.py is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path, *, names: bool = True) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved, wherever they sit.

    With ``names``, ``from X import Y`` also yields ``X.Y`` (Y may be a submodule).
    """
    module = module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names if names else ():  # `from agent.store import outbox` imports a module too
                yield node.lineno, f"{target}.{alias.name}"


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages under root."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            found[module_name(root, path)] = path
    return found


def layer_violations(root: Path) -> list[str]:
    """'file:line imports X' for every import across a boundary ALLOWED does not permit."""
    problems = []
    for name, path in project_modules(root).items():
        top = name.split(".")[0]
        for line, target in imports_of(root, path, names=False):
            other = target.split(".")[0]
            if other in PACKAGES and other != top and other not in ALLOWED[top]:
                problems.append(f"{path.relative_to(root)}:{line} imports {target} ({top} may not import {other})")
    return sorted(set(problems))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → project modules it imports (only names that are modules, not their attributes)."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _line, target in imports_of(root, path):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_crosses_a_layer() -> None:
    assert layer_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(ROOT)) == []


@pytest.mark.parametrize(
    ("where", "line", "reason"),
    [
        ("agent/x.py", "from central.ingest import Ingestor", "agent may not import central"),
        ("central/x.py", "import agent.store.db", "central may not import agent"),
        ("base/x.py", "from agent import cli", "base may not import agent"),
        ("base/x.py", "if TYPE_CHECKING:\n    from central.web.app import create_app", "base may not import central"),
        ("protocol/x.py", "def f():\n    from base.clock import Clock", "protocol may not import base"),
    ],
)
def test_a_bad_import_is_caught(tmp_path: Path, where: str, line: str, reason: str) -> None:
    """The checks themselves can fail: a deliberate bad import in a copy of the layout is reported."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / where).write_text(f"from typing import TYPE_CHECKING\n{line}\n")
    found = layer_violations(tmp_path)
    assert len(found) == 1 and reason in found[0], found


def test_a_hidden_cycle_is_caught(tmp_path: Path) -> None:
    (tmp_path / "agent" / "techapi").mkdir(parents=True)
    for init in ("agent/__init__.py", "agent/techapi/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "agent" / "runner.py").write_text("from agent.techapi.view import View\n")
    (tmp_path / "agent" / "techapi" / "view.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent.runner import Agent\n"
    )
    assert cycles(import_graph(tmp_path)) == [["agent.runner", "agent.techapi.view"]]


@pytest.mark.parametrize("package", ["agent", "central", "base"])
def test_importing_a_side_loads_nothing_of_the_other(package: str) -> None:
    """At run time too: importing every module of one side pulls in no module of a forbidden one."""
    forbidden = sorted(set(PACKAGES) - ALLOWED[package] - {package})
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for info in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
