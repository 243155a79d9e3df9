"""The Python consumer a team writes first: Kafka -> Delta, exactly once, in micro-batches.

It is the honest baseline the Rust writer is measured against: the same tables and
schemas (:mod:`neuralake.streaming.schemas`), the same flush rule, the same exactly-once
protocol, written the obvious way with confluent-kafka, ``json.loads`` per message and
deltalake. The loop:

1. **Start where the table says.** Read each partition's ``txn`` version from the
   bronze table and assign the partition at ``version + 1`` (from the beginning when
   there is none). The consumer group's committed offsets are never read.
2. **Collect** messages, decoding and checking each one (:func:`wire.decode`); good
   ones become rows, malformed ones dead letters.
3. **Flush** when the batch has ``flush_rows`` rows, or ``flush_bytes`` of payload, or
   is ``flush_ms`` old: dead letters first (with their own ``txn`` actions), then the
   rows with one ``txn`` action per partition, *in the same commit*. A batch of only
   dead letters still commits the bronze ``txn`` actions, so the offsets advance.
4. **Then** tell Kafka (``consumer.commit``), only so lag tools can see progress.

A crash anywhere loses nothing and duplicates nothing: the data and its offsets are one
atomic Delta commit; dead letters already committed are recognised on replay (their
offset is at or below the dead-letter table's ``txn`` version) and not written again;
and if another writer committed a partition's offsets first, the batch is dropped and
the partitions re-read from the table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from neuralake.console import JsonLine
from neuralake.delta import storage_errors
from neuralake.errors import TableSchemaError
from neuralake.settings import Settings
from neuralake.streaming import topics, wire
from neuralake.streaming.schemas import (
    BRONZE,
    DEAD_LETTERS,
    DEFAULT_TOPIC,
    MESSAGE,
    PARTITION_BY,
    app_id,
    arrow_schema,
    dead_letter_uri,
)

log = logging.getLogger("neuralake.baseline")

DEFAULT_TABLE = "neural_signals_bronze_baseline"
DEFAULT_APP = "neuralake-baseline"
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15)  # backoff for S3 failures, then 15 s until it works

# What a batch collects per row: the bronze columns but `date`, timestamps as epoch µs.
_COLUMNS = pl.Schema(
    {
        **{name: dtype for name, dtype in BRONZE.items() if name != "date"},
        "timestamp": pl.Int64(),
        "kafka_timestamp": pl.Int64(),
    }
)


@dataclass(frozen=True)
class FlushRule:
    """Flush when any limit is reached: the same rule and defaults as the Rust writer."""

    ms: int = 1000
    rows: int = 500_000
    bytes: int = 64 * 2**20  # consumed payload bytes


@dataclass(frozen=True)
class Summary(JsonLine):
    """What a ``stop_at_end`` run did: the same JSON line as ``neuralake-writer ingest``."""

    messages: int
    rows: int
    dead_letters: int
    batches: int
    seconds: float
    version: int


@dataclass
class Batch:
    """Messages consumed since the last commit, as columns ready for a DataFrame."""

    columns: dict[str, list] = field(default_factory=lambda: {name: [] for name in _COLUMNS})
    dead: list[dict] = field(default_factory=list)
    first: dict[int, int] = field(default_factory=dict)  # partition -> first offset
    last: dict[int, int] = field(default_factory=dict)  # partition -> last offset
    messages: int = 0
    payload_bytes: int = 0
    started: float = 0.0  # monotonic time of the first message

    def add(self, msg: Message, topic: str, skip_dead_up_to: dict[int, int]) -> None:
        partition, offset, payload = msg.partition(), msg.offset(), msg.value()
        assert partition is not None and offset is not None  # a consumed message, not an error
        if not self.messages:
            self.started = time.monotonic()
        self.messages += 1
        self.payload_bytes += len(payload or b"")
        self.first.setdefault(partition, offset)
        self.last[partition] = offset
        try:
            row = wire.decode(payload)
        except wire.Malformed as reason:
            if offset > skip_dead_up_to.get(partition, -1):  # else: already dead-lettered
                self.dead.append(
                    {
                        "kafka_topic": topic,
                        "kafka_partition": partition,
                        "kafka_offset": offset,
                        "payload": payload or b"",
                        "reason": str(reason),
                        "received_at": datetime.now(UTC),
                    }
                )
            return
        for name in MESSAGE:
            self.columns[name].append(row[name])
        self.columns["kafka_partition"].append(partition)
        self.columns["kafka_offset"].append(offset)
        self.columns["kafka_timestamp"].append(msg.timestamp()[1] * 1000)  # ms -> us

    @property
    def rows(self) -> int:
        return len(self.columns["kafka_offset"])

    def full(self, rule: FlushRule) -> bool:
        return self.messages >= rule.rows or self.payload_bytes >= rule.bytes

    def due(self, rule: FlushRule) -> bool:
        if not self.messages:
            return False
        return self.full(rule) or (time.monotonic() - self.started) * 1000 >= rule.ms

    def frame(self) -> pl.DataFrame:
        """The rows as the bronze table's columns: timestamps from µs, ``date`` derived."""
        frame = pl.DataFrame(self.columns, schema=_COLUMNS)
        return frame.with_columns(
            pl.col("timestamp", "kafka_timestamp").cast(BRONZE["timestamp"]),
            date=pl.col("timestamp").cast(BRONZE["timestamp"]).dt.date(),
        ).select(BRONZE.names())


