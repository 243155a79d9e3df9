"""Lab 04, Kafka into Delta exactly once: each exercise's topic and writer, and the graders.

Every exercise owns a topic, a bronze table, its dead letters and the writer's consumer
group (:class:`Pipeline`), staged by its own builder, so ``lab.reset("ex3")`` rebuilds
exercise 3 alone. The graders never trust a number the student reports: the truth
comes from the topic itself (every message read back and checked with
:func:`neuralake.streaming.wire.decode`), from the AdminClient, and from the tables'
own logs.

1. ``check_culprit``: diagnosis. Which device's session, and which field, fill the
   dead-letter table since a firmware rollout (a trickle of other broken messages runs
   beside it).
2. ``check_lag``: lag while nobody consumes, from Kafka and from the table.
3. ``check_doubled``: diagnosis. A recovery script ran after a crash; which commit
   doubled rows, how many per partition, and why.
4. ``check_replayed``: repair what can be repaired, replay it exactly once.
5. ``check_scaled``: add a worker to a running consumer group; nothing doubled or lost.
6. ``check_freshness`` (stretch): freshness p99 from the log alone.

No lab process runs in the background except the writer, through
:mod:`neuralake.lab.writer.control`; a stream is :func:`~neuralake.streaming.produce.produce`
in a thread of the kernel.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import polars as pl
import psutil
from confluent_kafka import Producer
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.errors import ConfigError, NeuralakeError
from neuralake.lab.graders.base import Lab, fresh_topic
from neuralake.lab.graders.checks import Grading, Hint, passed
from neuralake.lab.graders.kafka import read_topic
from neuralake.lab.graders.logs import data_adds, read_added
from neuralake.lab.writer import control
from neuralake.settings import Settings
from neuralake.streaming import replay, topics, wire
from neuralake.streaming.produce import Produced, produce
from neuralake.streaming.schemas import EXAMPLE_MESSAGE, app_id, dead_letter_uri, message_key
from neuralake.waiting import NotYet, wait_until

PARTITIONS = 3
APP = "neuralake-writer"  # the writer's default --app-id
SEED = 11
CATCH_UP_S = 60.0
INGEST_ONLY = ["ingest"]  # the lab's writers: no background compaction or vacuum


def _quiet(_: str) -> None:
    return None


# -- one exercise's pipeline ----------------------------------------------------------------


@dataclass
class _Stream:
    """A stream producing in a thread of the kernel, and when it started and ended."""

    future: Future[Produced]
    started: float  # epoch seconds
    workers_at_start: frozenset[int]  # pids of the ingest workers running then
    ended: float | None = None
    workers_at_end: frozenset[int] = frozenset()

    def finish(self, pipe: Pipeline) -> None:
        self.ended = time.time()
        self.workers_at_end = frozenset(w.pid for w in pipe.workers() if w.pid)


_streams: dict[str, _Stream] = {}  # topic -> the latest stream producing into it


@dataclass(frozen=True)
class Pipeline:
    """One exercise's topic, bronze table and dead letters, and the writer's group."""

    settings: Settings = field(repr=False)
    topic: str
    table: str  # the name control.up(table=...) takes
    uri: str
    dead_uri: str
    group: str  # the writer's consumer group (for lag tools)

    def bronze(self) -> pl.DataFrame:
        return pl.read_delta(self.uri, storage_options=self.settings.storage_options or None)

    def dead_letters(self) -> pl.DataFrame:
        return pl.read_delta(self.dead_uri, storage_options=self.settings.storage_options or None)

    def ingest(self) -> tuple[int, float] | None:
        """(pid, start time) of a running ingest process of this table, if any."""
        for row in control.status(self.settings, self.table):
            if row.name == "ingest" and row.alive and row.pid:
                return row.pid, psutil.Process(row.pid).create_time()
        return None

    def start_stream(self, count: int, rate: float, malformed_ratio: float = 0.01) -> None:
        """Produce ``count`` messages at ``rate`` a second in a thread; returns at once."""
        if self.topic in _streams and not _streams[self.topic].future.done():
            raise ConfigError("a stream is still running: wait for it (wait_stream())")
        pool = ThreadPoolExecutor(max_workers=1)
        started = time.time()
        future = pool.submit(
            produce,
            self.settings,
            topic=self.topic,
            count=count,
            rate=rate,
            malformed_ratio=malformed_ratio,
            seed=SEED + 1,
            partitions=PARTITIONS,
        )
        running = frozenset(w.pid for w in self.workers() if w.pid)
        stream = _streams[self.topic] = _Stream(future, started, running)
        future.add_done_callback(lambda _: stream.finish(self))
        pool.shutdown(wait=False)

    def wait_stream(self, timeout: float = 120) -> Produced:
        """Wait until the stream :meth:`start_stream` started has sent everything."""
        if self.topic not in _streams:
            raise ConfigError("no stream was started on this topic: start_stream(count, rate)")
        return _streams[self.topic].future.result(timeout=timeout)

    def stream(self) -> _Stream | None:
        """The latest stream :meth:`start_stream` started (None if none was)."""
        return _streams.get(self.topic)

    def workers(self) -> list[control.WriterStatus]:
        """The running ingest workers of this exercise's writer."""
        rows = control.status(self.settings, self.table)
        return [row for row in rows if row.name.startswith("ingest") and row.alive and row.pid]

    def behind(self) -> dict[int, tuple[int, int]]:
        """Partitions the table does not hold to their end: partition -> (txn version, high)."""
        if not DeltaTable.is_deltatable(self.uri, self.settings.storage_options):
            done_by = {}
        else:
            table = DeltaTable(self.uri, storage_options=self.settings.storage_options or None)
            done_by = {
                p: table.transaction_version(app_id(APP, self.topic, p))
                for p in topics.partitions(self.settings, self.topic)
            }
        highs = topics.describe(self.settings, self.topic).select("partition", "high").iter_rows()
        out = {}
        for partition, high in highs:
            done = done_by.get(partition)
            done = -1 if done is None else done
            if done < high - 1:
                out[partition] = (done, high)
        return out

    def wait_caught_up(self, timeout: float = CATCH_UP_S) -> float:
        """Wait until the bronze table holds every partition to its end; seconds waited."""
        started = time.monotonic()

        def caught_up() -> None:
            if behind := self.behind():
                partition, (done, high) = next(iter(behind.items()))
                raise NotYet(
                    f"the table holds partition {partition} up to offset {done}, the topic "
                    f"ends at {high - 1}, after {timeout:.0f} s: is the writer running? "
                    f"(control.status(s, {self.table!r}))"
                )

        try:
            wait_until(caught_up, timeout=timeout, interval=0.25, retry_on=NotYet)
        except NotYet as late:
            raise TimeoutError(str(late)) from None
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop this exercise's writer (and wait for a stream still producing)."""
        control.down(self.settings, self.table, echo=_quiet)
        if self.topic in _streams:
            _streams.pop(self.topic).future.exception(timeout=120)


