"""Lab 02: the graders give specific hints, the solution passes, the student version fails.

Grader tests run on a local warehouse; the notebook tests run both versions of the lab
with papermill against the stack, as tests/test_labs.py does for lab 01.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path

import polars as pl
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

import neuralake
from neuralake import delta
from neuralake.catalog import Column, DeltaTable, Filter, NotNull, Range
from neuralake.errors import CheckFailed
from neuralake.labs import catalog_checks as grade

ROOT = Path(__file__).resolve().parents[1]
LAB02 = ROOT / "labs" / "02_catalog" / "02_catalog.ipynb"

# The hint each check gives when its exercise was not done.
HINTS = [
    "spike_counts is None: declare it",
    "session_two is None",
    "checks is None",
    "site_index is None",
]

SCHEMA = {
    "session_id": Column(pl.Int32, "Session."),
    "channel": Column(pl.Int16, "Channel."),
    "spikes": Column(pl.Int64, "Spikes."),
    "mean_quality": Column(pl.Float64, "Quality."),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> grade.Lab02:
    tmp = tmp_path_factory.mktemp("lab02")
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp / "wh").as_uri(), state_dir=tmp
    )
    return grade.setup(settings, rows=50_000)


def _table(lab: grade.Lab02, **changes) -> DeltaTable:
    fields = {
        "uri": lab.uri,
        "description": "Spikes per session and channel, one row each.",
        "schema": SCHEMA,
        "partition_columns": ["session_id"],
        "docs_filters": [Filter("session_id", "=", 1)],
    }
    return DeltaTable("spike_counts", **{**fields, **changes})


def test_a_good_declaration_passes(lab, capsys) -> None:
    grade.check_declared(lab, _table(lab))
    assert capsys.readouterr().out.startswith("PASSED: spike_counts is documented")


@pytest.mark.parametrize(
    ("changes", "hint"),
    [
        ({"uri": "elsewhere/spike_counts"}, "pass uri=lab.uri"),
        ({"description": "counts"}, "write a sentence"),
        ({"schema": {**SCHEMA, "channel": Column(pl.Int32, "c")}}, "channel is Int16, not Int32"),
        ({"schema": {**SCHEMA, "spikes": pl.Int64}}, "columns ['spikes'] have no description"),
        ({"schema": {k: v for k, v in SCHEMA.items() if k != "spikes"}}, "does not declare"),
        ({"partition_columns": []}, "partitioned by ['session_id']"),
        ({"docs_filters": [Filter("session_id", "=", 99)]}, "matches no rows"),
    ],
)
def test_declaration_mistakes_get_specific_hints(lab, changes, hint) -> None:
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        grade.check_declared(lab, _table(lab, **changes))


def test_filter_grader_wants_lazy_pruned_and_right_rows(lab) -> None:
    table = _table(lab)
    right = table.scan(filters=[Filter("session_id", "=", 2), Filter("channel", "<", 8)])
    grade.check_filtered(lab, right)
    with pytest.raises(CheckFailed, match="keep it lazy"):
        grade.check_filtered(lab, right.collect())
    with pytest.raises(CheckFailed, match="filter on session_id and channel"):
        grade.check_filtered(lab, table.scan(filters=[Filter("session_id", "=", 2)]))
    # Right rows, but through an expression no file statistics can answer: all files open.
    by_value = table.scan().filter(
        ((pl.col("session_id") + pl.col("channel") * 0) == 2) & (pl.col("channel") < 8)
    )
    with pytest.raises(CheckFailed, match="the scan opened all 4 files"):
        grade.check_filtered(lab, by_value)


def test_quality_grader_needs_checks_that_catch_bad_rows(lab) -> None:
    table = _table(lab)
    weak = [NotNull("spikes")]
    table.checks = weak
    with pytest.raises(CheckFailed, match="let a negative spike count through"):
        grade.check_quality(lab, table, weak)
    wrong = [NotNull("spikes"), Range("spikes", min=0, max=1)]
    table.checks = wrong
    with pytest.raises(CheckFailed, match="fail on the real data"):
        grade.check_quality(lab, table, wrong)
    good = [NotNull("spikes"), Range("spikes", min=0)]
    with pytest.raises(CheckFailed, match=r"attach it with spike_counts\.checks = checks"):
        grade.check_quality(lab, table, good)
    table.checks = good
    grade.check_quality(lab, table, good)


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> str:
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab02_{uuid.uuid4().hex[:8]}_"
    yield prefix
    delta.drop_table(stack_settings.table_uri(prefix + grade.TABLE), stack_settings.storage_options)


@pytest.mark.stack
@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB02, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.stack
@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB02, lab_prefix, tmp_path, HINTS)
