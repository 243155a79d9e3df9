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
# Five exercises, the last a stretch: find out why messages died, read lag while
# nobody consumes, prove a `kill -9` loses nothing, repair what can be repaired, and
# measure freshness from the log itself.
#
# **Time:** about 60 minutes, plus 20 for the stretch exercise.
# **Prerequisites:** lesson 04 (`notebooks/04_kafka_exactly_once`): every API you need
# is shown there. The stack running (`make up`) and the Rust writer built (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The check never
# trusts a number you report: it reads every message of the topic back, asks Kafka for
# offsets and lag, and reads the tables and their logs. It says `PASSED`, or what it
# found and a hint: the first failure gives the **concept**, the second the **API**, the
# third the **call**. Ask for a tier any time with `hint("lab04.ex2", 2)`.
#
# **Starting over.** The setup cell rebuilds everything (topic, tables, writer).
# `lab.reset("ex3")` puts the writer back for one exercise and restarts its hints.

# %% tags=["parameters"]
PREFIX = "lab04_"  # topic and table names start with this
MESSAGES = 20_000  # messages in the topic at the start

# %%
import json
import os
import signal
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
lab = lab04.setup(s, prefix=PREFIX, messages=MESSAGES)
print(f"topic {lab.topic} -> {lab.bronze_uri}\ndead letters: {lab.dead_uri}")
topics.describe(s, lab.topic)

# %% [markdown]
# ## Exercise 1 · Why did they die?
#
# The writer put some messages in the dead-letter table. For each field that broke a
# message, how many? Store a dict `dead_fields`, field name -> number of dead letters,
# with `"payload"` for messages that are not even JSON.
#
# *Why it matters:* "which field" tells you which producer or firmware to chase.

# %%
lab.dead_letters().select("kafka_partition", "kafka_offset", "reason").head(5)

# %% tags=["solution"]
# Store in dead_fields a dict: field name -> dead letters it broke ("payload" if not JSON).
dead_fields = dict(
    lab.dead_letters()
    .with_columns(field=pl.col("reason").str.extract(r"field '(\w+)'").fill_null("payload"))
    .group_by("field")
    .len()
    .iter_rows()
)
dead_fields

# %%
lab04.check_dead_fields(lab, dead_fields)

# %% [markdown]
# ## Exercise 2 · Lag, while nobody consumes
#
# Stop the writer (all its processes), then produce a burst of `lab04.BURST` messages
# with `lab.start_stream(count, rate)` and wait for it with `lab.wait_stream()`. Now
# measure how far behind the writer is, per partition, in two ways:
#
# - `lag`: from Kafka, the high watermark minus the writer group's committed offset
#   (the group is `lab.group`);
# - `lag_from_table`: from the bronze table, the high watermark minus the next offset
#   its `txn` versions say it needs.
#
# Both are dicts partition -> messages. Are they equal? Why, and when would they
# differ? (Think of a crash between the writer's two commits.)

# %% tags=["solution"]
# Stop the writer, produce lab04.BURST messages, then store lag and lag_from_table
# (dicts partition -> messages behind).
control.down(s, lab.table)
lab.start_stream(lab04.BURST, rate=20_000)
lab.wait_stream()
kafka = topics.group_lag(s, lab.group, lab.topic)
lag = dict(kafka.select("partition", "lag").iter_rows())
table = DeltaTable(lab.bronze_uri, storage_options=opts)
lag_from_table = {
    p: high - 1 - table.transaction_version(app_id("neuralake-writer", lab.topic, p))
    for p, high in kafka.select("partition", "high").iter_rows()
}
print(lag, lag_from_table)

# %%
lab04.check_lag(lab, lag, lag_from_table)

# %% [markdown]
# ## Exercise 3 · `kill -9` mid-stream, lose nothing
#
# Start a stream (`lab.start_stream(30_000, rate=6_000)`, about 5 s), bring the writer
# up, and while the stream runs kill its ingest process with `SIGKILL`. Start it again,
# wait for the stream to end and the table to catch up (`lab.wait_stream()`,
# `lab.wait_caught_up()`). The check reads every message of the topic back and counts
# them in the tables: every good one in bronze once, every malformed one in the
# dead-letter table once.

# %% tags=["solution"]
# Stream, writer up, kill -9 its ingest mid-stream, restart it, wait until caught up.
lab.start_stream(30_000, rate=6_000)
control.up(s, topic=lab.topic, table=lab.table)
time.sleep(1.5)
pid = next(w.pid for w in control.status(s, lab.table) if w.name == "ingest")
os.kill(pid, signal.SIGKILL)
time.sleep(1)
control.up(s, topic=lab.topic, table=lab.table)
print(lab.wait_stream())
print(f"caught up {lab.wait_caught_up():.1f} s after the stream ended")

# %%
lab04.check_restart(lab)

# %% [markdown]
# ## Exercise 4 · Repair what can be repaired, replay it once
#
# Some dead letters can be fixed because their true value is known: a `spike` sent as
# `"yes"`/`"no"`, a `voltage_uv` sent as text (`"-12.5"`), a `timestamp` without its
# offset (the devices send UTC). The others (not JSON, a missing `quality`, a channel
# that does not exist) cannot: inventing a value is worse than keeping the letter.
#
# Fix the fixable ones and replay them so each lands in bronze **exactly once**, even if
# this cell runs twice. Leave the others dead.

# %%
# One example per broken field: which of these could you repair?
examples = lab.dead_letters().with_columns(
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


todo = replay.pending(lab.dead_uri, opts)
fixed = todo.with_columns(
    pl.col("payload").map_elements(fix, return_dtype=pl.Binary, skip_nulls=True)
)
print(
    replay.replay(
        fixed, dead_letter_uri=lab.dead_uri, kafka_config=s.kafka_config, storage_options=opts
    )
)

# %%
lab04.check_replayed(lab)

# %% [markdown]
# ## Exercise 5 (stretch) · Freshness p99, from the log alone
#
# Lesson 04 measured freshness by polling. The log can answer too, after the fact: a
# row became readable at the commit that **first added** its file. Over every row the
# bronze log ever added, compute `commit timestamp - kafka_timestamp` in seconds and
# store the 99th percentile in `p99`.
#
# Careful: the writer's `compact` process rewrites small files into big ones; those
# rows were readable long before. Then look at your number: what does the p99 of this
# table measure, given what you did in exercises 2 and 3?

# %% tags=["solution"]
# Store in p99 the 99th percentile, in seconds, of (commit time - kafka_timestamp).
history = delta.history(lab.bronze_uri, opts)
frames = []
for version, committed in history.select("version", "timestamp").iter_rows():
    added = [
        action["add"]["path"]
        for action in delta.read_commit(lab.bronze_uri, version, opts)
        if "add" in action and action["add"].get("dataChange", True)
    ]
    if added:
        files = [f"{lab.bronze_uri}/{unquote(path)}" for path in added]
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
# Compare your p50 and p99 with the lesson's steady stream (section 7). Every row that
# waited in Kafka while no writer ran counts here too: the backlog setup produced before
# the writer started, the burst of exercise 2, the seconds after your `kill -9`.
# Percentiles over a whole table measure your outages as much as your flush interval;
# to see the flush alone, measure a steady stream, as the lesson does.
#
# ## Stop the writer
#
# Last cell: stop the lab's writer processes and any stream still running.

# %%
lab.stop()
print("writer processes still running:", [w.name for w in control.status(s, lab.table) if w.alive])
