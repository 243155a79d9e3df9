"""Lab 03, the low-latency writer: the tables and topics it starts from, and its graders.

Five exercises, each graded from what really happened (the Delta log, the files in
storage, the consumer group in Kafka); the only answers a student types (exercise 1)
are compared with the truth the grader computes.

1. ``check_offsets``: where the writer resumes, read from the ``txn`` actions, versus the
   consumer group's offsets after a simulated crash.
2. ``check_flush``: a flush setting whose commits keep freshness *and* files per minute
   under their bounds, measured from the table's log.
3. ``check_compacted``: compaction settings that bring today's partition under a file
   budget without rewriting yesterday's already-compacted partition.
4. ``check_vacuumed``: a vacuum retention that deletes the garbage but keeps one version
   readable for time travel.
5. ``check_no_row_lost`` (stretch): ingest and an aggressive compactor on one table at
   once; every version keeps its rows and every message lands exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from urllib.parse import unquote

import polars as pl
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from deltalake import DeltaTable

from neuralake import delta
from neuralake.datagen import Simulation, write_frames
from neuralake.errors import NeuralakeError
from neuralake.lab.graders.base import Lab, fresh_topic
from neuralake.lab.graders.checks import Hint, passed
from neuralake.lab.graders.logs import data_adds, stats
from neuralake.lab.writer import control
from neuralake.settings import Settings
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import BRONZE, PARTITION_BY, app_id, dead_letter_uri
from neuralake.waiting import NotYet, wait_until

TOPICS = ("ex1_signals", "ex2_live", "ex5_stress")
TABLES = {  # exercise -> its table, after the prefix
    "ex1": "ex1_bronze",
    "ex2": "ex2_tuned",
    "ex3": "ex3_signals",
    "ex4": "ex4_signals",
    "ex5": "ex5_stress",
}
PARTITIONS = 3  # of every topic the lab creates
APP = "neuralake-writer"  # the writer's default --app-id

# Exercise 1: two ingest runs; the second run's offset confirmation to Kafka is "lost".
EX1_MESSAGES = (12_000, 9_000)

# Exercise 2: the bounds a good flush setting meets at the lab's steady rate.
FILES_PER_MINUTE_MAX = 90
FRESHNESS_P90_MAX_S = 2.5
MIN_COMMITS = 20  # a p90 over fewer commits than this is not a measurement

# Exercise 3: today's partition arrives as many small files; yesterday's is compacted.
HOT_FILES, HOT_ROWS = 80, 160_000
COLD_FILES, COLD_ROWS = 6, 600_000
HOT_FILES_MAX = 4  # the read budget: today's partition in at most this many files

# Exercise 4: two compactions GAP_S apart; the version to keep is between them.
GAP_S = 5.0

# Exercise 5: compaction commits that must land between the writer's commits.
MIN_COMPACTIONS = 2


# -- the lab and its exercises ------------------------------------------------------------


@dataclass(frozen=True)
class Resume:
    """Exercise 1: a topic, the table the writer ingested it into, and its consumer group."""

    topic: str
    uri: str
    group: str  # the writer's default: neuralake-writer.<table>


@dataclass(frozen=True)
class Live:
    """Exercises 2 and 5: a fresh topic and table for a writer you start."""

    topic: str
    table: str  # the name control.up(table=...) takes
    uri: str


@dataclass(frozen=True)
class Compact:
    """Exercise 3: yesterday's partition compacted, today's in many small files."""

    table: str  # the name control.run_once(table=...) takes
    uri: str
    hot_day: date
    cold_day: date
    hot_files: int
    cold_files: tuple[str, ...]  # paths of yesterday's files, which must stay
    rows: dict[date, int] = field(repr=False)


@dataclass(frozen=True)
class Vacuum:
    """Exercise 4: compacted twice; ``keep_version`` (between the two) must stay readable."""

    table: str
    uri: str
    keep_version: int
    keep_files: tuple[str, ...] = field(repr=False)
    keep_rows: int = 0
    garbage: tuple[str, ...] = field(default=(), repr=False)  # removed by the first compaction


@dataclass
class Lab03(Lab):
    """Lab 03's run (see :class:`~neuralake.lab.graders.base.Lab`) and, per exercise, its topics
    and tables and how they were made."""

    number: ClassVar[str] = "03"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5")
    tables: ClassVar[tuple[str, ...]] = tuple(TABLES.values())

    ex1: Resume
    ex2: Live
    ex3: Compact
    ex4: Vacuum
    ex5: Live


grading = Lab03.grading  # grading("ex3").expect(...): attempts count per exercise


def setup(settings: Settings, *, prefix: str = "lab03_") -> Lab03:
    """(Re)create every exercise's topics and tables from scratch; forget every attempt."""
    return Lab03.build_all(settings, prefix, needs_stack=True)


