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
# # 03 · Kafka and the low-latency writer
#
# **Time:** about 60 minutes to read and run (the notebook itself runs in about a
# minute: 45-48 s on a 2-core machine at a load of 2-3). **Prerequisites:** lesson 01 (the Delta
# log, `optimize`, `vacuum`) and lesson 01b; the stack running (`make up`) and the
# writer built (`make setup` builds it).
#
# **You will be able to**
#
# 1. name Kafka's positions (topic, partition, offset, low and high watermark,
#    committed offset, consumer lag) and read each one with `confluent-kafka`;
# 2. run a streaming writer as three processes (ingest, compact, vacuum), read their
#    `/metrics`, and explain why they are separate processes;
# 3. measure the small-file problem a low-latency writer creates (files per minute, read
#    time as the files pile up);
# 4. read the `txn` actions that make ingestion exactly once, find where a writer
#    resumes, and write an idempotent append yourself with `deltalake`;
# 5. fix the small files live with compaction and vacuum, and say which vacuum
#    settings are safe beside a running writer and why;
# 6. explain what the DynamoDB lock did, and how S3 conditional writes replaced it.
#
# **Day 2's order.** Kafka first (section 0), then exactly once, then operating the
# writer. This lesson: Kafka's words, the writer and the price of its freshness
# (sections 1-2), the one mechanism that makes it exactly once (section 3), then
# operating it: compaction and vacuum (sections 4-5), all three processes live and the
# count that proves nothing was lost (6-7), and why their commits never overwrite each
# other (8).
# Lesson 04 breaks exactly once on purpose (`kill -9` at the worst moment), then
# operates the writer at scale: freshness, catch-up speed, several workers.
#
# **Why.** An implant streams its samples to Kafka. Analysts want them in the bronze
# Delta table within seconds, not after tonight's batch job. A writer that commits
# every second is fresh, but every commit writes at least one Parquet file: up to 60
# files a minute, 86,400 a day, each one costing every reader a request and a footer read.
# Freshness and file count pull in opposite directions, and a production writer
# resolves it with **three processes**:
#
# | process | job | schedule | resource profile |
# |---|---|---|---|
# | `ingest` | Kafka -> Parquet -> one Delta commit per flush | every `--flush-ms` | steady CPU and network; must never stall |
# | `compact` | rewrite small files into big ones | every `--interval-s` (minutes) | bursts of reads and writes |
# | `vacuum` | delete files no version needs any more | every `--interval-s` (hours) | a storage listing, then deletes |
#
# Separate processes isolate failures (a compaction that runs out of memory never stops
# ingestion), let each run on its own schedule, and let you size each one for its own
# load. All three are the same Rust binary, `neuralake-writer`, built from
# `rust-writer/` (its README explains the design). They share nothing but the table:
# the Delta log is how they coordinate.

# %% tags=["parameters"]
PREFIX = "l03_"  # topic and table names start with this (tests run with their own)
RATE = 4_000  # messages per second the producer sends
SECONDS = 15  # phase 1: seconds of streaming into a writer that only ingests
LIVE_SECONDS = 10  # phase 2: seconds of streaming with compaction and vacuum running
FLUSH_MS = 100  # how often ingest flushes: a writer tuned for freshness only
MALFORMED_RATIO = 0.01  # share of broken messages (they go to the dead-letter table)
REPEATS = 5  # timing runs per measurement (the median is reported)
MIN_SPEEDUP = 2.0  # the compacted one-partition scan must be at least this much faster

# %%
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from botocore.exceptions import ClientError
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from IPython.display import display

import neuralake
from neuralake import delta
from neuralake.lab.writer import control
from neuralake.streaming import metrics, topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import EXAMPLE_MESSAGE, app_id, message_key

s = neuralake.settings()
assert s.profile == "stack", "this lesson needs Kafka and S3: start the stack with `make up`"
TOPIC, TABLE = f"{PREFIX}signals", f"{PREFIX}bronze"
BASICS = f"{PREFIX}basics"  # section 0's small topic, written and read by hand
GROUP = f"neuralake-writer.{TABLE}"  # the writer's consumer group (its default name)
uri = s.table_uri(TABLE)
dead_letters_uri = f"{uri}_dead_letters"

control.down(s, TABLE)  # a re-run starts clean: stop what an earlier run left running
for table_uri in (uri, dead_letters_uri, s.table_uri(f"{PREFIX}by_hand")):
    delta.drop_table(table_uri, s.storage_options)
topics.recreate_topic(s, TOPIC, partitions=3)  # waits out Kafka's asynchronous delete
topics.delete_topic(s, BASICS)  # section 0 creates it by hand
print(f"topic {TOPIC} (3 partitions) -> table {uri}")


# %% [markdown]
# ## 0 · Kafka in ten minutes: topics, partitions, offsets, lag
#
# The writer reads Kafka, and every later number of Day 2 is about Kafka positions, so
# first the words, each shown with the real client, `confluent-kafka`.
#
# A **topic** is a named log. It is split into **partitions**: each partition is an
# append-only sequence of messages numbered 0, 1, 2, ... (the **offset**). Order is
# guaranteed *within* a partition, not across them. Partitions are the unit of
# parallelism: within a **consumer group** (consumers sharing a `group.id`), each
# partition is read by one consumer at a time. The `AdminClient` creates topics:

