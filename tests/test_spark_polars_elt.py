"""The Polars twin of the Spark ELT on a hand-made bronze frame: no Spark, no stack."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from neuralake.catalog.examples import neuro
from neuralake.spark import compare, polars_elt

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _bronze() -> pl.LazyFrame:
    """Session 1: 4 rows, one of them sent twice, one with quality 1.5 (fails the check)."""
    rows = [
        # channel, voltage, spike, quality, offset, seconds after T0
        (0, 10.0, True, 0.9, 0, 0.0),
        (1, -10.0, False, 0.9, 1, 1.0),
        (0, 30.0, True, 1.5, 2, 2.0),
        (1, 20.0, False, 0.8, 3, 2.0),
        (1, 20.0, False, 0.8, 3, 2.0),  # the replayed message
    ]
    return pl.LazyFrame(
        {
            "timestamp": [T0 + timedelta(seconds=r[5]) for r in rows],
            "session_id": [1] * len(rows),
            "device_id": [1001] * len(rows),
            "patient_id": [1] * len(rows),
            "channel": [r[0] for r in rows],
            "voltage_uv": [r[1] for r in rows],
            "spike": [r[2] for r in rows],
            "quality": [r[3] for r in rows],
            "kafka_partition": [0] * len(rows),
            "kafka_offset": [r[4] for r in rows],
            "kafka_timestamp": [T0] * len(rows),
            "date": [date(2026, 11, 23)] * len(rows),
        },
        schema_overrides={
            "session_id": pl.Int32,
            "device_id": pl.Int32,
            "patient_id": pl.Int32,
            "channel": pl.Int16,
            "voltage_uv": pl.Float32,
            "quality": pl.Float32,
            "kafka_partition": pl.Int32,
        },
    )


def _dims() -> dict[str, pl.LazyFrame]:
    return {
        "sessions": pl.LazyFrame({"session_id": [1], "task": ["cursor"]}),
        "devices": pl.LazyFrame({"device_id": [1001], "firmware": ["2.1"]}),
        "patients": pl.LazyFrame({"patient_id": [1], "cohort": ["pilot"], "age_band": ["30-39"]}),
    }


def test_silver_drops_the_replayed_offset_and_the_row_failing_a_check():
    silver = polars_elt.clean(_bronze(), neuro.neural_signals.checks).collect()
    assert sorted(silver["kafka_offset"].to_list()) == [0, 1, 3]
    assert silver.schema["channel"] == pl.Int32 and silver.schema["quality"] == pl.Float64


def test_gold_is_one_row_per_session_day_with_its_dimensions():
    silver = polars_elt.clean(_bronze(), neuro.neural_signals.checks)
    gold = polars_elt.features(silver, **_dims()).collect()
    assert gold.columns == polars_elt.GOLD_COLUMNS
    row = gold.row(0, named=True)
    assert (row["samples"], row["channels"], row["spikes"]) == (3, 2, 1)
    assert row["mean_voltage_uv"] == 20.0 / 3
    assert row["spikes_per_channel_s"] == 1 / (2.0 * 2)  # 1 spike, 2 channels, 2 s
    assert (row["task"], row["firmware"], row["cohort"]) == ("cursor", "2.1", "pilot")


def test_rounded_fingerprints_forgive_the_last_bits_only():
    frame = pl.DataFrame({"x": [0.1 + 0.2], "n": [1]})
    same = pl.DataFrame({"x": [0.3], "n": [1]})
    assert compare.fingerprint(frame) != compare.fingerprint(same)
    assert compare.fingerprint(frame, decimals=6) == compare.fingerprint(same, decimals=6)
    other = pl.DataFrame({"x": [0.3001], "n": [1]})
    assert compare.fingerprint(frame, decimals=6) != compare.fingerprint(other, decimals=6)
