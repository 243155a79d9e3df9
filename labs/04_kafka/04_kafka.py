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
# # Lab 04 · Kafka into Delta, exactly once
#
# You run a streaming pipeline: a topic of neural-signal messages, the Rust writer
# turning it into a bronze Delta table, a dead-letter table for what it could not read.
# Two of the exercises are incidents to diagnose from what the pipeline left behind;
# the others ask you to act on a running pipeline and prove the result.
#
# **You will be able to**
#
# 1. find which device and which field fill a dead-letter table, and tell an incident
#    from background noise;
# 2. measure lag from Kafka and from the table, and say when the two differ;
# 3. find, from the Delta log alone, the commit that doubled rows and why it could;
# 4. repair the dead letters whose true value is known and replay each exactly once;
# 5. add a worker to a running consumer group, and prove from offsets that the
#    rebalance lost and doubled nothing;
# 6. (stretch) measure freshness from the log, and say what a percentile over a whole
#    table measures.
#
# **Time:** about 60 minutes, plus 20 for the stretch exercise (the notebook itself
# runs in under a minute). **Prerequisites:** lessons 03 and 04
# (`notebooks/03_low_latency_writer`, `notebooks/04_kafka_exactly_once`): every API you
# need is shown there. The stack running (`make up`) and the Rust writer
# built (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The check never
# trusts a number you report: it reads every message of the topic back, asks Kafka for
# offsets and lag, and reads the tables and their logs. It says `PASSED`, or what it
# found and a hint: the first failure gives the **concept**, the second the **API**, the
# third the **call**. Ask for a tier any time with `hint("lab04.ex2", 2)`.
#
# **Starting over.** Each exercise has its own topic, table and writer (`lab.ex1` ...
# `lab.ex6`). `lab.reset("ex3")` rebuilds exercise 3's alone and restarts its hints; the
# setup cell rebuilds everything.

# %% tags=["parameters"]
PREFIX = "lab04_"  # topic and table names start with this

# %%
import json
import time
from datetime import UTC, datetime
from urllib.parse import unquote

import polars as pl
from deltalake import DeltaTable

import neuralake
from neuralake import delta
from neuralake.lab.graders import hint, lab04  # noqa: F401 (hint: yours to call when stuck)
from neuralake.lab.writer import control
from neuralake.streaming import replay, topics
from neuralake.streaming.schemas import app_id

