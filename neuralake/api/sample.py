"""Bronze-shaped rows without Kafka: to fill a table to benchmark size in seconds.

The writer's bronze table (:data:`neuralake.streaming.schemas.BRONZE`) grows by a few
thousand rows a second; a latency benchmark on 10 million rows cannot wait for that. The
rows here have the same schema and partitioning, so the writer keeps appending to the
table afterwards (both are delta-rs writers with conditional puts: no lost commits).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from neuralake.streaming.schemas import BRONZE

CHANNELS = 64  # channels per session
SESSIONS = 100  # session ids 1..SESSIONS


def bronze_rows(rows: int, seed: int = 0, start: datetime | None = None) -> pl.DataFrame:
    """``rows`` rows shaped like the writer's bronze table, one sample per 50 us."""
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 11, 23, tzinfo=UTC)
    step = np.arange(rows, dtype=np.int64)
    session = rng.integers(1, SESSIONS + 1, rows, dtype=np.int32)
    timestamps = pl.Series(np.datetime64(start.replace(tzinfo=None), "us") + step * 50)
    frame = pl.DataFrame(
        {
            "timestamp": timestamps.dt.replace_time_zone("UTC"),
            "session_id": session,
            "device_id": (session % 10 + 1).astype(np.int32),
            "patient_id": (session % 25 + 1).astype(np.int32),
            "channel": (step % CHANNELS).astype(np.int16),
            "voltage_uv": rng.normal(0, 40, rows).astype(np.float32),
            "spike": rng.random(rows) < 0.01,
            "quality": rng.uniform(0.8, 1.0, rows).astype(np.float32),
            "kafka_partition": np.zeros(rows, dtype=np.int32),
            "kafka_offset": step,
            "kafka_timestamp": timestamps.dt.replace_time_zone("UTC"),
        }
    )
    frame = frame.with_columns(pl.col("timestamp").dt.date().alias("date"))
    return frame.cast(BRONZE).select(list(BRONZE))


def day(offset: int) -> datetime:
    """Midnight UTC ``offset`` days after the sample data's first day."""
    return datetime(2026, 11, 23, tzinfo=UTC) + timedelta(days=offset)