# %%
admin = topics.admin(s)  # a confluent_kafka AdminClient for the lab's broker
created = admin.create_topics([NewTopic(BASICS, num_partitions=3, replication_factor=1)])
created[BASICS].result(10)  # a future: raises if the broker refused
metadata = admin.list_topics(BASICS, timeout=10).topics[BASICS]
pl.DataFrame(
    [
        {"partition": p, "leader broker": m.leader, "replicas": m.replicas}
        for p, m in sorted(metadata.partitions.items())
    ]
)

# %% [markdown]
# One broker, replication factor 1: fine for a lab. In production each partition has 3
# replicas on different brokers, so losing a machine loses no data.
#
# **Producing.** `Producer.produce()` only queues a message; librdkafka sends it in the
# background, and whether it arrived is told later to a **delivery report** callback,
# served by `poll()` or `flush()`. The **key** chooses the partition (a hash of the key):
# the lab's key is `"<session_id>:<channel>"`, so all samples of one channel are in one
# partition, in order. `enable.idempotence` makes the producer's retries safe: the
# broker recognises a resent batch and writes it once.

# %%
producer = Producer({**s.kafka_config, "enable.idempotence": True})
deliveries, failures = [], []


def on_delivery(error, message) -> None:
    """Called once per message, from poll() or flush(): did it arrive, and where?"""
    if error is not None:
        failures.append(error)
        return
    deliveries.append(
        {
            "key": message.key().decode(),
            "partition": message.partition(),
            "offset": message.offset(),
        }
    )


for channel in range(6):
    for _ in range(2):  # two samples per channel
        message = {
            **EXAMPLE_MESSAGE,
            "timestamp": datetime.now(UTC).isoformat(),
            "channel": channel,
        }
        producer.produce(
            BASICS,
            key=message_key(message["session_id"], channel),
            value=json.dumps(message).encode(),
            on_delivery=on_delivery,
        )
print("messages still queued after flush:", producer.flush(10))
if failures:
    raise KafkaException(failures[0])
by_key = pl.DataFrame(deliveries).sort("partition", "offset")
assert (by_key.group_by("key").agg(pl.col("partition").n_unique())["partition"] == 1).all()
assert (by_key.group_by("partition").agg(pl.col("offset").min())["offset"] == 0).all()
by_key

# %% [markdown]
# Each key landed in one partition (asserted above), and each partition numbers its own
# messages from 0. With a handful of keys a partition may get none: the partition is a
# hash of the key, not a round robin.
#
# **Consuming, watermarks, committed offsets.** A partition has a **low watermark** (its
# oldest kept offset) and a **high watermark** (the offset the *next* message will get).
# A consumer may read from any offset: here we `assign` one partition at offset 0, read
# it, and `commit` how far we got, which the broker stores for the group.

# %%
GROUP_BY_HAND = f"{PREFIX}by-hand"
consumer = Consumer({**s.kafka_config, "group.id": GROUP_BY_HAND, "enable.auto.commit": False})
first_partition = by_key["partition"][0]
low, high = consumer.get_watermark_offsets(TopicPartition(BASICS, first_partition), timeout=10)
print(f"partition {first_partition}: low watermark {low}, high watermark {high}")
consumer.assign([TopicPartition(BASICS, first_partition, 0)])
read = []
while len(read) < high - low:
    msg = consumer.poll(5)
    if msg is None:
        raise TimeoutError("no message within 5 s")
    if msg.error():
        raise KafkaException(msg.error())
    read.append((msg.offset(), json.loads(msg.value())["channel"]))
print(f"read offsets {read[0][0]}..{read[-1][0]}, channels", ", ".join(str(c) for _, c in read))
# Commit "processed up to here": by convention the NEXT offset to read. One short, on purpose.
consumer.commit(offsets=[TopicPartition(BASICS, first_partition, high - 1)], asynchronous=False)
consumer.close()

# %% [markdown]
# **Lag.** A group's **consumer lag** on a partition is what the log holds beyond its
# committed offset: `high watermark - committed`. The `AdminClient` reads both;
# `topics.group_lag` is the same in one call, and the rest of Day 2 uses it.

# %%
request = ConsumerGroupTopicPartitions(GROUP_BY_HAND, [TopicPartition(BASICS, p) for p in range(3)])
answer = admin.list_consumer_group_offsets([request])[GROUP_BY_HAND].result(10)
print(
    "committed offsets (-1001: never committed):",
    ", ".join(f"partition {tp.partition}: {tp.offset}" for tp in answer.topic_partitions),
)
basics_lag = topics.group_lag(s, GROUP_BY_HAND, BASICS)  # committed, high, lag per partition
assert basics_lag.filter(pl.col("partition") == first_partition)["lag"][0] == 1, "one short"
assert (basics_lag["lag"] == basics_lag["high"]).sum() == 2, "never committed: all of it"
basics_lag

# %% [markdown]
# We committed one message short, so that partition's lag is 1; the partitions the
# group never committed lag by their whole content. Lag is the first number to watch on
# a streaming pipeline: a growing lag means the consumer is slower than the producers.
# The writer below is such a consumer: its group is `neuralake-writer.<table>`.


# %% [markdown]
# ## 1 · Start the writer
#
# `control.up` starts the three processes in the background, tracked by pid files in
# `.state/writer/<table>/`, and returns once each one serves `/metrics`; ingest also
# waits until its table is open. (Its Kafka partitions come a moment later, when the
# consumer group `neuralake-writer.l03_bronze` has assigned them.) Each option is an
# environment variable of the binary (`flush_ms` is `NEURALAKE_WRITER_FLUSH_MS`); the
# same from a shell is `neuralake writer up --table l03_bronze --flush-ms 100 ...`.
#
# For now compaction and vacuum wait an hour between passes: first we look at what a
# writer tuned only for freshness leaves behind.


