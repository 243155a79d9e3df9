"""The classroom kit: the student bundle, the nbgrader export (autograded by nbgrader
itself on a solved and an unsolved lab), and ``neuralake labs grade``.

The pure parts run without the stack; the graders read real tables, so autograde and
grade run lab 01 against the running stack, each submission under its own prefix.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from neuralake.errors import NeuralakeError
from neuralake.lab.graders import grade as grading
from neuralake.lab.graders.build import STUB_MARKER, build_lab, find_labs
from neuralake.lab.graders.cli import app
from neuralake.lab.graders.nbgrader import BEGIN, END, to_nbgrader, write_course

ROOT = Path(__file__).resolve().parents[1]
LAB01 = ROOT / "labs" / "01_delta" / "01_delta.ipynb"
NBGRADER = Path(sys.executable).parent / "nbgrader"


def solutions(lab: Path) -> list[str]:
    cells = nbformat.read(lab, as_version=4).cells
    return [c.source for c in cells if "solution" in c.metadata.get("tags", [])]


def code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.startswith("#")]


def set_prefix(notebook: Path, prefix: str) -> None:
    """What a student does on a shared stack: their own PREFIX in the parameters cell."""
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source, count = re.subn(
        r'^PREFIX = "[^"]*"', f'PREFIX = "{prefix}"', cell.source, count=1, flags=re.M
    )
    assert count == 1, "the parameters cell sets no PREFIX"
    nbformat.write(nb, notebook)


# -- the bundle --------------------------------------------------------------------------


def test_bundle_holds_every_student_notebook_a_readme_and_no_solution(tmp_path):
    result = CliRunner().invoke(app, ["bundle", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "neuralake-labs.zip") as bundle:
        names = set(bundle.namelist())
        assert "neuralake-labs/README.md" in names
        for lab in find_labs():
            member = f"neuralake-labs/{lab.parent.name}/{lab.name}"
            assert member in names
            student = nbformat.reads(bundle.read(member).decode(), as_version=4)
            exercises = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
            assert len(exercises) == len(solutions(lab))
            for cell in exercises:  # instructions, the marker and `name = None`: no answer
                assert STUB_MARKER in cell.source
                assert all(re.fullmatch(r"\w+ = None", line) for line in code_lines(cell.source))
            assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


def test_unknown_lab_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["bundle", "99_nothing", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "choose from 01_delta" in result.output


# -- the nbgrader export -----------------------------------------------------------------


@pytest.mark.parametrize("lab", find_labs(), ids=[p.parent.name for p in find_labs()])
def test_every_lab_exports_to_nbgrader(lab: Path):
    nb = to_nbgrader(lab)
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    answers = [c for c, m in zip(nb.cells, meta, strict=True) if m and m["solution"]]
    tests = [c for c, m in zip(nb.cells, meta, strict=True) if m and m["grade"]]
    assert len(answers) == len(solutions(lab))
    assert len(tests) == len(grading.expected_checks(lab))
    assert all(m["locked"] and m["points"] == 1 for m in meta if m and m["grade"])
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(set(ids)), "nbgrader needs a unique grade_id per cell"
    for cell, solution in zip(answers, solutions(lab), strict=True):
        assert cell.source.count(BEGIN) == 1 and cell.source.rstrip().endswith(END)
        assert all(line in cell.source for line in code_lines(solution))
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "nbgrader" not in parameters.metadata, "students must be able to set PREFIX"


def test_a_lab_without_answers_cannot_be_exported(tmp_path):
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    source = tmp_path / "09_plain" / "09_plain.ipynb"
    source.parent.mkdir()
    nbformat.write(plain, source)
    with pytest.raises(NeuralakeError, match="tag each answer"):
        to_nbgrader(source)


# -- grading, pure parts -----------------------------------------------------------------


def test_results_read_each_check_cell(tmp_path):
    cells = [
        nbformat.v4.new_code_cell("lab01.check_a(lab)"),
        nbformat.v4.new_code_cell("lab01.check_b(lab, x)"),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="PASSED: a\n")]
    cells[1].outputs = [
        nbformat.v4.new_output(
            "error", ename="CheckFailed", evalue="x is None. Hint 1/3", traceback=[]
        )
    ]
    path = tmp_path / "run.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    found = grading.results(path)
    assert [(r.check, r.passed) for r in found] == [("check_a", True), ("check_b", False)]
    assert found[1].message == "CheckFailed: x is None. Hint 1/3"


def test_student_prefix_and_summary():
    assert grading.student_of(Path("alice/01_delta.ipynb"), LAB01) == "alice"
    assert grading.prefix_for("Bob Smith", LAB01) == "grade_bob_smith_01_"
    with pytest.raises(NeuralakeError, match="keep the lab's file name"):
        grading.lab_of(Path("homework.ipynb"))
    grades = [
        grading.Grade("a", "01_delta", [grading.CheckResult("check_x", True, "")], 1.0),
        grading.Grade("b", "01_delta", [grading.CheckResult("check_x", False, "")], 1.0),
    ]
    rows = list(csv.DictReader(io.StringIO(grading.summary_csv(grades))))
    assert [(r["student"], r["score"], r["check_x"]) for r in rows] == [
        ("a", "1", "1"),
        ("b", "0", "0"),
    ]


# -- against the stack -------------------------------------------------------------------


def nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": f"{NBGRADER.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(NBGRADER), *args], cwd=course, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.stack
@pytest.mark.notebook
def test_nbgrader_autogrades_a_solved_and_an_unsolved_lab(tmp_path, stack_settings):
    course = tmp_path / "course"
    write_course([LAB01], course)
    nbgrader(course, "generate_assignment", "01_delta", "--force")
    released = course / "release" / "01_delta" / "01_delta.ipynb"
    assert STUB_MARKER in released.read_text()

    run = uuid.uuid4().hex[:6]
    unsolved = course / "submitted" / "unsolved" / "01_delta" / "01_delta.ipynb"
    unsolved.parent.mkdir(parents=True)
    unsolved.write_bytes(released.read_bytes())
    set_prefix(unsolved, f"test_nbg_{run}_u_")
    solved = course / "submitted" / "solved" / "01_delta" / "01_delta.ipynb"
    solved.parent.mkdir(parents=True)
    nb = nbformat.read(released, as_version=4)
    answers = iter(solutions(LAB01))
    for cell in nb.cells:  # the student writes each answer into the released cell
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = next(answers)
    nbformat.write(nb, solved)
    set_prefix(solved, f"test_nbg_{run}_s_")

    try:
        for student in ("solved", "unsolved"):
            nbgrader(course, "autograde", "01_delta", "--student", student, "--force")
    finally:
        for who in "su":
            grading.drop_tables(stack_settings, f"test_nbg_{run}_{who}_")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        solved_score = gradebook.find_submission("01_delta", "solved")
        unsolved_score = gradebook.find_submission("01_delta", "unsolved")
        checks = len(grading.expected_checks(LAB01))
        assert solved_score.max_score == checks
        assert solved_score.score == checks
        assert unsolved_score.score == 0


@pytest.mark.stack
@pytest.mark.notebook
def test_grade_scores_each_check_and_writes_the_class_csv(tmp_path, stack_settings):
    run = uuid.uuid4().hex[:6]
    done = tmp_path / "submissions" / f"done{run}" / "01_delta.ipynb"
    done.parent.mkdir(parents=True)
    done.write_bytes(LAB01.read_bytes())  # the solution, as a student who solved it all
    blank = build_lab(LAB01, tmp_path / "submissions" / f"blank{run}" / "01_delta.ipynb")
    summary = tmp_path / "class.csv"
    result = CliRunner().invoke(
        app,
        [
            "grade",
            str(tmp_path / "submissions"),
            "--csv",
            str(summary),
            "--out",
            str(tmp_path / "graded"),
        ],
    )
    assert result.exit_code == 0, result.output
    checks = grading.expected_checks(LAB01)
    rows = {r["student"]: r for r in csv.DictReader(summary.open())}
    assert rows[f"done{run}"]["score"] == str(len(checks))
    assert rows[f"blank{run}"]["score"] == "0"
    assert all(rows[f"blank{run}"][c] == "0" for c in checks)
    assert f"FAIL {checks[0]}: CheckFailed: changed_in is None" in result.output
    assert blank.exists()
    leftovers = grading.drop_tables(stack_settings, f"grade_done{run}_01_")
    assert leftovers == 0, "grade must drop the tables of its runs"


def test_grading_clean_up_leaves_no_topic_table_or_roapi_config_of_the_run(stack_settings):
    """A graded run's topics, tables and ROAPI config go; other prefixes' stay."""
    import polars as pl

    from neuralake.lab.stack.services import roapi_config_path
    from neuralake.streaming import topics

    run = f"grade_clean{uuid.uuid4().hex[:6]}_08_"
    other = f"{run[:-4]}x_"
    for prefix in (run, other):
        topics.recreate_topic(stack_settings, f"{prefix}signals", 1)
        pl.DataFrame({"a": [1]}).write_delta(
            stack_settings.table_uri(f"{prefix}gold"),
            storage_options=stack_settings.storage_options,
        )
    config = roapi_config_path(stack_settings)
    before = config.read_text(encoding="utf-8") if config.exists() else None
    try:
        grading.clean_up(stack_settings, run)
        names = topics.admin(stack_settings).list_topics(timeout=10).topics
        assert f"{run}signals" not in names and f"{other}signals" in names
        assert grading.drop_tables(stack_settings, run) == 0
        assert grading.drop_tables(stack_settings, other) > 0  # untouched until now
        if before is not None and run not in before:
            assert config.read_text(encoding="utf-8") == before  # another run's config stays
    finally:
        topics.delete_topic(stack_settings, f"{other}signals")