def drop(settings: Settings, prefix: str = "lab03_") -> None:
    """Stop the lab's writers, delete its tables (and their dead letters) and topics."""
    for name in Lab03.tables:  # every exercise's table may have had a writer
        control.down(settings, prefix + name, echo=_quiet)
    Lab03.drop_tables(settings, prefix)
    for name in Lab03.tables:
        dead = dead_letter_uri(settings.table_uri(prefix + name))
        delta.drop_table(dead, settings.storage_options)
    for name in TOPICS:
        topics.delete_topic(settings, prefix + name)


# -- shared helpers ----------------------------------------------------------------------


def bronze_rows(
    rows: int, day: date, *, partition: int = 0, first_offset: int = 0, seed: int = 3
) -> pl.DataFrame:
    """``rows`` bronze rows recorded on ``day``, as if read from one Kafka partition."""
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    signals = Simulation(rows=rows, sessions=1, patients=1, seed=seed, start=start)
    return (
        signals.neural_signals()
        .head(rows)
        .with_columns(
            kafka_partition=pl.lit(partition, pl.Int32),
            kafka_offset=pl.int_range(first_offset, first_offset + rows, dtype=pl.Int64),
            kafka_timestamp=pl.col("timestamp"),
            date=pl.col("timestamp").dt.date(),
        )
        .select(BRONZE.names())
    )


def txn_versions(uri: str, storage_options: dict[str, str]) -> dict[str, int]:
    """The latest ``txn`` version of every appId, replayed from the log's JSON commits."""
    latest = DeltaTable(uri, storage_options=storage_options).version()
    versions: dict[str, int] = {}
    for version in range(latest + 1):
        for action in delta.read_commit(uri, version, storage_options):
            if "txn" in action:
                versions[action["txn"]["appId"]] = action["txn"]["version"]
    return versions


def group_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets per partition (those it has at all)."""
    client = topics.admin(settings)
    parts = topics.partitions(settings, topic)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in parts])
    answer = client.list_consumer_group_offsets([request])[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def _fresh_table(settings: Settings, prefix: str, name: str) -> str:
    """The URI of the lab's table ``name``, dropped with its dead letters."""
    uri = Lab03.fresh_table(settings, prefix, name)
    delta.drop_table(dead_letter_uri(uri), settings.storage_options)
    return uri


def _fresh_topic(settings: Settings, prefix: str, name: str) -> str:
    """Topic ``name`` (one of :data:`TOPICS`), deleted and created again, empty."""
    if name not in TOPICS:
        raise NeuralakeError(f"{name!r} is not in lab03.TOPICS: add it there first")
    return fresh_topic(settings, prefix + name, PARTITIONS)


def _ingest_to_end(settings: Settings, table: str, topic: str, uri: str) -> None:
    """Run the writer's ingest on ``topic`` until the table and the group's offsets hold
    the whole topic, then stop it."""
    control.up(settings, topic=topic, table=table, only=["ingest"], echo=_quiet)
    highs = dict(topics.describe(settings, topic).select("partition", "high").iter_rows())
    group = f"{APP}.{table}"

    def at_end() -> None:
        if not DeltaTable.is_deltatable(uri, settings.storage_options):
            raise NotYet(f"the writer has not created {uri}")
        txn = txn_versions(uri, settings.storage_options)
        confirmed = group_offsets(settings, group, topic)
        for p, high in highs.items():
            done = txn.get(app_id(APP, topic, p), -1)
            if high and (done < high - 1 or confirmed.get(p) != high):
                raise NotYet(f"the writer of {table} is behind on partition {p}")

    try:
        wait_until(at_end, timeout=60, interval=0.25, retry_on=NotYet)
    finally:
        control.down(settings, table, echo=_quiet)


