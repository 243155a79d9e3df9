# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Exactly once under failure, and scaling out
#
# **Time:** about 60 minutes to read and try; the notebook itself runs in about a
# minute (68-69 s on a 2-core machine at a load of 2-3). **Prerequisites:** lesson 03:
# Kafka's positions (section 0: offsets, watermarks, committed offsets, lag), the
# writer's three processes (section 1) and the `txn` actions that record its progress
# in the table (section 3). The stack up
# (`make up`) and the Rust writer built (`make setup` builds it).
#
# **You will be able to**
#
# 1. kill the writer with `kill -9` at the worst moment, say which record of progress
#    wins on restart and why, and prove that nothing was lost or written twice;
# 2. read lag from both sides (the broker's and the writer's) and explain its shape;
# 3. read the dead-letter table, fix messages and replay them so each lands once,
#    doing the replay ledger's step by hand before the library does it;
# 4. measure freshness (produced -> readable, p50/p99) and the writer's catch-up speed
#    against a Python consumer and raw Kafka reads;
# 5. scale the writer out: workers joining and leaving one consumer group while it
#    runs, partitions moving between them, every row still written once.
#
# **Why.** Lesson 03 ran the writer when nothing went wrong. Production is the other
# case: a writer that restarts in the wrong place either **loses** rows or writes them
# **twice**, one malformed payload must neither stop the stream nor vanish, and one
# process stops being enough. Every number below is measured when the notebook runs.

# %% tags=["parameters"]
PREFIX = "l04_"  # topic and table names start with this
PARTITIONS = 3  # partitions of the lesson's topic
MESSAGES = 48_000  # messages produced while the writer is killed and restarted
KILL_AFTER = 4  # stream commits to let land before the kill
RATE = 6_000  # messages per second for that stream
MALFORMED_RATIO = 0.01  # share of messages broken on purpose
FRESH_RATE = 2_000  # messages per second for the freshness measurement
FRESH_SECONDS = 10  # how long the freshness measurement runs
BENCH_MESSAGES = 200_000  # messages for the catch-up comparison
SCALE_MESSAGES = 40_000  # messages produced while workers join and leave (section 9)
SCALE_RATE = 4_000  # messages per second for that stream
SEED = 4

# %%
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
import psutil
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from IPython.display import display

import neuralake
from neuralake import delta
from neuralake.errors import StackError
from neuralake.lab.bench import report
from neuralake.lab.stack import processes
from neuralake.lab.writer import binary, control
from neuralake.settings import project_dir
from neuralake.streaming import freshness, metrics, replay, topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import app_id, arrow_schema, dead_letter_uri, message_key

s = neuralake.settings()
assert s.profile != "local", "lesson 04 needs Kafka and S3: start the stack with `make up`"
WRITER_BIN = str(binary.find(s.cache_dir))  # StackError naming `make setup` if not built
TOPIC, TABLE = f"{PREFIX}signals", f"{PREFIX}bronze"
BENCH_TOPIC = f"{PREFIX}bench"
APP = "neuralake-writer"  # the writer's --app-id (default): it names the txn actions
GROUP = f"{APP}.{TABLE}"  # the writer's consumer group (default: neuralake-writer.<table>)
bronze_uri = s.table_uri(TABLE)
dead_uri = dead_letter_uri(bronze_uri)
WORK = s.state_dir / "lessons" / "04"  # pid files and logs of the processes started here
WORK.mkdir(parents=True, exist_ok=True)
print(f"profile {s.profile} | kafka {s.kafka_bootstrap} | bronze table {bronze_uri}")

# %% [markdown]
# Start clean, so the notebook can run again: stop this lesson's writer and the
# processes it started itself, drop its tables and delete its topics. Kafka deletes a
# topic in the background, so we wait until it is really gone before creating it again.

# %%
admin = AdminClient(s.kafka_config)


def delete_topics(*names: str) -> None:
    """Delete topics and wait until the broker no longer lists them."""
    present = [t for t in names if t in admin.list_topics(timeout=10).topics]
    for future in admin.delete_topics(present).values() if present else []:
        future.result(10)
    deadline = time.monotonic() + 30
    while any(t in admin.list_topics(timeout=10).topics for t in names):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka still lists {names} 30 s after deleting them")
        time.sleep(0.2)


control.down(s, TABLE, echo=lambda _: None)
for name in ("stream", "steady", "scale", "worker-a", "worker-b", "predict"):
    processes.stop(WORK / f"{name}.pid")  # what a previous run may have left running
for name in (TABLE, f"{PREFIX}bench_rust", f"{PREFIX}bench_python"):
    for uri in (s.table_uri(name), dead_letter_uri(s.table_uri(name))):
        for table_uri in (uri, replay.ledger_uri(uri)):
            delta.drop_table(table_uri, s.storage_options)
delete_topics(TOPIC, BENCH_TOPIC)
print("clean")

# %% [markdown]
# ## 1 · The writer on a fresh topic
#
# A topic of `PARTITIONS` partitions, and the writer's three processes on it, started
# the way lesson 03 section 1 did. We pass the flush interval and the number of ingest
# workers explicitly: `control.up` remembers both per table, and section 9 and the
# closing check change them.

# %%
topics.ensure_topic(s, TOPIC, partitions=PARTITIONS)
writer = control.up(s, topic=TOPIC, table=TABLE, workers=1, flush_ms=1000, echo=lambda _: None)
INGEST = next(w for w in writer if w.name == "ingest")
pl.DataFrame([{"process": w.name, "pid": w.pid, "metrics": w.metrics_url} for w in writer])

# %% [markdown]
# Small helpers, used by the sections below: one metric of ingest, the partitions a
# writer process owns in its consumer group, the table's record of progress (its `txn`
# versions, lesson 03 section 3), and a wait until the table holds everything the topic
# has.


# %%
def metric(name: str) -> float:
    return metrics.values(INGEST.metrics_url).get(name, float("nan"))


def owned(url: str) -> list[int]:
    """The partitions a worker owns, from its neuralake_writer_assigned_partition gauges."""
    try:
        scraped = metrics.values(url)
    except StackError:
        return []  # stopped: owns nothing
    prefix = "neuralake_writer_assigned_partition"
    return sorted(int(k.split('"')[1]) for k, v in scraped.items() if k.startswith(prefix) and v)


def txn_versions() -> dict[int, int | None]:
    """The last Kafka offset the bronze table holds, per partition (its txn actions)."""
    table = DeltaTable(bronze_uri, storage_options=s.storage_options)
    return {p: table.transaction_version(app_id(APP, TOPIC, p)) for p in range(PARTITIONS)}


