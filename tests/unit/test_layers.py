"""The parts beside the data path depend on the server only through their own protocols:
no import of ``pks.admin`` or ``pks.workers`` — at module level, in a function or under
``TYPE_CHECKING``, directly or through any other pks module — reaches ``pks.server``
(which imports them). Read from the source with ``ast``, nothing is imported."""

from __future__ import annotations

import ast
import importlib.machinery
from pathlib import Path
from types import ModuleType

import pytest

SRC = Path(__file__).parents[2] / "src"


def _name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in SRC.joinpath("pks").rglob("*.py")}


def _module(name: str) -> str | None:
    """The pks module ``name`` is (or is a member of)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> set[str]:
    """Every pks module ``name`` imports anywhere in its text, with their packages."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in filter(None, map(_module, targets)):
            parts = target.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _chain(start: str, target: str) -> str:
    """``start -> … -> target``, a shortest import chain (breadth first)."""
    back: dict[str, str] = {}
    queue, seen = [start], {start}
    while queue:
        current = queue.pop(0)
        if current == target:
            break
        for nxt in sorted(GRAPH[current]):
            if nxt not in seen:
                seen.add(nxt)
                back[nxt] = current
                queue.append(nxt)
    chain = [target]
    while chain[-1] != start:
        chain.append(back[chain[-1]])
    return " -> ".join(reversed(chain))


def _reaches(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("pks.admin", ("pks.server", "pks.workers")), ("pks.workers", ("pks.server", "pks.admin"))],
)
def test_no_import_reaches_the_server(package: str, forbidden: tuple[str, ...]) -> None:
    inside = [n for n in MODULES if n == package or n.startswith(package + ".")]
    assert inside, package
    found = [
        _chain(name, target)
        for name in sorted(inside)
        for target in sorted(_reaches(name))
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert found == []


def test_the_server_still_uses_them() -> None:
    """The check reads real imports: the server's own (lazy) ones are seen."""
    assert {"pks.admin.serve", "pks.workers.node"} <= _reaches("pks.server")


# Cycles between packages (scripts/imports: a subpackage or top-level module of pks is one
# unit; every import counts, in a function or under TYPE_CHECKING too). Those being broken are
# listed here, each as the set of its units; a new one fails. Empty: the packages are layered
# (edge → spine → core steps → sip, with what is beside the data path above the core).
ALLOWED_CYCLES: list[frozenset[str]] = []


def _import_graph() -> ModuleType:
    """scripts/imports, loaded as a module (the script is the one place the check is written)."""
    path = SRC.parent / "scripts" / "imports"
    loader = importlib.machinery.SourceFileLoader("pks_import_graph", str(path))
    module = ModuleType(loader.name)
    module.__file__ = str(path)
    loader.exec_module(module)
    return module


def test_no_cycle_between_packages() -> None:
    graph = _import_graph()
    edges = graph.graph(SRC)
    found = [c for c in graph.cycles(edges) if not any(set(c) <= a for a in ALLOWED_CYCLES)]
    assert not found, "\n".join(
        line for c in found for line in [" ↔ ".join(c), *graph.describe(c, edges)]
    )


def test_a_cycle_is_seen(tmp_path: Path) -> None:
    """The check finds a cycle made by an import inside a function, and names its modules."""
    for name, text in {
        "__init__.py": "",
        "a/__init__.py": "from pks.b import x\n",
        "b/__init__.py": "def f():\n    from ..a import y\n",
        "c.py": "import pks.a\n",
    }.items():
        (tmp_path / "pks" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pks" / name).write_text(text)
    graph = _import_graph()
    edges = graph.graph(tmp_path)
    assert graph.cycles(edges) == [["pks.a", "pks.b"]]
    assert ("pks.c", "pks.a") in edges
    assert graph.describe(["pks.a", "pks.b"], edges) == ["  a → b: a → b", "  b → a: b → a"]