def _quiet(_: str) -> None:
    return None


def _files(uri: str, storage_options: dict[str, str], version: int | None = None) -> list[str]:
    """Paths (relative to the table) of the data files of ``version`` (default: latest)."""
    table = DeltaTable(uri, version=version, storage_options=storage_options)
    return [unquote(p) for p in table.get_add_actions(flatten=True).column("path").to_pylist()]


def _write_files(uri: str, frame: pl.DataFrame, files: int, options: dict[str, str]) -> None:
    """Append ``frame`` as about ``files`` files of equal size, in one commit."""
    write_frames(
        uri,
        [frame],
        BRONZE,
        options,
        files=files,
        total_rows=frame.height,
        partition_by=PARTITION_BY,
        progress=False,
        mode="append",
    )


def _dead_letters(uri: str, storage_options: dict[str, str]) -> int:
    dead = dead_letter_uri(uri)
    if not DeltaTable.is_deltatable(dead, storage_options):
        return 0
    return DeltaTable(dead, storage_options=storage_options).count()


# -- exercise 1: where does the writer resume? -------------------------------------------


def build_resume(settings: Settings, prefix: str) -> Resume:
    """Two ingest runs to the end of the topic; then the second run's offset confirmation
    is undone, as if the writer had crashed between its Delta commit and telling Kafka."""
    uri = _fresh_table(settings, prefix, TABLES["ex1"])
    topic = _fresh_topic(settings, prefix, "ex1_signals")
    group = f"{APP}.{prefix}{TABLES['ex1']}"
    confirmed: dict[int, int] = {}
    for run, count in enumerate(EX1_MESSAGES):
        produce(settings, topic=topic, count=count, malformed_ratio=0.01, seed=run)
        _ingest_to_end(settings, prefix + TABLES["ex1"], topic, uri)
        if run == 0:
            confirmed = group_offsets(settings, group, topic)
    rewind = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o) for p, o in confirmed.items()]
    )
    client = topics.admin(settings)  # keep a reference: the futures die with their client
    client.alter_consumer_group_offsets([rewind])[group].result(timeout=10)
    return Resume(topic, uri, group)


RESUME_FROM_THE_TABLE = Hint(
    concept="The table itself records, for each Kafka partition, the last offset "
    "it holds, in the same commit as the rows.",
    api="The txn actions of the Delta log, appId '<app>/<topic>/<partition>', and "
    "DeltaTable.transaction_version(app_id) (lesson 03, section 3).",
    call="{p: DeltaTable(lab.ex1.uri, storage_options=s.storage_options)"
    ".transaction_version(app_id('neuralake-writer', lab.ex1.topic, p)) + 1 "
    "for p in range(3)}",
)
EVERY_PARTITION = Hint(
    concept="Every partition of a topic has its own offsets.",
    api="topics.group_lag(s, lab.ex1.group, lab.ex1.topic) has one row per partition "
    "(lesson 03, sections 0 and 3).",
    call="build the dict with one entry for each partition in range(3)",
)
RESUME_AFTER_TXN = Hint(
    concept="On start the writer seeks each partition to the table's txn "
    "version + 1; Kafka's group offsets are only for monitoring.",
    api="DeltaTable.transaction_version(app_id) (lesson 03, section 3).",
    call="resume_at = {p: table.transaction_version(app_id('neuralake-writer', "
    "lab.ex1.topic, p)) + 1 for p in range(3)}",
)
REPLAYED = Hint(
    concept="What lies between where the table says to resume and where the "
    "consumer group says is what a group-trusting consumer writes twice.",
    api="AdminClient.list_consumer_group_offsets (lesson 03, section 0) or "
    "neuralake.streaming.topics.group_lag.",
    call="replayed = sum(resume_at[p] - committed[p] for p in resume_at), with "
    "committed from topics.group_lag(s, lab.ex1.group, lab.ex1.topic)",
)


