"""Grade students' lab notebooks against the stack: ``neuralake labs grade PATH...``.

Each submitted notebook runs top to bottom with papermill, as the student would run it,
with ``allow_errors`` so that every check cell runs even after a failed one. A check
cell (one that calls a ``check_*`` grader) that printed ``PASSED`` scores 1; one that
raised scores 0, and its one-line message says what the grader found.

Students share one stack, so each run gets its own table prefix (papermill sets the
lab's ``PREFIX`` parameter to ``grade_<student>_``): two students' tables never collide
and a student's own leftovers do not count. The graded tables are deleted afterwards
unless asked to keep them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from neuralake import storage
from neuralake.delta import drop_table
from neuralake.errors import NeuralakeError
from neuralake.lab.api.serve import unserve
from neuralake.lab.graders.build import find_labs
from neuralake.lab.stack.services import roapi_config_path
from neuralake.lab.writer import control
from neuralake.settings import Settings, project_dir
from neuralake.streaming import topics

CHECK = re.compile(r"\.(check_\w+)\s*\(")
CELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class CheckResult:
    """One check cell of one submission."""

    check: str  # the grader's name, e.g. "check_restored"
    passed: bool
    message: str  # PASSED line, or what the grader found (with the hint)


@dataclass(frozen=True)
class Grade:
    """One student's submission of one lab."""

    student: str
    lab: str
    checks: list[CheckResult]
    seconds: float

    @property
    def score(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)


def lab_of(notebook: Path, labs: list[Path] | None = None) -> Path:
    """The lab source a submission belongs to, by its file name (``01_delta.ipynb``)."""
    labs = labs if labs is not None else find_labs()
    stem = notebook.name.removesuffix(".ipynb").removesuffix(".student")
    for source in labs:
        if stem == source.stem or stem.startswith(source.stem):
            return source
    names = ", ".join(s.name for s in labs)
    raise NeuralakeError(
        f"{notebook} is not a lab notebook: keep the lab's file name (one of {names})"
    )


def student_of(notebook: Path, lab: Path) -> str:
    """``alice/01_delta.ipynb`` is alice's; ``01_delta-bob.ipynb`` is ``01_delta-bob``."""
    stem = notebook.name.removesuffix(".ipynb").removesuffix(".student")
    return notebook.parent.name if stem == lab.stem else stem


def prefix_for(student: str, lab: Path) -> str:
    """A table prefix no other student's run shares: ``grade_alice_01_``."""
    slug = re.sub(r"[^a-z0-9]+", "_", student.lower()).strip("_")[:24] or "student"
    return f"grade_{slug}_{lab.stem[:2]}_"


def submissions(paths: list[Path]) -> list[Path]:
    """Notebooks named by ``paths``: files as given, folders searched recursively."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
            )
        elif path.suffix == ".ipynb" and path.exists():
            found.append(path)
        else:
            raise NeuralakeError(f"{path} is not a notebook or a folder: give .ipynb files")
    if not found:
        raise NeuralakeError(f"no notebooks under {', '.join(map(str, paths))}")
    return found


def results(executed: Path) -> list[CheckResult]:
    """Each check cell of an executed notebook: which grader, passed or not, and why."""
    notebook = nbformat.read(executed, as_version=4)
    found = []
    for cell in notebook.cells:
        match = CHECK.search(cell.source) if cell.cell_type == "code" else None
        if not match:
            continue
        error = next((o for o in cell.outputs if o.output_type == "error"), None)
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        if error is not None:
            found.append(CheckResult(match[1], False, f"{error['ename']}: {error['evalue']}"))
        elif "PASSED" in text:
            found.append(CheckResult(match[1], True, text.strip().splitlines()[-1]))
        else:
            found.append(CheckResult(match[1], False, "the check cell did not run"))
    return found


def expected_checks(lab: Path) -> list[str]:
    """The graders a lab's source notebook calls, in order."""
    notebook = nbformat.read(lab, as_version=4)
    return [m[1] for c in notebook.cells if c.cell_type == "code" and (m := CHECK.search(c.source))]


def grade(notebook: Path, out_dir: Path, settings: Settings, keep: bool = False) -> Grade:
    """Run one submission against the stack and score its checks."""
    import papermill

    lab = lab_of(notebook)
    student = student_of(notebook, lab)
    prefix = prefix_for(student, lab)
    executed = out_dir / f"{prefix}{lab.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters={"PREFIX": prefix},
            cwd=str(project_dir()),
            kernel_name="python3",
            execution_timeout=CELL_TIMEOUT_S,
            allow_errors=True,  # every check runs, even after a failed one
            progress_bar=False,
        )
    except papermill.PapermillExecutionError:
        pass  # failed cells are the grade's business: results() reads each one
    finally:
        if not keep:
            clean_up(settings, prefix)
    found = {r.check: r for r in results(executed)}
    checks = [
        found.get(name, CheckResult(name, False, "the check cell is missing"))
        for name in expected_checks(lab)
    ]
    return Grade(student, lab.parent.name, checks, time.perf_counter() - started)


def clean_up(settings: Settings, prefix: str) -> None:
    """Leave the shared stack as the run found it: stop the run's writers, stop ROAPI if
    its config serves the run's tables (a config naming dropped tables would stop ROAPI at
    the next ``make up``), then delete the run's topics and tables."""
    for table in control.tables(settings):
        if table.startswith(prefix):
            control.down(settings, table, echo=lambda _: None)
    config = roapi_config_path(settings)
    if config.exists() and prefix in config.read_text(encoding="utf-8"):
        unserve(settings)
    names = topics.admin(settings).list_topics(timeout=10).topics
    for topic in sorted(name for name in names if name.startswith(prefix)):
        topics.delete_topic(settings, topic)
    drop_tables(settings, prefix)


def drop_tables(settings: Settings, prefix: str) -> int:
    """Delete every table of the warehouse whose name starts with ``prefix``.

    Returns how many files were deleted (0 if no table matched).
    """
    settings.table_uri(prefix)  # refuses a prefix that is not a table name
    warehouse, options = settings.warehouse_uri.rstrip("/"), settings.storage_options
    tables = [name for name in storage.list_folders(warehouse, options) if name.startswith(prefix)]
    return sum(drop_table(f"{warehouse}/{name}", options) for name in tables)


def summary_csv(grades: list[Grade]) -> str:
    """The class summary: one row per submission, one column per check (1 or 0)."""
    checks: list[str] = []
    for g in grades:
        checks.extend(c.check for c in g.checks if c.check not in checks)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "lab", "score", "total", *checks])
    for g in grades:
        passed = {c.check: int(c.passed) for c in g.checks}
        writer.writerow([g.student, g.lab, g.score, g.total, *(passed.get(c, "") for c in checks)])
    return out.getvalue()