s = neuralake.settings()
opts = s.storage_options
start = time.perf_counter()
lab = lab04.setup(s, prefix=PREFIX)
print(f"profile {s.profile}; topics and tables start with {PREFIX}")
print(f"every exercise staged in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## Exercise 1 · Whose firmware is it? (diagnosis)
#
# This morning a firmware update went out to some of the recording devices, and the
# dead-letter table of `lab.ex1` started to grow. The topic also carries a trickle of
# unrelated broken messages, as every real topic does. Which device's session sends
# the messages the writer cannot store since the rollout, and which field breaks them?
# Store `culprit = {"session_id": ..., "field": ...}`.
#
# *Why it matters:* "which field, from whom" tells you which firmware to roll back and
# which team to call; a count per field alone mixes an incident with the noise.

# %%
lab.ex1.dead_letters().select("kafka_partition", "kafka_offset", "reason", "payload").head(5)


# %% tags=["solution"]
# Store in culprit a dict {"session_id": int, "field": str}: the device session and the
# field behind the rollout's dead letters.
def session_of(payload: bytes) -> int | None:
    try:
        return json.loads(payload)["session_id"]
    except (ValueError, KeyError, TypeError):
        return None  # not JSON: the sender cannot be told


by_source = (
    lab.ex1.dead_letters()
    .with_columns(
        session_id=pl.col("payload").map_elements(session_of, return_dtype=pl.Int64),
        field=pl.col("reason").str.extract(r"field '(\w+)'").fill_null("payload"),
    )
    .group_by("session_id", "field")
    .len()
    .sort("len", descending=True)
)
print(by_source)
culprit = {"session_id": by_source["session_id"][0], "field": by_source["field"][0]}

# %%
lab04.check_culprit(lab, culprit)

# %% [markdown]
# ## Exercise 2 · Lag, while nobody consumes
#
# `lab.ex2`'s writer is running and caught up. Stop it (`control.down`), then produce a
# burst of `lab04.BURST` messages with `lab.ex2.start_stream(count, rate)` and wait for
# it with `lab.ex2.wait_stream()`. Now measure how far behind the writer is, per
# partition, in two ways:
#
# - `lag`: from Kafka, the high watermark minus the writer group's committed offset
#   (the group is `lab.ex2.group`);
# - `lag_from_table`: from the bronze table, the high watermark minus the next offset
#   its `txn` versions say it needs.
#
# Both are dicts partition -> messages. Are they equal? Why, and when would they
# differ? (Think of a crash between the writer's two commits: exercise 3 is one.)

# %% tags=["solution"]
# Stop lab.ex2's writer, produce lab04.BURST messages, then store lag and lag_from_table
# (dicts partition -> messages behind).
control.down(s, lab.ex2.table)
lab.ex2.start_stream(lab04.BURST, rate=20_000)
lab.ex2.wait_stream()
kafka = topics.group_lag(s, lab.ex2.group, lab.ex2.topic)
lag = dict(kafka.select("partition", "lag").iter_rows())
table = DeltaTable(lab.ex2.uri, storage_options=opts)
lag_from_table = {
    p: high - 1 - table.transaction_version(app_id("neuralake-writer", lab.ex2.topic, p))
    for p, high in kafka.select("partition", "high").iter_rows()
}
print(lag, lag_from_table)

# %%
lab04.check_lag(lab, lag, lag_from_table)

# %% [markdown]
# ## Exercise 3 · Who doubled the rows? (diagnosis)
#
# Last night `lab.ex3`'s ingest process was killed in the middle of its work. The
# on-call engineer saw the consumer group's offsets behind the topic, feared a loss,
# and ran a recovery script that re-read the topic from those offsets and appended
# what it found to bronze. The writer was restarted and ran on. This morning the row
# count is too high.
#
# From the table's log, find the commit that added rows a second time. Store its
# version in `doubled_version`, the rows it doubled per Kafka partition in `doubled`
# (`{partition: rows}`), and in `cause` the key of `lab04.CAUSES` that explains how
# those rows could get in.
#
# *Why it matters:* a duplicate is found by its Kafka coordinates, and its commit tells
# you who wrote it. The fix (and the post-mortem) depend on which process it was.

# %%
for key, meaning in lab04.CAUSES.items():  # the causes to choose from
    print(f"{key:>20}: {meaning}")
delta.history(lab.ex3.uri, opts).select("version", "timestamp", "operation").sort("version")

# %% tags=["solution"]
# Store in doubled_version the version that added rows a second time, in doubled
# {partition: rows doubled}, and in cause one key of lab04.CAUSES.
uri = lab.ex3.uri
seen, doubled_version, doubled, cause = None, None, None, None
for version in range(DeltaTable(uri, storage_options=opts).version() + 1):
    actions = delta.read_commit(uri, version, opts)
    added = [
        f"{uri}/{unquote(a['add']['path'])}"
        for a in actions
        if "add" in a and a["add"].get("dataChange", True)
    ]
    if not added:
        continue
    keys = pl.read_parquet(added, columns=["kafka_partition", "kafka_offset"], storage_options=opts)
    if seen is not None:
        copies = keys.join(seen, on=["kafka_partition", "kafka_offset"], how="semi")
        if copies.height:
            doubled_version = version
            doubled = dict(copies.group_by("kafka_partition").len().iter_rows())
            writer_commit = any("txn" in a for a in actions)
            cause = "resumed_from_kafka" if writer_commit else "append_without_txn"
            break
    seen = keys if seen is None else pl.concat([seen, keys])
print(doubled_version, doubled, cause)

# %%
lab04.check_doubled(lab, doubled_version, doubled, cause)

# %% [markdown]
# The writer itself could not have done this: before each commit it checks that the
# table's `txn` versions are the ones it expects, and it resumes from them, never from
# the group's offsets. The script wrote no `txn` action, so nothing stopped it. The fix
# is a delete of the copies by `(kafka_partition, kafka_offset)`, and the lesson: after
# a crash, restart the writer and let the table say where it was.
#
# ## Exercise 4 · Repair what can be repaired, replay it once
#
# Some of `lab.ex4`'s dead letters can be fixed because their true value is known: a
# `spike` sent as `"yes"`/`"no"`, a `voltage_uv` sent as text (`"-12.5"`), a `timestamp`
# without its offset (the devices send UTC). The others (not JSON, a missing `quality`,
# a channel that does not exist) cannot: inventing a value is worse than keeping the
# letter. Its writer is running, so a replayed message lands in bronze.
#
# Fix the fixable ones and replay them so each lands in bronze **exactly once**, even if
# this cell runs twice. Leave the others dead.

# %%
# One example per broken field: which of these could you repair?
examples = lab.ex4.dead_letters().with_columns(
    field=pl.col("reason").str.extract(r"field '(\w+)'").fill_null("payload")
)
for row in examples.unique("field").sort("field").iter_rows(named=True):
    print(f"{row['reason'][:90]}\n    {row['payload'][:150].decode(errors='replace')}")

# %% tags=["solution"]
# Replay every fixable dead letter once (replay.replay); leave the unfixable ones alone.
SPIKE_WORDS = {"yes": True, "no": False}


def fix(payload: bytes) -> bytes | None:
    try:
        message = json.loads(payload)
    except ValueError:
        return None  # not JSON: nothing to recover
    fixed = dict(message)
    if isinstance(message.get("spike"), str) and message["spike"] in SPIKE_WORDS:
        fixed["spike"] = SPIKE_WORDS[message["spike"]]
    if isinstance(message.get("voltage_uv"), str):
        fixed["voltage_uv"] = float(message["voltage_uv"])
    if isinstance(message.get("timestamp"), str):
        moment = datetime.fromisoformat(message["timestamp"])
        if moment.tzinfo is None:
            fixed["timestamp"] = moment.replace(tzinfo=UTC).isoformat()
    return json.dumps(fixed).encode() if fixed != message else None


todo = replay.pending(lab.ex4.dead_uri, opts)
fixed = todo.with_columns(
    pl.col("payload").map_elements(fix, return_dtype=pl.Binary, skip_nulls=True)
)
options = {"kafka_config": s.kafka_config, "storage_options": opts}
print(replay.replay(fixed, dead_letter_uri=lab.ex4.dead_uri, **options))

# %%
lab04.check_replayed(lab)

# %% [markdown]
# ## Exercise 5 · Add a worker, and prove nothing was doubled or lost
#
# `lab.ex5`'s topic has `lab04.SCALE_PARTITIONS` partitions and one ingest worker that
# reads them all. Traffic is about to grow: start a stream
# (`lab.ex5.start_stream(40_000, rate=5_000)`, about 8 s) and, while it runs, add a
# second worker to the writer's consumer group with the writer's control (lesson 04,
# section 9; this writer runs ingest only, no compactor and no vacuum). Then look at
# `control.status(s, lab.ex5.table)`: which partitions does each worker own now?
#
# Then prove, from the topic and the tables, that the rebalance lost and doubled
# nothing. Store in `proof` a dict of four counts: `messages` in the topic, `rows` of
# bronze, `unique_offsets` (distinct `(kafka_partition, kafka_offset)` pairs in bronze)
# and `dead_letters`. Which of them must be equal, and which must add up?
#
# *Why it matters:* scaling out is the moment partitions change hands mid-batch. "The
# row count looks right" is not a proof: a lost batch and a doubled one cancel out.
# Offsets counted both ways are.

# %% tags=["solution"]
# Start a stream, add a second ingest worker while it runs, wait until the table has
# caught up, then store in proof {"messages", "rows", "unique_offsets", "dead_letters"}.
lab.ex5.start_stream(40_000, rate=5_000)
control.up(s, topic=lab.ex5.topic, table=lab.ex5.table, workers=2, only=["ingest"])
print(lab.ex5.wait_stream())
lab.ex5.wait_caught_up()
print("partitions per worker:", {w.name: w.partitions for w in control.status(s, lab.ex5.table)})
bronze = lab.ex5.bronze()
proof = {
    "messages": int(topics.describe(s, lab.ex5.topic)["messages"].sum()),
    "rows": bronze.height,
    "unique_offsets": bronze.select("kafka_partition", "kafka_offset").n_unique(),
    "dead_letters": lab.ex5.dead_letters().height,
}
print(proof)

# %%
lab04.check_scaled(lab, proof)

# %% [markdown]
# ## Exercise 6 (stretch) · Freshness p99, from the log alone
#
# Lesson 04 measured freshness by polling. The log can answer too, after the fact: a
# row became readable at the commit that **first added** its file. Over every row
# `lab.ex6`'s log ever added, compute `commit timestamp - kafka_timestamp` in seconds
# and store the 99th percentile in `p99`.
#
# Careful: a compactor ran beside the writer; it rewrites small files into big ones,
# and those rows were readable long before. Then look at your number: `lab04.BACKLOG`
# messages waited `lab04.OUTAGE_S` s in Kafka before the writer started, then a steady
# stream followed. What does the p99 of this table measure?

# %% tags=["solution"]
# Store in p99 the 99th percentile, in seconds, of (commit time - kafka_timestamp).
history = delta.history(lab.ex6.uri, opts)
frames = []
for version, committed in history.select("version", "timestamp").iter_rows():
    added = [
        action["add"]["path"]
        for action in delta.read_commit(lab.ex6.uri, version, opts)
        if "add" in action and action["add"].get("dataChange", True)
    ]
    if added:
        files = [f"{lab.ex6.uri}/{unquote(path)}" for path in added]
        stamps = pl.read_parquet(files, columns=["kafka_timestamp"], storage_options=opts)
        frames.append(
            stamps.select(
                freshness_s=(pl.lit(committed) - pl.col("kafka_timestamp")).dt.total_microseconds()
                / 1e6
            )
        )
freshness = pl.concat(frames)["freshness_s"]
p99 = freshness.quantile(0.99)
print(f"p50 {freshness.quantile(0.5):.2f} s, p99 {p99:.2f} s over {freshness.len():,} rows")

# %%
lab04.check_freshness(lab, p99)

# %% [markdown]
# Compare your p50 and p99 with the lesson's steady stream (section 7). Here
# `lab04.BACKLOG` of the rows waited `lab04.OUTAGE_S` s in Kafka before the writer
# started: far more than 1% of them, so the p99 lands in the backlog and measures the
# outage plus the writer's start, not the flush interval (`lab04.FLUSH_MS`). The median
# falls in the steady stream. Percentiles over a whole table measure your outages as
# much as your flush interval; to see the flush alone, measure a steady stream, as the
# lesson does.
#
# ## Stop the writers
#
# Last cell: stop the lab's writer processes.

# %%
lab.stop()
running = [w.table for w in control.status(s) if w.alive and w.table.startswith(PREFIX)]
print("lab writer processes still running:", running)