def check_offsets(lab: Lab03, resume_at: dict | None, replayed: int | None) -> None:
    grade = grading("ex1")
    ex, s = lab.ex1, lab.settings
    txn = txn_versions(ex.uri, lab.storage_options)
    parts = topics.partitions(s, ex.topic)
    truth = {p: txn[app_id(APP, ex.topic, p)] + 1 for p in parts}
    group = group_offsets(s, ex.group, ex.topic)
    truth_replayed = sum(truth[p] - group.get(p, 0) for p in parts)
    if not isinstance(resume_at, dict):
        grade.fail(
            f"resume_at is {resume_at!r}, not a dict {{partition: offset}}",
            RESUME_FROM_THE_TABLE,
        )
    given = {int(p): o for p, o in resume_at.items()}
    grade.expect(
        sorted(given) == parts,
        f"resume_at has partitions {sorted(given)}; the topic has {parts}",
        EVERY_PARTITION,
    )
    if given != truth:
        found = f"resume_at={given}, but the writer resumes at {truth}"
        if all(given[p] == truth[p] - 1 for p in parts):
            found += " (yours are the last offsets the table holds; it resumes after them)"
        if all(given[p] == group.get(p) for p in parts):
            found += " (yours are the consumer group's offsets, which lag behind the table)"
        grade.expect(False, found, RESUME_AFTER_TXN)
    grade.expect(
        replayed == truth_replayed,
        f"replayed={replayed!r}, but a consumer that trusted the group's offsets {group} "
        f"would write {truth_replayed:,} messages a second time",
        REPLAYED,
    )
    passed(
        f"the writer resumes at {truth}; trusting the consumer group would have written "
        f"{truth_replayed:,} messages twice"
    )


# -- exercise 2: tune the flush ------------------------------------------------------------


def build_live(settings: Settings, prefix: str, exercise: str, topic: str) -> Live:
    """Exercises 2 and 5: no writer running, an empty table name and topic."""
    table = prefix + TABLES[exercise]
    control.down(settings, table, echo=_quiet)
    uri = _fresh_table(settings, prefix, TABLES[exercise])
    return Live(_fresh_topic(settings, prefix, topic), table, uri)


def build_flush(settings: Settings, prefix: str) -> Live:
    return build_live(settings, prefix, "ex2", "ex2_live")


def commit_stats(uri: str, storage_options: dict[str, str]) -> pl.DataFrame:
    """One row per commit that added rows: when it committed, files added, and freshness
    (commit time minus the oldest Kafka timestamp in its files' statistics)."""
    latest = DeltaTable(uri, storage_options=storage_options).version()
    rows = []
    for version in range(latest + 1):
        adds, info = data_adds(uri, version, storage_options)
        if not adds or "timestamp" not in info:
            continue
        oldest = min(stats(a)["minValues"]["kafka_timestamp"] for a in adds)
        committed = datetime.fromtimestamp(info["timestamp"] / 1000, tz=UTC)
        rows.append(
            {
                "version": version,
                "committed": committed,
                "files": len(adds),
                "rows": sum(stats(a)["numRecords"] for a in adds),
                "freshness_s": (committed - datetime.fromisoformat(oldest)).total_seconds(),
            }
        )
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "version": pl.Int64,
        "committed": pl.Datetime("us", "UTC"),
        "files": pl.Int64,
        "rows": pl.Int64,
        "freshness_s": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def flush_summary(commits: pl.DataFrame) -> dict:
    """Files per minute and freshness p90 of a run's commits. The first commit counts only
    as the start of the clock: it may hold a backlog from before the writer started."""
    ordered = commits.sort("version")
    steady = ordered.slice(1)
    span = (ordered["committed"][-1] - ordered["committed"][0]).total_seconds()
    p90 = steady["freshness_s"].quantile(0.9)
    if p90 is None:
        raise ValueError(f"flush_summary needs at least 2 commits, got {ordered.height}")
    return {
        "commits": steady.height,
        "files_per_minute": round(steady["files"].sum() / span * 60, 1) if span else float("inf"),
        "freshness_p90_s": round(p90, 2),
    }


