"""Lab 03: the graders tell right from wrong, the solution passes, the student version fails.

The grader tests run single exercises on the stack with plain deltalake (no writer
process); the notebook tests run both versions of the lab with papermill, which starts
the Rust writer for real.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.errors import CheckFailed
from neuralake.lab.graders import build_lab, lab03
from neuralake.streaming.schemas import app_id

ROOT = Path(__file__).resolve().parents[1]
LAB03 = ROOT / "labs" / "03_writer" / "03_writer.ipynb"
LAB04 = ROOT / "labs" / "04_kafka" / "04_kafka.ipynb"

# What each check found when its exercise was not done.
HINTS = [
    "resume_at is None",
    "has 0 commits with rows",
    "a one-partition read opens each one",
    "storage still holds",
    "compaction commits between its first and last writer commits",
]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique topic and table names, the kernel pointed at the stack, cleanup after."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab03_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab03.drop(stack_settings, prefix)


def _lab(settings, prefix: str, exercise: str) -> lab03.Lab03:
    """A lab with only ``exercise`` built (the graders of the others are not called)."""
    built = dict.fromkeys(lab03.Lab03.exercises)
    built[exercise] = lab03.BUILDERS[exercise](settings, prefix)
    return lab03.Lab03(settings, prefix, **built)


@pytest.mark.stack
def test_row_accounting_passes_compaction_and_catches_a_lost_row(stack_settings, lab_prefix):
    lab = _lab(stack_settings, lab_prefix, "ex5")
    options, uri = stack_settings.storage_options, lab.ex5.uri
    with pytest.raises(CheckFailed, match="has 0 compaction commits between") as failure:
        lab03.check_no_row_lost(lab)
    assert "Hint 1/3" in str(failure.value)
    with pytest.raises(CheckFailed, match="Hint 2/3"):  # the same failure, a closer hint
        lab03.check_no_row_lost(lab)
    # Writer-like commits (rows + txn), with compactions in between.
    day = datetime.now(UTC).date()
    for batch in range(4):
        rows = lab03.bronze_rows(500, day, first_offset=batch * 500)
        txn = Transaction(app_id("neuralake-writer", lab.ex5.topic, 0), batch * 500 + 499)
        write_deltalake(
            uri,
            rows,
            mode="append",
            partition_by=["date"],
            storage_options=options,
            commit_properties=CommitProperties(app_transactions=[txn]),
        )
        if batch in (1, 2):
            DeltaTable(uri, storage_options=options).optimize.compact()
    versions = lab03.version_rows(uri, options)
    assert versions["rows"].to_list() == [500, 1000, 1000, 1500, 1500, 2000]
    # The topic is empty, so the last check (messages = rows + dead letters) must fail.
    with pytest.raises(CheckFailed, match="the topic holds 0 messages; the table has 2,000"):
        lab03.check_no_row_lost(lab)
    DeltaTable(uri, storage_options=options).delete("kafka_offset < 10")  # a row-losing commit
    with pytest.raises(CheckFailed, match=r"versions \[6\] changed the row count"):
        lab03.check_no_row_lost(lab)


@pytest.mark.stack
def test_flush_grader_wants_enough_commits_for_a_p90(stack_settings, lab_prefix):
    lab = _lab(stack_settings, lab_prefix, "ex2")
    options, uri = stack_settings.storage_options, lab.ex2.uri
    with pytest.raises(CheckFailed, match="has 0 commits with rows"):
        lab03.check_flush(lab)
    day = datetime.now(UTC).date()
    for batch in range(6):  # a long flush: a handful of commits in the whole run
        rows = lab03.bronze_rows(100, day, first_offset=batch * 100)
        write_deltalake(uri, rows, mode="append", partition_by=["date"], storage_options=options)
    with pytest.raises(
        CheckFailed, match="made 5 commits after its first; a p90 needs at least 20"
    ):
        lab03.check_flush(lab)


@pytest.mark.stack
def test_compaction_grader_wants_the_hot_partition_small_and_the_cold_one_untouched(
    stack_settings, lab_prefix, capsys
):
    lab = _lab(stack_settings, lab_prefix, "ex3")
    options, uri = stack_settings.storage_options, lab.ex3.uri
    hot = lab.ex3.hot_files
    with pytest.raises(CheckFailed, match=rf"is in {hot} files"):
        lab03.check_compacted(lab)
    # The default target (far above every file) compacts yesterday's partition too.
    DeltaTable(uri, storage_options=options).optimize.compact()
    with pytest.raises(CheckFailed, match=re.escape("yesterday's partition (date=")):
        lab03.check_compacted(lab)
    lab.reset("ex3")
    cold = pl.DataFrame(
        DeltaTable(uri, storage_options=options).get_add_actions(flatten=True)
    ).filter(pl.col("partition.date") == lab.ex3.cold_day)
    target = int(cold["size_bytes"].min()) - 1  # every file of yesterday is "big enough"
    DeltaTable(uri, storage_options=options).optimize.compact(target_size=target)
    lab03.check_compacted(lab)
    assert "yesterday's" in capsys.readouterr().out


@pytest.mark.stack
def test_vacuum_grader_catches_both_too_short_and_too_long_retentions(stack_settings, lab_prefix):
    lab = _lab(stack_settings, lab_prefix, "ex4")
    options, uri = stack_settings.storage_options, lab.ex4.uri
    with pytest.raises(CheckFailed, match=r"storage still holds \d+ of the \d+ files"):
        lab03.check_vacuumed(lab)
    DeltaTable(uri, storage_options=options).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    with pytest.raises(CheckFailed, match=rf"version {lab.ex4.keep_version} no longer reads"):
        lab03.check_vacuumed(lab)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix):
    assert_solution_passes_every_check(LAB03, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix):
    assert_student_fails_every_check(LAB03, lab_prefix, tmp_path, HINTS)


def _chosen_numbers(code: str) -> set[int | float]:
    """The numbers a solution writes down itself (100 and up: settings, not indices)."""
    return {
        node.value
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and node.value >= 100
    }


@pytest.mark.parametrize("lab", [LAB03, LAB04], ids=["lab03", "lab04"])
def test_student_stubs_keep_the_task_not_the_numbers_the_solution_chose(tmp_path, lab):
    """A solution's leading comments are kept for the student: they must say what to do,
    never the value chosen (lab 03's flush of 800 ms once leaked this way)."""
    source = nbformat.read(lab, as_version=4)
    solutions = [c.source for c in source.cells if "solution" in c.metadata.get("tags", [])]
    student = nbformat.read(build_lab(lab, tmp_path / "student.ipynb"), as_version=4)
    stubs = [c.source for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(stubs) == len(solutions) >= 5
    for solution, stub in zip(solutions, stubs, strict=True):
        for number in _chosen_numbers(solution):
            spellings = {f"{number}", f"{number:_}", f"{number:,}"}
            found = [s for s in spellings if re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", stub)]
            assert not found, f"the student's stub gives the solution's {number}:\n{stub}"
