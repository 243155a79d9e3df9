"""The tables Spark writes, declared for the catalog: the site, ROAPI and Polars read them.

``Catalog({"spark": ModuleDatabase(neuralake.spark.catalog)})``, or
``neuralake catalog ... -m neuralake.spark.catalog``. They live beside the neuro study's
tables (``catalog/``) and are written by ``neuralake spark elt`` (:mod:`.elt`); until the
job has run once, the tables do not exist, so this module is kept apart from
:mod:`neuralake.catalog.examples.neuro`, whose tables ``seed()`` writes.
"""

from __future__ import annotations

import polars as pl

from neuralake.catalog import Column, DeltalakeTable, NotNull, Range, Unique
from neuralake.catalog.examples.neuro import PREFIX
from neuralake.datagen.schemas import UTC_MICROS

_OWNER = "neural-data@neuralake.dev"

neural_signals_silver = DeltalakeTable(
    "neural_signals_silver",
    uri=PREFIX + "neural_signals_silver",
    description="Bronze signals cleaned by Spark: one row per Kafka message (deduplicated "
    "on partition and offset), typed for every reader, rows failing the neural_signals "
    "checks removed. Written by `neuralake spark elt`, incrementally.",
    schema={
        "timestamp": Column(UTC_MICROS, "When the sample was taken (UTC)."),
        "session_id": Column(pl.Int32, "The recording session (see sessions)."),
        "device_id": Column(pl.Int32, "The implant (see devices)."),
        "patient_id": Column(pl.Int32, "The participant (see patients)."),
        "channel": Column(pl.Int32, "Electrode channel (Int32: ROAPI filters on it)."),
        "voltage_uv": Column(pl.Float64, "Filtered voltage in microvolts."),
        "spike": Column(pl.Boolean, "True at a detected spike."),
        "quality": Column(pl.Float64, "Signal quality, 0 to 1."),
        "kafka_partition": Column(pl.Int32, "Kafka partition of the message."),
        "kafka_offset": Column(pl.Int64, "Kafka offset: with the partition, the row's key."),
        "kafka_timestamp": Column(UTC_MICROS, "The message's Kafka timestamp (UTC)."),
        "date": Column(pl.Date, "UTC day of timestamp (partition column)."),
    },
    partition_columns=["date"],
    tags=["silver", "signals", "spark"],
    owner=_OWNER,
    upstream=["neural_signals_bronze"],
    checks=[
        NotNull("voltage_uv"),
        Range("quality", min=0, max=1),
        Unique("kafka_partition", also=["kafka_offset"]),
    ],
)

# The gold table's columns, in order: polars_elt selects them by name.
SESSION_FEATURES = {
    "session_id": Column(pl.Int32, "The recording session."),
    "date": Column(pl.Date, "UTC day (partition column)."),
    "task": Column(pl.String, "What the participant did (from sessions)."),
    "patient_id": Column(pl.Int32, "The participant."),
    "cohort": Column(pl.String, "Study cohort (from patients)."),
    "age_band": Column(pl.String, "Age range at enrolment (from patients)."),
    "device_id": Column(pl.Int32, "The implant."),
    "firmware": Column(pl.String, "Device firmware (from devices)."),
    "samples": Column(pl.Int64, "Rows (channel samples) that day."),
    "channels": Column(pl.Int32, "Distinct channels recorded."),
    "spikes": Column(pl.Int64, "Spikes detected over all channels."),
    "spikes_per_channel_s": Column(pl.Float64, "Spikes per channel per second."),
    "mean_voltage_uv": Column(pl.Float64, "Mean voltage, microvolts."),
    "std_voltage_uv": Column(pl.Float64, "Sample standard deviation of the voltage."),
    "mean_quality": Column(pl.Float64, "Average signal quality, 0 to 1."),
    "first_sample": Column(UTC_MICROS, "First sample of the day (UTC)."),
    "last_sample": Column(UTC_MICROS, "Last sample of the day (UTC)."),
}


session_features = DeltalakeTable(
    "session_features",
    uri=PREFIX + "session_features",
    description="One row per session and day: volume, spike rate, voltage statistics and "
    "quality, with the session's task, device firmware and patient cohort. Written by "
    "`neuralake spark elt`; only the (session, day) pairs new data touched are recomputed.",
    schema=SESSION_FEATURES,
    partition_columns=["date"],
    tags=["gold", "features", "spark"],
    owner=_OWNER,
    upstream=["neural_signals_silver", "sessions", "devices", "patients"],
    checks=[Unique("session_id", also=["date"]), Range("mean_quality", min=0, max=1)],
)