UNDER_LOAD = Hint(
    concept="Measure a writer under load: run it on the topic while a steady producer feeds it.",
    api="control.up(s, topic=..., table=..., flush_ms=...) (lesson 03, section 1), then "
    "produce(s, topic=..., count=..., rate=...), which the lesson's stream() runs "
    "(section 2).",
    call="control.up(s, topic=lab.ex2.topic, table=lab.ex2.table, flush_ms=FLUSH_MS); "
    "produce(s, topic=lab.ex2.topic, count=RATE * SECONDS, rate=RATE); "
    "control.down(s, lab.ex2.table)",
)
TOO_FEW_COMMITS = Hint(
    concept="A percentile says little over a handful of values: the run must make enough "
    "commits to measure.",
    api="The number of commits is the run's length divided by the flush interval plus a "
    "commit (lesson 03, section 2 counts them).",
    call=f"lab.reset('ex2'); a flush_ms short enough for {MIN_COMMITS} commits in "
    "SECONDS seconds, within the files-per-minute bound",
)
TOO_MANY_FILES = Hint(
    concept="Every flush is a commit, and every commit writes at least one file.",
    api="flush_ms (--flush-ms, NEURALAKE_WRITER_FLUSH_MS; lesson 03, section 1 sets "
    "it, section 2 counts the files it makes).",
    call=f"lab.reset('ex2'); flush less often: flush_ms of at least "
    f"{60_000 // FILES_PER_MINUTE_MAX} plus the time a commit takes",
)
TOO_STALE = Hint(
    concept="A row waits in the writer's buffer until the next flush, then for the commit.",
    api="flush_ms (lesson 03, section 1) bounds how long the oldest row of a batch "
    "waits before its commit.",
    call=f"lab.reset('ex2'); keep flush_ms well under {FRESHNESS_P90_MAX_S * 1000:.0f}"
    " ms, since the commit itself takes time too",
)


def check_flush(lab: Lab03) -> None:
    grade = grading("ex2")
    ex = lab.ex2
    exists = DeltaTable.is_deltatable(ex.uri, lab.storage_options)
    commits = commit_stats(ex.uri, lab.storage_options) if exists else None
    grade.expect(
        commits is not None and commits.height > 1,
        f"the table {ex.table} has {0 if commits is None else commits.height} commits with "
        "rows: no writer ran on it under load",
        UNDER_LOAD,
    )
    assert commits is not None
    measured = commits.height - 1  # the first commit only starts the clock
    grade.expect(
        measured >= MIN_COMMITS,
        f"the run made {measured} commits after its first; a p90 needs at least {MIN_COMMITS}",
        TOO_FEW_COMMITS,
    )
    summary = flush_summary(commits)
    fpm, fresh = summary["files_per_minute"], summary["freshness_p90_s"]
    numbers = f"{fpm} files per minute, freshness p90 {fresh} s over {summary['commits']} commits"
    grade.expect(
        fpm <= FILES_PER_MINUTE_MAX,
        f"{numbers}: more than {FILES_PER_MINUTE_MAX} files per minute",
        TOO_MANY_FILES,
    )
    grade.expect(
        fresh <= FRESHNESS_P90_MAX_S,
        f"{numbers}: rows wait more than {FRESHNESS_P90_MAX_S} s to be readable",
        TOO_STALE,
    )
    passed(f"{numbers}: both within their bounds")


# -- exercise 3: compaction within a read budget -----------------------------------------


def build_compact(settings: Settings, prefix: str) -> Compact:
    """Yesterday: COLD_FILES files of about a megabyte (compacted last night). Today:
    HOT_FILES small files, as a writer that flushes every second leaves them."""
    options = settings.storage_options
    uri = _fresh_table(settings, prefix, TABLES["ex3"])
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    cold = bronze_rows(COLD_ROWS, yesterday, seed=11)
    hot = bronze_rows(HOT_ROWS, today, first_offset=COLD_ROWS, seed=12)
    _write_files(uri, cold, COLD_FILES, options)
    _write_files(uri, hot, HOT_FILES, options)
    files = pl.DataFrame(DeltaTable(uri, storage_options=options).get_add_actions(flatten=True))
    return Compact(
        table=prefix + TABLES["ex3"],
        uri=uri,
        hot_day=today,
        cold_day=yesterday,
        hot_files=files.filter(pl.col("partition.date") == today).height,
        cold_files=tuple(sorted(files.filter(pl.col("partition.date") == yesterday)["path"])),
        rows={today: hot.height, yesterday: cold.height},
    )


