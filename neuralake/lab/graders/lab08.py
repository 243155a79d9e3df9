"""Lab 08, the capstone: ship a new signal end to end, then diagnose an incident.

**Part 1, a new signal.** The devices' firmware now sends ``impedance_kohm`` (electrode
impedance, in kilo-ohms) in every message. The Rust writer's bronze schema is a contract
fixed in its code (``rust-writer/src/schema.rs``, the same columns as
:data:`neuralake.streaming.schemas.BRONZE`), and its decoder ignores a field it does not
know: the new field reaches Kafka, never bronze. Changing that contract is a change to the
writer and a migration of every bronze table, not a lab exercise, so the lab ships the
signal the way the platform supports today: a batch job lands the field from the topic
(Kafka keeps every message) in a table of its own keyed by the Kafka coordinates, the
same key bronze has; a gold feature joins the two; the catalog declares it; ROAPI serves
it; an alert rule fires on it.

``setup()`` produces a 20-minute recording (device time) of 16 channels whose messages
carry the new field, starts the writer on it and waits until bronze holds every message.
One channel's electrode fails from a chosen minute on (its impedance climbs and stays
high); another has a loose connector for one minute (a glitch an alert must ignore).
Which channels and minutes is drawn from ``seed``.

**Part 2, an incident.** ``setup()`` then stages a real incident on a second topic and
writer while it samples the pipeline twice a second (a :class:`~neuralake.monitoring.Watch`:
the writer's metrics, the broker's lag, a reader's freshness), and keeps the samples as a
Delta table, the dashboard's history. The incident is one of :data:`INCIDENTS`, drawn
from ``seed``: the writer's ingest process killed (``SIGKILL``) and restarted later, or a
burst of malformed messages (poison) from a broken producer. The graders read what was
staged (kind and start, recorded when it was staged) and the recording itself.

The graders never trust a number the student reports: they read the topic back, compute
the truth from bronze and the topic, query ROAPI, and evaluate rules on the recording.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from confluent_kafka import Producer
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.api.client import QueryError, RoapiClient
from neuralake.catalog import Catalog
from neuralake.errors import NeuralakeError
from neuralake.lab.graders.base import Lab, TableName, TableUri, fresh_topic
from neuralake.lab.graders.checks import Grading, Hint, passed
from neuralake.lab.graders.kafka import read_topic
from neuralake.lab.writer import control
from neuralake.monitoring import Rule, Watch, evaluate
from neuralake.settings import Settings
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import MESSAGE, app_id, dead_letter_uri, message_key
from neuralake.streaming.wire import TIMESTAMP_FORMAT

APP = "neuralake-writer"  # the writer's default app id: it names the txn actions and the group
PARTITIONS = 3
SESSION = 7  # the recording's session (and patient and device ids)
CHANNELS = 16
MINUTES = 20  # of device time
PER_MINUTE = 30  # impedance-carrying samples per channel and minute
NEW_FIELD = "impedance_kohm"
HEALTHY_KOHM = (300.0, 800.0)  # a healthy electrode's impedance, per channel
FAILED_KOHM = 1_500.0  # a failing electrode at its first failed minute; it climbs after
GLITCH_KOHM = 2_500.0  # a loose connector, for one minute
CATCH_UP_S = 90.0
INCIDENTS = ("writer down", "poison burst")

# The incident: a steady stream, the fault at ONSET_S, sampled every SAMPLE_S.
RATE = 500  # messages per second
STREAM_S = 20  # how long the steady stream runs
ONSET_S = 6.0  # seconds into the stream
DOWN_S = 8.0  # how long the killed writer stays down
POISON_S = 4.0  # how long the broken producer sends (at half the stream's rate)
SAMPLE_S = 0.5
START_TOLERANCE_S = 3.0  # how close "when" must be to the staged start
EARLIER_BY_S = 1.0  # the stretch's rule must fire at least this much before the lab's first

#: The pipeline's alert rules (lesson 08's, for this stream's rate): the recording is
#: evaluated with them.
RULES = [
    Rule("consumer lag", "broker_lag", above=3 * RATE, for_s=2,
         why="producers outrun the writer, or it is down: data piles up in Kafka"),
    Rule("stale reader", "served_age_s", above=5, for_s=2,
         why="a reader sees old data: writer or storage is stuck"),
    Rule.absent("writer silent", "messages_total", for_s=2,
         why="no /metrics from ingest: the process is dead or hung"),
    Rule("dead-letter rate", "dead_letter_ratio", above=0.02, for_s=2,
         why="a producer sends malformed messages: rows are missing from bronze"),
]  # fmt: skip

GOLD_KEY = ["session_id", "channel", "minute"]
GOLD_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # Datetime("us", "UTC") is an instance, the stubs want classes
        "session_id": pl.Int32,
        "channel": pl.Int32,
        "minute": pl.Datetime("us", "UTC"),
        "samples": pl.Int64,
        "impedance_kohm": pl.Float64,
        "quality": pl.Float64,
    }
)
IMPEDANCE_SCHEMA = pl.Schema(
    {"kafka_partition": pl.Int32, "kafka_offset": pl.Int64, "impedance_kohm": pl.Float64}
)


@dataclass(frozen=True)
class Story:
    """What setup staged in the recording (drawn from the seed): the graders' truth."""

    failing: int  # the channel whose electrode fails
    onset: int  # the minute it starts to fail (0 = the recording's first)
    glitch: int  # the channel with a loose connector
    glitch_minute: int
    start: datetime  # the recording's first minute (device time)