# %%
def say(line: str) -> None:
    """Print control's progress lines without the log path (control.status has it)."""
    print(line.split(" (log:")[0])


control.up(
    s, topic=TOPIC, table=TABLE, flush_ms=FLUSH_MS, compact_interval_s=3600,
    vacuum_interval_s=3600, echo=say,
)  # fmt: skip
urls = {row.name: row.metrics_url for row in control.status(s, TABLE)}
pl.DataFrame(control.status(s, TABLE)).select("name", "pid", "alive", "metrics_url")

# %% [markdown]
# ## 2 · The small-file problem, made visible
#
# A producer now sends `RATE` messages a second for `SECONDS` seconds, with live
# timestamps, so they all land in today's `date` partition (`MALFORMED_RATIO` of them
# are malformed on purpose). Meanwhile we sample the table about once a second: the files of today's
# partition, and how long reading that one partition takes, the way a dashboard does it:
# open the table, read one day, aggregate.

# %%
TODAY = datetime.now(UTC).date()
T0, T0_WALL = time.monotonic(), time.time()  # the timelines' zero, on both clocks


def today_files() -> int:
    """Data files of today's partition in the current version."""
    adds = DeltaTable(uri, storage_options=s.storage_options).get_add_actions(flatten=True)
    return pl.DataFrame(adds).filter(pl.col("partition.date") == TODAY).height


def read_today(storage_options: dict[str, str] = s.storage_options) -> pl.DataFrame:
    return (
        pl.scan_delta(uri, storage_options=storage_options)
        .filter(pl.col("date") == TODAY)
        .select(rows=pl.len(), mean_abs_uv=pl.col("voltage_uv").abs().mean())
        .collect()
    )


def counter(process: str, name: str) -> float:
    """One value from a writer process's /metrics (0 before the first increment)."""
    return metrics.values(urls[process]).get(name, 0.0)


def sample() -> dict:
    """One point of the timeline: files in the version and in storage, one read's time."""
    start = time.perf_counter()
    read_today()
    return {
        "t_s": round(time.monotonic() - T0, 1),
        "read_ms": round((time.perf_counter() - start) * 1000, 1),
        "files": today_files(),
        "stored": delta.data_files(uri, s.storage_options).height,
    }


def caught_up(timeout: float = 60) -> None:
    """Wait until the writer has committed every message of the topic (lag 0)."""
    deadline = time.monotonic() + timeout
    while (lag := topics.group_lag(s, GROUP, TOPIC))["lag"].sum() > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the writer still lags after {timeout} s:\n{lag}")
        time.sleep(0.2)


def stream(seconds: int, seed: int):
    """Produce RATE messages a second for ``seconds`` in a thread; sample meanwhile."""
    points = []
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(
            produce, s, topic=TOPIC, count=RATE * seconds, rate=RATE,
            malformed_ratio=MALFORMED_RATIO, seed=seed,
        )  # fmt: skip
        while not job.done():
            points.append(sample())
            time.sleep(0.5)
        sent = job.result()
    caught_up()
    points.append(sample())
    return sent, pl.DataFrame(points)


sent_1, phase_1 = stream(SECONDS, seed=1)
span_s = phase_1["t_s"][-1] - phase_1["t_s"][0]
files_per_minute = (phase_1["files"][-1] - phase_1["files"][0]) / span_s * 60
slope, intercept = np.polyfit(phase_1["files"], phase_1["read_ms"], 1)
print(f"sent {sent_1.sent:,} messages ({sent_1.malformed} malformed) in {sent_1.seconds:.1f} s")
print(f"today's partition: {phase_1['files'][-1]} files, written at {files_per_minute:,.0f}/min")
print(f"each file adds about {slope:.1f} ms to the read (least-squares fit)")
assert slope > 0, "the read did not slow down as files piled up: see the text below"
ceiling_per_minute = 60_000 / FLUSH_MS  # one commit per flush, at most
print(
    f"a flush every {FLUSH_MS} ms allows at most {ceiling_per_minute:,.0f} commits a minute: "
    f"this run made {files_per_minute / ceiling_per_minute:.0%} of that"
)
assert files_per_minute < ceiling_per_minute, "more files than flushes: read section 2 again"

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2))
left.plot(phase_1["t_s"], phase_1["files"], marker="o", color="#c44")
left.set(xlabel="seconds since start", ylabel="files", title="files in today's partition")
right.scatter(phase_1["files"], phase_1["read_ms"], color="#48c", label="one read")
right.plot(phase_1["files"], intercept + slope * phase_1["files"], color="#222", label="fit")
right.set(xlabel="files in today's partition", ylabel="ms", title="open the table + read one day")
right.legend(loc="upper left", fontsize=8)
fig.suptitle(f"ingest flushing every {FLUSH_MS} ms at {RATE:,} msg/s, measured in this run")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each flush is a commit and each commit adds a file, so the file count grows steadily
# with time, and each file adds to the read: the fitted slope above (asserted positive).
# The flush interval
# is a ceiling, not a rate: a flush starts a commit, the commit takes its own time
# (tens of milliseconds to upload a file and write the log entry, more on a busy
# machine), and the next batch is committed after it. So the writer made fewer files
# than one per `FLUSH_MS`: the percentage printed above. (The points
# scatter because this machine is shared and single reads are noisy; read the trend.)
# A day at this setting:

