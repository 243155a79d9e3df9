"""How every lab proves its checks: the solution passes them all, and the student
version (solutions stripped) fails each one with what its grader found and the first
tier of its hint."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from neuralake.lab.graders import build_lab
from neuralake.lab.graders.checks import check_outputs

ROOT = Path(__file__).resolve().parents[1]
FIRST_HINT = "Hint 1/3 (concept): "


def assert_solution_passes_every_check(lab: Path, prefix: str, tmp: Path, checks: int) -> None:
    out = tmp / "solution.ipynb"
    papermill.execute_notebook(
        str(lab), str(out), parameters={"PREFIX": prefix}, progress_bar=False, cwd=ROOT
    )
    results = check_outputs(out)
    assert len(results) == checks
    for result in results:
        assert result["error"] is None
        assert result["text"].startswith("PASSED: ")


def assert_student_fails_every_check(lab: Path, prefix: str, tmp: Path, hints: list[str]) -> None:
    """``hints``: per check, in order, a piece of the ``found`` text its failure must show."""
    student = build_lab(lab, tmp / "student.ipynb")
    out = tmp / "student-run.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="CheckFailed"):
        papermill.execute_notebook(
            str(student),
            str(out),
            parameters={"PREFIX": prefix},
            progress_bar=False,
            cwd=ROOT,
            allow_errors=True,  # keep going, so that every check runs
        )
    results = check_outputs(out)
    assert len(results) == len(hints)
    for result, found in zip(results, hints, strict=True):
        assert result["error"] is not None, f"a check passed without its exercise: {found}"
        assert result["error"]["ename"] == "CheckFailed"
        message = result["error"]["evalue"]
        assert found in message, message
        assert FIRST_HINT in message, f"not the first tier of a hint: {message}"
        assert "\n" not in message, f"a hint must be one line: {message!r}"
