"""The lab format and lab 01.

Pure logic first: the builder hides solutions, hints get more specific as an exercise
keeps failing. Then lab 01's graders on a local warehouse (exercise 4's on the stack: it
counts S3 requests): each typical mistake gets its own ``found`` text, and ``lab.reset``
rebuilds one exercise. Last, both versions of
the lab notebook run with papermill against the stack: the solution passes every
check, the student version fails each with its ``found`` text and the first hint tier.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

import neuralake
from neuralake.catalog.pushdown import measure
from neuralake.errors import CheckFailed, NeuralakeError
from neuralake.lab.graders import build_lab, checks, find_labs, lab01
from neuralake.lab.graders.build import STUB_MARKER, assigned_names, stub
from neuralake.lab.graders.checks import Hint, expect, hint, reset_attempts
from neuralake.lab.graders.cli import app

ROOT = Path(__file__).resolve().parents[1]
LAB01 = ROOT / "labs" / "01_delta" / "01_delta.ipynb"

# What each check of lab 01 says it found when its exercise was not done.
LAB01_FOUND = [
    "changed_in is None",
    "the table holds 2 sessions, the data of version 3",
    "the table lacks 766 of the batch's 766 new spikes",
    "there is no table at lab.ex4.target_uri",
    "the gains are writer B's, without writer A's drift correction",
    "append_batch is None",
]

HINT = Hint(concept="Think.", api="Look up f().", call="f(x)")


# -- tiered hints (pure logic) -----------------------------------------------------------


def _fail(key: str, found: str = "found x", hint_: Hint = HINT) -> str:
    with pytest.raises(CheckFailed) as failure:
        expect(False, found, hint_, key=key)
    return str(failure.value)


def test_hints_get_more_specific_as_the_same_exercise_keeps_failing():
    reset_attempts("test.")
    more = " Run the check again for a more specific hint."
    assert _fail("test.ex1") == f"found x. Hint 1/3 (concept): Think.{more}"
    assert _fail("test.ex1") == f"found x. Hint 2/3 (api): Look up f().{more}"
    assert _fail("test.ex1") == "found x. Hint 3/3 (call): f(x)"
    assert _fail("test.ex1") == "found x. Hint 3/3 (call): f(x)"
    assert _fail("test.ex2").startswith("found x. Hint 1/3")  # other keys count apart
    expect(True, "never shown", HINT, key="test.ex3")
    assert checks.attempts("test.ex3") == 0  # a passing expect is not an attempt


def test_hint_on_request_and_resets():
    reset_attempts("test.")
    other = Hint(concept="C2.", api="A2.", call="c2()")
    _fail("test.ex1")
    _fail("test.ex1", "found y", other)
    assert hint("test.ex1") == "Hint 3/3 (call): c2()"  # the latest failure's hint
    assert hint("test.ex1", 1) == "Hint 1/3 (concept): C2."
    assert checks.attempts("test.ex1") == 2  # asking is not an attempt
    with pytest.raises(NeuralakeError, match="use 1, 2 or 3"):
        hint("test.ex1", 4)
    _fail("test.ex2")
    reset_attempts("test.ex1")
    assert checks.attempts("test.ex1") == 0 and checks.attempts("test.ex2") == 1
    with pytest.raises(NeuralakeError, match="run the exercise's check cell first"):
        hint("test.ex1")
    assert _fail("test.ex1").startswith("found x. Hint 1/3")


# -- the builder ----------------------------------------------------------------------------


def test_stub_keeps_the_instructions_and_nulls_what_the_check_reads():
    solution = "# Store the answer in changed_in.\nhelper = 41\nchanged_in = helper + 1\n"
    check = "lab01.check_changed_in(lab, changed_in)"
    assert stub(solution, check) == (
        f"# Store the answer in changed_in.\n{STUB_MARKER}\nchanged_in = None"
    )
    assert assigned_names("a, (b, c) = 1, (2, 3)\nd: int = 4\na += 1") == ["a", "b", "c", "d"]
    assert assigned_names("def f():\n    x = 1\nclass C: pass\ny = f") == ["f", "C", "y"]
    # Setting an attribute or an item changes an existing object: it binds no name, so the
    # student's own object must not be stubbed to None.
    assert assigned_names("x.checks = [1]\nd['k'] = 2\nfirst, *rest = [1, 2]") == ["first", "rest"]


def test_labs_are_found_and_paired_with_their_py():
    labs = find_labs()
    assert LAB01 in labs
    for source in labs:
        assert source.with_suffix(".py").exists(), f"{source} has no jupytext .py pair"


def test_student_version_has_no_solution_code(tmp_path):
    source = nbformat.read(LAB01, as_version=4)
    solutions = [c for c in source.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) == len(LAB01_FOUND) >= 5
    student = nbformat.read(build_lab(LAB01, tmp_path / "lab.ipynb"), as_version=4)
    assert len(student.cells) == len(source.cells)
    exercises = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    assert len(exercises) == len(solutions)
    student_lines = {ln.strip() for c in student.cells for ln in c.source.splitlines()}
    shared = {  # lines such as "storage_options=s.storage_options," that cells share
        ln.strip() for c in source.cells if c not in solutions for ln in c.source.splitlines()
    }
    for cell in solutions:
        code = {ln.strip() for ln in cell.source.splitlines() if not ln.startswith("#")}
        assert not (code - shared) & student_lines, "solution code in the student version"
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


# -- what every lab object shares (neuralake.lab.graders.base) -------------------------------------


def test_a_lab_names_its_attempt_keys_and_owns_only_its_declared_tables(tmp_path):
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp_path / "wh").as_uri(), state_dir=tmp_path
    )
    assert lab01.Lab01.key("ex3") == "lab01.ex3"
    with pytest.raises(NeuralakeError, match="'ex9_gains' is not one of lab 01's tables"):
        lab01.Lab01.fresh_table(settings, "t_", "ex9_gains")
    uri = lab01.Lab01.fresh_table(settings, "t_", "ex5_gains")
    write_deltalake(uri, pl.DataFrame({"gain": [1.0]}))
    assert lab01.Lab01.fresh_table(settings, "t_", "ex5_gains") == uri
    assert not DeltaTable.is_deltatable(uri), "a fresh table starts empty"
    write_deltalake(uri, pl.DataFrame({"gain": [1.0]}))
    lab01.drop(settings, "t_")
    assert not DeltaTable.is_deltatable(uri), "drop deletes every table the lab declares"


def test_an_exercise_grades_through_its_own_key_and_names_a_missing_table(tmp_path):
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp_path / "wh").as_uri(), state_dir=tmp_path
    )
    grade = lab01.Lab01.grading("ex4")
    assert grade.key == "lab01.ex4"
    reset_attempts("lab01.")
    with pytest.raises(CheckFailed, match=r"spike_counts is None\. Hint 1/3"):
        grade.expect_a(None, dict, "spike_counts", HINT)
    with pytest.raises(CheckFailed, match=r"spike_counts is a list, not a dict\. Hint 2/3"):
        grade.expect_a([], dict, "spike_counts", HINT)
    assert checks.attempts("lab01.ex4") == 2
    run = lab01.Lab01(settings, "t_", 1, *[None] * len(lab01.Lab01.exercises))
    uri = settings.table_uri("t_nowhere")
    with pytest.raises(CheckFailed, match="there is no copy at t_nowhere: exercise 4 writes it"):
        run.read_table("ex4", uri, HINT, what="copy at t_nowhere", made_by="exercise 4 writes it")
    write_deltalake(uri, pl.DataFrame({"gain": [1.0]}))
    assert run.read_table("ex4", uri, HINT, what="copy", made_by="-").height == 1


def test_no_lab_notebook_starts_a_background_process_of_its_own():
    """Labs start things only through the stack and writer controls (control.up, roapi,
    the Spark session): never a process of their own that could outlive the kernel."""
    spawning = re.compile(r"processes\.start|Popen|os\.fork|os\.spawn|nohup|start_new_session")
    found = [
        f"{source.relative_to(ROOT)}:{number}"
        for source in sorted((ROOT / "labs").glob("*/*.py"))
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if spawning.search(line)
    ]
    assert not found, found


# -- lab 01's graders, on a local warehouse --------------------------------------------------


@pytest.fixture
def lab(tmp_path) -> lab01.Lab01:
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp_path / "wh").as_uri(), state_dir=tmp_path
    )
    return lab01.setup(settings)


def _options(lab: lab01.Lab01) -> dict[str, str] | None:
    return lab.storage_options or None


def _fails(check, *args, found: str) -> None:
    with pytest.raises(CheckFailed, match=re.escape(found)):
        check(*args)


def test_time_travel_graders_catch_the_wrong_version(lab):
    _fails(lab01.check_changed_in, lab, 1, found="version 1 did not change session 1's task")
    _fails(lab01.check_changed_in, lab, 9, found="changed_in=9 is not a version")
    DeltaTable(lab.ex2.uri, storage_options=_options(lab)).restore(0)
    _fails(lab01.check_restored, lab, found="the data of version 0")
    good = pl.read_delta(lab.ex2.uri, version=1)
    write_deltalake(lab.ex2.uri, good, mode="overwrite")
    _fails(lab01.check_restored, lab, found="is a WRITE, not a RESTORE")


def test_dedupe_grader_wants_every_spike_once_by_merge(lab):
    lesson_key = ["session_id", "timestamp"]  # a cursor event's key, not a spike's
    DeltaTable(lab.ex3.uri).merge(
        lab.ex3.batch.unique(subset=lesson_key),
        predicate="t.session_id = s.session_id AND t.timestamp = s.timestamp",
        source_alias="s",
        target_alias="t",
    ).when_not_matched_insert_all().execute()
    _fails(lab01.check_deduplicated, lab, found="the table lacks")
    lab.reset("ex3")
    table = DeltaTable(lab.ex3.uri)
    condition = " AND ".join(f"t.{c} = s.{c}" for c in lab01.SPIKE_KEY)
    merge = table.merge(lab.ex3.batch, predicate=condition, source_alias="s", target_alias="t")
    merge.when_not_matched_insert_all().execute()  # the batch's own copies were kept
    _fails(lab01.check_deduplicated, lab, found="spikes are in the table more than once")
    lab.reset("ex3")
    right = pl.concat([pl.read_delta(lab.ex3.uri), lab.ex3.batch]).unique()
    write_deltalake(lab.ex3.uri, right, mode="overwrite")
    _fails(lab01.check_deduplicated, lab, found="the commits since setup are ['WRITE']")


@pytest.fixture
def stack_lab(lab, stack_settings) -> Iterator[lab01.Lab01]:
    """Lab 01 with exercise 4 on the stack: its grader counts the S3 requests a query sends."""
    prefix = f"test_lab01_{uuid.uuid4().hex[:8]}_"
    ex4 = lab01.build_partition(stack_settings, prefix, lab.seed)
    yield dataclasses.replace(lab, settings=stack_settings, prefix=prefix, ex4=ex4)
    lab01.drop(stack_settings, prefix)


@pytest.mark.stack
def test_partition_grader_measures_the_scan(stack_lab):
    lab, options = stack_lab, stack_lab.storage_options
    _, reads = measure(lab01.dashboard_query(lab, lab.ex4.source_uri), lab.settings)
    files = len(DeltaTable(lab.ex4.source_uri, storage_options=options).file_uris())
    assert reads.files_opened == files > 1, "as set up, the query skips nothing"
    signals = pl.read_delta(lab.ex4.source_uri, storage_options=options)
    write_deltalake(lab.ex4.target_uri, signals, storage_options=options)
    _fails(lab01.check_partitioned, lab, 0, found="partitioned by [], the query for session 2")
    repartition = {"mode": "overwrite", "schema_mode": "overwrite", "storage_options": options}
    write_deltalake(lab.ex4.target_uri, signals, partition_by=["channel"], **repartition)
    _fails(lab01.check_partitioned, lab, 0, found="the copy has 256 files")
    write_deltalake(lab.ex4.target_uri, signals, partition_by=["session_id"], **repartition)
    _fails(lab01.check_partitioned, lab, 4, found="files_skipped=4, but the query skipped 3 of 4")
    lab01.check_partitioned(lab, 3)


def test_conflict_grader_catches_lost_and_doubled_changes(lab):
    stale = pl.read_delta(lab.ex5.uri, version=0).with_columns(pl.col("gain") * lab01.DRIFT)
    write_deltalake(lab.ex5.uri, stale, mode="overwrite")
    _fails(lab01.check_conflict_resolved, lab, found="writer B's x2 on channels 0-7 is lost")
    lab.reset("ex5")
    for _ in range(2):
        DeltaTable(lab.ex5.uri).update(updates={"gain": f"gain * {lab01.DRIFT}"})
    _fails(lab01.check_conflict_resolved, lab, found="writer A's change landed twice")


def test_stream_grader_calls_the_students_function(lab):
    def append_without_txn(uri: str, batch_id: int, frame: pl.DataFrame) -> None:
        write_deltalake(uri, frame, mode="append")

    def append_what_is_new(uri: str, batch_id: int, frame: pl.DataFrame) -> None:
        new = frame.join(pl.read_delta(uri), on=lab01.SPIKE_KEY, how="anti")  # a scan per batch
        write_deltalake(uri, new, mode="append")

    for batch_id, frame in lab.ex6.replay:
        append_without_txn(lab.ex6.uri, batch_id, frame)
    _fails(lab01.check_idempotent, lab, append_without_txn, found="batches [2, 3] are in")
    lab.reset("ex6")
    for batch_id, frame in lab.ex6.replay:
        append_what_is_new(lab.ex6.uri, batch_id, frame)
    _fails(lab01.check_idempotent, lab, append_what_is_new, found="records batch 3 as app")


def test_reset_rebuilds_one_exercise_and_restarts_its_hints(lab):
    _fails(lab01.check_changed_in, lab, None, found="Hint 1/3")
    _fails(lab01.check_changed_in, lab, None, found="Hint 2/3")
    write_deltalake(lab.ex3.uri, lab.ex3.batch, mode="append")
    _fails(lab01.check_deduplicated, lab, found="Hint 1/3")
    lab.reset("ex3")
    assert DeltaTable(lab.ex3.uri).version() == 0
    _fails(lab01.check_deduplicated, lab, found="Hint 1/3")
    _fails(lab01.check_changed_in, lab, None, found="Hint 3/3")  # ex1 was not reset
    with pytest.raises(NeuralakeError, match="use one of ex1, ex2"):
        lab.reset("ex9")


# -- the notebooks, on the stack ---------------------------------------------------------------


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique table names, and the kernel pointed at the stack."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab01_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab01.drop(stack_settings, prefix)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix):
    assert_solution_passes_every_check(LAB01, lab_prefix, tmp_path, checks=len(LAB01_FOUND))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix):
    assert_student_fails_every_check(LAB01, lab_prefix, tmp_path, LAB01_FOUND)
