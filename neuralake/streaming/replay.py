"""Replay fixed dead letters into their topic: each one at most once, even across a crash.

A dead letter is a message the writer could not turn into a row (``reason`` says why);
its raw bytes sit in the dead-letter table at ``(kafka_topic, kafka_partition,
kafka_offset)``. Once you have fixed the payload, producing it again gives it a *new*
offset, and the writer ingests it like any other message. The danger is replaying the
same dead letter twice: the writer's exactly-once guarantee is per offset, so two
replays are two different messages and two rows.

So every replay is recorded in a small Delta table beside the dead letters, the
**ledger** (``<dead_letter_uri>_replayed``): one row per replayed dead letter, with
where its fixed copy landed. :func:`replay` skips what the ledger already holds. The
one gap left is a crash after producing and before the ledger commit; it is closed the
way the writer closes its own:

- each replayed message carries a Kafka header, ``neuralake-replay-of =
  "<topic>/<partition>/<offset>"`` (the dead letter it replaces);
- each ledger commit carries one Delta ``txn`` action per partition,
  ``appId = "replay/<topic>/<partition>"``, ``version`` = the partition's high
  watermark at that commit: every replayed message below it is in the ledger;
- before producing anything, :func:`replay` scans each partition from that version to
  the end for replay headers, and records what a crashed run delivered instead of
  producing it again.

One replay at a time per dead-letter table: a run that finds the ledger moved under it
(another run committed meanwhile) refuses to commit and says to run again; the next run
recovers its messages from their headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from neuralake.datagen.schemas import UTC_MICROS
from neuralake.errors import NeuralakeError
from neuralake.streaming.schemas import arrow_schema, message_key
from neuralake.waiting import NotYet, wait_until

REPLAY_HEADER = "neuralake-replay-of"
COORDINATES = ["kafka_topic", "kafka_partition", "kafka_offset"]

LEDGER = pl.Schema(
    {
        # Instances like UTC_MICROS, not classes: mypy cannot type a dict mixing the two.
        "kafka_topic": pl.String(),  # the dead letter's coordinates...
        "kafka_partition": pl.Int32(),
        "kafka_offset": pl.Int64(),
        "replay_partition": pl.Int32(),  # ...and where its fixed copy landed
        "replay_offset": pl.Int64(),
        "replayed_at": UTC_MICROS,
        "recovered": pl.Boolean(),  # found by its header after a crashed run
    }
)


class ReplayError(NeuralakeError, ValueError):
    """A replay was refused before anything was produced or after a conflicting run."""


@dataclass(frozen=True)
class ReplayResult:
    """What one :func:`replay` call did."""

    replayed: int  # fixed dead letters produced (and recorded) by this call
    already_replayed: int  # rows skipped: the ledger already held them
    recovered: int  # messages a crashed earlier run delivered, recorded now
    skipped: int  # rows whose payload was null: nothing to replay
    ledger_version: int  # the ledger's Delta version after this call


def ledger_uri(dead_letter_uri: str) -> str:
    """Where the ledger of ``dead_letter_uri`` lives."""
    return f"{dead_letter_uri.rstrip('/')}_replayed"


def ledger_app_id(topic: str, partition: int) -> str:
    """The ledger's ``txn`` appId for one partition of ``topic``."""
    return f"replay/{topic}/{partition}"


def header_value(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}/{partition}/{offset}".encode()


def parse_header(value: bytes | str) -> tuple[str, int, int]:
    """``b"topic/2/17"`` -> ``("topic", 2, 17)``; topic names may not contain '/'."""
    text = value.decode() if isinstance(value, bytes) else value
    topic, partition, offset = text.rsplit("/", 2)
    return topic, int(partition), int(offset)


def replayed(dead_letter_uri: str, storage_options: Mapping[str, str] | None) -> pl.DataFrame:
    """The ledger: every dead letter replayed so far (empty before the first replay)."""
    try:
        return pl.read_delta(ledger_uri(dead_letter_uri), storage_options=_opts(storage_options))
    except DeltaTableNotFound:
        return pl.DataFrame(schema=LEDGER)


def pending(dead_letter_uri: str, storage_options: Mapping[str, str] | None) -> pl.DataFrame:
    """The dead letters that have not been replayed yet."""
    dead = pl.read_delta(dead_letter_uri, storage_options=_opts(storage_options))
    done = replayed(dead_letter_uri, storage_options).select(COORDINATES)
    return dead.join(done, on=COORDINATES, how="anti").sort(COORDINATES)