# %%
files_per_day = files_per_minute * 60 * 24
print(f"{files_per_day:,.0f} files in one day's partition, each one opened by every read")

# %% [markdown]
# Without compaction, a low-latency writer makes its own table slower to read every
# minute it runs.
#
# ## 3 · Exactly once: `txn` actions in the Delta log
#
# Before we fix the small files, the question every streaming writer must answer:
# when it restarts, where does it start reading? Too early and rows land twice, too
# late and rows are lost. The answer is not in Kafka. Each writer commit carries, **in
# the same commit** as its files, one `txn` action per Kafka partition it covers:
# `appId = "<app>/<topic>/<partition>"`, `version` = the last offset it wrote. A commit
# is atomic, so the files and the offsets land together or not at all. On start, the
# writer reads these versions and seeks each partition to `version + 1` (section 6
# restarts it; lesson 04 kills it). Here is the last commit of section 2 that added
# rows, one line per action:

# %%
latest = DeltaTable(uri, storage_options=s.storage_options).version()
last_write = next(
    v
    for v in range(latest, -1, -1)
    if any("txn" in a for a in delta.read_commit(uri, v, s.storage_options))
)
shown = []
for action in delta.read_commit(uri, last_write, s.storage_options):
    if "add" in action:
        stats = json.loads(action["add"]["stats"])
        low, high = stats["minValues"], stats["maxValues"]
        shown.append(
            {
                "action": "add",
                "what": action["add"]["path"].split("/")[-1][:24] + "...",
                "rows": stats["numRecords"],
                "detail": f"{low['kafka_timestamp'][11:23]}..{high['kafka_timestamp'][11:23]}",
            }
        )
    elif "txn" in action:
        body = action["txn"]
        shown.append(
            {"action": "txn", "what": body["appId"], "rows": None,
             "detail": f"version (last offset) {body['version']}"}
        )  # fmt: skip
print(f"version {last_write}")
pl.DataFrame(shown)

# %% [markdown]
# The `add` action carries the file's statistics (row count, min and max of each
# column, here the span of `kafka_timestamp`), which readers use to skip files.
# `deltalake` reads the txn versions with `DeltaTable.transaction_version(app_id)`.
# Kafka's consumer group has offsets too: the writer confirms them **after** each
# Delta commit, only so that lag tools work. They are never the source of truth: a
# crash between the Delta commit and the confirmation leaves them one batch behind, and
# a consumer that trusted them would write that batch twice (lesson 04 catches that
# moment). Compare both, with `topics.group_lag` from section 0:

# %%
table = DeltaTable(uri, storage_options=s.storage_options)
group = topics.group_lag(s, GROUP, TOPIC)  # committed, high, lag per partition
offsets = group.select(
    "partition",
    pl.col("partition")
    .map_elements(
        lambda p: table.transaction_version(app_id("neuralake-writer", TOPIC, p)),
        return_dtype=pl.Int64,
    )
    .alias("txn version"),
    pl.col("committed").alias("group offset"),
    "high",
).with_columns(resumes_at=pl.col("txn version") + 1)
assert (offsets["resumes_at"] == offsets["high"]).all(), "caught up: resume at the end"
assert (offsets["group offset"] == offsets["resumes_at"]).all(), "caught up, both records agree"
offsets

# %% [markdown]
# Caught up, the three agree (asserted above): the table resumes at the high watermark
# (the offset the next message will get), and the group's offset is the same number,
# since Kafka's committed offset is the *next* offset to read.
#
# ### An idempotent append by hand
#
# The mechanism is plain Delta, open to any writer. With `deltalake`, pass the
# transaction in `CommitProperties`; read it back with `transaction_version`. A replay
# checks first and writes only what the table does not hold yet:

# %%
by_hand_uri = s.table_uri(f"{PREFIX}by_hand")
demo_app = app_id("by-hand", "demo", 0)


def append_once(batch: pl.DataFrame) -> str:
    exists = DeltaTable.is_deltatable(by_hand_uri, s.storage_options)
    table = DeltaTable(by_hand_uri, storage_options=s.storage_options) if exists else None
    last = table.transaction_version(demo_app) if table else None
    new = batch.filter(pl.col("offset") > (last if last is not None else -1))
    if new.is_empty():
        return f"skipped: the table already holds offsets up to {last}"
    txn = Transaction(demo_app, int(new["offset"].max()))
    write_deltalake(
        by_hand_uri,
        new,
        mode="append",
        storage_options=s.storage_options,
        commit_properties=CommitProperties(app_transactions=[txn]),
    )
    return f"appended offsets {new['offset'].min()}..{new['offset'].max()}"


first_batch = pl.DataFrame({"offset": range(100), "value": [i * 0.5 for i in range(100)]})
print(append_once(first_batch))
print(append_once(first_batch))  # a replay: the crash-and-retry case
print(append_once(pl.DataFrame({"offset": range(50, 150), "value": [0.0] * 100})))
result = pl.read_delta(by_hand_uri, storage_options=s.storage_options)
print(f"{result.height} rows, {result['offset'].n_unique()} distinct offsets")
assert result.height == result["offset"].n_unique() == 150, "offsets 0..149, each once"
(txn,) = [a["txn"] for a in delta.read_commit(by_hand_uri, 1, s.storage_options) if "txn" in a]
print(f"version 1's txn action: appId {txn['appId']}, version {txn['version']}")

