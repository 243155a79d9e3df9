"""The lab's neuro study: recordings from implanted devices, as one Python module.

Each table below is a declaration: where the data lives, what every column means, who
owns it, which checks it must pass and what it is built from. ``ModuleDatabase(neuro)``
turns this file into a database; the site, the ROAPI config and the tests all read it.
Create the data with ``neuralake.catalog.examples.seed.seed(settings)``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from neuralake.catalog import (
    AcceptedValues,
    Column,
    DeltalakeTable,
    Filter,
    Freshness,
    NotNull,
    PostgresTable,
    Range,
    Unique,
    table,
)
from neuralake.datagen import schemas
from neuralake.datagen.simulation import TASKS

#: Where the tables live inside the warehouse: ``settings().table_uri("catalog/...")``.
PREFIX = "catalog/"


def _described(schema: pl.Schema, **descriptions: str) -> dict[str, Column]:
    """Pair the generator's declared types with a description for every column."""
    missing = set(schema) - set(descriptions)
    if missing:
        raise ValueError(f"describe every column: missing {sorted(missing)}")
    return {name: Column(dtype, descriptions[name]) for name, dtype in schema.items()}


neural_signals = DeltalakeTable(
    "neural_signals",
    uri=PREFIX + "neural_signals",
    description="Raw voltage from every electrode channel, one row per channel per 100 µs "
    "sample (10 kHz). Partitioned by session so one session's data is a few files.",
    schema=_described(
        schemas.NEURAL_SIGNALS,
        timestamp="When the sample was taken (UTC, microseconds).",
        session_id="The recording session (see sessions).",
        device_id="The implant that recorded it (see devices).",
        patient_id="The participant (see patients).",
        channel="Electrode channel, 0-based.",
        voltage_uv="Filtered voltage in microvolts.",
        spike="True at the trough of a detected neural spike.",
        quality="Signal quality, 0 (unusable) to 1 (clean); low during artifacts.",
    ),
    partition_columns=["session_id"],
    docs_filters=[Filter("session_id", "=", 1), Filter("spike", "=", True)],
    tags=["raw", "signals"],
    owner="neural-data@neuralake.dev",
    checks=[NotNull("voltage_uv"), Range("quality", min=0, max=1), NotNull("timestamp")],
)

sessions = DeltalakeTable(
    "sessions",
    uri=PREFIX + "sessions",
    description="One row per recording session: who, with which device, doing which task.",
    schema=_described(
        schemas.SESSIONS,
        session_id="Unique id of the session.",
        patient_id="The participant (see patients).",
        device_id="The implant used (see devices).",
        task="What the participant did: " + ", ".join(TASKS) + ".",
        started_at="Start of the recording (UTC).",
        ended_at="End of the recording (UTC).",
        sample_rate_hz="Samples per second per channel.",
        channels="Channels recorded.",
        samples="Time steps recorded; neural_signals has samples x channels rows.",
    ),
    docs_filters=[Filter("task", "=", "cursor_control")],
    tags=["sessions", "metadata"],
    owner="clinical-ops@neuralake.dev",
    upstream=["patients", "devices"],
    checks=[
        Unique("session_id"),
        NotNull("patient_id"),
        AcceptedValues("task", TASKS),
        Range("samples", min=1),
    ],
)

devices = DeltalakeTable(
    "devices",
    uri=PREFIX + "devices",
    description="Implanted devices: serial number, firmware and channel count.",
    schema=_described(
        schemas.DEVICES,
        device_id="Unique id of the device.",
        serial="Manufacturer serial number.",
        patient_id="The participant it is implanted in.",
        channels="Electrode channels on the device.",
        firmware="Firmware version at the time of the export.",
        implanted_at="Implant date (UTC).",
    ),
    docs_filters=[Filter("firmware", "in", ["1.4.2", "1.5.0"])],
    tags=["devices", "metadata"],
    owner="hardware@neuralake.dev",
    checks=[Unique("device_id"), NotNull("serial")],
)

