"""Lab 04, Kafka into Delta exactly once: the lab's topic and writer, and the graders.

``setup()`` creates a topic, fills it with neural-signal messages (some broken on
purpose, a few of them in ways that *can* be fixed), starts the Rust writer on it and
waits until the bronze table holds everything. The graders never trust a number the
student reports: the truth comes from the topic itself (every message read back and
checked with :func:`neuralake.streaming.wire.decode`), from the AdminClient, and from
the tables' own logs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

import polars as pl
import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import DeltaTable

from neuralake import delta
from neuralake.errors import NeuralakeError
from neuralake.lab.graders.base import Lab, fresh_topic
from neuralake.lab.graders.checks import Hint, expect, passed
from neuralake.lab.stack import processes
from neuralake.lab.writer import control
from neuralake.settings import Settings
from neuralake.streaming import replay, topics, wire
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import EXAMPLE_MESSAGE, app_id, dead_letter_uri, message_key

PARTITIONS = 3
APP = "neuralake-writer"  # the writer's default --app-id
SEED = 11
FAULTS_PER_KIND = 6  # hand-made broken messages per kind below
FAULT_SESSION = 9  # their session_id: no generated message uses it
FIXABLE = ("spike", "voltage_uv", "timestamp")  # fields whose true value can be recovered
SPIKE_WORDS = {"yes": True, "no": False}
CATCH_UP_S = 60.0


@dataclass
class Lab04(Lab):
    """Lab 04's run (see :class:`~neuralake.lab.graders.base.Lab`): where its topic, tables and
    writer are. All five exercises share them."""

    number: ClassVar[str] = "04"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5")

    topic: str
    table: str
    bronze_uri: str
    dead_uri: str
    group: str  # the writer's consumer group (for lag tools)
    work: Path  # pid files and logs of the streams this lab starts
    messages: int

    def bronze(self) -> pl.DataFrame:
        return pl.read_delta(self.bronze_uri, storage_options=self.storage_options or None)

    def dead_letters(self) -> pl.DataFrame:
        return pl.read_delta(self.dead_uri, storage_options=self.storage_options or None)

    def ingest(self) -> tuple[int, float] | None:
        """(pid, start time) of the lab writer's running ingest process, if any."""
        for row in control.status(self.settings, self.table):
            if row.name == "ingest" and row.alive and row.pid:
                return row.pid, psutil.Process(row.pid).create_time()
        return None

    def rebuild(self, exercise: str) -> None:
        """ex1, ex5: nothing to rebuild. ex2, ex3: no stream running, the writer up and
        caught up. ex4: replayed messages cannot be taken back out of Kafka, so the whole
        lab is set up again (``setup`` with the same prefix)."""
        if exercise in ("ex2", "ex3"):
            processes.stop(self._stream_pid)
            (self.work / "stream.json").unlink(missing_ok=True)
            control.up(self.settings, topic=self.topic, table=self.table, echo=lambda _: None)
            self.wait_caught_up()
            self._record_ingest()
        elif exercise == "ex4":
            setup(self.settings, prefix=self.prefix, messages=self.messages)

    def _record_ingest(self) -> None:
        ingest = self.ingest()
        if ingest is None:
            raise NeuralakeError("the lab's writer did not start: see control.status(s)")
        (self.work / "setup.json").write_text(json.dumps({"ingest_started": ingest[1]}))

    def start_stream(self, count: int, rate: float) -> None:
        """Start ``neuralake produce`` into the lab's topic in the background (tracked)."""
        if processes.running(self._stream_pid) is not None:
            raise RuntimeError("a stream is still running: wait for it (lab.wait_stream())")
        log = self.work / "stream.log"
        log.unlink(missing_ok=True)
        cmd = [str(Path(sys.executable).with_name("neuralake")), "produce", "--topic", self.topic]
        cmd += ["--count", str(count), "--rate", str(rate), "--seed", str(SEED + 1)]
        cmd += ["--malformed-ratio", "0.01", "--partitions", str(PARTITIONS)]
        tracked = processes.start(
            cmd, pid_file=self._stream_pid, log_file=log, env=dict(os.environ), cwd=self.work
        )
        (self.work / "stream.json").write_text(json.dumps({"started": tracked.create_time}))

    def wait_stream(self, timeout: float = 120) -> dict:
        """Wait until the stream started by :meth:`start_stream` is done; its summary."""

        def finished() -> None:
            if processes.running(self._stream_pid) is not None:
                raise TimeoutError(f"the stream is still running after {timeout:.0f} s")

        processes.wait_until(finished, timeout=timeout, interval=0.2, retry_on=TimeoutError)
        processes.exit_code(self._stream_pid)  # reap it
        lines = (self.work / "stream.log").read_text().splitlines()
        return json.loads(lines[-1])

    def wait_caught_up(self, timeout: float = CATCH_UP_S) -> float:
        """Wait until the bronze table holds every partition up to its end; seconds."""
        started = time.monotonic()
        while (behind := self.behind()) and time.monotonic() - started < timeout:
            time.sleep(0.25)
        if behind:
            partition, (done, high) = next(iter(behind.items()))
            raise TimeoutError(
                f"the table holds partition {partition} up to offset {done}, the topic ends "
                f"at {high - 1}, after {timeout:.0f} s: is the writer running? "
                "(control.status(s, lab.table))"
            )
        return time.monotonic() - started

    def behind(self) -> dict[int, tuple[int, int]]:
        """Partitions the table does not hold to their end: partition -> (txn version, high)."""
        table = DeltaTable(self.bronze_uri, storage_options=self.storage_options or None)
        highs = topics.describe(self.settings, self.topic).select("partition", "high").iter_rows()
        out = {}
        for partition, high in highs:
            done = table.transaction_version(app_id(APP, self.topic, partition))
            done = -1 if done is None else done
            if done < high - 1:
                out[partition] = (done, high)
        return out

    def stop(self) -> None:
        """Stop the lab's writer and any stream still running."""
        control.down(self.settings, self.table, echo=lambda _: None)
        processes.stop(self._stream_pid)

    @property
    def _stream_pid(self) -> Path:
        return self.work / "stream.pid"