def wait_caught_up(timeout: float = 60) -> float:
    """Wait until the table holds every partition up to its high watermark; seconds."""
    started = time.monotonic()
    while True:
        highs = dict(topics.describe(s, TOPIC).select("partition", "high").iter_rows())
        done = txn_versions()
        if all(high == 0 or (done[p] or -1) >= high - 1 for p, high in highs.items()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"writer not caught up after {timeout} s: {done} vs {highs}")
        time.sleep(0.2)


assert all(v is None for v in txn_versions().values()), "a fresh table holds no txn yet"
print(f"txn versions of the empty table: none for any of the {PARTITIONS} partitions")

# %% [markdown]
# ## 2 · A stream to break
#
# Now a real stream: `MESSAGES` messages at `RATE` per second, `MALFORMED_RATIO` of them
# broken on purpose (four kinds: invalid JSON, a missing field, a wrong type, a channel
# out of range). We run `neuralake produce` as a separate process, tracked by a pid file
# like the writer, so the notebook can stop it whatever happens.

# %%
NEURALAKE = str(Path(sys.executable).with_name("neuralake"))


def start_producer(name: str, count: int, rate: float, malformed: float, topic: str = TOPIC):
    """Start `neuralake produce` in the background; its JSON summary goes to its log."""
    log = WORK / f"{name}.log"
    log.unlink(missing_ok=True)
    cmd = [NEURALAKE, "produce", "--topic", topic, "--count", str(count), "--rate", str(rate)]
    cmd += ["--malformed-ratio", str(malformed), "--seed", str(SEED)]
    cmd += ["--partitions", str(PARTITIONS)]
    processes.start(
        cmd, pid_file=WORK / f"{name}.pid", log_file=log, env=dict(os.environ), cwd=WORK
    )
    return log


def producer_result(name: str, timeout: float = 120) -> dict:
    """Wait for a producer started above to finish; its JSON summary line."""
    pid_file, deadline = WORK / f"{name}.pid", time.monotonic() + timeout
    while processes.running(pid_file) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"producer {name} still running after {timeout} s")
        time.sleep(0.2)
    code, lines = processes.exit_code(pid_file), (WORK / f"{name}.log").read_text().splitlines()
    if code not in (0, None):
        raise RuntimeError(f"producer {name} failed ({code}): {lines[-1] if lines else ''}")
    return json.loads(lines[-1])


def sample_lag(since: float) -> dict:
    """Lag from both sides: the broker's (AdminClient: high - the group's committed
    offset) and the writer's gauge, neuralake_writer_consumer_lag (None while it is down)."""
    try:
        scraped = metrics.values(INGEST.metrics_url)
        lags = [v for k, v in scraped.items() if k.startswith("neuralake_writer_consumer_lag")]
        writer_lag = sum(lags) if lags else None  # None: no partitions (yet)
        version = scraped["neuralake_writer_table_version"]
    except StackError:
        writer_lag, version = None, None  # the ingest process is down: no metrics
    kafka_lag = topics.group_lag(s, GROUP, TOPIC)["lag"].sum()
    return {"t_s": time.monotonic() - since, "kafka_lag": kafka_lag, "writer_lag": writer_lag,
            "version": version}  # fmt: skip


# %% [markdown]
# ## 3 · Lag from both sides, and a `kill -9` at the worst moment
#
# While the stream runs we sample the lag four times a second from both sides: the
# broker's, with `topics.group_lag` (the AdminClient's high watermark minus the group's
# committed offset, lesson 03 section 0), and the writer's own gauge
# `neuralake_writer_consumer_lag` (the high watermark minus the next offset the *table*
# needs). Once `KILL_AFTER` stream commits have landed, at the first moment the table
# holds offsets that Kafka's committed offsets do not show yet (section 4: that is
# most of the time), we kill ingest with `SIGKILL`: no cleanup, no last commit,
# exactly like a power cut. Compact and vacuum keep running. We keep sampling for a
# moment while ingest is dead.


# %%
def table_ahead_of_kafka() -> bool:
    """The worst moment to die: the table holds offsets the group's committed offsets do not.
    The table is read first, Kafka second, so only a confirmation in the instant between
    Kafka's answer and the kill can make it false again."""
    table_next = [(v if v is not None else -1) + 1 for v in txn_versions().values()]
    committed = topics.group_lag(s, GROUP, TOPIC)["committed"].fill_null(0)
    return any(t > c for t, c in zip(table_next, committed, strict=True))


start_producer("stream", MESSAGES, RATE, MALFORMED_RATIO)
start_version = DeltaTable(bronze_uri, storage_options=s.storage_options).version()
samples, killed_at, started = [], None, time.monotonic()
while killed_at is None or samples[-1]["t_s"] < killed_at + 1.5:
    samples.append(sample_lag(started))
    assert samples[-1]["t_s"] < 60, "no moment with the table ahead of Kafka within 60 s"
    landed = (samples[-1]["version"] or 0) >= start_version + KILL_AFTER
    if killed_at is None and landed and table_ahead_of_kafka():
        pid = next(w.pid for w in control.status(s, TABLE) if w.name == "ingest")
        os.kill(pid, signal.SIGKILL)  # mid-stream, the table ahead of Kafka: now
        killed_at = samples[-1]["t_s"]
        # Both records of progress, read right after the kill (nothing can move them now).
        at_kill = pl.DataFrame(
            {
                "partition": range(PARTITIONS),
                "table: txn version + 1": [v + 1 for v in txn_versions().values()],
                "Kafka: committed offset": topics.group_lag(s, GROUP, TOPIC)["committed"],
            }
        ).with_columns(
            kafka_behind_by=pl.col("table: txn version + 1") - pl.col("Kafka: committed offset")
        )
        print(f"t={killed_at:.1f} s: kill -9 {pid} (ingest); the table was at version "
              f"{samples[-1]['version']:.0f}")  # fmt: skip
    time.sleep(0.25)
print(f"t={samples[-1]['t_s']:.1f} s: ingest still dead, lag {samples[-1]['kafka_lag']:,}")
at_kill

# %% [markdown]
# ## 4 · Which record of progress wins on restart?
#
# The table printed at the kill holds, per partition, two records of how far the writer
# got: the next offset the table needs (its `txn` version + 1) and the group's committed
# offset (Kafka's convention: the next offset to read). Read both again now, with the
# real calls, while ingest is still dead: nothing can move them.