@dataclass
class Lab08(Lab):
    """Where the lab's topics, tables and recording are, and what was staged."""

    number: ClassVar[str] = "08"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5", "ex6", "ex7")
    tables: ClassVar[tuple[str, ...]] = (
        "bronze",
        "bronze_dead_letters",
        "impedance",  # ex2 writes it
        "given_impedance",  # ex3 reads it
        "electrode_health",  # ex3 writes it
        "health_served",  # ex4 and ex5 use it
        "incident_bronze",
        "incident_bronze_dead_letters",
        "incident_watch",  # the incident's recording
    )
    seed: int = 8
    story: Story | None = None
    work: Path = field(default_factory=Path)
    bronze_table = TableName("bronze")
    bronze_uri = TableUri("bronze")
    incident_table = TableName("incident_bronze")
    incident_uri = TableUri("incident_bronze")

    def uri(self, name: str) -> str:
        return self.settings.table_uri(self.prefix + name)

    @property
    def topic(self) -> str:
        return f"{self.prefix}signals"

    @property
    def incident_topic(self) -> str:
        return f"{self.prefix}incident"

    @property
    def incident_dead_uri(self) -> str:
        return dead_letter_uri(self.incident_uri)

    def messages(self) -> pl.DataFrame:
        """Every message of the lab's topic, read back with a Kafka consumer: one row per
        message with ``kafka_partition``, ``kafka_offset`` and the raw ``payload``."""
        return read_topic(self.settings, self.topic)

    def recording(self) -> pl.DataFrame:
        """The samples taken while the incident was staged, oldest first."""
        return pl.read_delta(self.uri("incident_watch"), storage_options=self.storage_options)

    def rebuild(self, exercise: str) -> None:
        BUILDERS[exercise](self)

    def stop(self) -> None:
        """Stop the lab's writers (setup stops them itself once their work is done)."""
        for table in (self.bronze_table, self.incident_table):
            control.down(self.settings, table, echo=lambda _: None)


def setup(
    settings: Settings, *, prefix: str = "lab08_", seed: int = 8, incident: bool = True
) -> Lab08:
    """Drop everything of the lab, produce the recording, land it in bronze with the Rust
    writer, write what each exercise starts from, then stage the incident
    (``incident=False`` leaves it out: the grader tests of part 1)."""
    Lab08.forget_attempts()
    lab = Lab08(settings, prefix, seed=seed, work=settings.state_dir / "labs" / "08" / prefix)
    lab.work.mkdir(parents=True, exist_ok=True)
    lab.stop()
    drop(settings, prefix)
    lab.story = _land_recording(lab)
    for exercise, build in BUILDERS.items():
        if incident or exercise not in ("ex6", "ex7"):
            build(lab)
    return lab


def drop(settings: Settings, prefix: str) -> None:
    """Stop the lab's writers, delete its tables and topics."""
    for table in (f"{prefix}bronze", f"{prefix}incident_bronze"):
        control.down(settings, table, echo=lambda _: None)
    Lab08.drop_tables(settings, prefix)
    for topic in (f"{prefix}signals", f"{prefix}incident"):
        topics.delete_topic(settings, topic)


# -- part 1: the recording, the topic, bronze ----------------------------------------------


def draw_story(seed: int, start: datetime) -> Story:
    rng = random.Random(seed)
    failing, glitch = rng.sample(range(CHANNELS), 2)
    return Story(
        failing=failing,
        onset=rng.randint(8, 13),
        glitch=glitch,
        glitch_minute=rng.randint(3, MINUTES - 4),
        start=start,
    )


