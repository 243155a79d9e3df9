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
# # Lab 03 · The low-latency writer, under load
#
# Five exercises on the Rust writer (`neuralake-writer`), its tables and its topics:
# the situations of a team that runs streaming ingestion into a lakehouse. A crash
# between two commits, a freshness target that fights the file count, a compactor that
# rewrites too much, a vacuum that would break time travel, and the question every
# reviewer asks about compaction: "are you sure it never loses a row?"
#
# **You will be able to**
#
# 1. find where a writer resumes from the `txn` actions, and tell it from what Kafka's
#    consumer group says;
# 2. tune the flush against two measured bounds at once: freshness and files per minute;
# 3. choose compaction settings from the files' sizes, within a read budget;
# 4. choose a vacuum retention from the log's `remove` timestamps, keeping a version
#    readable;
# 5. (stretch) prove from the log that compaction under live ingestion loses nothing.
#
# **Time:** about 60 minutes, plus 20 for the stretch exercise (the notebook runs in
# about a minute). **Prerequisites:** lesson 03 (`notebooks/03_low_latency_writer`),
# the stack running (`make up`) and the writer built (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The check reads
# what really happened (the Delta log, the files in storage, the consumer group in
# Kafka) and says `PASSED`, or what it found and a hint. Hints come in three tiers: the
# first failure gives the **concept**, the second the **API** to look up, the third the
# **call** itself. Ask for a tier at any time with `hint("lab03.ex3", 2)`.
#
# **Starting over.** Each exercise has its own topics and tables. `lab.reset("ex3")`
# rebuilds only exercise 3's and restarts its hints; the setup cell rebuilds everything.
#
# Everything you start goes through the writer's control, as in the lesson:
# `control.up` / `control.down` for a running writer, `control.run_once(s, "compact",
# table=...)` for one pass of compaction or vacuum (it returns the pass's JSON report).

# %% tags=["parameters"]
PREFIX = "lab03_"  # topic and table names start with this
RATE = 2_000  # exercise 2: messages per second from the steady producer
SECONDS = 25  # exercise 2: how long the producer runs

# %%
import time

import polars as pl
from deltalake import DeltaTable

import neuralake
from neuralake import delta
from neuralake.lab.graders import hint, lab03  # noqa: F401 (hint: yours to call when stuck)
from neuralake.lab.writer import control
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import app_id