# %%
table = DeltaTable(bronze_uri, storage_options=s.storage_options)
now = pl.DataFrame(
    {
        "partition": range(PARTITIONS),
        "table: txn version + 1": [
            table.transaction_version(app_id(APP, TOPIC, p)) + 1 for p in range(PARTITIONS)
        ],
        "Kafka: committed offset": topics.group_lag(s, GROUP, TOPIC)["committed"],
    }
)
assert now["table: txn version + 1"].equals(at_kill["table: txn version + 1"]), "moved?"
behind = int(at_kill["kafka_behind_by"].sum())
assert behind >= 0, "Kafka ahead of the table: the writer confirmed before committing"
print(
    f"Kafka knows {behind:,} messages fewer than the table ({behind / RATE:.1f} s of messages "
    "at RATE): the kill landed between the two writes"
)
assert 0 < behind <= 2.5 * RATE, "not one batch or two behind: see the text below"

# %% [markdown]
# The writer writes the two in that order: the Delta commit first, then, when the
# reader hands over its next batch (up to a flush interval later), the commit to
# Kafka. Ingest is a pipeline: while batch *n* is committed to Delta, the reader
# already fills batch *n + 1*, and confirms *n* only when it hands *n + 1* over. So
# during a stream Kafka is about one batch behind most of the time, and "the process
# dies in between" is not a rare accident but the usual case. The notebook killed ingest
# at such a moment (on a very busy machine commits are slow and the moment is short, so
# it waited for one): `kafka_behind_by` is how many messages per partition the table
# holds that Kafka does not know about: the last batch, the messages of about one
# flush interval (the line above adds them up and converts them to seconds of
# messages; the cell asserts more than 0 and at most 2.5 s).
#
# Which record wins? **The table's.** The restarted writer opens the table, reads each
# partition's `txn` version and seeks to `version + 1`; it never asks Kafka where to
# start. Had it trusted Kafka, it would read those `kafka_behind_by` messages again and
# commit them a second time. The table's `txn` is the truth because it is written **in
# the same atomic commit** as the rows it describes: if the rows are in the table, so is
# the offset, and if the commit failed, neither is. Kafka's offset is a second write to
# a second system, and nothing makes the two atomic. (The opposite order, Kafka first,
# would lose the batch instead.) Kafka's offsets are for lag tools only.
#
# ## 5 · Restart, drain, count
#
# `control.up` restarts what is dead (ingest) and leaves the live processes alone. The
# new process is ready as soon as its table is open, but it reads nothing until the
# consumer group gives it partitions, and the group still counts the killed process
# as a member: it waits for that member's session to time out (the writer sets
# `session.timeout.ms` to 10 s) before it hands the partitions over. A clean stop
# (`SIGTERM`, section 9) leaves the group at once. We keep sampling until the producer
# is done and the lag is back to 0.

# %%
control.up(s, topic=TOPIC, table=TABLE, echo=lambda _: None)
restarted_at = time.monotonic() - started
print(f"t={restarted_at:.1f} s: ingest restarted (ready: its table is open)")
while not owned(INGEST.metrics_url):  # the group assigns partitions to the new process
    samples.append(sample_lag(started))
    assert samples[-1]["t_s"] < restarted_at + 60, "no partitions 60 s after the restart"
    time.sleep(0.25)
assigned_at = samples[-1]["t_s"]
print(f"t={assigned_at:.1f} s: partitions assigned, {assigned_at - killed_at:.1f} s after the kill")
assert assigned_at - killed_at >= 6, "the group handed over before the session timed out?"
stream = None
while stream is None or samples[-1]["kafka_lag"] > 0:  # until produced and drained
    samples.append(sample_lag(started))
    assert samples[-1]["t_s"] < 120, "the writer did not drain the stream within 120 s"
    if stream is None and processes.running(WORK / "stream.pid") is None:
        stream = producer_result("stream")
    time.sleep(0.25)
print(f"produced {stream['sent']:,}: {stream['good']:,} good, {stream['malformed']} malformed")
wait_caught_up()  # the table's txn versions reach every partition's end
print(f"t={samples[-1]['t_s']:.1f} s: Kafka lag back to 0, and the table holds every offset")

# %%
lag = pl.DataFrame(samples)
fig, ax = plt.subplots(figsize=(9, 3))
ax.plot(lag["t_s"], lag["kafka_lag"], label="AdminClient: high - committed")
ax.plot(lag["t_s"], lag["writer_lag"], label="writer metric: consumer_lag")
ax.axvline(killed_at, color="red", linestyle=":", label="kill -9")
ax.axvline(restarted_at, color="green", linestyle=":", label="restart")
ax.axvline(assigned_at, color="orange", linestyle=":", label="partitions assigned")
ax.set_xlabel("seconds since the producer started")
ax.set_ylabel("messages behind")
ax.legend()
plt.show()
peak_before = lag.filter(pl.col("t_s") < killed_at)["kafka_lag"].max()
peak_at = lag.row(lag["kafka_lag"].arg_max(), named=True)["t_s"]
print(
    f"before the kill the saw-tooth peaked at {peak_before:,} messages = "
    f"{peak_before / RATE:.1f} s of messages at RATE {RATE:,}/s"
)
print(
    f"largest lag seen: AdminClient {lag['kafka_lag'].max():,} at t={peak_at:.1f} s "
    f"(killed at {killed_at:.1f}, restarted at {restarted_at:.1f}), "
    f"writer gauge {lag['writer_lag'].max():,.0f} messages"
)
assert 1.2 * RATE <= peak_before <= 4 * RATE, "about two batches of a second each: see below"
assert killed_at <= peak_at, "the largest lag builds up while the writer is dead"

# %% [markdown]
# Read the plot. The AdminClient's lag is a saw-tooth: it grows by `RATE` messages a
# second and drops each time the writer confirms offsets to Kafka. Its peaks are about
# **two** seconds of messages, not one (the first line under the plot): the pipeline of
# section 4 again. Just before a confirmation Kafka is behind by the batch committed
# but not yet confirmed plus the batch being filled, a flush interval each. While the
# process is dead the lag only grows, and it keeps growing after the restart until the
# new process confirms its first commit: the largest value is reached in that stretch
# (the second line). Then the writer drains the backlog in a few big batches.
#
# The writer's gauge is the high watermark (re-read every 200 ms) minus the next offset
# the table needs, so while the writer runs the two curves follow the same saw-tooth,
# each sampled at its own moments. From the kill until the new process owns
# partitions the gauge has a gap (no process, then a process without partitions),
# while the broker's side keeps counting. Alert on lag from the broker's side, which does not depend on the consumer
# being alive; read the gauge to see what the writer believes.
#
# ### Did we lose or duplicate anything?
#
# The ground truth is the topic: every good message must be in the table exactly
# once, every malformed one in the dead-letter table exactly once.