def recording(story: Story, seed: int) -> pl.DataFrame:
    """The messages' rows, in device-time order: MESSAGE's columns and the new field."""
    rng = np.random.default_rng(seed)
    steps = MINUTES * PER_MINUTE
    step_us = 60_000_000 // PER_MINUTE
    start_us = int(story.start.timestamp() * 1e6)
    channel = np.tile(np.arange(CHANNELS, dtype=np.int16), steps)
    step = np.repeat(np.arange(steps), CHANNELS)
    minute = step // PER_MINUTE
    base = rng.uniform(*HEALTHY_KOHM, CHANNELS)[channel]
    kohm = base * rng.normal(1.0, 0.04, channel.size)
    failed = (channel == story.failing) & (minute >= story.onset)
    kohm[failed] = FAILED_KOHM * (1 + 0.25 * (minute[failed] - story.onset))
    kohm[failed] *= rng.normal(1.0, 0.04, int(failed.sum()))
    loose = (channel == story.glitch) & (minute == story.glitch_minute)
    kohm[loose] = GLITCH_KOHM * rng.normal(1.0, 0.04, int(loose.sum()))
    quality = np.clip(rng.normal(0.92, 0.03, channel.size), 0, 1)
    quality[failed] = np.clip(quality[failed] - 0.3, 0, 1)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(start_us + step * step_us).cast(pl.Datetime("us", "UTC")),
            "session_id": SESSION,
            "device_id": SESSION,
            "patient_id": SESSION,
            "channel": channel,
            "voltage_uv": rng.normal(0, 12, channel.size).round(2),
            "spike": rng.random(channel.size) < 0.01,
            "quality": quality.round(3),
            NEW_FIELD: kohm.round(1),
        }
    ).cast({**dict(MESSAGE), NEW_FIELD: pl.Float64})  # type: ignore[dict-item]


def _land_recording(lab: Lab08) -> Story:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    story = draw_story(lab.seed, now - timedelta(minutes=MINUTES + 5))
    fresh_topic(lab.settings, lab.topic, PARTITIONS)
    rows = recording(story, lab.seed)
    text = rows.with_columns(pl.col("timestamp").dt.strftime(TIMESTAMP_FORMAT))
    values = text.write_ndjson().encode().splitlines()
    keys = [message_key(SESSION, c).encode() for c in rows["channel"]]
    _send(lab.settings, lab.topic, values, keys)
    control.up(lab.settings, topic=lab.topic, table=lab.bronze_table, only=["ingest"], echo=_quiet)
    wait_caught_up(lab.settings, lab.topic, lab.bronze_uri)
    control.down(lab.settings, lab.bronze_table, echo=_quiet)  # bronze is complete
    return story


def _send(s: Settings, topic: str, values: list[bytes], keys: list[bytes]) -> None:
    failures: list[str] = []
    producer = Producer({**s.kafka_config, "enable.idempotence": True, "linger.ms": 20})
    for value, key in zip(values, keys, strict=True):
        producer.produce(
            topic,
            value=value,
            key=key,
            on_delivery=lambda error, _: failures.append(str(error)) if error else None,
        )
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        raise NeuralakeError(f"producing the lab's messages failed: {failures or left}")


def _quiet(_: str) -> None:
    pass


def behind(s: Settings, topic: str, uri: str) -> dict[int, tuple[int, int]]:
    """Partitions whose messages the table does not hold to the end: p -> (txn, high)."""
    if not DeltaTable.is_deltatable(uri, s.storage_options):
        return {p: (-1, 0) for p in topics.partitions(s, topic)}
    table = DeltaTable(uri, storage_options=s.storage_options)
    out = {}
    for partition, high in topics.describe(s, topic).select("partition", "high").iter_rows():
        done = table.transaction_version(app_id(APP, topic, partition))
        done = -1 if done is None else done
        if done < high - 1:
            out[partition] = (done, high)
    return out


def wait_caught_up(s: Settings, topic: str, uri: str, timeout: float = CATCH_UP_S) -> None:
    deadline = time.monotonic() + timeout
    while left := behind(s, topic, uri):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{uri} holds partitions {left} (txn, high watermark) of {topic} after "
                f"{timeout:.0f} s: is its writer running? (control.status(s))"
            )
        time.sleep(0.3)


# -- the truth ------------------------------------------------------------------------------


def truth_impedance(lab: Lab08) -> pl.DataFrame:
    """The new field of every message, keyed by where Kafka put it."""
    return (
        lab.messages()
        .select(
            "kafka_partition",
            "kafka_offset",
            impedance_kohm=pl.col("payload")
            .cast(pl.String)
            .str.json_path_match(f"$.{NEW_FIELD}")
            .cast(pl.Float64),
        )
        .filter(pl.col(NEW_FIELD).is_not_null())
    )


def health(bronze: pl.LazyFrame, impedance: pl.LazyFrame) -> pl.DataFrame:
    """The gold feature: per session, channel and minute of device time, the samples,
    mean impedance and mean quality."""
    return (
        bronze.join(impedance, on=["kafka_partition", "kafka_offset"])
        .group_by(
            pl.col("session_id"),
            pl.col("channel").cast(pl.Int32),
            minute=pl.col("timestamp").dt.truncate("1m"),
        )
        .agg(
            samples=pl.len().cast(pl.Int64),
            impedance_kohm=pl.col(NEW_FIELD).mean(),
            quality=pl.col("quality").cast(pl.Float64).mean(),
        )
        .sort(GOLD_KEY)
        .collect()
    )


def truth_health(lab: Lab08) -> pl.DataFrame:
    bronze = pl.scan_delta(lab.bronze_uri, storage_options=lab.storage_options)
    return health(bronze, truth_impedance(lab).lazy())