ROWS_KEPT = Hint(
    concept="Compaction rewrites files; it never changes the rows.",
    api="lab.reset('ex3') rebuilds the table.",
    call="lab.reset('ex3'), then only run the compactor",
)
HOT_COMPACTED = Hint(
    concept="Compaction bin-packs a partition's small files into files of about a target size.",
    api="control.run_once(s, 'compact', table=..., target_size=..., min_files=...): one pass "
    "(lesson 03, section 4).",
    call="control.run_once(s, 'compact', table=lab.ex3.table, target_size=TARGET_SIZE, "
    "min_files=4), with a TARGET_SIZE that fewer than 4 of yesterday's files are smaller "
    "than, and today's bytes fill only a few times",
)
COLD_UNTOUCHED = Hint(
    concept="A partition whose files are already big enough should be left alone: "
    "rewriting it costs I/O and buys little.",
    api="Only files smaller than --target-size are candidates, and a partition needs "
    "--min-files of them (lesson 03, section 4).",
    call="lab.reset('ex3'); then choose target_size and min_files so that fewer "
    "than min_files of yesterday's files are smaller than the target (see the "
    "sizes above), while today's partition still fits in a few files",
)


def check_compacted(lab: Lab03) -> None:
    grade = grading("ex3")
    ex = lab.ex3
    files = pl.DataFrame(
        DeltaTable(ex.uri, storage_options=lab.storage_options).get_add_actions(flatten=True)
    )
    per_day = {
        day: (n, rows, size)
        for day, n, rows, size in files.group_by("partition.date")
        .agg(pl.len(), pl.col("num_records").sum(), pl.col("size_bytes").sum())
        .iter_rows()
    }
    for day, rows in ex.rows.items():
        now = per_day.get(day, (0, 0, 0))[1]
        grade.expect(
            now == rows, f"partition date={day} has {now:,} rows, it had {rows:,}", ROWS_KEPT
        )
    hot = per_day[ex.hot_day][0]
    grade.expect(
        hot <= HOT_FILES_MAX,
        f"today's partition (date={ex.hot_day}) is in {hot} files, and a one-partition read "
        f"opens each one; the budget is {HOT_FILES_MAX}",
        HOT_COMPACTED,
    )
    cold_now = tuple(sorted(files.filter(pl.col("partition.date") == ex.cold_day)["path"]))
    cold_bytes = per_day[ex.cold_day][2]
    grade.expect(
        cold_now == ex.cold_files,
        f"yesterday's partition (date={ex.cold_day}) was rewritten: its "
        f"{len(ex.cold_files)} files became {len(cold_now)}, {cold_bytes / 1e6:.1f} MB "
        "written again to save no request worth having",
        COLD_UNTOUCHED,
    )
    passed(
        f"today's partition is in {hot} file(s) (it was {ex.hot_files}); yesterday's "
        f"{len(cold_now)} files were left alone"
    )


# -- exercise 4: a vacuum retention that keeps time travel -------------------------------


def build_vacuum(settings: Settings, prefix: str) -> Vacuum:
    """v0: small files; v1: compacted (v0's files become garbage); GAP_S later, v2: more
    small files; v3: compacted again (v2's files are removed, but v2 must stay readable)."""
    options = settings.storage_options
    uri = _fresh_table(settings, prefix, TABLES["ex4"])
    today = datetime.now(UTC).date()
    _write_files(uri, bronze_rows(40_000, today, seed=21), 8, options)
    DeltaTable(uri, storage_options=options).optimize.compact()
    garbage = set(_files(uri, options, 0)) - set(_files(uri, options, 1))
    time.sleep(GAP_S)
    _write_files(uri, bronze_rows(20_000, today, first_offset=40_000, seed=22), 4, options)
    keep = DeltaTable(uri, storage_options=options).version()
    DeltaTable(uri, storage_options=options).optimize.compact()
    return Vacuum(
        table=prefix + TABLES["ex4"],
        uri=uri,
        keep_version=keep,
        keep_files=tuple(sorted(_files(uri, options, keep))),
        keep_rows=60_000,
        garbage=tuple(sorted(garbage)),
    )


