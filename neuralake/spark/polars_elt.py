"""The ELT's silver and gold transform in Polars: the same rows as :mod:`.elt`, on one machine.

Lesson 06 runs both engines on one bronze table and times them; lab 06 asks the student
to prove they agree. Each function mirrors the Spark function of the same name:

- :func:`to_silver`: one row per ``(kafka_partition, kafka_offset)``, channel Int32,
  voltage and quality Float64 (as :func:`neuralake.spark.elt.to_silver`);
- :func:`row_checks` / :func:`clean`: the catalog's per-row checks as predicates, and
  silver without the rows that fail them (as :func:`neuralake.spark.elt.clean`);
- :func:`features`: per ``(session_id, date)`` statistics joined with the sessions,
  devices and patients tables (as :func:`neuralake.spark.elt.features`).

Spark adds floats in another order than Polars, so means and standard deviations can
differ in the last bits: compare gold with ``compare.fingerprint(frame, decimals=6)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from neuralake.spark import catalog as spark_catalog

KEY = ["kafka_partition", "kafka_offset"]
GOLD_KEY = ["session_id", "date"]
GOLD_COLUMNS = list(spark_catalog.SESSION_FEATURES)  # declared, in order


def row_checks(checks: Iterable) -> list[pl.Expr]:
    """Polars predicates a good row satisfies, from the catalog's per-row checks.

    Each per-row check (``NotNull``, ``Range``, ``AcceptedValues``) says it itself with
    ``row_ok()``; a null passes ``Range`` and ``AcceptedValues``, exactly as in the Spark
    job; table-level checks (``Unique``, ``Freshness``) say nothing about one row: skipped.
    """
    return [check.row_ok() for check in checks if hasattr(check, "row_ok")]


def to_silver(bronze: pl.LazyFrame) -> pl.LazyFrame:
    """Bronze rows, typed for every reader, one per Kafka offset (duplicates dropped)."""
    return bronze.unique(KEY, keep="any").select(
        "timestamp",
        "session_id",
        "device_id",
        "patient_id",
        pl.col("channel").cast(pl.Int32),
        pl.col("voltage_uv").cast(pl.Float64),
        "spike",
        pl.col("quality").cast(pl.Float64),
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "date",
    )


def clean(bronze: pl.LazyFrame, checks: Iterable) -> pl.LazyFrame:
    """Silver: typed, deduplicated, and only the rows that pass every per-row check."""
    return to_silver(bronze).filter(pl.all_horizontal(pl.lit(True), *row_checks(checks)))


def features(
    silver: pl.LazyFrame, sessions: pl.LazyFrame, devices: pl.LazyFrame, patients: pl.LazyFrame
) -> pl.LazyFrame:
    """Per (session, day): volume, spike rate, voltage statistics, joined with dimensions."""
    per_day = silver.group_by(GOLD_KEY).agg(
        samples=pl.len().cast(pl.Int64),
        channels=pl.col("channel").n_unique().cast(pl.Int32),
        spikes=pl.col("spike").cast(pl.Int64).sum(),
        first_sample=pl.col("timestamp").min(),
        last_sample=pl.col("timestamp").max(),
        mean_voltage_uv=pl.col("voltage_uv").mean(),
        std_voltage_uv=pl.col("voltage_uv").std(ddof=1),
        mean_quality=pl.col("quality").mean(),
        device_id=pl.col("device_id").first(),
        patient_id=pl.col("patient_id").first(),
    )
    seconds = (pl.col("last_sample") - pl.col("first_sample")).dt.total_microseconds() / 1e6
    return (
        per_day.with_columns(
            spikes_per_channel_s=pl.when(seconds > 0).then(
                pl.col("spikes") / (seconds * pl.col("channels"))
            )
        )
        .join(sessions.select("session_id", "task"), on="session_id", how="left")
        .join(devices.select("device_id", "firmware"), on="device_id", how="left")
        .join(patients.select("patient_id", "cohort", "age_band"), on="patient_id", how="left")
        .select(GOLD_COLUMNS)
    )