def _write(lab: Lab08, name: str, frame: pl.DataFrame) -> None:
    uri = Lab08.fresh_table(lab.settings, lab.prefix, name)
    write_deltalake(uri, frame.to_arrow(), storage_options=lab.storage_options)


def _required(lab: Lab08, uri: str, found: str, hint: Hint, grade: Grading) -> pl.DataFrame:
    """The table at ``uri``; a failed check saying ``found`` if there is none."""
    table = _read(lab, uri)
    grade.expect(table is not None, found, hint)
    assert table is not None  # expect raised otherwise
    return table


def _read(lab: Lab08, uri: str) -> pl.DataFrame | None:
    if not DeltaTable.is_deltatable(uri, lab.storage_options):
        return None
    return pl.read_delta(uri, storage_options=lab.storage_options)


def per_channel(gold: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """Each channel's minutes as samples a rule can be evaluated on (``t_s`` from the
    recording's first minute)."""
    first = gold["minute"].min()
    timed = gold.with_columns(t_s=(pl.col("minute") - first).dt.total_seconds().cast(pl.Float64))
    return {
        int(channel): frame.sort("t_s")
        for (channel,), frame in timed.partition_by("channel", as_dict=True).items()
    }


# -- what each exercise starts from ---------------------------------------------------------


def _build_nothing(lab: Lab08) -> None:
    """Exercise 1 reads the topic and bronze; exercise 5 reads exercise 4's table."""


def _build_ex2(lab: Lab08) -> None:
    delta.drop_table(lab.uri("impedance"), lab.storage_options)


def _build_ex3(lab: Lab08) -> None:
    _write(lab, "given_impedance", truth_impedance(lab))
    delta.drop_table(lab.uri("electrode_health"), lab.storage_options)


def _build_ex4(lab: Lab08) -> None:
    _write(lab, "health_served", truth_health(lab))


def _build_ex6(lab: Lab08) -> None:
    stage_incident(lab, random.Random(lab.seed).choice(INCIDENTS))


BUILDERS: dict[str, Callable[[Lab08], None]] = {
    "ex1": _build_nothing,
    "ex2": _build_ex2,
    "ex3": _build_ex3,
    "ex4": _build_ex4,
    "ex5": _build_nothing,
    "ex6": _build_ex6,
    "ex7": _build_ex6,
}


# -- part 2: staging the incident -----------------------------------------------------------


def stage_incident(lab: Lab08, kind: str) -> dict:
    """Run a steady stream through the incident's writer, inject ``kind`` at ``ONSET_S``,
    sample the pipeline until the writer holds everything again; keep the samples and
    what was staged (kind, start)."""
    if kind not in INCIDENTS:
        raise NeuralakeError(f"no incident {kind!r}: use one of {INCIDENTS}")
    s, table, topic = lab.settings, lab.incident_table, lab.incident_topic
    control.down(s, table, echo=_quiet)
    for name in ("incident_bronze", "incident_bronze_dead_letters", "incident_watch"):
        delta.drop_table(lab.uri(name), lab.storage_options)
    fresh_topic(s, topic, PARTITIONS)
    (lab.work / "incident.json").unlink(missing_ok=True)
    control.up(s, topic=topic, table=table, only=["ingest"], echo=_quiet)
    ingest = next(w for w in control.status(s, table) if w.name == "ingest")
    group = f"{APP}.{table}"

    def newest() -> datetime | None:
        scan = pl.scan_delta(lab.incident_uri, storage_options=lab.storage_options)
        return scan.select(pl.col("kafka_timestamp").max()).collect().item()

    watch = Watch(
        ingest.metrics_url,
        broker_lag=lambda: int(topics.group_lag(s, group, topic)["lag"].sum()),
        newest_served=newest,
    )
    steady = _in_thread(lambda: produce(s, topic=topic, count=RATE * STREAM_S, rate=RATE, seed=81))
    poison: threading.Thread | None = None
    started_at: datetime | None = None
    restarted = False
    begun = time.monotonic()
    while True:
        elapsed = time.monotonic() - begun
        watch.sample("incident" if started_at else "healthy")
        if started_at is None and elapsed >= ONSET_S:
            started_at = datetime.now(UTC)
            if kind == "writer down":
                os.kill(_ingest_pid(s, table), signal.SIGKILL)
            else:
                poison = _in_thread(
                    lambda: produce(
                        s, topic=topic, count=int(RATE / 2 * POISON_S), rate=RATE / 2,
                        malformed_ratio=1.0, seed=82,
                    )
                )  # fmt: skip
        if kind == "writer down" and not restarted and elapsed >= ONSET_S + DOWN_S:
            control.up(s, topic=topic, table=table, only=["ingest"], echo=_quiet)
            restarted = True
        done = not steady.is_alive() and (poison is None or not poison.is_alive())
        if done and (kind != "writer down" or restarted) and not behind(s, topic, lab.incident_uri):
            watch.sample("incident")
            break
        if elapsed > STREAM_S + 60:
            raise TimeoutError(f"the incident's writer did not catch up within {elapsed:.0f} s")
        time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - begun - elapsed)))
    for thread in (steady, poison):
        if thread is not None:
            thread.join()
    control.down(s, table, echo=_quiet)
    write_deltalake(
        Lab08.fresh_table(s, lab.prefix, "incident_watch"),
        watch.frame().to_arrow(),
        storage_options=lab.storage_options,
    )
    assert started_at is not None
    staged = {"kind": kind, "started_at": started_at.isoformat()}
    (lab.work / "incident.json").write_text(json.dumps(staged))
    return staged