def setup(
    settings: Settings,
    *,
    prefix: str = "lab04_",
    messages: int = 20_000,
    malformed_ratio: float = 0.02,
) -> Lab04:
    """(Re)create the lab: topic, messages, writer running and caught up."""
    Lab04.forget_attempts()
    table = f"{prefix}bronze"
    bronze_uri = settings.table_uri(table)
    lab = Lab04(
        settings=settings,
        topic=f"{prefix}signals",
        table=table,
        bronze_uri=bronze_uri,
        dead_uri=dead_letter_uri(bronze_uri),
        group=f"{APP}.{table}",
        work=settings.state_dir / "labs" / "04" / prefix.rstrip("_"),
        prefix=prefix,
        messages=messages,
    )
    lab.work.mkdir(parents=True, exist_ok=True)
    lab.stop()
    for uri in (lab.bronze_uri, lab.dead_uri, replay.ledger_uri(lab.dead_uri)):
        delta.drop_table(uri, settings.storage_options)
    fresh_topic(settings, lab.topic, PARTITIONS)
    (lab.work / "stream.json").unlink(missing_ok=True)
    produce(
        settings,
        topic=lab.topic,
        count=messages,
        malformed_ratio=malformed_ratio,
        seed=SEED,
        partitions=PARTITIONS,
    )
    _produce_fixable_faults(settings, lab.topic)
    control.up(settings, topic=lab.topic, table=lab.table, echo=lambda _: None)
    lab.wait_caught_up()
    lab._record_ingest()
    return lab


def _produce_fixable_faults(settings: Settings, topic: str) -> None:
    """Broken messages whose true value is known: a yes/no spike, a voltage as text, a
    timestamp without its UTC offset (the devices send UTC)."""
    start = datetime.now(UTC)
    producer = Producer({**settings.kafka_config, "enable.idempotence": True})
    failures: list[str] = []
    for i in range(FAULTS_PER_KIND * len(FIXABLE)):
        moment = start + timedelta(milliseconds=i)
        message = {
            **EXAMPLE_MESSAGE,
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "session_id": FAULT_SESSION,
            "channel": i,
            "voltage_uv": round(-20 + i * 1.5, 1),
        }
        kind = FIXABLE[i % len(FIXABLE)]
        if kind == "spike":
            message["spike"] = "yes" if i % 2 else "no"
        elif kind == "voltage_uv":
            message["voltage_uv"] = str(message["voltage_uv"])
        else:
            message["timestamp"] = moment.replace(tzinfo=None).isoformat()
        producer.produce(
            topic,
            key=message_key(FAULT_SESSION, i),
            value=json.dumps(message).encode(),
            on_delivery=lambda error, _: failures.append(str(error)) if error else None,
        )
    left = producer.flush(15)
    if left or failures:
        raise RuntimeError(f"producing the lab's messages failed: {failures or left}")


