"""The package's layers read bottom-up: no module imports one that (indirectly) imports it.

Two checks. A fresh interpreter imports every module (``__main__`` modules excepted:
importing one runs the program). And the import graph read from the source
(every ``import neuralake...`` statement, also inside functions, where the old
``settings -> stack.install -> settings`` circle hid) must have no cycle.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import neuralake

PACKAGE = Path(neuralake.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the package, by name, with its source file."""
    found = {"neuralake": PACKAGE / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE)], "neuralake."):
        path = PACKAGE.parent.joinpath(*info.name.split("."))
        found[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports at run time (``if TYPE_CHECKING:`` excluded)."""
    out: set[str] = set()
    todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        todo.extend(ast.iter_child_nodes(node))
    return out & known


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = sorted(n for n in _modules() if not n.endswith(".__main__"))
    code = "import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code.format(names=names)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr.strip()[-600:]


def test_the_import_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert "neuralake.settings" in graph and len(graph) > 20
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_settings_know_nothing_of_the_stack() -> None:
    modules = _modules()
    imported = _imports(modules["neuralake.settings"], set(modules))
    assert not {m for m in imported if m.startswith("neuralake.lab.stack")}, imported


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# Lesson material may reach into the machinery only here, each for a stated reason.
MACHINERY_ALLOWED = {
    # A session needs the Delta and S3A jars; where `stack install` put them is an install fact.
    ("neuralake.spark.session", "neuralake.lab.stack.install"),
    # `python -m neuralake` runs the command line.
    ("neuralake.__main__", "neuralake.lab.cli"),
}


def test_lesson_material_does_not_import_the_lab_machinery() -> None:
    """The boundary the layout draws: ``neuralake.lab`` runs the lab, the rest is taught."""
    modules = _modules()
    lesson = {n: p for n, p in modules.items() if not n.startswith("neuralake.lab")}
    assert "neuralake.catalog" in lesson and "neuralake.lab.stack" in modules
    crossings = {
        (name, target)
        for name, path in lesson.items()
        for target in _imports(path, set(modules))
        if target.startswith("neuralake.lab")
    }
    assert crossings <= MACHINERY_ALLOWED, sorted(crossings - MACHINERY_ALLOWED)