def replay(
    fixed: pl.DataFrame,
    *,
    dead_letter_uri: str,
    kafka_config: Mapping[str, str],
    storage_options: Mapping[str, str] | None,
    timeout: float = 30.0,
) -> ReplayResult:
    """Produce each row's fixed ``payload`` to its ``kafka_topic``, once per dead letter.

    ``fixed`` has the dead-letter table's coordinate columns (``kafka_topic``,
    ``kafka_partition``, ``kafka_offset``) and ``payload`` (the corrected bytes; null
    = leave this one alone). Rows already in the ledger are skipped, so calling this
    twice with the same frame replays nothing the second time.
    """
    missing = [c for c in [*COORDINATES, "payload"] if c not in fixed.columns]
    if missing:
        raise ReplayError(
            f"fixed has no column(s) {missing}: start from replay.pending(...) and "
            "replace its payload column"
        )
    fixed = fixed.select(
        pl.col("kafka_topic").cast(pl.String),
        pl.col("kafka_partition").cast(pl.Int32),
        pl.col("kafka_offset").cast(pl.Int64),
        pl.col("payload").cast(pl.Binary),
    )
    if fixed.select(COORDINATES).is_duplicated().any():
        raise ReplayError("fixed lists a dead letter twice: keep one row per kafka_offset")
    dead = pl.read_delta(dead_letter_uri, storage_options=_opts(storage_options))
    strangers = fixed.join(dead.select(COORDINATES), on=COORDINATES, how="anti")
    if strangers.height:
        first = strangers.row(0, named=True)
        raise ReplayError(
            f"{strangers.height} row(s) of fixed are not dead letters of {dead_letter_uri} "
            f"(e.g. {first['kafka_topic']}/{first['kafka_partition']}/{first['kafka_offset']}):"
            " keep the coordinates replay.pending(...) gave you"
        )

    uri = ledger_uri(dead_letter_uri)
    topics = sorted(set(dead["kafka_topic"]))  # every topic this table holds letters of
    if not topics:
        return ReplayResult(0, 0, 0, 0, ledger_version=-1)  # no dead letters at all
    admin = AdminClient(dict(kafka_config))
    marks = _ensure_marks(uri, topics, admin, kafka_config, storage_options, timeout)

    recovered = _scan_for_replays(marks, kafka_config, timeout)
    ledger = replayed(dead_letter_uri, storage_options)
    recovered = recovered.join(ledger.select(COORDINATES), on=COORDINATES, how="anti")
    known = pl.concat([ledger.select(COORDINATES), recovered.select(COORDINATES)])

    nothing = fixed.filter(pl.col("payload").is_null())
    wanted = fixed.filter(pl.col("payload").is_not_null())
    todo = wanted.join(known, on=COORDINATES, how="anti")
    delivered = _produce(todo, kafka_config, timeout)

    rows = pl.concat([recovered, delivered])
    version = _commit(uri, rows, marks, topics, admin, kafka_config, storage_options, timeout)
    return ReplayResult(
        replayed=delivered.height,
        already_replayed=wanted.height - todo.height,
        recovered=recovered.height,
        skipped=nothing.height,
        ledger_version=version,
    )


# -- the ledger's marks: how far each partition has been checked for replays ------------


def _ensure_marks(
    uri: str,
    topics: Iterable[str],
    admin: AdminClient,
    kafka_config: Mapping[str, str],
    storage_options: Mapping[str, str] | None,
    timeout: float,
) -> dict[tuple[str, int], int]:
    """The ledger's txn version of every partition of ``topics``, creating missing ones.

    A partition the ledger has never seen gets its current high watermark, committed
    *before* anything is produced: a replay message can only be above it.
    """
    table = _open(uri, storage_options)
    marks: dict[tuple[str, int], int] = {}
    new: dict[tuple[str, int], int] = {}
    for topic in topics:
        for partition, high in _high_watermarks(topic, admin, kafka_config, timeout).items():
            known = table.transaction_version(ledger_app_id(topic, partition)) if table else None
            if known is None:
                new[(topic, partition)] = high
            marks[(topic, partition)] = high if known is None else known
    if new:
        _write(uri, pl.DataFrame(schema=LEDGER), new, storage_options)
    return marks


def _commit(
    uri: str,
    rows: pl.DataFrame,
    marks: dict[tuple[str, int], int],
    topics: Iterable[str],
    admin: AdminClient,
    kafka_config: Mapping[str, str],
    storage_options: Mapping[str, str] | None,
    timeout: float,
) -> int:
    """Record ``rows`` and advance every mark to the partition's current high watermark."""
    table = _open(uri, storage_options)
    assert table is not None  # _ensure_marks created it
    moved = [
        key for key, mark in marks.items() if table.transaction_version(ledger_app_id(*key)) != mark
    ]
    if moved:
        topic, partition = moved[0]
        raise ReplayError(
            f"another replay committed to {uri} meanwhile ({topic} partition {partition}): "
            "run replay again; it finds this run's messages by their header"
        )
    new_marks = {
        (topic, partition): high
        for topic in topics
        for partition, high in _high_watermarks(topic, admin, kafka_config, timeout).items()
    }
    _write(uri, rows, new_marks, storage_options)
    table.update_incremental()  # to the commit just written
    return table.version()


def _write(
    uri: str,
    rows: pl.DataFrame,
    marks: Mapping[tuple[str, int], int],
    storage_options: Mapping[str, str] | None,
) -> None:
    """Append ``rows`` and the marks' txn actions in one commit."""
    transactions = [
        Transaction(ledger_app_id(topic, partition), version)
        for (topic, partition), version in sorted(marks.items())
    ]
    write_deltalake(
        uri,
        rows.select(LEDGER.names()).cast(LEDGER).to_arrow().cast(arrow_schema(LEDGER)),
        mode="append",
        storage_options=_opts(storage_options),
        commit_properties=CommitProperties(app_transactions=transactions),
    )