class Baseline:
    """One consumer for one topic, writing one bronze table and its dead letters."""

    def __init__(
        self,
        s: Settings,
        *,
        topic: str = DEFAULT_TOPIC,
        table: str = DEFAULT_TABLE,
        app: str = DEFAULT_APP,
        group_id: str | None = None,
        flush: FlushRule = FlushRule(),
    ) -> None:
        self.s, self.topic, self.app, self.flush_rule = s, topic, app, flush
        self.uri = s.table_uri(table)
        self.dead_uri = dead_letter_uri(self.uri)
        self.partitions = topics.partitions(s, topic)  # one-line errors: broker, topic
        self.bronze = open_or_create(self.uri, BRONZE, PARTITION_BY, s.storage_options)
        self.dead = open_or_create(self.dead_uri, DEAD_LETTERS, [], s.storage_options)
        self.consumer = Consumer(
            {
                **s.kafka_config,
                "group.id": group_id or f"{app}.{table}",
                "enable.auto.commit": False,  # the Delta log holds the offsets
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.totals = {"messages": 0, "rows": 0, "dead_letters": 0, "batches": 0}
        self.done: dict[int, int] = {}  # partition -> last offset the table holds
        self.skip_dead_up_to: dict[int, int] = {}
        self.seek_to_table()

    def txn_versions(self, table: DeltaTable) -> dict[int, int]:
        """partition -> the last offset ``table`` holds (partitions never written: absent)."""
        versions = {}
        for p in self.partitions:
            version = table.transaction_version(app_id(self.app, self.topic, p))
            if version is not None:
                versions[p] = version
        return versions

    def seek_to_table(self) -> None:
        """Assign every partition at the offset after the last one the table holds."""
        with storage_errors(self.uri, self.s.storage_options):
            self.bronze.update_incremental()
            self.dead.update_incremental()
        self.done = self.txn_versions(self.bronze)
        self.skip_dead_up_to = self.txn_versions(self.dead)
        start = {p: self.done.get(p, -1) + 1 for p in self.partitions}
        self.consumer.assign(
            [TopicPartition(self.topic, p, o or OFFSET_BEGINNING) for p, o in start.items()]
        )
        log.info("reading %s from offsets %s", self.topic, start)

    def run(
        self, *, stop_at_end: bool = False, should_stop: Callable[[], bool] = lambda: False
    ) -> Summary:
        """Consume and commit until ``should_stop()``, or the end of the topic as seen now."""
        end = self.high_watermarks() if stop_at_end else None
        started = time.perf_counter()
        batch = Batch()
        while not should_stop():
            for msg in self.consumer.consume(num_messages=10_000, timeout=0.1):
                error = msg.error()
                if error is None:
                    batch.add(msg, self.topic, self.skip_dead_up_to)
                    if batch.full(self.flush_rule):
                        self.commit(batch)
                        batch = Batch()
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka: %s (librdkafka retries)", error.str())
            consumed_all = end is not None and _covers({**self.done, **batch.last}, end)
            if batch.due(self.flush_rule) or (consumed_all and batch.messages):
                self.commit(batch)
                batch = Batch()
            if end is not None and _covers(self.done, end):
                break
        return Summary(
            **self.totals,
            seconds=round(time.perf_counter() - started, 3),
            version=self.bronze.version(),
        )

    def high_watermarks(self) -> dict[int, int]:
        """partition -> high watermark now: the end of a ``stop_at_end`` run."""
        return {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in self.partitions
        }

    def commit(self, batch: Batch) -> None:
        """Dead letters, then rows + offsets; retried with backoff until S3 takes them."""
        delay = iter(RETRY_DELAYS_S)
        while True:
            try:
                committed = self._commit_once(batch)
                break
            except OSError as err:  # S3 down or slow: wait and try again, never give up
                wait = next(delay, RETRY_DELAYS_S[-1])
                log.warning("commit failed (%s); retrying in %s s", _first_line(err), wait)
                time.sleep(wait)
        if committed:
            offsets = [TopicPartition(self.topic, p, last + 1) for p, last in batch.last.items()]
            self.consumer.commit(offsets=offsets, asynchronous=True)  # for lag tools only

    def _commit_once(self, batch: Batch) -> bool:
        """One attempt; each of the two commits is skipped if a previous attempt made it."""
        self.bronze.update_incremental()
        done = self.txn_versions(self.bronze)
        if any(done.get(p, -1) >= first for p, first in batch.first.items()):
            log.warning("another writer committed these offsets first: dropping the batch")
            self.seek_to_table()
            return False
        txns = [
            Transaction(app_id(self.app, self.topic, p), last) for p, last in batch.last.items()
        ]
        self.dead.update_incremental()
        held = self.txn_versions(self.dead)
        fresh = [d for d in batch.dead if d["kafka_offset"] > held.get(d["kafka_partition"], -1)]
        if fresh:
            write_deltalake(
                self.dead,
                pl.DataFrame(fresh, schema=DEAD_LETTERS).to_arrow(),
                mode="append",
                commit_properties=CommitProperties(app_transactions=txns),
            )
        write_deltalake(
            self.bronze,
            batch.frame().to_arrow(),
            mode="append",
            partition_by=PARTITION_BY,
            commit_properties=CommitProperties(app_transactions=txns),
        )
        self.done.update(batch.last)
        self.totals["messages"] += batch.messages
        self.totals["rows"] += batch.rows
        self.totals["dead_letters"] += len(batch.dead)
        self.totals["batches"] += 1
        return True

    def close(self) -> None:
        self.consumer.close()


def open_or_create(
    uri: str, schema: pl.Schema, partition_by: list[str], storage_options: dict[str, str]
) -> DeltaTable:
    """The Delta table at ``uri``, created empty with ``schema`` if missing.

    An existing table with other columns or types is a ``TableSchemaError``: writing
    into it would fail on the first batch, so say so at start, with the fix.
    """
    with storage_errors(uri, storage_options):
        try:
            table = DeltaTable(uri, storage_options=storage_options)
        except DeltaTableNotFound:
            table = DeltaTable.create(
                uri,
                arrow_schema(schema),
                mode="ignore",  # another writer may create it at the same moment
                partition_by=partition_by or None,
                storage_options=storage_options,
            )
    want, have = _fields(arrow_schema(schema)), _fields(table.schema())
    if want != have:
        raise TableSchemaError(
            f"the table at {uri} has columns {_describe(have)}, not the writer's "
            f"{_describe(want)}: write to another table (--table) or drop this one"
        )
    return table


def _covers(done: dict[int, int], end: dict[int, int]) -> bool:
    """True when every partition is done up to its end offset (exclusive)."""
    return all(done.get(p, -1) >= high - 1 for p, high in end.items())


def _fields(schema: DeltaSchema | pa.Schema) -> list[tuple[str, str]]:
    if not isinstance(schema, DeltaSchema):
        schema = DeltaSchema.from_arrow(schema)
    return [(f["name"], str(f["type"])) for f in json.loads(schema.to_json())["fields"]]


def _describe(fields: list[tuple[str, str]]) -> str:
    text = ", ".join(f"{name} {kind}" for name, kind in fields)
    return f"({text[:120]}{'...' if len(text) > 120 else ''})"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