# %%
good = stream["good"]
bronze = pl.read_delta(bronze_uri, storage_options=s.storage_options)
dead = pl.read_delta(dead_uri, storage_options=s.storage_options)
unique = bronze.select("kafka_partition", "kafka_offset").n_unique()
counts = {
    "good messages in the topic": good,
    "rows in bronze": bronze.height,
    "unique (partition, offset) in bronze": unique,
    "malformed messages in the topic": stream["malformed"],
    "rows in the dead-letter table": dead.height,
}
assert bronze.height == unique == good, "lost or duplicated rows"
assert dead.height == stream["malformed"], "lost or duplicated dead letters"
pl.DataFrame({"count": list(counts), "value": list(counts.values())})

# %% [markdown]
# Same numbers: the restarted writer read its txn versions and continued at the next
# offset. The batch it was collecting when it died was never committed, so it was
# simply read again. The group's committed offsets played no part: had they, the
# `kafka_behind_by` messages of the table at the kill would be here twice.
#
# ## 6 · Dead letters: why, fix, replay once
#
# A malformed message is not dropped: its raw bytes go to the dead-letter table with a
# `reason` that names the field and the problem.

# %%
reasons = (
    dead.with_columns(
        field=pl.col("reason").str.extract(r"field '(\w+)'").fill_null("(whole payload)")
    )
    .group_by("field")
    .agg(count=pl.len(), example=pl.col("reason").first())
    .sort("count", descending=True)
)
reasons

# %% [markdown]
# Which can be fixed? Only those where the right value is known. A truncated JSON
# payload or a missing `quality` cannot be guessed; a channel of 70000 is not a
# channel. But a `spike` sent as the string `"yes"` or `"no"` (an old firmware, say) is
# unambiguous. So we fix those and leave the rest, with their reasons, for a human.
#
# `replay.pending` lists the dead letters not yet replayed; we put the corrected bytes
# in `payload` (null = leave alone).

# %%
SPIKE_WORDS = {"yes": True, "true": True, "no": False, "false": False}


def fix_spike(payload: bytes) -> bytes | None:
    """A corrected payload when spike is a yes/no word; None when we cannot know."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message.get("spike"), str) or message["spike"] not in SPIKE_WORDS:
        return None
    return json.dumps({**message, "spike": SPIKE_WORDS[message["spike"]]}).encode()


todo = replay.pending(dead_uri, s.storage_options)
fixed = todo.with_columns(
    pl.col("payload").map_elements(fix_spike, return_dtype=pl.Binary, skip_nulls=True)
)
fixable = fixed.filter(pl.col("payload").is_not_null()).height
print(f"{todo.height} dead letters, {fixable} of them fixable")

# %% [markdown]
# A replay produces the fixed bytes back into the topic, where the writer ingests them
# like any message. But each replayed message gets a *new* offset, so the writer's
# exactly-once protects it only from itself: replaying the same dead letter twice would
# make two rows. So every replay is recorded in a **ledger**, a small Delta table beside
# the dead letters (`<dead letters>_replayed`), and a replay skips what it holds.
#
# First the ledger's step by hand, for one dead letter, with the real calls. It uses
# the same two tools as the writer: a Kafka header, and Delta `txn` actions.
#
# 1. **Marks first.** Commit to the ledger, per partition of the topic, the high
#    watermark *before* producing anything, as a `txn` action
#    (`appId = "replay/<topic>/<partition>"`). Every replay message will be above it.
# 2. **Produce** the fixed bytes with a header naming the dead letter it replaces
#    (`neuralake-replay-of: <topic>/<partition>/<offset>`), and wait for the delivery
#    report: it says where the copy landed.
# 3. **Record** it: one ledger row (the dead letter and its copy's position) and the
#    marks moved up to the new high watermarks, in one commit.
#
# A crash between 2 and 3 leaves a replayed message the ledger does not list; the next
# replay scans each partition above its mark for the header and records it instead of
# producing it again.

# %%
ledger_at = replay.ledger_uri(dead_uri)
LEDGER_ARROW = arrow_schema(replay.LEDGER)  # the ledger's columns, as deltalake wants them


def ledger_commit(rows: pl.DataFrame) -> None:
    """Append rows and, per partition, the current high watermark as a txn: one commit."""
    highs = topics.describe(s, TOPIC).select("partition", "high").iter_rows()
    marks = [Transaction(replay.ledger_app_id(TOPIC, p), high) for p, high in highs]
    write_deltalake(
        ledger_at,
        rows.to_arrow().cast(LEDGER_ARROW),
        mode="append",
        storage_options=s.storage_options,
        commit_properties=CommitProperties(app_transactions=marks),
    )


one = fixed.filter(pl.col("payload").is_not_null()).row(0, named=True)
coordinates = (one["kafka_topic"], one["kafka_partition"], one["kafka_offset"])
ledger_commit(pl.DataFrame(schema=replay.LEDGER))  # 1. the marks, before producing

landed_at = {}
fixed_message = json.loads(one["payload"])
replayer = Producer({**s.kafka_config, "enable.idempotence": True})
replayer.produce(  # 2. the fixed bytes, with the header naming the dead letter
    one["kafka_topic"],
    value=one["payload"],
    key=message_key(fixed_message["session_id"], fixed_message["channel"]),
    headers=[(replay.REPLAY_HEADER, replay.header_value(*coordinates))],
    on_delivery=lambda error, msg: landed_at.update(
        error=error, partition=msg.partition(), offset=msg.offset()
    ),
)
assert replayer.flush(10) == 0 and landed_at["error"] is None, f"not delivered: {landed_at}"

row = {  # 3. the ledger row and the moved marks, in one commit
    "kafka_topic": one["kafka_topic"],
    "kafka_partition": one["kafka_partition"],
    "kafka_offset": one["kafka_offset"],
    "replay_partition": landed_at["partition"],
    "replay_offset": landed_at["offset"],
    "replayed_at": datetime.now(UTC),
    "recovered": False,
}
ledger_commit(pl.DataFrame([row], schema=replay.LEDGER))
marks_now = DeltaTable(ledger_at, storage_options=s.storage_options)
print(f"dead letter {'/'.join(map(str, coordinates))} replayed to partition "
      f"{landed_at['partition']}, offset {landed_at['offset']}")  # fmt: skip
marks = [marks_now.transaction_version(replay.ledger_app_id(TOPIC, p)) for p in range(PARTITIONS)]
print("ledger marks:", ", ".join(f"partition {p}: {mark:,}" for p, mark in enumerate(marks)))
replay.replayed(dead_uri, s.storage_options).drop("kafka_topic", "replayed_at")

# %% [markdown]
# `replay.replay` does these three steps for every row of `fixed` (and the crash
# recovery). It reads the ledger we just wrote, so the one done by hand counts as
# already replayed:

# %%
options = {"kafka_config": s.kafka_config, "storage_options": s.storage_options}


def told(result: replay.ReplayResult) -> str:
    """A replay's result in words."""
    return (
        f"produced {result.replayed}, already in the ledger {result.already_replayed}, "
        f"recovered from a header {result.recovered}, left dead (no fix) {result.skipped}; "
        f"ledger at version {result.ledger_version}"
    )