def _ingest_pid(s: Settings, table: str) -> int:
    """The pid of ``table``'s running ingest process; an error with its log's end if none."""
    ingest = next(w for w in control.status(s, table) if w.name == "ingest")
    if ingest.pid is None:
        tail = Path(ingest.log).read_text().splitlines()[-3:] if Path(ingest.log).exists() else []
        raise NeuralakeError(
            f"the writer of {table} stopped by itself before the incident: {' | '.join(tail)}"
        )
    return ingest.pid


def _in_thread(work: Callable[[], Any]) -> threading.Thread:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported when the thread is joined
            failures.append(error)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def staged(lab: Lab08) -> tuple[str, datetime]:
    """(kind, start) of the staged incident, as recorded when it was staged."""
    recorded = json.loads((lab.work / "incident.json").read_text())
    return recorded["kind"], datetime.fromisoformat(recorded["started_at"])


def seconds_into(recording: pl.DataFrame, moment: datetime) -> float:
    """``moment`` on the recording's ``t_s`` clock."""
    first = recording.sort("t_s").row(0, named=True)
    return first["t_s"] + (moment - first["sampled_at"]).total_seconds()


def first_alerts(recording: pl.DataFrame) -> tuple[list[str], float]:
    """The rules of :data:`RULES` that fired first on the recording, and when (``t_s``)."""
    fired = evaluate(RULES, recording).filter("fired")
    if fired.is_empty():
        raise NeuralakeError("no rule of RULES fired on the recording: stage it again")
    first = float(fired["first_fired_s"].min())  # type: ignore[arg-type]
    return fired.filter(pl.col("first_fired_s") == first)["alert"].to_list(), first


# -- exercise 1: where does the new field stop? -------------------------------------------

DROPPED = Hint(
    concept="A writer keeps what its table's schema has room for. Compare what a message "
    "carries with what a bronze row holds.",
    api="lab.messages() gives the topic's raw payloads (json.loads one); the bronze "
    "table's columns are pl.read_delta(...).columns.",
    call="dropped = set(json.loads(lab.messages()['payload'][0])) - set(pl.read_delta("
    "lab.bronze_uri, storage_options=opts).columns)",
)


def check_dropped(lab: Lab08, dropped: Any) -> None:
    """Exercise 1: the message fields bronze does not keep."""
    grade = Lab08.grading("ex1")
    grade.expect(dropped is not None, "dropped is None", DROPPED)
    payloads = lab.messages()["payload"]
    carried: set[str] = set()
    for payload in payloads.sample(min(200, payloads.len()), seed=1):
        carried |= set(json.loads(payload))
    columns = set(pl.read_delta(lab.bronze_uri, storage_options=lab.storage_options).columns)
    truth = carried - columns
    got = set(dropped) if isinstance(dropped, set | list | tuple | frozenset) else dropped
    grade.expect(
        got == truth,
        f"dropped is {dropped!r}; the topic's messages carry {len(carried)} fields, and "
        f"bronze has {len(columns)} columns",
        DROPPED,
    )
    dead = _read(lab, dead_letter_uri(lab.bronze_uri))
    passed(
        f"{sorted(truth)} reach Kafka, never bronze; {payloads.len():,} messages, "
        f"{0 if dead is None else dead.height} dead letters: the writer ignores an unknown "
        "field, it does not reject the message"
    )


# -- exercise 2: land the new field in a table of its own -----------------------------------

IMPEDANCE = Hint(
    concept="Which columns identify a message, in the topic and in bronze alike? Key the "
    "new table by them. And a batch job may run twice: the second run must not add rows.",
    api="lab.messages(), then str.json_path_match on the payload, and write_delta(..., "
    "mode='overwrite') or a MERGE on the key (lesson 01, section 1 overwrites).",
    call="messages.select('kafka_partition', 'kafka_offset', impedance_kohm=pl.col("
    "'payload').cast(pl.String).str.json_path_match('$.impedance_kohm').cast(pl.Float64))"
    ".write_delta(uri, mode='overwrite', storage_options=opts)",
)