# -- the truth: every message of the topic, read back and checked -------------------------


def topic_truth(lab: Lab04) -> pl.DataFrame:
    """One row per message: partition, offset, good (bool), field (what is broken), payload."""
    consumer = Consumer({**lab.settings.kafka_config, "group.id": f"{lab.group}.grader"})
    rows: list[dict] = []
    try:
        ends = {}
        for partition in range(PARTITIONS):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(lab.topic, partition), timeout=10
            )
            if high > low:
                ends[partition] = (low, high)
        consumer.assign([TopicPartition(lab.topic, p, low) for p, (low, _) in ends.items()])
        left = {p: high - low for p, (low, high) in ends.items()}
        deadline = time.monotonic() + 60
        while any(left.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka did not serve {lab.topic} to its end in 60 s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() is None and msg.offset() < ends[msg.partition()][1]:
                    rows.append(_classify(msg.partition(), msg.offset(), msg.value()))
                    left[msg.partition()] -= 1
    finally:
        consumer.close()
    return pl.DataFrame(
        rows,
        schema={
            "kafka_partition": pl.Int32,
            "kafka_offset": pl.Int64,
            "good": pl.Boolean,
            "field": pl.String,
            "payload": pl.Binary,
        },
        orient="row",
    )


def _classify(partition: int, offset: int, payload: bytes | None) -> dict:
    try:
        wire.decode(payload)
        field, good = None, True
    except wire.Malformed as reason:
        field, good = reason_field(str(reason)), False
    return {
        "kafka_partition": partition,
        "kafka_offset": offset,
        "good": good,
        "field": field,
        "payload": None if good else payload,
    }


def reason_field(reason: str) -> str:
    """The field a dead-letter reason names (``"payload"`` when the whole message is bad)."""
    start = reason.find("field '")
    if start < 0:
        return "payload"
    return reason[start + 7 : reason.index("'", start + 7)]


# -- exercise 1: why are they dead? ---------------------------------------------------------


DEAD_PER_FIELD = Hint(
    concept="Every dead letter's reason names the field that broke it; count per field.",
    api="The dead-letter table (pl.read_delta(lab.dead_uri)) and str.extract on reason, "
    "as lesson 04 section 6 does.",
    call="lab.dead_letters().with_columns(field=pl.col('reason').str.extract(r\"field "
    "'(\\w+)'\").fill_null('payload')).group_by('field').len()",
)
UNREADABLE_PAYLOAD = Hint(
    concept="Messages whose whole payload is unreadable (not JSON) name no field: count "
    "them under 'payload'.",
    api="Polars str.extract returns null when the pattern is absent: fill_null('payload').",
    call="dict(frame.group_by('field').len().iter_rows())",
)


def check_dead_fields(lab: Lab04, dead_fields: dict[str, int] | None) -> None:
    key = "lab04.ex1"
    truth_frame = topic_truth(lab).filter(~pl.col("good"))
    truth = dict(truth_frame.group_by("field").len().iter_rows())
    expect(
        isinstance(dead_fields, dict) and len(dead_fields) > 0,
        f"dead_fields is {dead_fields!r}, not a dict of field -> dead letters",
        DEAD_PER_FIELD,
        key=key,
    )
    counted = {str(k): int(v) for k, v in dead_fields.items()}
    wrong = {f: (counted.get(f, 0), n) for f, n in truth.items() if counted.get(f, 0) != n}
    extra = sorted(set(counted) - set(truth))
    expect(
        not wrong and not extra,
        f"dead_fields disagrees with the topic: (yours, true) per field {wrong}"
        + (f"; fields no message has broken: {extra}" if extra else ""),
        UNREADABLE_PAYLOAD,
        key=key,
    )
    passed(f"{sum(truth.values())} dead letters, by field: {dict(sorted(truth.items()))}")


# -- exercise 2: lag while nobody consumes -------------------------------------------------


BURST = 5_000  # messages the lab asks to produce while the writer is stopped
STOP_FIRST = Hint(
    concept="Lag holds still only while nobody consumes: stop the writer first.",
    api="neuralake.lab.writer.control.down (lesson 04 section 9).",
    call="control.down(s, lab.table)",
)
BURST_FIRST = Hint(
    concept="Lag is what the log holds beyond what the consumer confirmed.",
    api="lab.start_stream(count, rate) then lab.wait_stream().",
    call=f"lab.start_stream({BURST}, rate=20_000); lab.wait_stream()",
)
LAG_PER_PARTITION = Hint(
    concept="Per partition: high watermark minus the group's committed offset.",
    api="AdminClient.list_consumer_group_offsets and list_offsets, or "
    "topics.group_lag (lesson 04 section 3).",
    call="dict(topics.group_lag(s, lab.group, lab.topic).select('partition', 'lag').iter_rows())",
)
RESUME_AFTER_TXN = Hint(
    concept="The table records the last offset it holds per partition: the next one "
    "it needs is version + 1.",
    api="DeltaTable.transaction_version(app_id(APP, topic, partition)) (lesson 04 section 4).",
    call="{p: high - 1 - table.transaction_version(app_id('neuralake-writer', "
    "lab.topic, p)) for p, high in ...}",
)


def check_lag(
    lab: Lab04, lag: dict[int, int] | None, lag_from_table: dict[int, int] | None
) -> None:
    key = "lab04.ex2"
    ingest = lab.ingest()
    expect(
        ingest is None,
        f"the writer's ingest process is running (pid {ingest[0] if ingest else '-'}): its lag "
        "changes while you read it",
        STOP_FIRST,
        key=key,
    )
    kafka = topics.group_lag(lab.settings, lab.group, lab.topic)
    truth = {int(p): int(n) for p, n in kafka.select("partition", "lag").iter_rows()}
    expect(
        sum(truth.values()) >= BURST,
        f"the writer's group is only {sum(truth.values())} messages behind: the burst of "
        f"{BURST:,} was not produced while the writer was stopped",
        BURST_FIRST,
        key=key,
    )
    expect(
        _as_counts(lag) == truth,
        f"lag is {lag!r}; the AdminClient says {truth}",
        LAG_PER_PARTITION,
        key=key,
    )
    table = DeltaTable(lab.bronze_uri, storage_options=lab.storage_options or None)
    highs = dict(kafka.select("partition", "high").iter_rows())
    from_table = {
        int(p): int(high - 1 - _or(table.transaction_version(app_id(APP, lab.topic, p)), -1))
        for p, high in highs.items()
    }
    expect(
        _as_counts(lag_from_table) == from_table,
        f"lag_from_table is {lag_from_table!r}; the table's txn versions give {from_table}",
        RESUME_AFTER_TXN,
        key=key,
    )
    passed(f"{sum(truth.values()):,} messages behind, by Kafka and by the table alike: {truth}")


def _as_counts(value: object) -> dict[int, int] | None:
    if not isinstance(value, dict):
        return None
    try:
        return {int(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


# -- exercise 3: kill -9 mid-stream, lose nothing ------------------------------------------


STREAM_RUNNING = Hint(
    concept="A restart proves something only while messages keep arriving.",
    api="lab.start_stream(count, rate), then the writer's pid from control.status.",
    call="lab.start_stream(30_000, rate=6_000)",
)
KILL_AND_RESTART = Hint(
    concept="Kill the ingest process while the stream runs, then start it again.",
    api="control.status(s, lab.table) gives the pid; os.kill(pid, signal.SIGKILL); "
    "control.up restarts what is dead (lesson 04 section 5).",
    call="os.kill(next(w.pid for w in control.status(s, lab.table) if w.name == 'ingest'), "
    "signal.SIGKILL); time.sleep(1); control.up(s, topic=lab.topic, table=lab.table)",
)
CAUGHT_UP = Hint(
    concept="Check once the stream is over and the writer caught up.",
    api="lab.wait_stream() and lab.wait_caught_up().",
    call="lab.wait_stream(); lab.wait_caught_up()",
)
ROWS_EXACTLY_ONCE = Hint(
    concept="The writer resumes from the table's txn versions; a gap or a duplicate "
    "means something else wrote to the table or the run was cut short.",
    api="Run the setup cell again, then redo the exercise with control.up only.",
    call="lab = lab04.setup(s, prefix=PREFIX)",
)
DEAD_EXACTLY_ONCE = Hint(
    concept="Dead letters follow the same exactly-once rule: their own txn actions.",
    api="Run the setup cell again, then redo the exercise.",
    call="lab = lab04.setup(s, prefix=PREFIX)",
)


def check_restart(lab: Lab04) -> None:
    key = "lab04.ex3"
    stream = _stream_window(lab)
    expect(
        stream is not None,
        "no stream was started since setup",
        STREAM_RUNNING,
        key=key,
    )
    started, ended = stream
    ingest = lab.ingest()
    restart_hint = KILL_AND_RESTART
    expect(ingest is not None, "the writer's ingest process is not running", restart_hint, key=key)
    expect(
        ended is not None,
        "the stream is still running",
        CAUGHT_UP,
        key=key,
    )
    setup_start = json.loads((lab.work / "setup.json").read_text())["ingest_started"]
    pid, created = ingest
    expect(
        created != setup_start and started < created < ended,
        f"the ingest process (pid {pid}) started {created - started:+.1f} s from the stream's "
        f"start; the stream ran for {ended - started:.1f} s"
        + (" (it is the one setup started)" if created == setup_start else ""),
        restart_hint,
        key=key,
    )
    commits = delta.history(lab.bronze_uri, lab.storage_options)["timestamp"]
    before = commits.filter(
        (commits > datetime.fromtimestamp(started, UTC))
        & (commits < datetime.fromtimestamp(created, UTC))
    ).len()
    expect(
        before > 0,
        f"no commit landed between the stream's start and the ingest process's start "
        f"({created - started:+.1f} s): no writer was killed while it was writing the stream",
        restart_hint,
        key=key,
    )
    try:
        lab.wait_caught_up(timeout=30)
    except TimeoutError as err:
        expect(False, str(err), restart_hint, key=key)
    truth = topic_truth(lab)
    bronze = lab.bronze().select("kafka_partition", "kafka_offset")
    good = truth.filter("good").select("kafka_partition", "kafka_offset")
    missing = good.join(bronze, on=["kafka_partition", "kafka_offset"], how="anti").height
    duplicated = bronze.height - bronze.n_unique()
    expect(
        missing == 0 and duplicated == 0 and bronze.height == good.height,
        f"bronze has {bronze.height:,} rows for {good.height:,} good messages: {missing} "
        f"missing, {duplicated} duplicated",
        ROWS_EXACTLY_ONCE,
        key=key,
    )
    dead = lab.dead_letters().select("kafka_partition", "kafka_offset")
    malformed = truth.height - good.height
    expect(
        dead.height == dead.n_unique() == malformed,
        f"the dead-letter table has {dead.height} rows ({dead.n_unique()} unique) for "
        f"{malformed} malformed messages",
        DEAD_EXACTLY_ONCE,
        key=key,
    )
    passed(
        f"restarted {created - started:.1f} s into a {ended - started:.1f} s stream: "
        f"{good.height:,} good messages once each, {malformed} dead letters once each"
    )


def _stream_window(lab: Lab04) -> tuple[float, float | None] | None:
    """(start, end) of the latest stream as epoch seconds; end None while it runs."""
    try:
        started = json.loads((lab.work / "stream.json").read_text())["started"]
    except FileNotFoundError:
        return None
    if processes.running(lab._stream_pid) is not None:
        return started, None
    return started, (lab.work / "stream.log").stat().st_mtime


# -- exercise 4: fix what can be fixed, replay each once ------------------------------------


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


FIX_WHAT_IS_KNOWABLE = Hint(
    concept="Only a value you can know may be fixed: a yes/no spike, a number sent as "
    "text, a UTC timestamp without its offset; leave the rest dead.",
    api="replay.pending, a fixed payload column (null = leave alone), replay.replay "
    "(lesson 04 section 6).",
    call="replay.replay(replay.pending(lab.dead_uri, opts).with_columns(pl.col('payload')"
    ".map_elements(fix, return_dtype=pl.Binary, skip_nulls=True)), dead_letter_uri="
    "lab.dead_uri, kafka_config=s.kafka_config, storage_options=opts)",
)
REPLAY_ONCE = Hint(
    concept="A replay is a new message: replaying twice makes two rows.",
    api="replay.replay records every replay in a ledger and skips what it holds.",
    call="replay.replay(...) instead of producing the fixed payloads yourself",
)


def check_replayed(lab: Lab04) -> None:
    key = "lab04.ex4"
    dead = lab.dead_letters()
    fixes = {
        (p, o): expected_fix(payload)
        for p, o, payload in dead.select("kafka_partition", "kafka_offset", "payload").iter_rows()
    }
    fixable = {coords: row for coords, row in fixes.items() if row is not None}
    ledger = replay.replayed(lab.dead_uri, lab.storage_options)
    replay_hint = FIX_WHAT_IS_KNOWABLE
    invented = [
        (p, o)
        for p, o in ledger.select("kafka_partition", "kafka_offset").iter_rows()
        if (p, o) in fixes and fixes[(p, o)] is None
    ]
    expect(
        not invented,
        f"{len(invented)} replayed dead letter(s) had no knowable fix (e.g. partition "
        f"{invented[0][0] if invented else '-'} offset {invented[0][1] if invented else '-'}): "
        "their replayed values are invented",
        replay_hint,
        key=key,
    )
    expect(
        ledger.height > 0,
        f"nothing was replayed: {len(fixable)} dead letters can be fixed",
        replay_hint,
        key=key,
    )
    try:
        lab.wait_caught_up(timeout=30)
    except TimeoutError as err:
        expect(False, str(err), replay_hint, key=key)
    bronze = lab.bronze()
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
    expect(
        missing.height == 0,
        f"{missing.height} of {len(fixable)} fixable dead letters are not in bronze",
        replay_hint,
        key=key,
    )
    expect(
        twice.height == 0,
        f"{twice.height} fixed dead letters are in bronze more than once (up to "
        f"{found['len'].max()} times)",
        REPLAY_ONCE,
        key=key,
    )
    landed = want.join(bronze, on=keys, suffix="_bronze")
    wrong = landed.filter(
        (pl.col("spike") != pl.col("spike_bronze"))
        | ((pl.col("voltage_uv") - pl.col("voltage_uv_bronze")).abs() > 1e-3)
    )
    expect(
        wrong.height == 0,
        f"{wrong.height} replayed rows carry other values than their dead letter",
        replay_hint,
        key=key,
    )
    left = len(fixes) - len(fixable)
    passed(f"{len(fixable)} fixable dead letters in bronze once each; {left} left dead")


# -- exercise 5 (stretch): freshness p99 from the log ---------------------------------------


def commit_freshness(lab: Lab04) -> pl.DataFrame:
    """Per row the log ever added (dataChange): commit time - kafka_timestamp, in seconds."""
    history = delta.history(lab.bronze_uri, lab.storage_options)
    frames = []
    for version, stamp in history.select("version", "timestamp").iter_rows():
        added = [
            action["add"]["path"]
            for action in delta.read_commit(lab.bronze_uri, version, lab.storage_options)
            if "add" in action and action["add"].get("dataChange", True)
        ]
        if not added:
            continue
        files = [f"{lab.bronze_uri.rstrip('/')}/{unquote(path)}" for path in added]
        stamps = pl.read_parquet(
            files, columns=["kafka_timestamp"], storage_options=lab.storage_options or None
        )
        frames.append(
            stamps.select(
                version=pl.lit(version),
                freshness_s=(pl.lit(stamp) - pl.col("kafka_timestamp")).dt.total_microseconds()
                / 1e6,
            )
        )
    return pl.concat(frames)


COMMIT_FRESHNESS = Hint(
    concept="A row becomes readable at the commit that added its file; freshness = that "
    "commit's time - the row's kafka_timestamp.",
    api="delta.history gives each commit's time (lesson 01, section 4); delta.read_commit "
    "lists a commit's add actions (lesson 01, section 2), compaction's with dataChange "
    "false (lesson 03, section 3); pl.read_parquet reads the added files; "
    "freshness.measure polls for the same number instead (lesson 04, section 7).",
    call="for each version: files = [add['path'] for adds with dataChange]; "
    "(commit_ts - pl.read_parquet(files)['kafka_timestamp']), then .quantile(0.99)",
)
DATA_CHANGE_ONLY = Hint(
    concept="Count each row once, at the commit that first added it: compaction "
    "rewrites files (dataChange false) with rows that were already readable.",
    api="Skip add actions whose dataChange is false.",
    call="[a['add']['path'] for a in delta.read_commit(uri, v, opts) if 'add' in a "
    "and a['add'].get('dataChange', True)]",
)


def check_freshness(lab: Lab04, p99: float | None) -> None:
    key = "lab04.ex5"
    hint = COMMIT_FRESHNESS
    expect(isinstance(p99, int | float), f"p99 is {p99!r}, not a number of seconds", hint, key=key)
    truth = commit_freshness(lab)
    true_p99 = truth["freshness_s"].quantile(0.99)
    expect(
        abs(p99 - true_p99) <= max(0.01 * true_p99, 0.005),
        f"p99={p99:.3f} s; over the {truth.height:,} rows the log added, it is {true_p99:.3f} s",
        DATA_CHANGE_ONLY,
        key=key,
    )
    passed(
        f"p99 freshness {true_p99:.2f} s over {truth.height:,} rows (p50 "
        f"{truth['freshness_s'].quantile(0.5):.2f} s)"
    )
