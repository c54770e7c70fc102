"""The floor plan holds: imports point down the layers, and no module imports itself in a circle.

Read from the source with the standard library's `ast` (nothing is imported), so a stray import
anywhere — a function body, an `if TYPE_CHECKING:` block — counts as it would for a reader.
Layers (docs/architecture.md): lamplighter → api → controller → drivers, schedules, firmware_bridge;
simulators beside them, reading only the drivers' profiles, as real hardware would.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lamplighter", "api", "controller", "drivers", "schedules", "firmware_bridge", "simulators")

#: which of our packages each package may import (besides itself)
MAY_IMPORT: dict[str, frozenset[str]] = {
    "lamplighter": frozenset(PACKAGES),
    "api": frozenset({"controller", "drivers", "schedules", "firmware_bridge"}),
    "controller": frozenset({"drivers", "schedules", "firmware_bridge"}),
    "firmware_bridge": frozenset({"drivers"}),
    "schedules": frozenset(),
    "drivers": frozenset(),
    "simulators": frozenset({"drivers"}),
}
#: outside libraries a package must not use: the core knows no web; schedules do no I/O
MUST_NOT_USE: dict[str, frozenset[str]] = {
    "controller": frozenset({"fastapi", "starlette", "uvicorn", "api"}),
    "drivers": frozenset({"fastapi", "starlette", "uvicorn", "sqlalchemy"}),
    "schedules": frozenset(
        {"asyncio", "socket", "sqlalchemy", "httpx", "aiomqtt", "pymodbus", "serial", "bleak", "aiofiles"}
    ),
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module, as written (absolute)
    where: str  # path:line, for the message

    @property
    def top(self) -> str:
        return self.target.split(".")[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path) -> Iterator[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(name, base, where)
            for alias in node.names:  # `from pkg import module` imports the module
                yield Import(name, f"{base}.{alias.name}", where)


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of ours it loads. Importing a.b.c runs a/__init__ and a/b/__init__ too
    (except the packages the importer sits in: those are loaded before it already)."""
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for imp in imports_of(name, path):
            parts = imp.target.split(".")
            for n in range(1, len(parts) + 1):
                target = ".".join(parts[:n])
                implicit = n < len(parts)  # a parent package, loaded on the way
                if target in known and target != name and not (implicit and name.startswith(target + ".")):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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


@pytest.fixture(scope="module")
def known() -> dict[str, Path]:
    return modules()


def test_imports_point_down_the_layers(known: dict[str, Path]) -> None:
    wrong = [
        f"{imp.where}: {imp.source} imports {imp.target} ({imp.source.split('.')[0]} may not use {imp.top})"
        for name, path in known.items()
        for imp in imports_of(name, path)
        if imp.top in PACKAGES
        and imp.top != name.split(".")[0]
        and imp.top not in MAY_IMPORT[name.split(".")[0]]
    ]
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_core_knows_no_web_and_schedules_do_no_io(known: dict[str, Path]) -> None:
    wrong = [
        f"{imp.where}: {imp.source} imports {imp.target}"
        for name, path in known.items()
        for imp in imports_of(name, path)
        if imp.top in MUST_NOT_USE.get(name.split(".")[0], ())
    ]
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_only_the_application_brings_api_core_and_simulators_together(known: dict[str, Path]) -> None:
    uses: dict[str, set[str]] = {}
    for name, path in known.items():
        uses.setdefault(name.split(".")[0], set()).update(imp.top for imp in imports_of(name, path))
    together = {"api", "controller", "simulators"}
    assert [pkg for pkg, used in uses.items() if together <= used | {pkg}] == ["lamplighter"]


def test_no_module_imports_itself_in_a_circle(known: dict[str, Path]) -> None:
    found = cycles(graph(known))
    assert not found, "modules that import each other in a circle:\n" + "\n".join(", ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    """The check above can fail: a → b.c loads b (its __init__), which imports a."""
    edges = {"a": {"b", "b.c"}, "b": {"a"}, "b.c": set(), "d": {"a"}}
    assert cycles(edges) == [["a", "b"]]