EXERCISES = ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6")


@dataclass
class Lab04(Lab):
    """Lab 04's run (see :class:`~neuralake.lab.graders.base.Lab`): one :class:`Pipeline`
    per exercise, each staged by its own builder."""

    number: ClassVar[str] = "04"
    exercises: ClassVar[tuple[str, ...]] = EXERCISES
    tables: ClassVar[tuple[str, ...]] = tuple(f"{ex}_bronze" for ex in EXERCISES)

    ex1: Pipeline
    ex2: Pipeline
    ex3: Pipeline
    ex4: Pipeline
    ex5: Pipeline
    ex6: Pipeline

    def stop(self) -> None:
        """Stop every writer of the lab and wait for any stream still producing."""
        for exercise in self.exercises:
            getattr(self, exercise).stop()


def setup(settings: Settings, *, prefix: str = "lab04_") -> Lab04:
    """(Re)create every exercise's topic, table and writer from scratch; forget attempts."""
    return Lab04.build_all(settings, prefix, needs_stack=True)


def drop(settings: Settings, prefix: str = "lab04_") -> None:
    """Stop the lab's writers; delete its tables, dead letters, ledgers and topics."""
    for exercise in EXERCISES:
        table = f"{prefix}{exercise}_bronze"
        control.down(settings, table, echo=_quiet)
        control.forget(settings, table, echo=_quiet)
        ledger = replay.ledger_uri(dead_letter_uri(settings.table_uri(table)))
        delta.drop_table(ledger, settings.storage_options)
        topics.delete_topic(settings, f"{prefix}{exercise}_signals")


def _pipeline(
    settings: Settings, prefix: str, exercise: str, partitions: int = PARTITIONS
) -> Pipeline:
    """A fresh, empty pipeline for ``exercise``: no writer, no table, an empty topic."""
    table = f"{prefix}{exercise}_bronze"
    control.down(settings, table, echo=_quiet)
    control.forget(settings, table, echo=_quiet)
    uri = settings.table_uri(table)
    dead = dead_letter_uri(uri)
    delta.drop_table(replay.ledger_uri(dead), settings.storage_options)
    topic = fresh_topic(settings, f"{prefix}{exercise}_signals", partitions)
    return Pipeline(settings, topic, table, uri, dead, f"{APP}.{table}")


def _ingest_all(pipe: Pipeline, *, keep_running: bool = False, **options: int) -> None:
    """Start the pipeline's writer, wait until the table holds the whole topic."""
    control.up(pipe.settings, topic=pipe.topic, table=pipe.table, echo=_quiet, only=INGEST_ONLY,
               **options)  # fmt: skip
    pipe.wait_caught_up()
    if not keep_running:
        control.down(pipe.settings, pipe.table, echo=_quiet)


def _send(settings: Settings, topic: str, messages: list[dict]) -> None:
    """Produce hand-made messages (dicts, sent as JSON), keyed by session and channel."""
    producer = Producer({**settings.kafka_config, "enable.idempotence": True})
    failures: list[str] = []
    for message in messages:
        producer.produce(
            topic,
            key=message_key(message["session_id"], message["channel"]),
            value=json.dumps(message).encode(),
            on_delivery=lambda error, _: failures.append(str(error)) if error else None,
        )
    left = producer.flush(15)
    if left or failures:
        raise NeuralakeError(f"producing the lab's messages failed: {failures or left}")


def _message(moment: datetime, session: int, channel: int, **changes: object) -> dict:
    stamp = moment.isoformat().replace("+00:00", "Z")
    return {**EXAMPLE_MESSAGE, "timestamp": stamp, "session_id": session, "channel": channel,
            **changes}  # fmt: skip


