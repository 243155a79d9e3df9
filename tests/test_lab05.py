"""Lab 05: the graders' typical mistakes on the stack, then both versions of the lab run
against it: the solution passes every check, the student version fails each one with
what its grader found."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.api.serve import unserve
from neuralake.catalog import DeltalakeTable
from neuralake.errors import CheckFailed
from neuralake.labs import lab05
from neuralake.stack.services import roapi_config_path

ROOT = Path(__file__).resolve().parents[1]
LAB05 = ROOT / "labs" / "05_api" / "05_api.ipynb"

pytestmark = pytest.mark.stack

# What each check reports when its exercise was not done.
HINTS = [
    "there is no summary table",
    "bronze_table is None",
    "does not serve",
    "psql_rows is None",
    "channel_spikes is None",
]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and the tables removed after."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab05_{uuid.uuid4().hex[:8]}_"
    yield prefix
    config = roapi_config_path(stack_settings)
    if config.exists() and prefix in config.read_text():  # ROAPI would not start again
        unserve(stack_settings)
    lab05.drop(stack_settings, prefix)


def test_summary_grader_names_partitioning_and_wrong_numbers(stack_settings, lab_prefix) -> None:
    lab = lab05.setup(stack_settings, prefix=lab_prefix, rows=4_000)
    opts = stack_settings.storage_options
    right = lab05.truth(lab)
    right.write_delta(
        lab.summary_uri,
        storage_options=opts,
        delta_write_options={"partition_by": ["session_id"]},
    )
    with pytest.raises(CheckFailed, match="partitioned by"):
        lab05.check_summary(lab)
    lab.reset("ex1")  # drops the summary table
    wrong = right.with_columns(pl.col("spikes") + 1)
    wrong.write_delta(lab.summary_uri, storage_options=opts)
    with pytest.raises(CheckFailed, match="numbers differ"):
        lab05.check_summary(lab)


def test_declare_grader_refuses_memory_mode_for_the_bronze_table(stack_settings) -> None:
    lab = lab05.Lab05(stack_settings, "x_", "x_bronze", "x_channel_summary", session=7)
    bronze = DeltalakeTable("x_bronze", partition_columns=["date"], roapi_memory_table=True)
    summary = DeltalakeTable("x_channel_summary", roapi_memory_table=True)
    with pytest.raises(CheckFailed, match="memory mode is True for bronze"):
        lab05.check_declared(lab, bronze, summary)


@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB05, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB05, lab_prefix, tmp_path, HINTS)
