"""The lab format: the builder hides solutions, and the checks pass or fail for real.

The solution notebook must pass every check; the student notebook (built from it) must
fail every check, each with its own hint. Both run with papermill against the stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake import delta
from neuralake.labs import build_lab, find_labs
from neuralake.labs.build import STUB_MARKER, assigned_names, stub
from neuralake.labs.cli import app

ROOT = Path(__file__).resolve().parents[1]
LAB01 = ROOT / "labs" / "01_delta" / "01_delta.ipynb"

# The hint each check of lab 01 gives when its exercise was not done.
LAB01_HINTS = [
    "session 2 is not in the table",
    "changed_in is None",
    "the table has no column 'surgeon'",
    "run DeltaTable(uri).optimize.compact() until it has fewer than 4",
    "run vacuum(retention_hours=0",
]


def test_stub_keeps_the_instructions_and_nulls_what_the_check_reads():
    solution = "# Store the answer in changed_in.\nhelper = 41\nchanged_in = helper + 1\n"
    check = "lab01.check_changed_in(lab, changed_in)"
    assert stub(solution, check) == (
        f"# Store the answer in changed_in.\n{STUB_MARKER}\nchanged_in = None"
    )
    assert assigned_names("a, (b, c) = 1, (2, 3)\nd: int = 4\na += 1") == ["a", "b", "c", "d"]


def test_labs_are_found_and_paired_with_their_py():
    labs = find_labs()
    assert LAB01 in labs
    for source in labs:
        assert source.with_suffix(".py").exists(), f"{source} has no jupytext .py pair"


def test_student_version_has_no_solution_code(tmp_path):
    source = nbformat.read(LAB01, as_version=4)
    solutions = [c for c in source.cells if "solution" in c.metadata.get("tags", [])]
    assert 4 <= len(solutions) <= 6
    student = nbformat.read(build_lab(LAB01, tmp_path / "lab.ipynb"), as_version=4)
    assert len(student.cells) == len(source.cells)
    exercises = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(exercises) == len(solutions)
    student_code = "\n".join(c.source for c in student.cells)
    for cell in solutions:
        code_lines = [ln for ln in cell.source.splitlines() if ln and not ln.startswith("#")]
        assert not any(line in student_code for line in code_lines if len(line) > 12)
    assert all(STUB_MARKER in c.source for c in exercises)
    assert not any("solution" in c.metadata.get("tags", []) for c in student.cells)


def test_cli_builds_one_lab_and_rejects_unknown_ones(tmp_path):
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(app, ["build", "01_delta", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "01_delta" / "01_delta.ipynb").exists()
    result = runner.invoke(app, ["build", "99_nope", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "01_delta" in result.output


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique table names, and the kernel pointed at the stack."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab01_{uuid.uuid4().hex[:8]}_"
    yield prefix
    for name in ("sessions", "neural_signals"):
        delta.drop_table(stack_settings.table_uri(prefix + name), stack_settings.storage_options)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix):
    assert_solution_passes_every_check(LAB01, lab_prefix, tmp_path, checks=len(LAB01_HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix):
    assert_student_fails_every_check(LAB01, lab_prefix, tmp_path, LAB01_HINTS)