# -- the truth: every message of a topic, read back and checked ------------------------------


def topic_truth(pipe: Pipeline) -> pl.DataFrame:
    """One row per message: partition, offset, good (bool), field (what is broken), payload
    (the bytes of a broken message; null for a good one)."""
    messages = read_topic(pipe.settings, pipe.topic)
    verdicts = [_classify(payload) for payload in messages["payload"]]
    return messages.with_columns(
        good=pl.Series([field is None for field in verdicts], dtype=pl.Boolean),
        field=pl.Series(verdicts, dtype=pl.String),
    ).with_columns(payload=pl.when(pl.col("good")).then(None).otherwise(pl.col("payload")))


def _classify(payload: bytes | None) -> str | None:
    """None for a good message, else the field its dead-letter reason names."""
    try:
        wire.decode(payload)
    except wire.Malformed as reason:
        return reason_field(str(reason))
    return None


def reason_field(reason: str) -> str:
    """The field a dead-letter reason names (``"payload"`` when the whole message is bad)."""
    start = reason.find("field '")
    if start < 0:
        return "payload"
    return reason[start + 7 : reason.index("'", start + 7)]


def _session_of(payload: bytes | None) -> int | None:
    try:
        message = json.loads(payload or b"")
    except ValueError:
        return None
    session = message.get("session_id") if isinstance(message, dict) else None
    return session if isinstance(session, int) else None


def dead_by_source(broken: pl.DataFrame) -> pl.DataFrame:
    """Broken messages (columns payload, field) counted per (session_id, field): session
    null when the payload is not JSON. Sorted, most first."""
    return (
        broken.select(
            pl.col("payload")
            .map_elements(_session_of, return_dtype=pl.Int64, skip_nulls=False)
            .alias("session_id"),
            "field",
        )
        .group_by("session_id", "field")
        .len()
        .sort("len", "session_id", "field", descending=[True, False, False], nulls_last=True)
    )


# -- exercise 1 (diagnosis): whose firmware fills the dead-letter table? ---------------------

EX1_MESSAGES = 4_000  # ~1% of them broken in four ways: the background trickle
CULPRIT_SESSION = 7
CULPRIT_MESSAGES = 36  # since the rollout: timestamps in epoch nanoseconds


def build_dead(settings: Settings, prefix: str) -> Pipeline:
    """Session 1 streams with a trickle of broken messages of every kind; then a firmware
    rollout on session CULPRIT_SESSION's device sends its timestamps in nanoseconds."""
    pipe = _pipeline(settings, prefix, "ex1")
    produce(settings, topic=pipe.topic, count=EX1_MESSAGES, malformed_ratio=0.01, seed=SEED,
            partitions=PARTITIONS)  # fmt: skip
    start = datetime.now(UTC)
    rollout = []
    for i in range(CULPRIT_MESSAGES):
        moment = start + timedelta(milliseconds=i)
        nanoseconds = int(moment.timestamp() * 1e6) * 1_000
        rollout.append(_message(moment, CULPRIT_SESSION, i % 64, timestamp=nanoseconds))
    _send(settings, pipe.topic, rollout)
    _ingest_all(pipe)
    return pipe


FIND_THE_SOURCE = Hint(
    concept="A dead letter keeps the message's bytes as they came: who sent it is in "
    "there, beside the reason that says what broke.",
    api="The dead-letter table's reason and payload columns (lesson 04, section 6); "
    "json.loads reads a payload, when it is JSON at all.",
    call="lab.ex1.dead_letters().with_columns(session_id=pl.col('payload').map_elements("
    "session_of, return_dtype=pl.Int64), field=pl.col('reason').str.extract(r\"field "
    "'(\\w+)'\").fill_null('payload')).group_by('session_id', 'field').len().sort('len', "
    "descending=True), where session_of(payload) returns json.loads(payload)['session_id'], "
    "or None when the payload is not JSON; culprit = the first row's session_id and field",
)
NOT_THE_TRICKLE = Hint(
    concept="A broken firmware breaks the same field of every message its device sends; "
    "a background trickle spreads over many fields.",
    api="Count the dead letters per session and per field together (group_by on both), "
    "not per field alone.",
    call="culprit = dict(session_id=..., field=...) from the (session_id, field) pair "
    "with the most dead letters",
)


def check_culprit(lab: Lab04, culprit: dict | None) -> None:
    grade, pipe = Lab04.grading("ex1"), lab.ex1
    grade.expect(
        isinstance(culprit, dict) and {"session_id", "field"} <= set(culprit),
        f"culprit is {culprit!r}, not a dict with session_id and field",
        FIND_THE_SOURCE,
    )
    assert isinstance(culprit, dict)
    truth = dead_by_source(topic_truth(pipe).filter(~pl.col("good")))
    top = truth.row(0, named=True)
    session, field_name = culprit["session_id"], str(culprit["field"])
    if session != top["session_id"]:
        theirs = truth.filter(pl.col("session_id") == session)
        grade.fail(
            f"session {session!r} sent {theirs['len'].sum()} dead letters over "
            f"{theirs.height} field(s), at most {theirs['len'].max() or 0!r} for one field; "
            f"another session sent {top['len']} of one kind",
            NOT_THE_TRICKLE,
        )
    grade.expect(
        field_name == top["field"],
        f"session {session}'s dead letters do not name {field_name!r}",
        FIND_THE_SOURCE,
    )
    passed(
        f"session {session}'s device sent {top['len']} messages the writer could not store, "
        f"all for field {field_name!r}; the other {truth['len'].sum() - top['len']} dead "
        "letters are the background trickle"
    )


