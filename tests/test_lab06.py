"""Lab 06: the graders' typical mistakes on the stack, then both versions of the lab run
against it: the solution passes every check, the student version fails each one with
what its grader found."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable as DeltaLog
from lab_runs import assert_solution_passes_every_check, assert_student_fails_every_check

import neuralake
from neuralake.errors import CheckFailed
from neuralake.lab.graders import lab06

ROOT = Path(__file__).resolve().parents[1]
LAB06 = ROOT / "labs" / "06_spark" / "06_spark.ipynb"

pytestmark = pytest.mark.stack

# What each check reports when its exercise was not done.
HINTS = [
    "duplicates is None",
    "there is no silver table",
    "channel_features_spark is None",
    "polars_channel_features is None",
    "merge_into_silver is None",
    "refresh_features is None",
    "run_incremental is None",
]


@pytest.fixture
def lab_prefix(stack_settings, monkeypatch) -> Iterator[str]:
    """Unique names, the kernel pointed at the stack, and the tables removed after."""
    monkeypatch.setenv("NEURALAKE_PROFILE", stack_settings.profile)
    prefix = f"test_lab06_{uuid.uuid4().hex[:8]}_"
    yield prefix
    lab06.drop(stack_settings, prefix)


def test_graders_name_the_typical_mistakes_without_spark(stack_settings, lab_prefix) -> None:
    """Counting every row as a duplicate, keeping the bad rows in silver, a Polars feature
    without deduplication: each is told apart by what the grader found. And a reset puts
    back one exercise's tables only."""
    lab = lab06.setup(stack_settings, prefix=lab_prefix, rows=4_000, with_spark=False)
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

    with pytest.raises(CheckFailed, match="no spark_features table"):
        lab06.check_agree(lab, without_dedupe, True)
    spark_features = lab.uri("spark_features")
    lab06.truth_features(lab).write_delta(spark_features, storage_options=opts)
    with pytest.raises(CheckFailed, match="differs from Spark's"):
        lab06.check_agree(lab, without_dedupe, True)
    right = lambda frame: lab06.channel_features(lab06.polars_elt.clean(frame, lab06.CHECKS))  # noqa: E731
    with pytest.raises(CheckFailed, match="agree is False, but the fingerprints are equal"):
        lab06.check_agree(lab, right, False)

    lab.reset("ex2")  # silver goes; exercise 6's silver, built with the batch, stays
    assert not DeltaLog.is_deltatable(lab.silver_uri, storage_options=opts)
    stale = pl.read_delta(lab.uri("ex6_features"), storage_options=opts)
    due = lab06.channel_features(pl.scan_delta(lab.uri("ex6_silver"), storage_options=opts))
    due = due.collect()
    fingerprint = lab06.compare.fingerprint  # exercise 6 starts from a stale feature table
    assert fingerprint(stale.select(due.columns), decimals=6) != fingerprint(due, decimals=6)


def test_incremental_graders_name_an_append_and_a_full_recompute(
    stack_settings, lab_prefix
) -> None:
    """With Spark: appending the batch to silver instead of merging it, and recomputing
    every feature row instead of the touched ones, each named by what the grader found."""
    from delta.tables import DeltaTable as SparkDelta
    from pyspark.sql import functions as F

    from neuralake.spark import elt

    lab = lab06.setup(stack_settings, prefix=lab_prefix, rows=4_000, with_spark=False)
    neuralake.spark.session(stack_settings)
    try:

        def append(batch, silver_path: str) -> None:
            clean = elt.clean(batch, elt.row_checks(lab06.CHECKS))
            clean.write.format("delta").mode("append").save(silver_path)

        with pytest.raises(CheckFailed, match=re.escape("commits ['WRITE'], not a MERGE")):
            lab06.check_merge_silver(lab, append)

        def everything(batch, silver_path: str, features_path: str) -> None:
            spark = batch.sparkSession
            fresh = (
                spark.read.format("delta")
                .load(silver_path)
                .groupBy(*lab06.FEATURE_KEY)
                .agg(
                    F.count(F.lit(1)).alias("samples"),
                    F.sum(F.col("spike").cast("long")).alias("spikes"),
                    F.sqrt(F.avg(F.col("voltage_uv") * F.col("voltage_uv"))).alias("rms_uv"),
                )
            )
            on = " AND ".join(f"f.{c} = n.{c}" for c in lab06.FEATURE_KEY)
            (
                SparkDelta.forPath(spark, features_path)
                .alias("f")
                .merge(fresh.alias("n"), on)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )

        with pytest.raises(CheckFailed, match=r"the MERGE read (\d+) feature rows; .* of \1\. "):
            lab06.check_refresh(lab, everything)
    finally:
        neuralake.spark.stop()


@pytest.mark.notebook
def test_solution_passes_every_check(tmp_path, lab_prefix) -> None:
    assert_solution_passes_every_check(LAB06, lab_prefix, tmp_path, checks=len(HINTS))


@pytest.mark.notebook
def test_student_version_fails_every_check_with_its_hint(tmp_path, lab_prefix) -> None:
    assert_student_fails_every_check(LAB06, lab_prefix, tmp_path, HINTS)
