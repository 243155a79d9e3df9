"""Lab 05: the graders' typical mistakes on the stack, then both versions of the lab run
against it: the solution passes every check, the student version fails each one with
what its grader found. The graders start their own ROAPI; the stack's is not touched."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.catalog import DeltalakeTable
from neuralake.errors import CheckFailed
from neuralake.lab.graders import lab05

ROOT = Path(__file__).resolve().parents[1]
LAB05 = ROOT / "labs" / "05_api" / "05_api.ipynb"

pytestmark = pytest.mark.stack

# What each check reports when its exercise was not done.
HINTS = [
    "there is no summary table",
    "declared is None",
    "top_spike_rate is None",
    "a session's query opened up to",
    "fast_table is None",
]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and the tables removed after."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab05_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab05.drop(stack_settings, prefix)


@pytest.fixture
def small_lab(stack_settings, lab_prefix) -> lab05.Lab05:
    return lab05.setup(stack_settings, prefix=lab_prefix, rows=8_000)


def test_summary_grader_names_partitioning_and_wrong_numbers(stack_settings, small_lab) -> None:
    lab = small_lab
    opts = stack_settings.storage_options
    right = lab05.truth(lab)
    right.write_delta(
        lab.summary_uri,
        storage_options=opts,
        delta_write_options={"partition_by": ["session_id"]},
    )
    with pytest.raises(CheckFailed, match="partitioned by"):
        lab05.check_summary(lab)
    lab.reset("ex1")  # drops the summary table, and only it
    assert DeltaTable.is_deltatable(lab.serving_uri, storage_options=opts)
    wrong = right.with_columns(pl.col("spikes") + 1)
    wrong.write_delta(lab.summary_uri, storage_options=opts)
    with pytest.raises(CheckFailed, match="numbers differ"):
        lab05.check_summary(lab)
    right.with_columns(pl.col("channel").cast(pl.Int32)).write_delta(
        lab.summary_uri, mode="overwrite", storage_options=opts
    )
    lab05.check_summary(lab)  # an Int32 channel, as lessons 06 and 08 serve it, is right


def test_modes_grader_names_each_wrong_mode(small_lab) -> None:
    lab = small_lab
    right = {
        lab.bronze: DeltalakeTable(lab.bronze, partition_columns=["date"]),
        lab.serving: DeltalakeTable(lab.serving, roapi_memory_table=True),
        lab.devices: DeltalakeTable(lab.devices, roapi_memory_table=True),
        lab.alerts: DeltalakeTable(lab.alerts),
    }
    wrongs = [
        (lab.bronze, DeltalakeTable(lab.bronze), "partition columns []"),
        (
            lab.bronze,
            DeltalakeTable(lab.bronze, partition_columns=["date"], roapi_memory_table=True),
            "partitioned by date) is declared in memory",
        ),
        (lab.serving, DeltalakeTable(lab.serving), "is declared as a provider"),
        (lab.alerts, DeltalakeTable(lab.alerts, roapi_memory_table=True), "for good"),
    ]
    for name, table, found in wrongs:
        with pytest.raises(CheckFailed, match=re.escape(found)):
            lab05.check_modes(lab, list({**right, name: table}.values()))
    with pytest.raises(CheckFailed, match="declared names"):
        lab05.check_modes(lab, list(right.values())[:3])


def test_rates_grader_names_integer_division(small_lab) -> None:
    lab = small_lab

    def integer_rates(postgres: str, session_id: int, n: int = 5) -> list[tuple[int, float]]:
        host, port = postgres.rsplit(":", 1)
        sql = (
            f"SELECT channel, spikes / samples AS rate FROM {lab.serving} "
            f"WHERE session_id = {session_id} ORDER BY rate DESC, channel LIMIT {n}"
        )
        out = subprocess.run(
            ["psql", f"host={host} port={port} user=roapi dbname=roapi sslmode=disable",
             "--no-psqlrc", "-At", "-F,", "-c", sql],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return [(int(c), float(r)) for c, r in (line.split(",") for line in out.splitlines())]

    with pytest.raises(CheckFailed, match="every rate top_spike_rate"):
        lab05.check_rates(lab, integer_rates)


def test_layout_grader_refuses_compaction_alone_and_reset_restores_the_files(
    stack_settings, small_lab
) -> None:
    lab = small_lab
    opts = stack_settings.storage_options
    DeltaTable(lab.layout_uri, storage_options=opts).optimize.compact()
    with pytest.raises(CheckFailed, match=r"opened up to (\d+) of the table's \1 files"):
        lab05.check_layout(lab)
    lab.reset("ex4")
    files = len(DeltaTable(lab.layout_uri, storage_options=opts).file_uris())
    assert files == lab05.LAYOUT_COMMITS


def test_budget_grader_measures_a_provider_over_budget(small_lab) -> None:
    """The same right answers from the summary as a provider: the grader's own timing
    puts it over the budget that the memory table meets (the solution's run)."""
    lab = small_lab

    def channel_spikes(client, session_id: int) -> pl.DataFrame:
        return client.sql(
            f"SELECT channel, spikes FROM {lab.serving} "
            f"WHERE session_id = {session_id} ORDER BY channel"
        )

    with pytest.raises(CheckFailed, match=r"\(provider\): p50 [0-9.]+ ms"):
        lab05.check_budget(lab, DeltalakeTable(lab.serving), channel_spikes)


@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB05, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB05, lab_prefix, tmp_path, HINTS)