# -- exercise 2: lag while nobody consumes -------------------------------------------------

EX2_MESSAGES = 3_000
BURST = 5_000  # messages the lab asks to produce while the writer is stopped

# The hints, in the order check_lag meets the mistakes they answer.
STOP_FIRST = Hint(
    concept="Lag holds still only while nobody consumes.",
    api="neuralake.lab.writer.control.down (lesson 04, section 10).",
    call="control.down(s, lab.ex2.table)",
)
BURST_FIRST = Hint(
    concept="Lag is what the log holds beyond what the consumer confirmed.",
    api="lab.ex2.start_stream(count, rate) then lab.ex2.wait_stream().",
    call=f"lab.ex2.start_stream({BURST}, rate=20_000); lab.ex2.wait_stream()",
)
LAG_PER_PARTITION = Hint(
    concept="Per partition: the high watermark against the group's committed offset.",
    api="AdminClient.list_consumer_group_offsets (lesson 03, section 0), or topics.group_lag "
    "(lesson 04, section 3).",
    call="dict(topics.group_lag(s, lab.ex2.group, lab.ex2.topic).select('partition', "
    "'lag').iter_rows())",
)
LAG_FROM_TABLE = Hint(
    concept="The table itself records how far it got in each partition, in the same "
    "commit as the rows.",
    api="DeltaTable.transaction_version(app_id(APP, topic, partition)) (lesson 04, section 4).",
    call="{p: high - 1 - table.transaction_version(app_id('neuralake-writer', "
    "lab.ex2.topic, p)) for p, high in ...}",
)


def build_lag(settings: Settings, prefix: str) -> Pipeline:
    """A topic and its writer, running and caught up."""
    pipe = _pipeline(settings, prefix, "ex2")
    produce(settings, topic=pipe.topic, count=EX2_MESSAGES, seed=SEED, partitions=PARTITIONS)
    _ingest_all(pipe, keep_running=True)
    return pipe


def check_lag(
    lab: Lab04, lag: dict[int, int] | None, lag_from_table: dict[int, int] | None
) -> None:
    grade, pipe = Lab04.grading("ex2"), lab.ex2
    ingest = pipe.ingest()
    grade.expect(
        ingest is None,
        f"the writer's ingest process is running (pid {ingest[0] if ingest else '-'}): its lag "
        "changes while you read it",
        STOP_FIRST,
    )
    kafka = topics.group_lag(lab.settings, pipe.group, pipe.topic)
    truth = {int(p): int(n) for p, n in kafka.select("partition", "lag").iter_rows()}
    grade.expect(
        sum(truth.values()) >= BURST,
        f"the writer's group is only {sum(truth.values())} messages behind: the burst of "
        f"{BURST:,} was not produced while the writer was stopped",
        BURST_FIRST,
    )
    grade.expect(
        _as_counts(lag) == truth, f"lag is {lag!r}; the AdminClient says {truth}", LAG_PER_PARTITION
    )
    table = DeltaTable(pipe.uri, storage_options=lab.storage_options or None)
    highs = dict(kafka.select("partition", "high").iter_rows())
    from_table = {
        int(p): int(high - 1 - _or(table.transaction_version(app_id(APP, pipe.topic, p)), -1))
        for p, high in highs.items()
    }
    grade.expect(
        _as_counts(lag_from_table) == from_table,
        f"lag_from_table is {lag_from_table!r}; the table's txn versions give {from_table}",
        LAG_FROM_TABLE,
    )
    passed(f"{sum(truth.values()):,} messages behind, by Kafka and by the table alike: {truth}")


def _require_caught_up(grade: Grading, pipe: Pipeline, hint: Hint) -> None:
    """Fail the check unless the table catches up with the topic within 30 s."""
    try:
        pipe.wait_caught_up(timeout=30)
    except TimeoutError as err:
        grade.fail(str(err), hint)


