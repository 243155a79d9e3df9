"""Lab 06: the graders' typical mistakes on the stack, then both versions of the lab run
against it: the solution passes every check, the student version fails each one with
what its grader found."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

from neuralake.errors import CheckFailed
from neuralake.labs import lab06

ROOT = Path(__file__).resolve().parents[1]
LAB06 = ROOT / "labs" / "06_spark" / "06_spark.ipynb"

pytestmark = pytest.mark.stack

# What each check reports when its exercise was not done.
HINTS = [
    "duplicates is None",
    "there is no silver table",
    "channel_features_spark is None",
    "update_features is None",
    "polars_channel_features is None",
]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and the tables removed after."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab06_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab06.drop(stack_settings, prefix)


def test_graders_name_the_typical_mistakes_without_spark(stack_settings, lab_prefix) -> None:
    """Counting every row as a duplicate, keeping the replay in silver, a Polars feature
    without deduplication: each is told apart by what the grader found."""
    lab = lab06.setup(stack_settings, prefix=lab_prefix, rows=4_000)
    opts = stack_settings.storage_options
    bronze = pl.scan_delta(lab.bronze_uri, storage_options=opts)
    with pytest.raises(CheckFailed, match="duplicates is 0"):
        lab06.check_duplicates(lab, 0)
    lab06.check_duplicates(lab, lab.replayed)  # the replay is the only duplication

    typed = lab06.polars_elt.to_silver(bronze).collect()  # deduplicated, not checked
    typed.write_delta(lab.silver_uri, storage_options=opts)
    with pytest.raises(CheckFailed, match=f"keeps {lab.bad} rows with quality outside"):
        lab06.check_silver(lab)

    def without_dedupe(frame: pl.LazyFrame) -> pl.DataFrame:
        return lab06.channel_features(frame.cast({"channel": pl.Int32})).collect()

    lab06.truth_features(lab).write_delta(lab.features_uri, storage_options=opts)
    with pytest.raises(CheckFailed, match="differs from Spark's"):
        lab06.check_agree(lab, without_dedupe, True)
    right = lambda frame: lab06.channel_features(lab06.polars_elt.clean(frame, lab06.CHECKS))  # noqa: E731
    with pytest.raises(CheckFailed, match="agree is False, but the fingerprints are equal"):
        lab06.check_agree(lab, right, False)


@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB06, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB06, lab_prefix, tmp_path, HINTS)