# -- Kafka ---------------------------------------------------------------------------------


def _produce(todo: pl.DataFrame, kafka_config: Mapping[str, str], timeout: float) -> pl.DataFrame:
    """Produce every row of ``todo`` with its replay header; the ledger rows delivered."""
    producer = Producer({**kafka_config, "enable.idempotence": True})
    delivered: list[dict] = []
    failures: list[str] = []

    def report(coordinates: tuple[str, int, int]) -> Callable[[KafkaError | None, Message], None]:
        # Delivery reports carry no headers: each callback remembers its dead letter.
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(str(error))
                return
            delivered.append(_ledger_row(coordinates, message, recovered=False))

        return on_delivery

    for row in todo.iter_rows(named=True):
        coordinates = (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"])
        producer.produce(
            row["kafka_topic"],
            value=row["payload"],
            key=_key(row["payload"]),
            headers=[(REPLAY_HEADER, header_value(*coordinates))],
            on_delivery=report(coordinates),
        )
        producer.poll(0)
    left = producer.flush(timeout)
    if left or failures:
        raise ReplayError(
            f"{left + len(failures)} replayed message(s) were not delivered "
            f"({failures[0] if failures else 'flush timed out'}): check Kafka and run replay "
            "again; delivered ones are found by their header"
        )
    return pl.DataFrame(delivered, schema=LEDGER)


def _scan_for_replays(
    marks: Mapping[tuple[str, int], int], kafka_config: Mapping[str, str], timeout: float
) -> pl.DataFrame:
    """Messages with a replay header above the marks: a crashed run's deliveries."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": "neuralake-replay-scan",  # never commits: assign() + seek only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    found: list[dict] = []
    try:
        ends = {
            key: consumer.get_watermark_offsets(TopicPartition(*key), timeout=timeout)[1]
            for key in marks
        }
        todo = {key for key, mark in marks.items() if ends[key] > mark}
        if not todo:
            return pl.DataFrame(schema=LEDGER)
        consumer.assign([TopicPartition(t, p, marks[(t, p)]) for t, p in todo])

        def read_to_the_ends() -> None:  # one batch; NotYet while a partition is left
            # consume() returns at num_messages or at its timeout, whichever comes first.
            messages = consumer.consume(num_messages=1000, timeout=0.2)
            for message in messages:
                key = (message.topic(), message.partition())
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise ReplayError(f"reading {key[0]}/{key[1]} failed: {error}")
                if error is None:
                    header = dict(message.headers() or []).get(REPLAY_HEADER)
                    if header is not None:
                        found.append(_ledger_row(parse_header(header), message, recovered=True))
                offset = message.offset()
                assert offset is not None  # a message or a partition's end always has one
                position = offset + (1 if error is None else 0)
                if key in todo and position >= ends[key]:
                    todo.discard(key)
            if todo:
                raise NotYet

        try:
            wait_until(read_to_the_ends, timeout=timeout, interval=0, retry_on=NotYet)
        except NotYet:
            raise ReplayError(
                f"Kafka did not serve {sorted(todo)} to its end within {timeout:.0f} s while "
                "checking for earlier replays: check that Kafka is up and run replay again"
            ) from None
    finally:
        consumer.close()
    return pl.DataFrame(found, schema=LEDGER).unique(COORDINATES, keep="first")


def _high_watermarks(
    topic: str, admin: AdminClient, kafka_config: Mapping[str, str], timeout: float
) -> dict[int, int]:
    """Partition -> high watermark (the next offset to be written) of ``topic``."""
    metadata = admin.list_topics(topic, timeout=timeout).topics[topic]
    if metadata.error is not None:
        raise ReplayError(f"topic {topic!r}: {metadata.error.str()}: replay into an existing topic")
    consumer = Consumer({**kafka_config, "group.id": "neuralake-replay-scan"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in sorted(metadata.partitions)
        }
    finally:
        consumer.close()


def _ledger_row(coordinates: tuple[str, int, int], message: Message, *, recovered: bool) -> dict:
    """A ledger row: the dead letter's coordinates and where its replay landed."""
    topic, partition, offset = coordinates
    return {
        "kafka_topic": topic,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "replay_partition": message.partition(),
        "replay_offset": message.offset(),
        "replayed_at": datetime.now(UTC),
        "recovered": recovered,
    }


def _key(payload: bytes) -> str | None:
    """The contract's message key, when the fixed payload has session_id and channel."""
    try:
        message = json.loads(payload)
        return message_key(int(message["session_id"]), int(message["channel"]))
    except (ValueError, TypeError, KeyError):
        return None


def _open(uri: str, storage_options: Mapping[str, str] | None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=_opts(storage_options))
    except DeltaTableNotFound:
        return None


def _opts(storage_options: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(storage_options) if storage_options else None