cursor_events = DeltalakeTable(
    "cursor_events",
    uri=PREFIX + "cursor_events",
    description="Cursor position and velocity at 60 Hz: the label a decoder learns from.",
    schema=_described(
        schemas.CURSOR_EVENTS,
        timestamp="Screen refresh time (UTC).",
        session_id="The recording session.",
        x="Horizontal screen position, 0 to 1.",
        y="Vertical screen position, 0 to 1.",
        vx="Horizontal velocity, screen widths per second.",
        vy="Vertical velocity, screen widths per second.",
        target_id="The target on screen.",
        on_target="True while the cursor is on the target.",
    ),
    docs_filters=[Filter("session_id", "=", 1)],
    tags=["labels", "signals"],
    owner="neural-data@neuralake.dev",
    upstream=["sessions"],
    checks=[Range("x", min=0, max=1), Range("y", min=0, max=1)],
)

patients = PostgresTable(
    "patients",
    relation="public.patients",
    description="Study participants, from the clinical registry (PostgreSQL). Codes are "
    "pseudonyms; the registry never leaves names in the lakehouse.",
    schema=_described(
        schemas.PATIENTS,
        patient_id="Unique id of the participant.",
        code="Pseudonym such as P0001.",
        cohort="Study cohort (pilot or main).",
        age_band="Age range at enrolment.",
        enrolled_at="Enrolment date (UTC).",
    ),
    docs_filters=[Filter("cohort", "=", "pilot")],
    tags=["clinical", "metadata"],
    owner="clinical-ops@neuralake.dev",
    checks=[Unique("patient_id"), AcceptedValues("cohort", ["pilot", "main"])],
)


@table(
    tags=["derived", "signals"],
    owner="neural-data@neuralake.dev",
    upstream=["neural_signals", "sessions"],
    docs_filters=[Filter("task", "=", "cursor_control")],
    schema={
        "session_id": Column(pl.Int32, "The recording session."),
        "task": Column(pl.String, "What the participant did."),
        "spikes": Column(pl.Int64, "Spikes detected over all channels."),
        "spike_rate_hz": Column(pl.Float64, "Spikes per second per channel."),
        "mean_quality": Column(pl.Float64, "Average signal quality, 0 to 1."),
    },
    checks=[Range("mean_quality", min=0, max=1), Unique("session_id")],
)
def session_quality() -> pl.LazyFrame:
    """Spike rate and signal quality of every session: is this recording usable?

    Computed on demand from neural_signals and sessions. Filters given to the catalog
    are pushed through the join down to both Delta scans.
    """
    per_session = (
        neural_signals.scan()
        .group_by("session_id")
        .agg(
            spikes=pl.col("spike").sum().cast(pl.Int64),
            mean_quality=pl.col("quality").mean().cast(pl.Float64),
        )
    )
    return per_session.join(
        sessions.scan(columns=["session_id", "task", "samples", "channels", "sample_rate_hz"]),
        on="session_id",
    ).select(
        "session_id",
        "task",
        "spikes",
        spike_rate_hz=pl.col("spikes")
        / (pl.col("samples") / pl.col("sample_rate_hz") * pl.col("channels").cast(pl.Float64)),
        mean_quality="mean_quality",
    )


@table(
    materialize=True,
    uri=PREFIX + "channel_stats",
    tags=["derived", "signals"],
    owner="neural-data@neuralake.dev",
    upstream=["neural_signals"],
    docs_filters=[Filter("session_id", "=", 1)],
    schema={
        "session_id": Column(pl.Int32, "The recording session."),
        "channel": Column(pl.Int16, "Electrode channel."),
        "mean_uv": Column(pl.Float64, "Mean voltage, microvolts."),
        "std_uv": Column(pl.Float64, "Standard deviation of the voltage."),
        "spikes": Column(pl.Int64, "Spikes detected on the channel."),
        "refreshed_at": Column(pl.Datetime("us", "UTC"), "When the view was last refreshed."),
    },
    checks=[NotNull("std_uv"), Freshness("refreshed_at", days=7)],
)
def channel_stats() -> pl.LazyFrame:
    """Per-channel voltage statistics of every session, materialized as a Delta table.

    Scanning all signals takes seconds; reading this view takes milliseconds. Refresh
    it after new sessions land: ``catalog.refresh("channel_stats")``.
    """
    return (
        neural_signals.scan()
        .group_by("session_id", "channel")
        .agg(
            mean_uv=pl.col("voltage_uv").mean().cast(pl.Float64),
            std_uv=pl.col("voltage_uv").std().cast(pl.Float64),
            spikes=pl.col("spike").sum().cast(pl.Int64),
        )
        .sort("session_id", "channel")
        .with_columns(refreshed_at=pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")))
    )