def check_impedance(lab: Lab08, land_impedance: Any) -> None:
    """Exercise 2: the grader runs the student's job twice on the topic's messages, then
    compares the table with every message's field."""
    grade = Lab08.grading("ex2")
    grade.expect(callable(land_impedance), "land_impedance is None", IMPEDANCE)
    uri = lab.uri("impedance")
    messages = lab.messages()
    for _ in range(2):  # a scheduler runs a batch job again; the table must not change
        land_impedance(messages, uri)
    got = _required(lab, uri, f"land_impedance wrote no table at {uri}", IMPEDANCE, grade)
    missing = sorted(set(IMPEDANCE_SCHEMA) - set(got.columns))
    grade.expect(not missing, f"the impedance table has no column {missing}", IMPEDANCE)
    truth = truth_impedance(lab)
    coords = ["kafka_partition", "kafka_offset"]
    repeated = got.height - got.select(coords).n_unique()
    grade.expect(
        repeated == 0,
        f"after two runs the impedance table has {got.height:,} rows for {truth.height:,} "
        f"messages ({repeated:,} repeat a Kafka message)",
        IMPEDANCE,
    )
    joined = truth.join(
        got.select(*coords, pl.col(NEW_FIELD).cast(pl.Float64).alias("got")), on=coords, how="left"
    )
    wrong = joined.filter(
        pl.col("got").is_null() | ((pl.col("got") - pl.col(NEW_FIELD)).abs() > 1e-3)
    ).height
    grade.expect(
        wrong == 0 and got.height == truth.height,
        f"{wrong:,} of {truth.height:,} messages have no or another impedance in the table "
        f"({got.height:,} rows)",
        IMPEDANCE,
    )
    passed(f"{truth.height:,} messages' impedance, one row each, keyed by their Kafka offset")


# -- exercise 3: the gold feature -----------------------------------------------------------

HEALTH = Hint(
    concept="Two tables of the same messages meet on what identifies a message. And "
    "which clock says when a sample was recorded: the device's, or the broker's?",
    api="a Polars .join(..., on=[...]) of the two tables (lesson 02, section 5), then "
    "group_by(...).agg(...) per minute with pl.col('timestamp').dt.truncate('1m').",
    call="bronze.join(impedance, on=['kafka_partition', 'kafka_offset']).group_by("
    "'session_id', pl.col('channel').cast(pl.Int32), minute=pl.col('timestamp').dt"
    ".truncate('1m')).agg(samples=pl.len().cast(pl.Int64), impedance_kohm=pl.col("
    "'impedance_kohm').mean(), quality=pl.col('quality').cast(pl.Float64).mean())",
)


def compare_gold(got: pl.DataFrame, truth: pl.DataFrame) -> str | None:
    """What differs between a gold table and the truth (None: nothing)."""
    missing = sorted(set(GOLD_SCHEMA) - set(got.columns))
    if missing:
        return f"gold has no column {missing}"
    try:
        got = got.select(GOLD_SCHEMA.names()).cast(GOLD_SCHEMA)
    except pl.exceptions.PolarsError as error:
        return f"gold's columns do not cast to {dict(GOLD_SCHEMA)}: {str(error).splitlines()[0]}"
    per_channel_minutes = got.group_by("channel").agg(pl.col("minute").n_unique())["minute"]
    minutes = int(per_channel_minutes.max() or 0)  # type: ignore[arg-type]  # None: no rows
    if got.height != truth.height:
        return (
            f"gold has {got.height:,} rows, up to {minutes} minutes per channel; the recording "
            f"has {truth.height:,} (channel, minute) rows, {MINUTES} minutes of device time"
        )
    joined = truth.join(got, on=GOLD_KEY, how="left", suffix="_got")
    off = joined.filter(
        pl.col("samples_got").is_null()
        | (pl.col("samples") != pl.col("samples_got"))
        | ((pl.col(NEW_FIELD) - pl.col(f"{NEW_FIELD}_got")).abs() > 1e-3)
        | ((pl.col("quality") - pl.col("quality_got")).abs() > 1e-4)
    )
    if off.height:
        return f"{off.height} of {truth.height} gold rows differ from bronze joined with the topic"
    return None


def check_health(lab: Lab08, electrode_health: Any) -> None:
    """Exercise 3: the student's gold table, against the truth from bronze and the topic."""
    grade = Lab08.grading("ex3")
    grade.expect(callable(electrode_health), "electrode_health is None", HEALTH)
    got = _required(
        lab, lab.uri("electrode_health"), "there is no electrode_health table", HEALTH, grade
    )
    problem = compare_gold(got, truth_health(lab))
    grade.expect(problem is None, str(problem), HEALTH)
    passed(f"{got.height} rows: {CHANNELS} channels x {MINUTES} minutes of device time")


# -- exercise 4: the catalog, and ROAPI -----------------------------------------------------

