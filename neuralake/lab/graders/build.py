"""Build the student version of a lab: the source notebook without its solutions.

In the source notebook (``labs/NN_topic/<name>.ipynb``, paired with a ``.py`` by
jupytext) every cell tagged ``solution`` is replaced by a stub that keeps the cell's
leading comment lines (the instructions), adds ``# YOUR CODE HERE``, and sets to
``None`` each name the solution binds (a variable, or a function the check calls) that
the next cell (the check) reads. The
check then runs and fails with its hint instead of a ``NameError``.

Outputs are cleared; the student notebook is a build output (``build/labs/`` by
default), never committed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from neuralake.settings import project_dir

SOLUTION_TAG = "solution"
STUB_MARKER = "# YOUR CODE HERE"


def find_labs(labs_dir: Path | None = None) -> list[Path]:
    """The source notebooks: ``labs/NN_topic/*.ipynb`` that are not student versions."""
    root = labs_dir or project_dir() / "labs"
    return sorted(
        p for p in root.glob("[0-9][0-9]_*/*.ipynb") if not p.name.endswith(".student.ipynb")
    )


def default_output(source: Path) -> Path:
    """``build/labs/<lab folder>/<name>.ipynb`` in the project."""
    return project_dir() / "build" / "labs" / source.parent.name / source.name


def build_lab(source: Path, output: Path | None = None) -> Path:
    """Write the student version of ``source``; return its path."""
    notebook = nbformat.read(source, as_version=4)
    cells = notebook.cells
    solutions = [i for i, cell in enumerate(cells) if SOLUTION_TAG in _tags(cell)]
    if not solutions:
        raise ValueError(f"{source} has no cell tagged {SOLUTION_TAG!r}: nothing to hide")
    for index in solutions:
        check = cells[index + 1].source if index + 1 < len(cells) else ""
        cells[index] = nbformat.v4.new_code_cell(
            stub(cells[index].source, check), metadata={"tags": ["exercise"]}
        )
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("jupytext", None)  # the student copy is not paired with a .py
    output = output or default_output(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)
    return output


def stub(solution: str, check: str) -> str:
    """The cell a student sees instead of ``solution``."""
    lines = solution.splitlines()
    instructions = []
    for line in lines:
        if not line.startswith("#"):
            break
        instructions.append(line)
    needed = [name for name in assigned_names(solution) if name in used_names(check)]
    return "\n".join([*instructions, STUB_MARKER, *(f"{name} = None" for name in needed)])


def assigned_names(code: str) -> list[str]:
    """Names bound at the top level of ``code`` (assignments and definitions), in order."""
    names: list[str] = []
    for node in ast.parse(code).body:
        targets = []
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name not in names:
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            names.extend(name for name in _bound(target) if name not in names)
    return names


def _bound(target: ast.expr) -> list[str]:
    """The names an assignment target binds: ``a``, ``a, *b`` -- but not ``a.x`` or ``a[0]``,
    which change an existing object (stubbing ``a = None`` there would wipe the student's ``a``).
    """
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _bound(element)]
    return []


def used_names(code: str) -> set[str]:
    """Every name ``code`` reads."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
