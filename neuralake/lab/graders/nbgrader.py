"""Export the labs to nbgrader, the grading tool of JupyterHub classrooms.

nbgrader (https://nbgrader.readthedocs.io) wants a *course directory* with the teacher's
version of each assignment in ``source/<assignment>/``: every cell a student writes is
marked as a **solution** cell, its answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION``; every cell that grades is an **autograded test** cell, locked,
worth points. ``nbgrader generate_assignment`` then writes the student version (the
answers cut out), ``nbgrader autograde`` runs each collected submission and scores the
test cells: a test cell that raises scores 0, one that runs scores its points.

A lab maps onto that directly. Each ``solution`` cell becomes a solution cell that keeps
the instructions and the ``name = None`` lines of :func:`neuralake.lab.graders.build.stub`
above the answer, so the released cell is the same stub ``neuralake labs build`` makes,
and each check cell fails with its hint rather than a ``NameError``. Each check cell
(the cell after a solution, calling a ``check_*`` grader) becomes a test cell worth
one point. Everything else but the parameters cell (where each student sets a
``PREFIX`` of their own) is locked: read-only, and restored by autograde.

``write_course`` also writes ``nbgrader_config.py``: the course id, the code stub
(``# YOUR CODE HERE``, without nbgrader's ``raise NotImplementedError()``, so the cells
after it still run) and a cell timeout long enough for the labs' set-up cells.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from neuralake.errors import NeuralakeError
from neuralake.lab.graders.build import SOLUTION_TAG, STUB_MARKER, assigned_names, used_names

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_CALL = ".check_"
POINTS_PER_CHECK = 1
CELL_TIMEOUT_S = 600  # lab set-up cells build every exercise's tables; checks read them

CONFIG = """\
# nbgrader configuration written by `neuralake labs nbgrader`.
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = {course!r}
c.CourseDirectory.root = {root!r}
# The released cell is the lab's own stub: instructions, `name = None`, then this line.
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.Execute.timeout = {timeout}
"""


def to_nbgrader(source: Path) -> nbformat.NotebookNode:
    """The teacher version of a lab for nbgrader: solution regions and graded check cells."""
    notebook = nbformat.read(source, as_version=4)
    lab = source.parent.name
    solutions = checks = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and SOLUTION_TAG in _tags(cell):
            solutions += 1
            following = notebook.cells[index + 1].source if index + 1 < len(notebook.cells) else ""
            cell.source = solution_cell(cell.source, following)
            cell.metadata["nbgrader"] = _meta(f"{lab}-answer-{solutions}", solution=True)
        elif cell.cell_type == "code" and CHECK_CALL in cell.source:
            checks += 1
            cell.metadata["nbgrader"] = _meta(
                f"{lab}-check-{checks}", grade=True, locked=True, points=POINTS_PER_CHECK
            )
        elif "parameters" in _tags(cell):
            pass  # not locked: on a shared stack each student sets their own PREFIX
        else:
            kind = "code" if cell.cell_type == "code" else "text"
            cell.metadata["nbgrader"] = _meta(f"{lab}-{kind}-{index}", locked=True)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if not solutions or not checks:
        raise NeuralakeError(
            f"{source} has {solutions} solution and {checks} check cells: tag each answer "
            f"cell {SOLUTION_TAG!r} and follow it with a `.check_...()` cell (docs/lab-format.md)"
        )
    notebook.metadata.pop("jupytext", None)
    return notebook


def solution_cell(solution: str, check: str) -> str:
    """The lab's stub (instructions, ``name = None``), then the answer as a solution region."""
    lines = solution.splitlines()
    first_code = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    instructions, answer = lines[:first_code], lines[first_code:]
    needed = [name for name in assigned_names(solution) if name in used_names(check)]
    return "\n".join([*instructions, *(f"{name} = None" for name in needed), BEGIN, *answer, END])


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _meta(
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: int = 0,
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
    }
    if grade:
        meta["points"] = points
    return meta


def write_course(sources: list[Path], course: Path, course_id: str = "neuralake-lab") -> Path:
    """Write ``course/source/<lab>/<lab>.ipynb`` per lab and ``nbgrader_config.py``."""
    course = course.resolve()
    for source in sources:
        target = course / "source" / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(to_nbgrader(source), target)
    config = course / "nbgrader_config.py"
    config.write_text(
        CONFIG.format(course=course_id, root=str(course), stub=STUB_MARKER, timeout=CELL_TIMEOUT_S),
        encoding="utf-8",
    )
    return config