SERVED = Hint(
    concept="Code is the catalog: a table is declared once, with where it comes from and "
    "what must hold for it, and the API follows from the declaration.",
    api="DeltalakeTable(name, uri=..., upstream=[...], checks=[Range(...)]) in a module, "
    "Catalog({'db': ModuleDatabase(module)}), serve(catalog, name, s), client.sql(...) "
    "(lesson 08, section 6).",
    call="gold = DeltalakeTable(PREFIX + 'health_served', upstream=[lab.bronze_table, "
    "PREFIX + 'impedance'], checks=[Range('impedance_kohm', 0, 100_000)]); module = "
    "types.ModuleType('lab08'); module.gold, module.__all__ = gold, ['gold']; catalog = "
    "Catalog({'lab08': ModuleDatabase(module)}); serve(catalog, 'lab08', s)",
)
WORST = Hint(
    concept="Ask the served table, through the API, for the latest minute of every channel.",
    api="RoapiClient(settings=s).sql(...) with ORDER BY and LIMIT (lesson 08, section 6).",
    call="client.sql(f'SELECT channel FROM {name} ORDER BY minute DESC, impedance_kohm "
    "DESC LIMIT 1')['channel'][0]",
)


def check_served(lab: Lab08, catalog: Any, worst_channel: Any) -> None:
    """Exercise 4: the catalog declares the gold table with its lineage and a passing
    check, ROAPI serves all of its rows, and the answer read through ROAPI is right."""
    grade = Lab08.grading("ex4")
    grade.expect(isinstance(catalog, Catalog), f"catalog is {catalog!r}", SERVED)
    uri = lab.uri("health_served")
    declared = [
        (db, t) for db, t in catalog.items() if getattr(t, "location", None) and
        t.location(lab.settings).rstrip("/") == uri.rstrip("/")
    ]  # fmt: skip
    grade.expect(bool(declared), f"the catalog declares no table at {uri}", SERVED)
    db, table = declared[0]
    sources = list(table.upstream)
    grade.expect(
        any(u.endswith("bronze") for u in sources) and any("impedance" in u for u in sources),
        f"{table.name}'s upstream is {sources}: name both tables it is computed from",
        SERVED,
    )
    grade.expect(bool(table.checks), f"{table.name} declares no check", SERVED)
    (report,) = catalog.check(f"{db}.{table.name}", settings=lab.settings)
    failing = [r.check for r in report.results if not r.passed]
    grade.expect(not failing, f"{table.name}'s checks fail: {failing}", SERVED)
    rows = pl.read_delta(uri, storage_options=lab.storage_options).height
    client = RoapiClient(settings=lab.settings)
    try:
        served = client.sql(f"SELECT count(*) AS n FROM {table.name}")["n"][0]
    except (QueryError, NeuralakeError) as error:
        served = f"an error ({str(error)[:80]})"
    finally:
        client.close()
    grade.expect(
        served == rows,
        f"ROAPI answers {served} for the rows of {table.name}; the table has {rows}",
        SERVED,
    )
    assert lab.story is not None
    grade.expect(
        worst_channel == lab.story.failing,
        f"worst_channel is {worst_channel!r}",
        WORST,
    )
    passed(
        f"{db}.{table.name}: upstream {sources}, {len(table.checks)} check(s) passing, "
        f"{rows} rows served by ROAPI; channel {worst_channel} is the worst"
    )


# -- exercise 5: an alert rule on the new signal --------------------------------------------

RULE = Hint(
    concept="A rule pages a person: it must fire on an electrode that failed and stays "
    "failed, soon, and never on one that misbehaved for a single minute. Look at every "
    "channel's minutes before you choose.",
    api="Rule(name, column, above=..., for_s=...) and evaluate(rules, samples), with the "
    "samples per channel from lab08.per_channel(gold) (lesson 08, section 4).",
    call="rule = Rule('electrode failing', 'impedance_kohm', above=1_000, for_s=60)",
)


def check_rule(lab: Lab08, rule: Any) -> None:
    """Exercise 5: the student's rule, evaluated on every channel's minutes."""
    grade = Lab08.grading("ex5")
    grade.expect(isinstance(rule, Rule), f"rule is {rule!r}, not a Rule", RULE)
    gold = pl.read_delta(lab.uri("health_served"), storage_options=lab.storage_options)
    grade.expect(
        rule.column in gold.columns,
        f"rule watches {rule.column!r}, not a column of the gold table",
        RULE,
    )
    story = lab.story
    assert story is not None
    results = {
        c: evaluate([rule], frame).row(0, named=True) for c, frame in per_channel(gold).items()
    }
    fired = sorted(c for c, r in results.items() if r["fired"])
    grade.expect(
        story.failing in fired,
        f"the rule fired on channels {fired}; channel {story.failing}'s electrode failed at "
        f"minute {story.onset} and stayed failed",
        RULE,
    )
    late = results[story.failing]["first_fired_s"] / 60 - story.onset
    grade.expect(
        late <= 3,
        f"the rule fired on channel {story.failing} {late:.0f} minutes after its electrode "
        "failed: too late to save the recording",
        RULE,
    )
    others = [c for c in fired if c != story.failing]
    grade.expect(
        not others,
        f"the rule also fired on channels {others}"
        + (
            f" (channel {story.glitch} was high for one minute only)"
            if story.glitch in others
            else ""
        ),
        RULE,
    )
    passed(
        f"{rule.condition}: fires on channel {story.failing} only, {late:.0f} min after its "
        f"electrode failed; the one-minute glitch on channel {story.glitch} pages nobody"
    )