# %% [markdown]
# The third call overlapped the first: only offsets 100..149 were new, and only they
# were written. The check and the commit are two steps, so two copies of this function
# racing each other could both pass the check. The Rust writer closes that gap: before
# committing it re-reads the table's txn versions, and drops (then re-seeks) a batch
# that another writer has already committed.

# %% [markdown]
# ## 4 · Compaction: one partition, before and after
#
# Back to the small files of section 2. `compact` bin-packs each partition's small
# files into files of about `--target-size` (128 MiB by default) and commits, per partition, `remove` actions for the old files
# and `add` actions for the new ones. A partition is compacted only when it has at least
# `--min-files` (default 4) files smaller than the target; files already at the target
# are never rewritten. After its commit it writes a checkpoint of the new version, so
# the next reader that opens the table reads one small checkpoint instead of the log.
# The same pass then does the same to the dead-letter table, which gets a small file at
# every flush that held a malformed message (its report is in brackets below).
# Here we run **one pass** of the same binary with `control.run_once` (in a shell:
# `neuralake writer run compact --once --table l03_bronze`; it runs `neuralake-writer
# compact --once` and returns the JSON line it prints) and measure the one-partition read
# around it: its median time, and, through `delta.RequestLog`, the S3 requests it sends.


# %%
def scan_today(table: DeltaTable) -> pl.DataFrame:
    return (
        pl.scan_delta(table)
        .filter(pl.col("date") == TODAY)
        .select(rows=pl.len(), mean_abs_uv=pl.col("voltage_uv").abs().mean())
        .collect()
    )


def measure_read(stage: str) -> dict:
    """Open the table (replay its log), then scan one day: both timed, in the same runs;
    and the S3 requests of the scan alone."""
    with delta.RequestLog(s.storage_options) as log:
        table = DeltaTable(uri, storage_options=log.storage_options)
        log.clear()  # count the scan only
        scan_today(table)
    scan = log.summary()
    runs = []
    for _ in range(REPEATS + 1):  # the first run warms up and is dropped
        start = time.perf_counter()
        table = DeltaTable(uri, storage_options=s.storage_options)
        opened = time.perf_counter()
        scan_today(table)
        runs.append((opened - start, time.perf_counter() - opened))
    open_s, scan_s = zip(*runs[1:], strict=True)
    return {
        "stage": stage,
        "files": today_files(),
        "scan: files opened": scan["data files opened"],
        "scan: S3 requests": scan["requests"],
        "open ms": round(statistics.median(open_s) * 1000, 1),
        "scan ms": round(statistics.median(scan_s) * 1000, 1),
        "open + scan ms": round(statistics.median(map(sum, runs[1:])) * 1000, 1),
    }


def one_line(report: dict) -> str:
    """A pass's JSON report as one line: field value, ... (the dead-letter table's pass, which
    the same command runs, in brackets)."""
    fields = ", ".join(f"{k} {v:,}" for k, v in report.items() if k != "dead_letters")
    dead = report.get("dead_letters")
    return f"{fields} (dead letters: {one_line(dead)})" if dead else fields


before = measure_read("small files")
compacted = control.run_once(s, "compact", table=TABLE)
after = measure_read("compacted")
reads = pl.DataFrame([before, after])
scan_speedup = before["scan ms"] / after["scan ms"]
read_speedup = before["open + scan ms"] / after["open + scan ms"]
print("compact --once:", one_line(compacted))
print(
    f"after compaction: the scan of one day is {scan_speedup:.1f}x faster, "
    f"opening the table and scanning it {read_speedup:.1f}x faster"
)
assert after["scan: files opened"] == 1 < before["scan: files opened"], "one file after compaction"
assert after["scan: S3 requests"] < before["scan: S3 requests"], "fewer files, fewer requests"
assert scan_speedup >= MIN_SPEEDUP, f"only {scan_speedup:.1f}x:\n{reads}\nraise SECONDS"
assert before["scan: S3 requests"] >= before["files"], "at least one request per small file"
assert after["scan: S3 requests"] <= 3, "one big file costs a few requests, not one per row group"
assert after["open ms"] / before["open ms"] > after["scan ms"] / before["scan ms"], (
    "opening should gain less than the scan: see the text below"
)
assert read_speedup < scan_speedup, "the whole read gains less than the scan"
print(
    f"scan requests: {before['scan: S3 requests']} for {before['files']} files, "
    f"then {after['scan: S3 requests']} for {after['files']} file"
)
reads

# %% [markdown]
# Read the two parts apart. The **scan** is what compaction fixes: it sent one request
# per small file (`scan: S3 requests`, a small file comes back whole in one `GET`), and
# now sends a couple for the one big file (its footer first, then the columns it
# needs), whatever the number of rows: the last line printed above the table.
# **Opening** the table replays its log: the last checkpoint, then each JSON commit
# after it. Before compaction that is the writer's last checkpoint (it writes one every
# 20 commits, `--checkpoint-every`), which lists every small file, plus the commits
# since. After compaction it is the checkpoint `compact` just wrote, which lists the one
# new file (and the removed ones as tombstones). Reading any checkpoint has a fixed cost
# (a listing and a Parquet file to fetch and decode), so `open ms` shrinks less than the
# scan, and the whole read gains less than the scan at this size and more as files pile
# up (exercise 2). On a shared machine the open times scatter; the request counts do not.
#
# Compaction's commit does not change the data and says so: its actions carry
# `dataChange: false`, so streaming
# readers of the table skip it. The removed files get a `deletionTimestamp`:

# %%
actions = delta.read_commit(uri, compacted["version"], s.storage_options)
pl.DataFrame(
    [
        {"action": kind, "dataChange": body["dataChange"], "at_ms": body.get("deletionTimestamp")}
        for action in actions
        for kind, body in action.items()
        if kind in ("add", "remove")
    ]
).group_by("action", "dataChange").agg(
    files=pl.len(), deletionTimestamp=pl.from_epoch(pl.col("at_ms").max(), time_unit="ms")
).sort("action")

# %% [markdown]
# ## 5 · Vacuum: the small files are still in storage
#
# A `remove` action only tombstones a file: older versions still use it, and a reader
# that opened the table a second ago may be reading it right now. `vacuum` deletes the
# files whose **removal is older than the retention** (`--retention-hours`, 168 by
# default: a week of time travel); the `deletionTimestamp` above is the clock it reads.
# It has two modes (`--mode`), and they differ in what the retention must protect:
#
# - **lite** (the default, delta-rs's *lite* mode) deletes only files that a `remove`
#   action names. A file the log removed is never added again, so no commit in flight
#   can need it, whatever the retention: that is why this lesson may pass retention 0.
# - **full** also deletes Parquet files that no version ever committed (a writer killed
#   between uploading a file and committing it leaves those). A file uploaded a moment
#   ago looks exactly like such an orphan while its commit is still in flight, so full
#   mode refuses a retention below 1 hour: the writer gives up on a commit attempt after
#   at most 10 minutes (the compactor after 50), and the rest is margin.
#
# In both modes readers set the real limit: a query still reading an old version needs
# its files (Check yourself, question 3), so production keeps days, not seconds.
# Each pass also deletes the log's own expired commit files (`log_files_deleted`), those
# older than the table's `logRetentionDuration` (30 days by default) and behind a
# checkpoint, so the `_delta_log/` folder of a writer that commits every second stops
# growing after a month.

# %%
stored_before = delta.data_files(uri, s.storage_options).height
vacuumed = control.run_once(s, "vacuum", table=TABLE, retention_hours=0)
stored_after = delta.data_files(uri, s.storage_options).height
in_use = len(DeltaTable(uri, storage_options=s.storage_options).file_uris())
print("vacuum --once:", one_line(vacuumed))
print(f"Parquet files in storage: {stored_before} -> {stored_after}; the table uses {in_use}")
assert stored_after == in_use, "after vacuum with retention 0, storage holds only live files"

# %% [markdown]
# ## 6 · The three processes side by side, live
#
# Now the production setup, sped up: compaction every 3 seconds, vacuum every 3 seconds
# with a retention of 0.001 hours (3.6 s), while the producer keeps sending. We restart the
# processes with these settings. Ingest restarts too, and resumes exactly where the
# table says it stopped (section 3 showed how).

# %%
metrics_phase_1 = metrics.samples(urls["ingest"])
control.down(s, TABLE)
restart_version = DeltaTable(uri, storage_options=s.storage_options).version()
control.up(
    s, topic=TOPIC, table=TABLE, flush_ms=FLUSH_MS, compact_interval_s=3, min_files=4,
    vacuum_interval_s=3, retention_hours=0.001, echo=say,
)  # fmt: skip
urls = {row.name: row.metrics_url for row in control.status(s, TABLE)}
pl.DataFrame(control.status(s, TABLE)).select("name", "pid", "alive", "metrics_url")

# %% [markdown]
# While the producer sends (and a little longer, until vacuum has caught up), we sample
# the read time and the files in storage. The
# exact story of the table comes from its log afterwards: every commit has a time and
# an operation (`WRITE` from ingest, `OPTIMIZE` from compaction, `VACUUM START`/`END`
# from vacuum), and replaying the `add`/`remove` actions gives the files of each version.


# %%
def log_timeline(since: int) -> pl.DataFrame:
    """Per version after ``since``: time (s since start), operation, files in the version."""
    live = set(_paths(DeltaTable(uri, version=since, storage_options=s.storage_options)))
    rows = []
    for version in range(
        since + 1, DeltaTable(uri, storage_options=s.storage_options).version() + 1
    ):
        actions = delta.read_commit(uri, version, s.storage_options)
        for action in actions:
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
        info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
        at = round(info["timestamp"] / 1000 - T0_WALL, 2)
        rows.append({"t_s": at, "operation": info["operation"], "files": len(live)})
    return pl.DataFrame(rows)


def _paths(table: DeltaTable) -> list[str]:
    return table.get_add_actions(flatten=True).column("path").to_pylist()


sent_2, phase_2 = stream(LIVE_SECONDS, seed=2)
settle = [phase_2.row(-1, named=True)]  # then watch vacuum catch up, for up to 15 s
while settle[-1]["stored"] > settle[-1]["files"] and settle[-1]["t_s"] < phase_2["t_s"][-1] + 15:
    time.sleep(0.5)
    settle.append(sample())
phase_2 = pl.concat([phase_2, pl.DataFrame(settle[1:], schema=phase_2.schema)])
timeline = log_timeline(restart_version)
print(f"sent {sent_2.sent:,} messages ({sent_2.malformed} malformed) in {sent_2.seconds:.1f} s")
print(
    f"storage back to the version's {settle[-1]['files']} file(s) "
    f"{settle[-1]['t_s'] - settle[0]['t_s']:.1f} s after the writer caught up"
)
assert settle[-1]["stored"] == settle[-1]["files"], "vacuum did not catch up within 15 s"
timeline.group_by("operation").agg(commits=pl.len()).sort("operation")