first = replay.replay(fixed, dead_letter_uri=dead_uri, **options)
print(told(first))
assert first.already_replayed == 1 and first.replayed == fixable - 1, "the ledger was ignored"

# %% [markdown]
# Run it again: the ledger now holds every fixable dead letter, so nothing is produced.

# %%
again = replay.replay(fixed, dead_letter_uri=dead_uri, **options)
print(told(again))
wait_caught_up()
ledger = replay.replayed(dead_uri, s.storage_options)
landed = pl.read_delta(bronze_uri, storage_options=s.storage_options).join(
    ledger.select(
        pl.col("replay_partition").alias("kafka_partition"),
        pl.col("replay_offset").alias("kafka_offset"),
    ),
    on=["kafka_partition", "kafka_offset"],
)
print(f"ledger: {ledger.height} replayed dead letters; in bronze: {landed.height} rows")
spikes = landed["spike"].sum()
print(f"their spike values: {spikes} true, {landed.height - spikes} false, none null")
assert landed["spike"].null_count() == 0, "a replayed spike is still not a boolean"
assert again.replayed == 0 and again.already_replayed == fixable, "replayed twice"
assert landed.height == ledger.height == fixable, "a fixed message is missing or doubled"

# %% [markdown]
# Every fixable dead letter is in bronze once, the one replayed by hand included.
# `tests/test_replay.py` simulates the crash between producing and recording, and
# checks that the next run recovers the message from its header instead of producing
# it again.
#
# ## 7 · Freshness: produced -> readable
#
# Freshness is the time from Kafka receiving a message to a query seeing it. The
# writer flushes at least every second (`--flush-ms 1000`), so a message waits up to a
# second in a batch, then for the commit. `neuralake.streaming.freshness.measure`
# polls the table like a dashboard would (every 100 ms) and, for each row that appears,
# computes `seen_at - kafka_timestamp`.

# %%
start_producer("steady", FRESH_RATE * FRESH_SECONDS, FRESH_RATE, 0.0)
# The producer needs a second or two to start: measure until every row was seen (or 30 s
# more than the stream lasts, on a very busy machine).
fresh = freshness.measure(
    bronze_uri, s.storage_options, seconds=FRESH_SECONDS + 30, poll_s=0.1,
    until_rows=FRESH_RATE * FRESH_SECONDS,
)  # fmt: skip
steady = producer_result("steady")
summary = freshness.summary(fresh)
print(f"{steady['sent']:,} messages at {FRESH_RATE:,}/s; freshness of {summary['rows']:,} rows:")
pl.DataFrame([summary])

# %%
seconds = fresh["freshness_s"].sort()
fig, (hist_ax, cdf_ax) = plt.subplots(1, 2, figsize=(11, 3.2))
hist_ax.hist(seconds, bins=40, color="#48c")
hist_ax.set_xlabel("freshness, s")
hist_ax.set_ylabel("rows")
cdf_ax.plot(seconds, [i / len(seconds) for i in range(1, len(seconds) + 1)], color="#48c")
for q, color in (("p50_s", "#4a4"), ("p99_s", "#c44")):
    cdf_ax.axvline(summary[q], color=color, linestyle=":", label=f"{q[:3]} = {summary[q]:.2f} s")
cdf_ax.set_xlabel("freshness, s")
cdf_ax.set_ylabel("share of rows at most this stale")
cdf_ax.legend()
fig.suptitle(f"{FRESH_RATE:,} msg/s, flush every 1 s, polled every 100 ms: measured in this run")
plt.tight_layout()
plt.show()
print(
    "the writer's own gauge at its last commit:",
    round(metric("neuralake_writer_freshness_seconds"), 3),
    "s",
)
FLUSH_S = 1.0  # the writer's default --flush-ms, in seconds
assert FLUSH_S / 2 <= summary["p50_s"] < FLUSH_S + 1, "p50: half a flush plus the commit"
assert 0.8 * FLUSH_S <= summary["p99_s"] < 3, "p99: about one flush plus the commit, under 3 s"

# %% [markdown]
# The histogram is roughly flat between the fastest and the slowest rows: a message
# that arrives just before a flush waits almost nothing, one that arrives just after
# waits a whole flush interval. So expect the median near half the flush interval plus
# the commit and poll time, and p99 near one whole interval plus those: compare with
# the p50 and p99 printed above (the cell above asserts that rule of thumb).
# Freshness is bought with commits: `--flush-ms 200`
# would be fresher, at five times the commits and small files (the check at the end of
# this lesson measures 250 ms).
#
# ## 8 · How fast can it catch up?
#
# After an outage the writer faces a backlog. Its speed then is its **catch-up
# throughput**. We preload a topic with `BENCH_MESSAGES` messages and let three
# readers consume all of it, each as a separate process whose memory we sample:
#
# - `neuralake-writer bench-consume`: reads and discards (rdkafka's ceiling);
# - `neuralake-writer ingest --stop-at-end`: the Rust writer, to a Delta table;
# - `neuralake writer baseline --stop-at-end`: the same protocol in Python
#   (confluent-kafka, `json.loads` per message, deltalake).

# %%
preload = produce(s, topic=BENCH_TOPIC, count=BENCH_MESSAGES, partitions=PARTITIONS, seed=SEED)
print(f"preloaded {preload.sent:,} messages in {preload.seconds:.1f} s")