# -- exercise 6: diagnose the incident ------------------------------------------------------

WHAT = Hint(
    concept="Three witnesses: the broker (lag), a reader (how old the newest row is) and "
    "the writer itself (its metrics, and its commits in the Delta log). Which went silent, "
    "which kept talking, and what did the writer put aside?",
    api="lab.recording() (the samples: down, broker_lag, served_age_s, dead_letter_ratio), "
    "audit.commits(uri) of bronze and its dead letters (lesson 08, section 5), and "
    "evaluate(lab08.RULES, samples) (lesson 08, section 4).",
    call="what = 'writer down' if recording['down'].str.contains('writer').any() else "
    "'poison burst'; commits = audit.commits(lab.incident_uri, opts).filter(pl.col("
    "'rows_added') > 0).with_columns(gap=pl.col('committed_at').diff().shift(-1)); "
    "started_at = commits.sort('gap', descending=True, nulls_last=True)['committed_at'][0] "
    "if what == 'writer down' else audit.commits(lab.incident_dead_uri, opts).filter("
    "pl.col('rows_added') > 0)['committed_at'].min(); first_alert = evaluate(lab08.RULES, "
    "recording).filter('fired').sort('first_fired_s')['alert'][0]",
)


def check_incident(lab: Lab08, what: Any, started_at: Any, first_alert: Any) -> None:
    """Exercise 6: what happened, when, and which alert showed it first."""
    grade = Lab08.grading("ex6")
    kind, start = staged(lab)
    grade.expect(what is not None, "what is None", WHAT)
    grade.expect(
        what == kind,
        f"what is {what!r}; the recording and the audit tell one of {INCIDENTS}",
        WHAT,
    )
    ok_time = isinstance(started_at, datetime) and started_at.tzinfo is not None
    grade.expect(
        ok_time,
        f"started_at is {started_at!r}, not a UTC datetime",
        WHAT,
    )
    off = (started_at - start).total_seconds()
    grade.expect(
        abs(off) <= START_TOLERANCE_S,
        f"started_at is {off:+.1f} s from when the incident began",
        WHAT,
    )
    names, first_s = first_alerts(lab.recording())
    grade.expect(
        first_alert in names,
        f"first_alert is {first_alert!r}; the recording says otherwise",
        WHAT,
    )
    after = first_s - seconds_into(lab.recording(), start)
    passed(
        f"{kind} at {start:%H:%M:%S} UTC (your time is {off:+.1f} s from it); "
        f"{first_alert!r} fired first, {after:.1f} s later"
    )


# -- exercise 7 (stretch): a rule that would have paged earlier -----------------------------

EARLIER = Hint(
    concept="Every rule waits out blips before it pages. For this incident, which signal "
    "moves first, and how little waiting can it afford without paging on a healthy "
    "stream?",
    api="Rule(...) or Rule.absent(...) with a smaller for_s or threshold, evaluate([rule], "
    "lab.recording()) (lesson 08, section 4).",
    call="earlier = Rule.absent('writer gone', 'messages_total') if what == 'writer down' "
    "else Rule('poison', 'dead_letter_ratio', above=0.02)",
)


def check_earlier(lab: Lab08, earlier: Any) -> None:
    """Exercise 7: the student's rule fires on the recording after the incident began,
    at least EARLIER_BY_S before the first of the lab's rules, and not before."""
    grade = Lab08.grading("ex7")
    grade.expect(isinstance(earlier, Rule), f"earlier is {earlier!r}, not a Rule", EARLIER)
    samples = lab.recording()
    grade.expect(
        earlier.column in samples.columns,
        f"earlier watches {earlier.column!r}, not a column of the recording",
        EARLIER,
    )
    _, start = staged(lab)
    start_s = seconds_into(samples, start)
    result = evaluate([earlier], samples).row(0, named=True)
    grade.expect(result["fired"], f"{earlier.condition} never fired on the recording", EARLIER)
    fired_s = result["first_fired_s"]
    grade.expect(
        fired_s >= start_s,
        f"{earlier.condition} fired {start_s - fired_s:.1f} s before the incident began: "
        "it would page on a healthy pipeline",
        EARLIER,
    )
    names, first_s = first_alerts(samples)
    grade.expect(
        fired_s <= first_s - EARLIER_BY_S,
        f"{earlier.condition} fired {fired_s - start_s:.1f} s into the incident; "
        f"{names[0]!r} already did at {first_s - start_s:.1f} s",
        EARLIER,
    )
    passed(
        f"{earlier.condition} fired {fired_s - start_s:.1f} s into the incident, "
        f"{first_s - fired_s:.1f} s before {names[0]!r}"
    )