# %%
fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
top.step(timeline["t_s"], timeline["files"], where="post", color="#c44", label="in the version")
top.plot(phase_2["t_s"], phase_2["stored"], marker=".", color="#888", label="in storage")
top.set(ylabel="files", title="today's partition while ingest runs")
top.set_ylim(bottom=0)
bottom.plot(phase_2["t_s"], phase_2["read_ms"], marker="o", color="#48c")
bottom.set(xlabel="seconds since start", ylabel="ms", title="open the table + read one day")
marks = {"OPTIMIZE": ("#4a4", "compaction commit"), "VACUUM END": ("#a4a", "vacuum pass")}
for operation, (color, label) in marks.items():
    moments = timeline.filter(pl.col("operation") == operation)["t_s"].to_list()
    for i, moment in enumerate(moments):
        top.axvline(moment, color=color, linestyle="--", label=label if i == 0 else None)
        bottom.axvline(moment, color=color, linestyle="--")
top.legend(loc="upper left", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the timeline from left to right: each ingest commit adds a file (a red step up);
# each compaction commit (green) folds the small files it planned with into one (files
# the writer added meanwhile wait for the next pass); each vacuum pass (purple) deletes
# from storage the files whose removal is older than the retention, so the grey line
# comes back down to the red one once the retention (3.6 s) and the next pass have
# come: the cell above printed how long after the last commit. The read times below are
# single reads: on a quiet machine they follow the file count, on a shared one their
# noise can hide it. The file counts are exact: they come from the log.
#
# ### The writer's metrics, before and after
#
# Each process serves Prometheus counters and gauges. Counters belong to the process,
# so the restart set ingest's back to zero (Prometheus' `rate()` is built for such
# resets); the gauges describe the last commit (`freshness_seconds` is the age of its
# oldest message when it committed; lesson 04, section 7 measures freshness the way a
# reader sees it).

# %%
WATCH = [
    "neuralake_writer_messages_total",
    "neuralake_writer_rows_total",
    "neuralake_writer_dead_letters_total",
    "neuralake_writer_batches_total",
    "neuralake_writer_bytes_total",
    "neuralake_writer_commit_conflicts_total",
    "neuralake_writer_freshness_seconds",
    "neuralake_writer_table_version",
]


def pick(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    return frame.filter(pl.col("name").is_in(WATCH)).select(
        pl.col("name").str.strip_prefix("neuralake_writer_").alias("neuralake_writer_..."),
        pl.col("value").round(3).alias(label),
    )


metrics_phase_2 = metrics.samples(urls["ingest"])
messages_seen = metrics_phase_2.filter(pl.col("name") == "neuralake_writer_messages_total")
assert messages_seen["value"][0] == sent_2.sent, "the restarted ingest counts phase 2 only"
side_by_side = pick(metrics_phase_1, "phase 1: ingest alone").join(
    pick(metrics_phase_2, "phase 2: with compact + vacuum"),
    on="neuralake_writer_...",
    how="full",
    coalesce=True,
)
with pl.Config(fmt_float="full", tbl_hide_dataframe_shape=True):
    display(side_by_side.sort("neuralake_writer_..."))

# %% [markdown]
# ## 7 · Nothing lost, nothing twice
#
# The writer was stopped and restarted between two streams, and a compactor rewrote
# files under it while it committed. Did every good message land exactly once, and
# every malformed one in the dead-letter table, with the raw bytes and a reason?

# %%
rows = pl.read_delta(uri, storage_options=s.storage_options)
dead = pl.read_delta(dead_letters_uri, storage_options=s.storage_options)
produced = sent_1.sent + sent_2.sent
duplicates = rows.height - rows.select("kafka_partition", "kafka_offset").n_unique()
print(f"produced {produced:,} = {rows.height:,} rows + {dead.height:,} dead letters")
print(f"duplicate (partition, offset) pairs: {duplicates}")
assert rows.height + dead.height == produced, "every message is a row or a dead letter"
assert duplicates == 0, "no message may land twice"
with pl.Config(fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
    display(
        dead.group_by(reason=pl.col("reason").str.replace(r" at line \d+ column \d+$", ""))
        .len()
        .sort("len", descending=True)
    )

# %% [markdown]
# ## 8 · Why several writers are safe on S3: from the DynamoDB lock to conditional writes
#
# Ingest commits every `FLUSH_MS`, and compaction commits to the same table whenever it
# runs. Both create the next `_delta_log/<version>.json`, and when they race for the
# same version exactly one may win. Until August 2024, S3 could not "create this object
# only if it does not exist": two PUTs of the same key both succeeded and the last one
# silently replaced the first, losing a commit. So Delta writers on S3 took a **lock in
# DynamoDB** around each commit: `kafka-delta-ingest`, the Rust Kafka-to-Delta daemon
# whose design this writer follows, ran with a DynamoDB lock table, and Spark with its
# `S3DynamoDBLogStore`. One more service to run, pay for, and get wrong.
#
# S3 now supports `PUT` with `If-None-Match: *`: the server refuses the second create
# with `412 Precondition Failed`. delta-rs uses it for every commit, and deltalake
# 1.6.2 removed the DynamoDB lock altogether. Here it is by hand, on a scratch key:

# %%
s3 = boto3.client("s3", **s.boto3_kwargs)
key = s.table_uri(f"{PREFIX}race/_delta_log/00000000000000000001.json")
key = key.removeprefix(f"s3://{s.bucket}/")
s3.delete_object(Bucket=s.bucket, Key=key)
s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "ingest"}', IfNoneMatch="*")
print("ingest:  created version 1")
try:
    s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "compact"}', IfNoneMatch="*")
    print("compact: ALSO created it: this server does not enforce If-None-Match!")
except ClientError as error:
    print(f"compact: refused, {error.response['Error']['Code']}: re-read the log, try version 2")
_ = s3.delete_object(Bucket=s.bucket, Key=key)

# %% [markdown]
# The loser re-reads the log and checks whether the winner's commit conflicts with its
# own. An append never conflicts with a compaction that only rewrote older files, so
# ingest retries at the next version; a compaction whose input files were changed under
# it gives up and re-plans. Both count what they met, in this run:

# %%
pl.DataFrame(
    {
        "process": ["ingest", "compact"],
        "commit conflicts met (phase 2)": [
            int(counter("ingest", "neuralake_writer_commit_conflicts_total")),
            int(counter("compact", "neuralake_compact_conflicts_total")),
        ],
    }
)

# %% [markdown]
# ## Exercises
#
# 1. Set `FLUSH_MS = 1000` and run again. How do the files per minute, the slowest read
#    and the writer's `freshness_seconds` change?
# 2. Set `SECONDS = 30`. Does the speed-up of section 4 grow? Compare the S3 requests
#    of the two reads: which part of the read grows with the file count?
# 3. In section 6, give compaction `min_files=20`. How does the timeline change, and
#    what is the most files a reader meets?
# 4. While `stream(...)` runs (the kernel is busy, so from a terminal), stop the writer
#    with `neuralake writer down --table l03_bronze`, start it again with `neuralake
#    writer up --topic l03_signals --table l03_bronze --flush-ms 100`, and check
#    section 7: is anything lost or doubled?
#
# The graded version of these skills is lab 03 (`labs/03_writer/`).
#
# ## Key takeaways
#
# - A topic is split into partitions; an offset numbers the messages of one partition.
#   Lag = high watermark - committed offset: the first number to watch.
# - A low-latency writer trades files for freshness: one commit per flush, at least one
#   file per commit. Measure files per minute and read time, not only latency.
# - Exactly once comes from the Delta log: `txn` actions commit the Kafka offsets
#   atomically with the files. The consumer group's offsets are for monitoring only.
# - Compaction (`dataChange: false`) and vacuum (tombstones older than the retention)
#   undo the damage without stopping ingestion. They run as separate processes, so
#   their failures, schedules and resources stay separate. Vacuum's lite mode never
#   deletes a file a commit in flight may add; the retention protects readers.
# - S3 conditional writes (`If-None-Match: *`) made the DynamoDB lock unnecessary: the
#   storage itself refuses the second writer of a version.
#
# ## Check yourself
#
# 1. A writer flushes every 250 ms into a table partitioned by `date`. Without
#    compaction, how many files does one day's partition hold at midnight?
# 2. A partition's low watermark is 1,000, its high watermark 5,000, and the writer's
#    group has committed offset 4,200. How many messages does the partition hold, which
#    offset does the next message get, and what is the group's lag?
# 3. Why must `vacuum` keep a retention longer than your longest query?
#
# <details><summary>Answers</summary>
#
# 1. At most 4 x 86,400 = 345,600 files: one per commit, and at most one commit per
#    flush. In practice fewer, since each commit takes time: section 2 printed the share
#    of the ceiling this run reached at 100 ms, and the day's files at that pace. Every
#    one of them is a request for every reader of that day.
# 2. 4,000 messages (high - low; the ones below 1,000 were deleted by retention); the
#    next message gets offset 5,000; the lag is 5,000 - 4,200 = 800 (the group's next
#    message to read is 4,200).
# 3. A query that opened version *n* keeps reading *n*'s files. If compaction removed
#    them and vacuum deletes them before the query ends, the query fails. The retention
#    is also the time travel you promise.
#
# </details>
#
# ## Primary sources
#
# - Delta protocol: [transaction identifiers (`txn`)](https://github.com/delta-io/delta/blob/master/PROTOCOL.md#transaction-identifiers),
#   [add and remove actions](https://github.com/delta-io/delta/blob/master/PROTOCOL.md#add-file-and-remove-file)
# - [kafka-delta-ingest design](https://github.com/delta-io/kafka-delta-ingest/blob/main/doc/DESIGN.md):
#   the Rust Kafka-to-Delta daemon this writer's design follows
# - [Amazon S3 conditional writes](https://aws.amazon.com/about-aws/whats-new/2024/08/amazon-s3-conditional-writes/)
#   (August 2024) and [delta-rs on S3](https://delta-io.github.io/delta-rs/integrations/object-storage/s3/)
# - [delta-rs Python API](https://delta-io.github.io/delta-rs/api/delta_table/):
#   `transaction_version`, `CommitProperties`, `Transaction`
# - [Kafka documentation](https://kafka.apache.org/documentation/): consumer groups,
#   committed offsets
# - In this repository: `rust-writer/README.md`, `docs/streaming.md`, `docs/glossary.md`

# %%
stopped = control.down(s, TABLE)  # stop the three processes this lesson started
