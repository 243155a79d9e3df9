"""The synthetic tables' schemas, declared once so the catalog can import them without I/O.

Every timestamp is ``Datetime("us", "UTC")``. A timezone-naive column would be written as
Delta's ``timestampNtz`` type, which raises the table protocol to reader 3 / writer 7;
Spark and ROAPI read that badly, so the generator never produces one.

Ids are integers, not strings: they are cheap to generate (the signal generator makes
tens of millions of rows per second) and cheap to join on.
"""

from __future__ import annotations

import polars as pl

UTC_MICROS = pl.Datetime("us", "UTC")

PATIENTS = pl.Schema(
    {
        "patient_id": pl.Int32(),
        "code": pl.String(),  # a pseudonym such as "P0001": never a real name
        "cohort": pl.String(),
        "age_band": pl.String(),
        "enrolled_at": UTC_MICROS,
    }
)

DEVICES = pl.Schema(
    {
        "device_id": pl.Int32(),
        "serial": pl.String(),
        "patient_id": pl.Int32(),
        "channels": pl.Int16(),
        "firmware": pl.String(),
        "implanted_at": UTC_MICROS,
    }
)

SESSIONS = pl.Schema(
    {
        "session_id": pl.Int32(),
        "patient_id": pl.Int32(),
        "device_id": pl.Int32(),
        "task": pl.String(),
        "started_at": UTC_MICROS,
        "ended_at": UTC_MICROS,
        "sample_rate_hz": pl.Int32(),
        "channels": pl.Int16(),
        "samples": pl.Int64(),  # time steps; neural_signals has samples * channels rows
    }
)

NEURAL_SIGNALS = pl.Schema(
    {
        "timestamp": UTC_MICROS,
        "session_id": pl.Int32(),
        "device_id": pl.Int32(),
        "patient_id": pl.Int32(),
        "channel": pl.Int16(),
        "voltage_uv": pl.Float32(),
        "spike": pl.Boolean(),  # True at the trough of a neural spike (never for an artifact)
        "quality": pl.Float32(),  # 0 (unusable) to 1 (clean); low during artifacts
    }
)

CURSOR_EVENTS = pl.Schema(
    {
        "timestamp": UTC_MICROS,
        "session_id": pl.Int32(),
        "x": pl.Float32(),  # screen position, 0 to 1
        "y": pl.Float32(),
        "vx": pl.Float32(),  # screen widths per second
        "vy": pl.Float32(),
        "target_id": pl.Int32(),
        "on_target": pl.Boolean(),
    }
)

SCHEMAS: dict[str, pl.Schema] = {
    "patients": PATIENTS,
    "devices": DEVICES,
    "sessions": SESSIONS,
    "neural_signals": NEURAL_SIGNALS,
    "cursor_events": CURSOR_EVENTS,
}