KEEP_VERSION = Hint(
    concept="Vacuum deletes a removed file once its removal is older than the retention, "
    "whatever version still reads it.",
    api="The deletionTimestamp of the remove actions in _delta_log (lesson 03, "
    "section 4) and control.run_once(s, 'vacuum', retention_hours=...) (section 5).",
    call="lab.reset('ex4'); then retention_hours = more than the age of the second "
    "compaction's removes, less than the age of the first one's",
)
GARBAGE_GONE = Hint(
    concept="Files removed long enough ago are garbage: vacuum deletes them once "
    "their removal is older than the retention.",
    api="control.run_once(s, 'vacuum', table=..., retention_hours=HOURS), a float "
    "(lesson 03, section 5).",
    call="control.run_once(s, 'vacuum', table=lab.ex4.table, retention_hours=hours) with "
    "hours between the ages of the two compactions' removes",
)
VERSION_UNCHANGED = Hint(
    concept="Vacuum must not change what a version holds.",
    api="lab.reset('ex4') rebuilds the table.",
    call="lab.reset('ex4'), then only vacuum",
)


def check_vacuumed(lab: Lab03) -> None:
    grade = grading("ex4")
    ex = lab.ex4
    stored = set(delta.data_files(ex.uri, lab.storage_options)["name"])
    lost = [f for f in ex.keep_files if f not in stored]
    grade.expect(
        not lost,
        f"version {ex.keep_version} no longer reads: {len(lost)} of its "
        f"{len(ex.keep_files)} files were deleted",
        KEEP_VERSION,
    )
    left = [f for f in ex.garbage if f in stored]
    grade.expect(
        not left,
        f"storage still holds {len(left)} of the {len(ex.garbage)} files that no version "
        f"from {ex.keep_version} on uses",
        GARBAGE_GONE,
    )
    rows = DeltaTable(ex.uri, version=ex.keep_version, storage_options=lab.storage_options)
    count = rows.count()
    grade.expect(
        count == ex.keep_rows,
        f"version {ex.keep_version} reads {count:,} rows, it had {ex.keep_rows:,}",
        VERSION_UNCHANGED,
    )
    passed(
        f"the {len(ex.garbage)} garbage files are gone and version {ex.keep_version} still "
        f"reads its {count:,} rows"
    )


# -- exercise 5 (stretch): ingest and compaction at once, no row lost --------------------


def build_stress(settings: Settings, prefix: str) -> Live:
    return build_live(settings, prefix, "ex5", "ex5_stress")


def version_rows(uri: str, storage_options: dict[str, str]) -> pl.DataFrame:
    """Replay the log by hand: per version, its operation, whether it is a writer commit
    (it carries ``txn`` actions), whether it rewrote files, the new rows it added, and
    the rows in the table after it."""
    latest = DeltaTable(uri, storage_options=storage_options).version()
    live: dict[str, int] = {}  # path -> rows: the files of the version being replayed
    rows = []
    for version in range(latest + 1):
        actions = delta.read_commit(uri, version, storage_options)
        added = 0
        for action in actions:
            if "remove" in action:
                live.pop(action["remove"]["path"], None)
            if "add" in action:
                records = stats(action["add"])["numRecords"]
                live[action["add"]["path"]] = records
                added += records if action["add"].get("dataChange", True) else 0
        info: dict = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        rows.append(
            {
                "version": version,
                "operation": info.get("operation", "?"),
                "writer": any("txn" in a for a in actions),
                "rewrites": any("remove" in a for a in actions),
                "new_rows": added,
                "rows": sum(live.values()),
            }
        )
    return pl.DataFrame(rows)