s = neuralake.settings()
start = time.perf_counter()
lab = lab03.setup(s, prefix=PREFIX)
print(f"profile {s.profile}; topics and tables start with {PREFIX}")
print(f"five exercises set up in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## Exercise 1 · Where does the writer resume?
#
# The writer ingested `lab.ex1.topic` into `lab.ex1.uri` twice, to the end of the topic
# each time. After the second run it crashed **between** its last Delta commit and
# confirming the offsets to Kafka: the consumer group `lab.ex1.group` still shows where
# the first run ended.
#
# Store in `resume_at` the offset at which a restarted writer will start reading each
# partition (`{partition: offset}`), and in `replayed` how many messages a consumer
# that trusted the consumer group's offsets instead would write a second time.
#
# *Why it matters:* after an incident, "where will it pick up?" decides whether you
# get a gap, duplicates, or neither. Lag dashboards read the consumer group; the writer
# reads the table. Knowing which one is the truth is the difference between a calm
# restart and a manual dedupe.

# %% tags=["solution"]
# Store in resume_at {partition: offset where the writer resumes}, and in replayed the
# number of messages a consumer trusting the group's offsets would write again.
bronze = DeltaTable(lab.ex1.uri, storage_options=s.storage_options)
resume_at = {
    p: bronze.transaction_version(app_id("neuralake-writer", lab.ex1.topic, p)) + 1
    for p in topics.describe(s, lab.ex1.topic)["partition"]
}
group = topics.group_lag(s, lab.ex1.group, lab.ex1.topic)
committed = dict(zip(group["partition"], group["committed"], strict=True))
replayed = sum(resume_at[p] - committed[p] for p in resume_at)
print(resume_at, committed, replayed)

# %%
lab03.check_offsets(lab, resume_at, replayed)

# %% [markdown]
# ## Exercise 2 · Tune the flush: freshness against files
#
# Run the writer on `lab.ex2.topic` into the table `lab.ex2.table` while a steady
# producer sends `RATE` messages a second for `SECONDS` seconds. Choose the flush so
# that, measured from the table's own log:
#
# - at most `lab03.FILES_PER_MINUTE_MAX` files are written per minute, **and**
# - the 90th percentile of freshness (commit time minus the oldest Kafka timestamp in
#   the commit) is at most `lab03.FRESHNESS_P90_MAX_S` seconds, over at least
#   `lab03.MIN_COMMITS` commits (a percentile of five commits is an anecdote).
#
# Start the writer with the library's control and stop it when the producer is done.
# Write your reasoning in a comment next to your choice: what a flush interval does to
# each bound, and the numbers the check printed.
#
# *Why it matters:* "as fresh as possible" is not a setting. Every flush is a commit
# and a file; the cost lands on every reader of the table, every day. Teams agree on a
# freshness target and then buy it with the fewest files.

# %%
print(
    f"bounds: <= {lab03.FILES_PER_MINUTE_MAX} files/minute, freshness p90 <= "
    f"{lab03.FRESHNESS_P90_MAX_S} s over >= {lab03.MIN_COMMITS} commits in {SECONDS} s"
)

# %% tags=["solution"]
# Run the writer for lab.ex2.table on lab.ex2.topic with a flush of your choice while
# produce(...) sends RATE messages a second for SECONDS seconds; then stop it.
FLUSH_MS = 800
# 800 ms: <= 60 s / (0.8 s + a commit) = 75 files/min; freshness ~0.8 s + a commit;
# about 25 s / (0.8 s + a commit) = 20-30 commits, enough for a p90.
control.up(s, topic=lab.ex2.topic, table=lab.ex2.table, flush_ms=FLUSH_MS)
produce(s, topic=lab.ex2.topic, count=RATE * SECONDS, rate=RATE)
while topics.group_lag(s, f"neuralake-writer.{lab.ex2.table}", lab.ex2.topic)["lag"].sum():
    time.sleep(0.2)  # the last batch: wait until the writer has committed it
control.down(s, lab.ex2.table)

# %%
lab03.check_flush(lab)

# %% [markdown]
# ## Exercise 3 · Compact within a read budget
#
# `lab.ex3.uri` has two `date` partitions. Yesterday's was compacted last night
# into a few files of about a megabyte; today's is many small files from a writer that
# flushes every second. Dashboards read today's partition: bring it to at most
# `lab03.HOT_FILES_MAX` files with **one** pass of the compactor, without rewriting
# yesterday's files (rewriting them costs I/O and buys nothing). Look at the files
# first, then choose the compactor's settings.
#
# *Why it matters:* compaction is not free. On a big table, a compactor that rewrites
# every partition each pass costs more than the small files it removes; one that
# rewrites only what is small keeps the read fast for the price of today's data.

# %%
files = pl.DataFrame(
    DeltaTable(lab.ex3.uri, storage_options=s.storage_options).get_add_actions(flatten=True)
)
by_day = (
    files.group_by(pl.col("partition.date").alias("date"))
    .agg(files=pl.len(), bytes=pl.col("size_bytes").sum(), sizes=pl.col("size_bytes").sort())
    .sort("date")
)
by_day

# %% tags=["solution"]
# Run one compaction pass on lab.ex3.table with a target_size (and min_files) that
# fits today's partition in a few files and leaves yesterday's alone.
yesterday = files.filter(pl.col("partition.date") == lab.ex3.cold_day)["size_bytes"].sort()
today = files.filter(pl.col("partition.date") == lab.ex3.hot_day)["size_bytes"]
# A partition is compacted only if at least --min-files of its files are smaller than
# --target-size. With the target at yesterday's second-smallest file, one of yesterday's
# files is a candidate, fewer than 4; today's bytes fit in a couple of targets.
TARGET_SIZE = yesterday[1]
print(f"target {TARGET_SIZE:,} bytes; today holds {today.sum() / TARGET_SIZE:.1f} targets")
print(control.run_once(s, "compact", table=lab.ex3.table, target_size=TARGET_SIZE, min_files=4))

# %%
lab03.check_compacted(lab)

# %% [markdown]
# ## Exercise 4 · A vacuum retention that keeps time travel
#
# `lab.ex4.uri` was compacted twice, a few seconds apart. Version `lab.ex4.keep_version`
# (between the two compactions) must stay readable for time travel, but the files the
# **first** compaction removed are garbage. Choose a retention for one vacuum pass that
# deletes the garbage and keeps version `lab.ex4.keep_version` whole. The log tells you
# when each file was removed.
#
# *Why it matters:* retention is a promise: "you can read any version of the last N
# hours". Too long and storage fills with garbage; too short and a reproducible
# analysis, or a reader in the middle of a query, finds its files gone.

# %%
history = delta.history(lab.ex4.uri, s.storage_options)
history.select("version", "timestamp", "operation").sort("version")

# %% tags=["solution"]
# Run one vacuum pass on lab.ex4.table with a retention_hours that deletes the files
# removed by the first compaction and keeps every file of version lab.ex4.keep_version.
removed_at = {}
for version in range(DeltaTable(lab.ex4.uri, storage_options=s.storage_options).version() + 1):
    for action in delta.read_commit(lab.ex4.uri, version, s.storage_options):
        if "remove" in action:
            removed_at[version] = action["remove"]["deletionTimestamp"] / 1000
first, last = min(removed_at.values()), max(removed_at.values())
now = time.time()
hours = ((now - last) + (now - first)) / 2 / 3600  # halfway between the two ages
print(f"removes {now - first:.1f} s and {now - last:.1f} s ago: retention {hours * 3600:.1f} s")
print(control.run_once(s, "vacuum", table=lab.ex4.table, retention_hours=round(hours, 6)))

# %%
lab03.check_vacuumed(lab)

# %% [markdown]
# ## Exercise 5 (stretch) · Compaction under fire: show that no row is lost
#
# Compaction rewrites files that the writer is still adding to, in commits that race
# the writer's. Show, on `lab.ex5.table` fed from `lab.ex5.topic`, that this is
# safe: run ingest **and** a compactor aggressive enough that at least
# `lab03.MIN_COMPACTIONS` compactions commit between the writer's commits, then make
# sure every message of the topic is accounted for before you stop.
#
# The check replays the table's log version by version: every compaction must keep the
# row count, every writer commit must add exactly its new rows, and at the end the
# topic's messages must equal the table's rows plus its dead letters, with no
# duplicates.
#
# *Why it matters:* "compaction runs next to ingestion" is a claim every reviewer asks
# you to prove. The proof is in the log, version by version, not in a row count at the
# end that could hide a loss and a duplicate cancelling out.

# %% tags=["solution"]
# Run ingest and compaction together on lab.ex5.table from lab.ex5.topic while a
# producer sends ~10 s of messages; stop only once everything is committed.
control.up(
    s,
    topic=lab.ex5.topic,
    table=lab.ex5.table,
    flush_ms=200,  # many small files...
    compact_interval_s=2,  # ...and a compactor that keeps folding them
    min_files=2,
)
produce(s, topic=lab.ex5.topic, count=RATE * 10, rate=RATE, malformed_ratio=0.01)
group = f"neuralake-writer.{lab.ex5.table}"
while topics.group_lag(s, group, lab.ex5.topic)["lag"].sum() > 0:
    time.sleep(0.2)
time.sleep(3)  # one more compaction pass after the last writer commit
control.down(s, lab.ex5.table)
lab03.version_rows(lab.ex5.uri, s.storage_options).tail(8)

# %%
lab03.check_no_row_lost(lab)

# %% [markdown]
# Done: you found where a writer resumes and why Kafka's offsets are not the truth,
# tuned a writer against two bounds at once, compacted and vacuumed with judgement, and
# showed from the log that compaction under live ingestion loses nothing.

# %%
for table in (lab.ex2.table, lab.ex5.table):  # stop whatever the exercises left running
    control.down(s, table)
