"""The streaming core's contract, declared once: the message, the two tables, the offsets.

The Rust writer (``rust-writer/``) and the Python baseline (:mod:`.baseline`) write the
same tables with the same schemas, so a reader never knows which one wrote a row.

**The message** (one Kafka message = one row): a UTF-8 JSON object with the eight
columns of :data:`MESSAGE`, for example::

    {"timestamp": "2026-11-23T19:14:44.123456Z", "session_id": 1, "device_id": 1,
     "patient_id": 1, "channel": 3, "voltage_uv": -12.5, "spike": false, "quality": 0.98}

``timestamp`` is RFC 3339 with a UTC offset, or an integer of epoch microseconds. The
key is ``"<session_id>:<channel>"``, so one channel's samples stay in order in one
partition. A message that is not UTF-8 JSON, misses a field, has a null or a value of
the wrong type, or does not fit its column (channel 70000 in an Int16) is *malformed*:
it goes, raw bytes and all, to the dead-letter table with a reason naming the field.

**The bronze table** (:data:`BRONZE`): the message's columns, then where it came from in
Kafka, then ``date`` (the UTC day of ``timestamp``), the only partition column. All
timestamps are ``Datetime("us", "UTC")``: Delta ``timestamp``, never ``timestamp_ntz``,
which would raise the protocol past what ROAPI and Spark read (reader 1 / writer 2).

**Exactly once**: each commit to the bronze table carries one ``txn`` action per Kafka
partition it covers, ``appId = app_id(app, topic, partition)`` and ``version`` = the last
offset it includes. The Delta log, not the consumer group, is the source of truth: a
writer that restarts reads those versions and resumes at ``version + 1``.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from neuralake.datagen.schemas import NEURAL_SIGNALS, UTC_MICROS

DEFAULT_TOPIC = "neural-signals"
DEFAULT_TABLE = "neural_signals_bronze"
DEFAULT_APP = "neuralake-writer"

MESSAGE = NEURAL_SIGNALS  # the fields of one message, and their column types

BRONZE = pl.Schema(
    {
        **MESSAGE,
        "kafka_partition": pl.Int32(),
        "kafka_offset": pl.Int64(),
        "kafka_timestamp": UTC_MICROS,  # the message's Kafka timestamp: for freshness
        "date": pl.Date(),  # UTC day of `timestamp`
    }
)
PARTITION_BY = ["date"]

DEAD_LETTERS = pl.Schema(
    {
        "kafka_topic": pl.String(),
        "kafka_partition": pl.Int32(),
        "kafka_offset": pl.Int64(),
        "payload": pl.Binary(),  # the raw bytes: nothing is lost
        "reason": pl.String(),  # names the field and the problem
        "received_at": UTC_MICROS,
    }
)

EXAMPLE_MESSAGE = {
    "timestamp": "2026-11-23T19:14:44.123456Z",
    "session_id": 1,
    "device_id": 1,
    "patient_id": 1,
    "channel": 3,
    "voltage_uv": -12.5,
    "spike": False,
    "quality": 0.98,
}


def app_id(app: str, topic: str, partition: int) -> str:
    """The ``txn`` appId that records how far ``app`` has written ``topic``'s partition."""
    return f"{app}/{topic}/{partition}"


def dead_letter_uri(table_uri: str) -> str:
    """Where the malformed messages of the table at ``table_uri`` go."""
    return f"{table_uri.rstrip('/')}_dead_letters"


def message_key(session_id: int, channel: int) -> str:
    return f"{session_id}:{channel}"


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The ``pyarrow.Schema`` for a Polars schema, as deltalake wants it."""
    return pl.DataFrame(schema=schema).to_arrow().schema