LIVE_COMPACTION = Hint(
    concept="To show that compaction is safe under ingestion, both must commit to "
    "the table during the same seconds.",
    api="control.up(..., compact_interval_s=..., min_files=...) with a short flush "
    "(lesson 03, section 6).",
    call="control.up(s, topic=lab.ex5.topic, table=lab.ex5.table, flush_ms=200, "
    "compact_interval_s=2, min_files=2); produce(...) for about 10 s; wait for lag "
    "0; control.down(s, lab.ex5.table)",
)
ONLY_THE_WRITER_ADDS = Hint(
    concept="A compaction keeps every row; only the writer adds rows.",
    api="DeltaTable(uri, version=v).count() across versions (time travel: lesson 01, "
    "section 4); lesson 03, section 7 checks that no row was lost or doubled.",
    call="lab.reset('ex5'), and let only the writer's processes commit to the table",
)
EXACTLY_ONCE = Hint(
    concept="Exactly once means each (kafka_partition, kafka_offset) once.",
    api="The txn actions of the writer's commits (lesson 03, section 3).",
    call="lab.reset('ex5') and run the writer again; never append to its table yourself",
)
ALL_COMMITTED = Hint(
    concept="Stopping the writer loses nothing, but what it has not committed yet "
    "is not in the table yet.",
    api="topics.group_lag(s, group, topic): lag 0 on every partition means all is "
    "committed (lesson 03, section 2).",
    call="before control.down: wait until topics.group_lag(s, "
    "f'neuralake-writer.{lab.ex5.table}', lab.ex5.topic)['lag'].sum() == 0",
)


def check_no_row_lost(lab: Lab03) -> None:
    grade = grading("ex5")
    ex, s, options = lab.ex5, lab.settings, lab.storage_options
    exists = DeltaTable.is_deltatable(ex.uri, options)
    versions = version_rows(ex.uri, options) if exists else None
    writes = versions.filter(pl.col("writer")) if versions is not None else None
    interleaved = 0
    if versions is not None and writes is not None and writes.height:
        first, last = writes["version"].min(), writes["version"].max()
        interleaved = versions.filter(
            pl.col("rewrites") & ~pl.col("writer") & pl.col("version").is_between(first, last)
        ).height
    grade.expect(
        interleaved >= MIN_COMPACTIONS,
        f"the table {ex.table} has {interleaved} compaction commits between its first and "
        f"last writer commits; the proof needs at least {MIN_COMPACTIONS}",
        LIVE_COMPACTION,
    )
    assert versions is not None and writes is not None  # 0 compactions failed above
    steps = versions.with_columns(before=pl.col("rows").shift(1, fill_value=0))
    broken = steps.filter(pl.col("rows") != pl.col("before") + pl.col("new_rows"))
    grade.expect(
        broken.is_empty(),
        f"versions {broken['version'].to_list()[:5]} changed the row count by other than "
        "the rows they added",
        ONLY_THE_WRITER_ADDS,
    )
    table = pl.read_delta(ex.uri, storage_options=options)
    dead = _dead_letters(ex.uri, options)
    in_topic = int(topics.describe(s, ex.topic)["messages"].sum())
    duplicates = table.height - table.select("kafka_partition", "kafka_offset").n_unique()
    grade.expect(duplicates == 0, f"{duplicates:,} rows of {ex.table} are duplicates", EXACTLY_ONCE)
    grade.expect(
        table.height + dead == in_topic,
        f"the topic holds {in_topic:,} messages; the table has {table.height:,} rows and "
        f"the dead letters {dead:,}: {in_topic - table.height - dead:,} are in neither",
        ALL_COMMITTED,
    )
    passed(
        f"{writes.height} writer commits and {interleaved} compactions interleaved; every "
        f"version kept its rows; {in_topic:,} messages = {table.height:,} rows + {dead:,} "
        "dead letters, no duplicates"
    )


BUILDERS = {
    "ex1": build_resume,
    "ex2": build_flush,
    "ex3": build_compact,
    "ex4": build_vacuum,
    "ex5": build_stress,
}
Lab03.builders = BUILDERS