def _as_counts(value: object) -> dict[int, int] | None:
    if not isinstance(value, dict):
        return None
    try:
        return {int(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


# -- exercise 3 (diagnosis): what did the recovery script do? -------------------------------

EX3_RUNS = (3_000, 2_500, 1_500)  # messages before the crash, in the lost batch, after
CAUSES = {
    "resumed_from_kafka": "the writer resumed from the consumer group's offsets",
    "append_without_txn": "a commit appended rows without the writer's txn actions",
    "compaction": "a compaction added its rewritten files as new data",
}


def build_doubled(settings: Settings, prefix: str) -> Pipeline:
    """The writer ingests a batch; the next one reaches the table but (as if the process
    died in between) not the group's offsets; an on-call script re-reads the topic from
    those offsets and appends what it finds; then the writer runs on."""
    pipe = _pipeline(settings, prefix, "ex3")
    first, lost, after = EX3_RUNS
    produce(settings, topic=pipe.topic, count=first, malformed_ratio=0.01, seed=SEED)
    _ingest_all(pipe)
    committed = dict(
        topics.group_lag(settings, pipe.group, pipe.topic).select("partition", "committed")
        .iter_rows()
    )  # fmt: skip
    produce(settings, topic=pipe.topic, count=lost, malformed_ratio=0.01, seed=SEED + 1)
    _ingest_all(pipe)
    again = pipe.bronze().filter(
        pl.col("kafka_offset")
        >= pl.col("kafka_partition").replace_strict(committed, return_dtype=pl.Int64)
    )
    write_deltalake(pipe.uri, again.to_arrow(), mode="append", partition_by=["date"],
                    storage_options=settings.storage_options)  # fmt: skip
    produce(settings, topic=pipe.topic, count=after, malformed_ratio=0.01, seed=SEED + 2)
    _ingest_all(pipe)
    return pipe


def doubling(uri: str, storage_options: dict[str, str]) -> pl.DataFrame:
    """Per version that added a (kafka_partition, kafka_offset) an earlier version had
    added: version, kafka_partition, rows doubled, and whether it carried txn actions."""
    latest = DeltaTable(uri, storage_options=storage_options or None).version()
    seen: pl.DataFrame | None = None
    found = []
    for version in range(latest + 1):
        adds, _ = data_adds(uri, version, storage_options)
        if not adds:
            continue
        keys = read_added(uri, adds, storage_options, ["kafka_partition", "kafka_offset"])
        if seen is not None:
            again = keys.join(seen, on=["kafka_partition", "kafka_offset"], how="semi")
            txn = any("txn" in a for a in delta.read_commit(uri, version, storage_options))
            for partition, rows in again.group_by("kafka_partition").len().iter_rows():
                found.append((version, partition, rows, txn))
        seen = keys if seen is None else pl.concat([seen, keys])
    return pl.DataFrame(
        found,
        schema={"version": pl.Int64, "kafka_partition": pl.Int32, "rows": pl.UInt32,
                "txn": pl.Boolean},
        orient="row",
    ).sort("version", "kafka_partition")  # fmt: skip


WHICH_COMMIT = Hint(
    concept="Each Kafka message is one (partition, offset): a row whose pair an earlier "
    "commit already added is a copy, and the log says which commit added it.",
    api="delta.read_commit(uri, version) lists a commit's add and txn actions (lesson 03, "
    "section 3); pl.read_parquet reads the files a commit added.",
    call="for each version v: keys of the files read_commit(uri, v) added, joined (how="
    "'semi') with the keys of every earlier version; doubled_version = the v that finds some",
)
PER_PARTITION = Hint(
    concept="Offsets are per partition: count the copies per kafka_partition.",
    api="group_by('kafka_partition').len() on the rows the doubling commit added again.",
    call="doubled = dict(copies.group_by('kafka_partition').len().iter_rows())",
)
WHY_DOUBLED = Hint(
    concept="A commit's actions say which process made it and what it promised: compare "
    "the doubling commit with the writer's own commits.",
    api="The txn actions delta.read_commit(uri, version) lists (lesson 03, section 3), and "
    "the commitInfo beside them.",
    call="cause = 'append_without_txn' when the doubling commit has no txn action",
)


def check_doubled(
    lab: Lab04, doubled_version: int | None, doubled: dict | None, cause: str | None
) -> None:
    grade, pipe = Lab04.grading("ex3"), lab.ex3
    truth = doubling(pipe.uri, lab.storage_options)
    versions = sorted(set(truth["version"]))
    grade.expect(
        doubled_version in versions,
        f"doubled_version is {doubled_version!r}, and no commit but "
        f"{' and '.join(map(str, versions)) or 'none'} added a row an earlier commit had added",
        WHICH_COMMIT,
    )
    rows = truth.filter(pl.col("version") == doubled_version)
    want = {int(p): int(n) for _, p, n, _ in rows.iter_rows()}
    grade.expect(
        _as_counts(doubled) == want,
        f"doubled is {doubled!r}; version {doubled_version} added again {want} rows per partition",
        PER_PARTITION,
    )
    writer = bool(rows["txn"].any())
    right = "resumed_from_kafka" if writer else "append_without_txn"
    grade.expect(
        cause in CAUSES,
        f"cause is {cause!r}, not one of {sorted(CAUSES)}",
        WHY_DOUBLED,
    )
    grade.expect(
        cause == right,
        f"cause is {cause!r}, but version {doubled_version} "
        + ("carries" if writer else "carries no")
        + " txn actions",
        WHY_DOUBLED,
    )
    passed(
        f"version {doubled_version} added {sum(want.values()):,} rows a second time "
        f"({want} per partition): {CAUSES[right]}"
    )


# -- exercise 4: fix what can be fixed, replay each once ------------------------------------

EX4_MESSAGES = 3_000
FAULTS_PER_KIND = 6  # hand-made broken messages per kind below
FAULT_SESSION = 9  # their session_id: no generated message uses it
FIXABLE = ("spike", "voltage_uv", "timestamp")  # fields whose true value can be recovered
SPIKE_WORDS = {"yes": True, "no": False}


FIX_WHAT_IS_KNOWABLE = Hint(
    concept="Only a value you can know may be fixed; a guessed value is worse than a "
    "dead letter that waits for a human.",
    api="replay.pending, a fixed payload column (null = leave alone), replay.replay "
    "(lesson 04, section 6).",
    call="replay.replay(replay.pending(lab.ex4.dead_uri, opts).with_columns(pl.col("
    "'payload').map_elements(fix, return_dtype=pl.Binary, skip_nulls=True)), "
    "dead_letter_uri=lab.ex4.dead_uri, kafka_config=s.kafka_config, storage_options=opts)",
)
REPLAY_ONCE = Hint(
    concept="A replay is a new message: replaying twice makes two rows.",
    api="replay.replay records every replay in a ledger and skips what it holds.",
    call="replay.replay(...) instead of producing the fixed payloads yourself",
)


def build_repair(settings: Settings, prefix: str) -> Pipeline:
    """Broken messages of every kind, a few of them fixable; the writer left running (a
    replayed message must be ingested)."""
    pipe = _pipeline(settings, prefix, "ex4")
    produce(settings, topic=pipe.topic, count=EX4_MESSAGES, malformed_ratio=0.02, seed=SEED,
            partitions=PARTITIONS)  # fmt: skip
    _send(settings, pipe.topic, fixable_faults())
    _ingest_all(pipe, keep_running=True)
    return pipe


def fixable_faults() -> list[dict]:
    """Broken messages whose true value is known: a yes/no spike, a voltage as text, a
    timestamp without its UTC offset (the devices send UTC)."""
    start, out = datetime.now(UTC), []
    for i in range(FAULTS_PER_KIND * len(FIXABLE)):
        moment = start + timedelta(milliseconds=i)
        message = _message(moment, FAULT_SESSION, i, voltage_uv=round(-20 + i * 1.5, 1))
        kind = FIXABLE[i % len(FIXABLE)]
        if kind == "spike":
            message["spike"] = "yes" if i % 2 else "no"
        elif kind == "voltage_uv":
            message["voltage_uv"] = str(message["voltage_uv"])
        else:
            message["timestamp"] = moment.replace(tzinfo=None).isoformat()
        out.append(message)
    return out


def expected_fix(payload: bytes) -> dict | None:
    """The row a fixable dead letter stands for, or None when its true value is unknown."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    fixed = dict(message)
    if isinstance(message.get("spike"), str) and message["spike"] in SPIKE_WORDS:
        fixed["spike"] = SPIKE_WORDS[message["spike"]]
    if isinstance(message.get("voltage_uv"), str):
        try:
            fixed["voltage_uv"] = float(message["voltage_uv"])
        except ValueError:
            return None
    stamp = message.get("timestamp")
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if moment.tzinfo is None:
            fixed["timestamp"] = moment.replace(tzinfo=UTC).isoformat()
    if fixed == message:
        return None  # nothing we know how to repair
    try:
        row = wire.decode(json.dumps(fixed).encode())
    except wire.Malformed:
        return None  # something else is broken too
    return row


def check_replayed(lab: Lab04) -> None:
    grade, pipe = Lab04.grading("ex4"), lab.ex4
    dead = pipe.dead_letters()
    fixes = {
        (p, o): expected_fix(payload)
        for p, o, payload in dead.select("kafka_partition", "kafka_offset", "payload").iter_rows()
    }
    fixable = {coords: row for coords, row in fixes.items() if row is not None}
    ledger = replay.replayed(pipe.dead_uri, lab.storage_options)
    invented = [
        (p, o)
        for p, o in ledger.select("kafka_partition", "kafka_offset").iter_rows()
        if (p, o) in fixes and fixes[(p, o)] is None
    ]
    grade.expect(
        not invented,
        f"{len(invented)} replayed dead letter(s) had no knowable fix (e.g. partition "
        f"{invented[0][0] if invented else '-'} offset {invented[0][1] if invented else '-'}): "
        "their replayed values are invented",
        FIX_WHAT_IS_KNOWABLE,
    )
    grade.expect(
        ledger.height > 0,
        f"nothing was replayed: {len(fixable)} dead letters can be fixed",
        FIX_WHAT_IS_KNOWABLE,
    )
    _require_caught_up(grade, pipe, FIX_WHAT_IS_KNOWABLE)
    bronze = pipe.bronze()
    keys = ["timestamp", "session_id", "channel"]
    want = pl.DataFrame(list(fixable.values())).with_columns(
        pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
        pl.col("session_id").cast(pl.Int32),
        pl.col("channel").cast(pl.Int16),
    )
    found = want.join(bronze.group_by(keys).len(), on=keys, how="left").with_columns(
        pl.col("len").fill_null(0)
    )
    missing, twice = found.filter(pl.col("len") == 0), found.filter(pl.col("len") > 1)
    grade.expect(
        missing.height == 0,
        f"{missing.height} of {len(fixable)} fixable dead letters are not in bronze",
        FIX_WHAT_IS_KNOWABLE,
    )
    grade.expect(
        twice.height == 0,
        f"{twice.height} fixed dead letters are in bronze more than once (up to "
        f"{found['len'].max()!r} times)",
        REPLAY_ONCE,
    )
    landed = want.join(bronze, on=keys, suffix="_bronze")
    wrong = landed.filter(
        (pl.col("spike") != pl.col("spike_bronze"))
        | ((pl.col("voltage_uv") - pl.col("voltage_uv_bronze")).abs() > 1e-3)
    )
    grade.expect(
        wrong.height == 0,
        f"{wrong.height} replayed rows carry other values than their dead letter",
        FIX_WHAT_IS_KNOWABLE,
    )
    left = len(fixes) - len(fixable)
    passed(f"{len(fixable)} fixable dead letters in bronze once each; {left} left dead")


# -- exercise 5: add a worker, nothing doubled or lost ---------------------------------------

SCALE_PARTITIONS = 6
EX5_MESSAGES = 6_000


def build_scale(settings: Settings, prefix: str) -> Pipeline:
    """A topic of SCALE_PARTITIONS partitions, ingested by one worker that keeps running."""
    pipe = _pipeline(settings, prefix, "ex5", partitions=SCALE_PARTITIONS)
    produce(settings, topic=pipe.topic, count=EX5_MESSAGES, malformed_ratio=0.01, seed=SEED,
            partitions=SCALE_PARTITIONS)  # fmt: skip
    _ingest_all(pipe, keep_running=True, workers=1)
    return pipe


ADD_A_WORKER = Hint(
    concept="Workers that share a consumer group split the topic's partitions between "
    "them; a new member makes the group rebalance.",
    api="control.up(s, topic=..., table=..., workers=N, only=['ingest']) runs N workers in "
    "one group, and control.status(s, table) lists the partitions each one owns (its gauge "
    "neuralake_writer_assigned_partition, lesson 04, section 9).",
    call="lab.ex5.start_stream(40_000, rate=5_000); control.up(s, topic=lab.ex5.topic, "
    "table=lab.ex5.table, workers=2, only=['ingest'])",
)
WHILE_STREAMING = Hint(
    concept="A rebalance proves something only while messages keep arriving: partitions "
    "move while their batches are being filled.",
    api="lab.ex5.start_stream(count, rate) returns at once; add the worker before "
    "lab.ex5.wait_stream().",
    call="lab.reset('ex5'); lab.ex5.start_stream(40_000, rate=5_000); then control.up(..., "
    "workers=2, only=['ingest']) at once",
)
COUNT_IT_ALL = Hint(
    concept="Nothing lost and nothing doubled are separate claims: rows can add up while "
    "a loss and a duplicate cancel out.",
    api="Messages in the topic (topics.describe(...)['messages']), rows of bronze, distinct "
    "(kafka_partition, kafka_offset) pairs (n_unique), dead letters (lesson 04, section 5).",
    call="proof = {'messages': int(topics.describe(s, lab.ex5.topic)['messages'].sum()), "
    "'rows': bronze.height, 'unique_offsets': bronze.select('kafka_partition', "
    "'kafka_offset').n_unique(), 'dead_letters': lab.ex5.dead_letters().height}",
)
COUNT_WHEN_DONE = Hint(
    concept="Count once the stream is over and the table holds every partition to its end.",
    api="lab.ex5.wait_stream(), then lab.ex5.wait_caught_up().",
    call="lab.ex5.wait_stream(); lab.ex5.wait_caught_up(); then count",
)
EXACTLY_ONCE = Hint(
    concept="Every worker resumes a partition from the table's txn versions, so rows and "
    "offsets must agree whatever moved.",
    api="Only the writer's workers may commit to the table; lab.reset('ex5') starts over.",
    call="lab.reset('ex5'), then add the worker with control.up only",
)
PROOF_KEYS = ("messages", "rows", "unique_offsets", "dead_letters")


def check_scaled(lab: Lab04, proof: dict | None) -> None:
    grade, pipe = Lab04.grading("ex5"), lab.ex5
    workers = pipe.workers()
    owning = [w for w in workers if w.partitions]
    grade.expect(
        len(owning) >= 2,
        f"{len(workers)} ingest worker(s) of {pipe.table} run, {len(owning)} owning partitions "
        "of the topic: the group was not scaled out",
        ADD_A_WORKER,
    )
    stream = pipe.stream()
    grade.expect(stream is not None, "no stream was started on lab.ex5.topic", WHILE_STREAMING)
    assert stream is not None
    grade.expect(stream.ended is not None, "the stream is still running", COUNT_WHEN_DONE)
    assert stream.ended is not None
    joined = [
        w for w in owning if w.pid not in stream.workers_at_start and w.pid in stream.workers_at_end
    ]
    grade.expect(
        bool(joined),
        f"no worker joined while the stream ran: the workers now owning partitions "
        f"{sorted(w.pid or 0 for w in owning)} were running before it started "
        f"{sorted(stream.workers_at_start)} or started after it ended",
        WHILE_STREAMING,
    )
    _require_caught_up(grade, pipe, COUNT_WHEN_DONE)
    truth_frame = topic_truth(pipe)
    bronze = pipe.bronze().select("kafka_partition", "kafka_offset")
    dead = pipe.dead_letters().select("kafka_partition", "kafka_offset")
    truth = {
        "messages": truth_frame.height,
        "rows": bronze.height,
        "unique_offsets": bronze.n_unique(),
        "dead_letters": dead.height,
    }
    grade.expect(
        isinstance(proof, dict) and set(PROOF_KEYS) <= set(proof),
        f"proof is {proof!r}, not a dict with {', '.join(PROOF_KEYS)}",
        COUNT_IT_ALL,
    )
    assert isinstance(proof, dict)
    wrong = {k: (proof[k], truth[k]) for k in PROOF_KEYS if proof[k] != truth[k]}
    grade.expect(not wrong, f"proof disagrees with the tables: (yours, true) {wrong}", COUNT_IT_ALL)
    good = int(truth_frame["good"].sum())
    grade.expect(
        truth["rows"] == truth["unique_offsets"] == good
        and truth["dead_letters"] == dead.n_unique() == truth["messages"] - good,
        f"bronze has {truth['rows']:,} rows ({truth['unique_offsets']:,} distinct offsets) for "
        f"{good:,} good messages; {truth['dead_letters']:,} dead letters for "
        f"{truth['messages'] - good:,} malformed",
        EXACTLY_ONCE,
    )
    split = {w.name: w.partitions for w in owning}
    passed(
        f"{len(owning)} workers share the topic {split}, {joined[0].name} joined during a "
        f"{stream.ended - stream.started:.1f} s stream: {truth['messages']:,} messages = "
        f"{truth['rows']:,} rows + {truth['dead_letters']:,} dead letters, every offset once"
    )


# -- exercise 6 (stretch): freshness p99 from the log ---------------------------------------

BACKLOG = 2_000  # produced while no writer runs
OUTAGE_S = 2.0  # how long they wait before the writer starts
STEADY = (3_000, 1_500)  # then messages at a rate per second, the writer running
FLUSH_MS = 500


def build_freshness(settings: Settings, prefix: str) -> Pipeline:
    """A backlog that waited OUTAGE_S for the writer, then a steady stream it ingests live,
    with a compactor that rewrites the small files."""
    pipe = _pipeline(settings, prefix, "ex6")
    produce(settings, topic=pipe.topic, count=BACKLOG, seed=SEED, partitions=PARTITIONS)
    time.sleep(OUTAGE_S)
    control.up(settings, topic=pipe.topic, table=pipe.table, echo=_quiet,
               only=["ingest", "compact"], flush_ms=FLUSH_MS, compact_interval_s=1,
               min_files=2)  # fmt: skip
    count, rate = STEADY
    produce(settings, topic=pipe.topic, count=count, rate=rate, seed=SEED + 1)
    pipe.wait_caught_up()
    deadline = time.monotonic() + 30
    while not _compacted(pipe) and time.monotonic() < deadline:
        time.sleep(0.5)
    control.down(settings, pipe.table, echo=_quiet)
    if not _compacted(pipe):
        raise NeuralakeError(f"the compactor of {pipe.table} did not commit within 30 s")
    return pipe


def _compacted(pipe: Pipeline) -> bool:
    history = delta.history(pipe.uri, pipe.settings.storage_options)
    return history["operation"].str.contains("(?i)optimize|compact").any()


def commit_freshness(uri: str, storage_options: dict[str, str]) -> pl.DataFrame:
    """Per row the log ever added (dataChange): commit time - kafka_timestamp, in seconds."""
    history = delta.history(uri, storage_options)
    frames = []
    for version, stamp in history.select("version", "timestamp").iter_rows():
        adds, _ = data_adds(uri, version, storage_options)
        if not adds:
            continue
        stamps = read_added(uri, adds, storage_options, ["kafka_timestamp"])
        frames.append(
            stamps.select(
                version=pl.lit(version),
                freshness_s=(pl.lit(stamp) - pl.col("kafka_timestamp")).dt.total_microseconds()
                / 1e6,
            )
        )
    return pl.concat(frames)


COMMIT_FRESHNESS = Hint(
    concept="A row becomes readable at the commit that added its file; its freshness is "
    "the time from Kafka receiving it to that commit.",
    api="delta.history gives each commit's time (lesson 01, section 4); delta.read_commit "
    "lists a commit's add actions (lesson 01, section 2), compaction's with dataChange "
    "false (lesson 03, section 4); pl.read_parquet reads the added files.",
    call="for each version: files = [add['path'] for adds with dataChange]; "
    "(commit_ts - pl.read_parquet(files)['kafka_timestamp']), then .quantile(0.99)",
)
DATA_CHANGE_ONLY = Hint(
    concept="Count each row once, at the commit that first added it: compaction "
    "rewrites files with rows that were already readable.",
    api="Skip add actions whose dataChange is false.",
    call="[a['add']['path'] for a in delta.read_commit(uri, v, opts) if 'add' in a "
    "and a['add'].get('dataChange', True)]",
)


def check_freshness(lab: Lab04, p99: float | None) -> None:
    grade, pipe = Lab04.grading("ex6"), lab.ex6
    grade.expect(
        isinstance(p99, int | float), f"p99 is {p99!r}, not a number of seconds", COMMIT_FRESHNESS
    )
    assert isinstance(p99, int | float)
    truth = commit_freshness(pipe.uri, lab.storage_options)
    true_p99 = truth["freshness_s"].quantile(0.99)
    if true_p99 is None:
        grade.fail(f"the log of {pipe.table} added no rows to measure", DATA_CHANGE_ONLY)
    grade.expect(
        abs(p99 - true_p99) <= max(0.01 * true_p99, 0.005),
        f"p99={p99:.3f} s; over the {truth.height:,} rows the log added, it is {true_p99:.3f} s",
        DATA_CHANGE_ONLY,
    )
    passed(
        f"p99 freshness {true_p99:.2f} s over {truth.height:,} rows (p50 "
        f"{truth['freshness_s'].quantile(0.5):.2f} s)"
    )


BUILDERS = {
    "ex1": build_dead,
    "ex2": build_lag,
    "ex3": build_doubled,
    "ex4": build_repair,
    "ex5": build_scale,
    "ex6": build_freshness,
}
Lab04.builders = BUILDERS