def writer_env(table: str) -> dict[str, str]:
    """The NEURALAKE_* variables the binary reads: S3, Kafka, topic and table."""
    return control.process_env(s, topic=BENCH_TOPIC, table_uri=s.table_uri(table))


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` to completion; its JSON summary line plus its peak memory (RSS)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, watched = 0, psutil.Process(proc.pid)
    try:
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:2]} failed ({proc.returncode}): {err.strip()[-300:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mib": peak / 2**20}


port = f"127.0.0.1:{processes.free_port()}"
runs = {
    "rdkafka read only": run_measured(
        [WRITER_BIN, "bench-consume"], writer_env(f"{PREFIX}bench_rust")
    ),
    "Rust writer": run_measured(
        [WRITER_BIN, "ingest", "--stop-at-end", "--metrics-addr", port],
        writer_env(f"{PREFIX}bench_rust"),
    ),
    "Python baseline": run_measured(
        [
            NEURALAKE,
            "writer",
            "baseline",
            "--stop-at-end",
            "--topic",
            BENCH_TOPIC,
            "--table",
            f"{PREFIX}bench_python",
        ],
        dict(os.environ),
    ),
}
bench = pl.DataFrame(
    [
        {
            "reader": name,
            "messages": r["messages"],
            "seconds": round(r["seconds"], 2),
            "messages_per_s": round(r["messages"] / r["seconds"]),
            "peak_mib": round(r["peak_mib"]),
        }
        for name, r in runs.items()
    ]
)
bench

# %%
rate = dict(bench.select("reader", "messages_per_s").iter_rows())
ceiling, rust, python = rate["rdkafka read only"], rate["Rust writer"], rate["Python baseline"]
fig, ax = plt.subplots(figsize=(8, 2.8))
ax.barh(bench["reader"], bench["messages_per_s"], color=["#999", "#c44", "#48c"])
ax.set_xlabel("messages per second, catch-up of a preloaded topic")
ax.set_title(f"{BENCH_MESSAGES:,} messages, {PARTITIONS} partitions, this machine: measured now")
plt.tight_layout()
plt.show()
print(
    f"Rust writer: {rust / python:.1f}x the Python baseline, "
    f"{rust / ceiling:.0%} of a read-only rdkafka consumer"
)
assert python < rust < ceiling, "the Python baseline falls behind; reading alone is the ceiling"

# %% [markdown]
# The line above is the comparison at this scale on this machine; start-up (opening
# the table, assigning partitions) weighs more in a short run than in a long one. The
# Rust writer decodes JSON without allocating per field and builds Arrow columns
# directly; the Python baseline pays for `json.loads` and a Python object per value,
# which is why it is the one that falls behind. `peak_mib` is the process's largest
# resident memory while it ran.
#
# The full-scale benchmark (at least 2 million messages, and freshness at 10,000 msg/s)
# is `benchmarks/writer_throughput.py` and `benchmarks/writer_freshness.py`; their
# committed results (`docs/benchmarks/*.json`, one column per run, each with the load
# it was measured at) are read here against the targets, the same way the benchmark
# report reads them (`neuralake.lab.bench.report`):

# %%
saved = project_dir() / "docs" / "benchmarks"
figures = []
for name, checks in [
    ("writer_throughput", report.writer_throughput_checks),
    ("writer_freshness", report.writer_freshness_checks),
]:
    for number, run in enumerate(report.load_runs(saved / f"{name}.json") or [], 1):
        for check in checks(run):
            met = {True: "met", False: "NOT met", None: ""}[check.met]
            figures.append((name, number, check.measure, check.value, check.target, met))
        figures.append(
            (name, number, "load average, 1 min", str(run.get("load_average_1m")), "", "")
        )
if figures:
    columns = ["benchmark", "run", "figure", "value", "target", "met"]
    with pl.Config(tbl_rows=-1, fmt_str_lengths=40, tbl_hide_dataframe_shape=True):
        display(pl.DataFrame(figures, schema=columns, orient="row"))
else:
    print(
        "no committed results: run `uv run python benchmarks/writer_throughput.py "
        "> docs/benchmarks/writer_throughput.json` (and writer_freshness.py likewise)"
    )

# %% [markdown]
# ## 9 · Scaling out: workers joining and leaving a consumer group
#
# One ingest process reads every partition of the topic. When it cannot keep up, you
# add workers, and the unit of parallelism is the partition (lesson 03 section 0):
# workers that share a **consumer group** (`group.id`) split the topic's partitions
# between them, each partition owned by one worker at a time. When a worker joins or
# leaves, the group's coordinator (a broker) **rebalances**: it moves partitions from
# one worker to another. The writer's consumers use the *cooperative-sticky* assignor,
# so a rebalance moves only the partitions that must move, and the others keep flowing.
#
# Nothing new is needed for exactly once. A worker that gets a partition does what a
# restart does (section 5): it reads that partition's `txn` version from the table and
# starts at `version + 1`. A worker that loses a partition drops the batch it was
# filling (not committed, so the new owner reads those messages again); and before
# every commit each worker checks that the table's `txn` versions are still where it
# left them, so a slow worker cannot commit a batch that the new owner has already
# written. Lost and doubled rows are again the two things to count.
#
# First the real thing: two `neuralake-writer ingest` processes started by hand, with
# the same `--group-id`, each serving its own `/metrics`. The gauge
# `neuralake_writer_assigned_partition{partition="N"}` is 1 for each partition a worker
# owns. We stop the lesson's writer first: its ingest is a member of the same group.

# %%
control.down(s, TABLE, echo=print)


def start_worker(name: str) -> str:
    """Start one `neuralake-writer ingest` in the writer's group; its /metrics URL, once
    it is ready (table open; partitions come with the next rebalance)."""
    address = f"127.0.0.1:{processes.free_port()}"
    cmd = [WRITER_BIN, "ingest", "--group-id", GROUP, "--metrics-addr", address]
    processes.start(
        cmd,
        pid_file=WORK / f"{name}.pid",
        log_file=WORK / f"{name}.log",
        env=control.process_env(s, topic=TOPIC, table_uri=bronze_uri),  # S3, Kafka, topic
        cwd=WORK,
    )
    url = f"http://127.0.0.1:{address.split(':')[1]}/metrics"
    deadline = time.monotonic() + 60
    while True:
        try:
            if metrics.values(url).get("neuralake_writer_ready") == 1.0:
                return url
        except StackError:
            pass  # not serving yet
        if time.monotonic() > deadline or processes.running(WORK / f"{name}.pid") is None:
            raise StackError(f"worker {name} did not start: see {WORK / f'{name}.log'}")
        time.sleep(0.2)


print("command of a worker:", " ".join(["neuralake-writer", "ingest", "--group-id", GROUP]))

# %% [markdown]
# Now the experiment, while a producer sends `SCALE_MESSAGES` at `SCALE_RATE` a second:
# worker **a** alone; then worker **b** joins; then **a** leaves (a `SIGTERM`: it
# finishes the commit in flight and leaves the group). Every half second we write down
# who owns what.

# %%
urls, ownership, moments = {}, [], {}
scale_started = time.monotonic()


def record(until, timeout: float = 30) -> None:
    """Sample ownership every 0.5 s until ``until()`` is true (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now_owned = {name: owned(url) for name, url in urls.items()}
        ownership.append(
            {
                "t_s": round(time.monotonic() - scale_started, 1),
                **{f"worker {n}": str(now_owned[n]) if n in urls else "-" for n in "ab"},
                "owned": sum(map(len, now_owned.values())),
            }
        )
        if until(now_owned):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the group did not settle in {timeout} s: {now_owned}")
        time.sleep(0.5)


urls["a"] = start_worker("worker-a")
record(lambda o: len(o["a"]) == PARTITIONS)
moments["a alone"] = {name: owned(url) for name, url in urls.items()}
start_producer("scale", SCALE_MESSAGES, SCALE_RATE, MALFORMED_RATIO)
time.sleep(2)
urls["b"] = start_worker("worker-b")
record(lambda o: o["a"] and o["b"] and len(o["a"]) + len(o["b"]) == PARTITIONS)
moments["a + b"] = {name: owned(url) for name, url in urls.items()}
time.sleep(2)
processes.stop(WORK / "worker-a.pid")  # SIGTERM: a leaves the group
record(lambda o: len(o["b"]) == PARTITIONS)
moments["b alone"] = {name: owned(url) for name, url in urls.items()}
scaled = producer_result("scale")
print(f"produced {scaled['sent']:,} ({scaled['malformed']} malformed) while workers moved")
rebalances = metrics.values(urls["b"])["neuralake_writer_rebalances_total"]
print(f"worker b saw {rebalances:.0f} rebalance events (partitions assigned or revoked)")
pl.DataFrame(
    [{"moment": m, **{f"worker {n}": str(o[n]) if n in o else "-" for n in "ab"}} for m, o in
     moments.items()]
)  # fmt: skip

# %%
timeline = pl.DataFrame(ownership)
changes = timeline.unique(["worker a", "worker b"], keep="first", maintain_order=True)
ownerless = timeline.filter(pl.col("owned") < PARTITIONS, pl.col("worker b") != "-").height
print(f"samples after b started in which a partition had no owner: {ownerless}")
changes

# %% [markdown]
# Read the two tables. First a owned every partition. When b joined, the group
# rebalanced: some of a's partitions moved to b and the rest stayed with a (the
# *sticky* part). With the *cooperative* protocol this takes two rounds: a first gives
# the moving partitions up, then a second round assigns them to b; meanwhile a keeps
# reading the partitions it keeps. The second table lists each change of ownership
# with its time; the line above it counts the samples caught between rounds, when a
# partition had no owner (0 means the sampling, every half second, missed that moment).
# A rebalance takes seconds, and the moving partitions lag meanwhile. When a left, its
# partitions moved to b.
#
# Did anything get lost or doubled while partitions moved? The ground truth is the
# topic again, this time all of it: every message ever produced into it, in any section,
# is a row of bronze or a dead letter, exactly once.


# %%
def drained() -> bool:
    highs = dict(topics.describe(s, TOPIC).select("partition", "high").iter_rows())
    done = DeltaTable(bronze_uri, storage_options=s.storage_options)
    return all(
        (done.transaction_version(app_id(APP, TOPIC, p)) or -1) >= high - 1
        for p, high in highs.items()
    )


deadline = time.monotonic() + 60
while not drained():
    assert time.monotonic() < deadline, "worker b did not catch up within 60 s"
    time.sleep(0.2)
in_topic = int(topics.describe(s, TOPIC)["messages"].sum())
bronze = pl.read_delta(bronze_uri, storage_options=s.storage_options)
dead = pl.read_delta(dead_uri, storage_options=s.storage_options)
where = ["kafka_partition", "kafka_offset"]
both = pl.concat([bronze.select(where), dead.select(where)])
print(f"messages in the topic: {in_topic:,}")
print(f"rows in bronze: {bronze.height:,} + dead letters: {dead.height:,} = {both.height:,}")
print(f"distinct (partition, offset) among them: {both.n_unique():,}")
assert both.height == both.n_unique() == in_topic, "lost or doubled while partitions moved"
_ = processes.stop(WORK / "worker-b.pid")

# %% [markdown]
# Every message once, across the rebalances.
#
# ### The same with the lab's writer control
#
# In class you would not start workers by hand: `control.up(..., workers=N)` (in a
# shell, `neuralake writer up --table l04_bronze --workers N`) starts N ingest workers
# named `ingest`, `ingest-1`, ... in the table's group, and a later call with a smaller
# N stops the extra ones with a `SIGTERM`. `control.status` (`neuralake writer status`)
# reads the same `neuralake_writer_assigned_partition` gauges we read above, per worker.


# %%
def settled(count: int, timeout: float = 60) -> pl.DataFrame:
    """Wait until ``count`` live workers own every partition between them; their status."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [w for w in control.status(s, TABLE) if w.name.startswith("ingest") and w.alive]
        owners = [w for w in rows if w.partitions]
        every = sum(len(w.partitions) for w in owners) == PARTITIONS
        if len(rows) == count and every and len(owners) == min(count, PARTITIONS):
            return pl.DataFrame(
                [{"worker": w.name, "partitions": str(w.partitions), "lag": w.lag} for w in rows]
            )
        assert time.monotonic() < deadline, f"not settled in {timeout} s: {rows}"
        time.sleep(0.5)


control.up(s, topic=TOPIC, table=TABLE, workers=2, only=["ingest"], echo=lambda _: None)
two = settled(2)
control.up(s, topic=TOPIC, table=TABLE, workers=1, only=["ingest"], echo=print)
one = settled(1)
assert two.height == 2 and one.height == 1, "the control started or stopped the wrong number"
pl.concat([two.with_columns(workers_wanted=pl.lit(2)), one.with_columns(workers_wanted=pl.lit(1))])

# %% [markdown]
# Three limits to remember. More workers than partitions leaves the extra ones idle
# (exercise 4). A rebalance pauses the partitions that move. And every worker must use
# the same group (`--group-id`, by default `neuralake-writer.<table>`): the writer
# refuses to start beside a *different* group that still has live members, since two
# groups would each read every partition and write it twice.
#
# ## 10 · Stop what this notebook started
#
# The workers and any producer still running. The topics and tables stay, so you can
# look at them; running the notebook again starts from scratch.

# %%
control.down(s, TABLE, echo=print)
for name in ("stream", "steady", "scale", "worker-a", "worker-b"):
    processes.stop(WORK / f"{name}.pid")
print(
    "running writer processes of this lesson:",
    [w.name for w in control.status(s, TABLE) if w.alive]
    + [n for n in ("worker-a", "worker-b") if processes.running(WORK / f"{n}.pid")],
)

# %% [markdown]
# ## Exercises
#
# 1. Set `PARTITIONS = 1` and run again. What happens to the lag plot, to the catch-up
#    speed of the Rust writer, and to worker b in section 9? (One partition is one
#    consumer's work.)
# 2. After section 5, start a producer again (`start_producer("again", 20_000, RATE,
#    0.01)`) and kill ingest twice while it runs (the pid is in `control.status(s,
#    TABLE)`; `control.up` restarts it). Does the count still match? Its log (the path
#    is in `control.status` too) says where it resumed each time.
# 3. Write a fix for the `missing quality` dead letters that sets `quality` to 0.0, and
#    replay them. Then argue why you should not: what would a reader of `quality` now
#    believe about those samples?
# 4. In section 9, start a third and a fourth worker (`start_worker("worker-c")`, ...)
#    before stopping a. Which partitions does each own, what does the fourth one do,
#    and why?
#
# The graded version of these skills is lab 04 (`labs/04_kafka/`).
#
# ## Key takeaways
#
# - Exactly-once into Delta (lesson 03, section 3: the data and its offsets in **one**
#   commit) holds under failure because the writer resumes from the table, not Kafka.
# - Kafka's committed offsets are a second write, for lag tools only. During a stream
#   they are about a batch behind the table, so a crash "in between" is the usual case:
#   a writer that resumed from them would write that batch twice.
# - A `kill -9` mid-stream loses nothing and duplicates nothing: we counted.
# - Lag from the broker's side keeps counting while the writer is dead: alert on it.
# - Malformed messages go, bytes and reason, to a dead-letter table. A replay produces
#   new messages, so it needs its own idempotence: a ledger of what was replayed, marks
#   committed before producing, and a header to recover what a crash left unrecorded.
# - Freshness is set by the flush interval: about half of it at the median and one
#   interval plus commit time at p99. Fresher means more commits and smaller files.
# - Scaling out is a consumer group: partitions move between workers on a rebalance,
#   and each new owner starts from the table's `txn` version, so nothing is doubled.
#   The number of partitions caps the number of busy workers.
#
# ## Check yourself
#
# 1. The writer committed batch *n* to Delta and crashed before committing offsets to
#    Kafka. What does the restarted writer read first, and where does it resume?
# 2. Why can the writer's exactly-once guarantee not protect you from replaying the
#    same dead letter twice?
# 3. Your dashboard needs data at most 3 s old at p99. Which writer setting do you
#    change, and what does it cost?
# 4. Three workers share a 3-partition topic and cannot keep up. You start a fourth.
#    What changes?
#
# <details><summary>Answers</summary>
#
# 1. The `txn` versions in the bronze table's log (batch *n* is there, with its
#    offsets). It resumes at `version + 1` of each partition: nothing is read twice
#    into the table, even though Kafka's committed offset is one batch behind.
# 2. Exactly-once is per Kafka offset. A replay is a new message at a new offset, so to
#    the writer two replays are two different messages. The ledger (which dead letters
#    were replayed) is what prevents the second one.
# 3. `--flush-ms` (with the default 1 s the p99 measured above is well under 3 s, so it
#    could even grow to fewer, bigger commits). Lower flush means more commits per
#    second, more small files for `compact` to merge and more log entries to read.
# 4. Nothing but a rebalance: a partition is owned by one worker of the group, so the
#    fourth worker gets none and waits. To read faster, the topic needs more
#    partitions (which also changes which partition a key hashes to, so plan it early).
#
# </details>
#
# ## Predict the number, then run it
#
# Section 7 measured freshness with a flush every second, and the text gave a rule of
# thumb for the median. Now the writer flushes every 250 ms. Write down your guess for
# the p50 freshness in seconds in the next cell, then run the cell after it: it starts
# ingest with `--flush-ms 250`, streams for 5 seconds, measures, and grades your guess.

# %%
my_guess_p50_s = None  # your guess for the p50 freshness at --flush-ms 250, e.g. 0.5

# %%
fast_writer = control.up(
    s, topic=TOPIC, table=TABLE, only=["ingest"], workers=1, flush_ms=250, echo=lambda _: None
)
deadline = time.monotonic() + 60  # ready = table open; partitions come with the rebalance
while len(owned(next(w.metrics_url for w in fast_writer if w.name == "ingest"))) < PARTITIONS:
    assert time.monotonic() < deadline, "the group did not assign the partitions in 60 s"
    time.sleep(0.2)
start_producer("predict", FRESH_RATE * 5, FRESH_RATE, 0.0)
fast = freshness.summary(
    freshness.measure(
        bronze_uri, s.storage_options, seconds=35, poll_s=0.1, until_rows=FRESH_RATE * 5
    )
)
producer_result("predict")
control.down(s, TABLE, echo=lambda _: None)
actual = fast["p50_s"]
print(f"p50 freshness: {actual:.2f} s at --flush-ms 250 ({summary['p50_s']:.2f} s at 1000)")
assert actual < summary["p50_s"], "a shorter flush should make fresher data"
if my_guess_p50_s is None:
    print("no guess yet: set my_guess_p50_s above, then run both cells again")
else:
    off = abs(my_guess_p50_s - actual) / actual
    verdict = "spot on" if off <= 0.25 else "close" if off <= 0.5 else "off: re-read section 7"
    print(f"your guess {my_guess_p50_s:.2f} s, measured {actual:.2f} s: {verdict} ({off:.0%} off)")

# %% [markdown]
# ## Sources
#
# - Delta transaction protocol, *Transaction Identifiers* (the `txn` action):
#   https://github.com/delta-io/delta/blob/master/PROTOCOL.md#transaction-identifiers
# - Apache Kafka documentation, concepts (topics, partitions, offsets, consumer groups):
#   https://kafka.apache.org/documentation/#intro_concepts_and_terms
# - confluent-kafka Python API (`Producer`, `Consumer`, `AdminClient`):
#   https://docs.confluent.io/platform/current/clients/confluent-kafka-python/html/index.html
# - kafka-delta-ingest, the Rust Kafka -> Delta writer whose design (offsets in `txn`
#   actions) this lab's writer follows: https://github.com/delta-io/kafka-delta-ingest
# - delta-rs Python API: https://delta-io.github.io/delta-rs/api/delta_table/
# - consumer groups and the cooperative rebalance protocol (KIP-429):
#   https://cwiki.apache.org/confluence/display/KAFKA/KIP-429%3A+Kafka+Consumer+Incremental+Rebalance+Protocol
# - the terms used here: `docs/glossary.md`; the streaming core's design: `docs/streaming.md`
