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
# # 06 · Spark, the workhorse: the cold path beside Polars
#
# **Time:** about 70 minutes to read and try. The notebook runs for 2 to 3 minutes on
# the lab's 2-core machine when nothing else runs on it, and much longer on a shared one;
# each cell's time is in the executed copy (`make run` writes it to `build/notebooks/`).
#
# | section | what takes the time | load 2-3 | load 13-25 |
# |---|---|---:|---:|
# | 1-4 | the JVM's start, two Kafka batches through the writer, two ELT runs | 70 s | 417 s |
# | 5 | Spark against Polars: 7 Spark and 7 Polars runs at three scales | about 25 s | 120 s |
# | 6 | delta-rs and Spark reading each other's tables | 3 s | 11 s |
# | 7 | a cluster: its start, a second JVM (the executor), one ELT run | 53 s | 333 s |
#
# (Load 2-3: one `make test` before section 5 was cut from 12 timed Spark runs to 7,
# which saves about 12 s there. Load 13-25: this version, 14.7 minutes in all, on the
# same machine shared with four other jobs: every Spark step waits for the cores.)
# **Behind schedule?** Sections 1-4 and 6 are the core. Skip the code cells of section 5
# and of section 7 (nothing after them needs their variables) and read their results in
# the executed copy. The core cannot run in under a minute on 2 cores: the JVM's start,
# the two batches through the writer and the two ELT runs take about 70 s at load 2-3.
# **Prerequisites:** lesson 01 (Delta tables, MERGE), lesson 02 (the catalog and its
# quality checks), lessons 03-04 (the writer's bronze table, Kafka offsets); the stack
# up (`make up`) and Spark's jars resolved (`make setup`).
#
# **You will be able to**
#
# 1. start Spark with Delta Lake and S3A from the pyspark builder, then with the one
#    helper the lab uses, and read the writer's bronze table with it;
# 2. explain why Spark may read the writer's tables but never write them, and show the
#    guard that refuses;
# 3. run the incremental ELT bronze -> silver -> gold, deduplicated on Kafka offsets,
#    filtered by the catalog's checks, joined with dimension tables, and prove that a
#    second run reads only the new bronze versions;
# 4. measure the same transform in Spark and in Polars at two scales, and say from the
#    numbers where each engine wins and why;
# 5. move Delta tables between delta-rs and Spark in both directions, proven equal;
# 6. run the same ELT on a Spark standalone cluster (master, worker, executor) and read
#    its executors and stages from the master's and the application's REST APIs.
#
# **Why.** The writer keeps bronze fresh within a second, and ROAPI serves it in
# milliseconds: the **hot path**. The study also needs heavier work done later, in
# batches: drop the messages Kafka delivered twice, reject physically impossible
# values, and turn billions of samples into one row per recording session, joined with
# who was recorded with which implant. That is the **cold path**, and Apache Spark is
# the engine most data platforms run it on, because the same job scales from a laptop
# to a cluster. On one machine, a single-process engine such as Polars is often faster.
# This lesson runs both on the same data and lets the measurements say where the line
# is.
#
# Every number below is measured when the notebook runs.

# %% tags=["parameters"]
PREFIX = "l06_"  # table and topic names start with this
MESSAGES = 6_000  # Kafka messages in the first bronze batch (1% malformed)
SESSIONS = 8  # recording sessions the messages come from (one patient and implant each)
NEW_MESSAGES = 2_000  # messages that arrive before the second ELT run
REPLAYED = 300  # bronze rows delivered a second time (an upstream replay)
SCALES = [100_000, 300_000, 1_000_000]  # bronze rows for the Spark vs. Polars timing
REPEATS = 2  # timed runs per engine and scale (the best counts), after one warm-up run
SEED = 6

# %%
import dataclasses
import json
import os
import time
import types
import warnings

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from deltalake import DeltaTable as DeltaLog
from deltalake import write_deltalake

import neuralake
from neuralake import datagen, delta
from neuralake.api.sample import bronze_rows
from neuralake.catalog import Catalog, ModuleDatabase
from neuralake.catalog.examples import neuro
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import roapi_config
from neuralake.lab.stack.install import spark_jars
from neuralake.spark import catalog as spark_catalog
from neuralake.spark import compare, elt, guard, polars_elt
from neuralake.streaming import baseline, topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import BRONZE, PARTITION_BY

s = neuralake.settings()
assert s.profile != "local", "lesson 06 needs S3 and Kafka: start the stack with `make up`"
opts = s.storage_options
TOPIC = f"{PREFIX}signals"
tables = elt.Tables(
    bronze=f"{PREFIX}bronze",
    silver=f"{PREFIX}silver",
    gold=f"{PREFIX}gold",
    dims_prefix=f"{PREFIX}dims/",
)
uri = {name: tables.uri(s, name) for name in ("bronze", "silver", "gold")}
ROUNDTRIP = {
    "delta_rs": s.table_uri(f"{PREFIX}from_delta_rs"),
    "spark": s.table_uri(f"{PREFIX}from_spark"),
}
BENCH = {rows: s.table_uri(f"{PREFIX}bench_{rows}") for rows in SCALES}


def rows_in(table_uri: str) -> int:
    """Rows in the current version of a Delta table, counted by Polars."""
    return pl.scan_delta(table_uri, storage_options=opts).select(pl.len()).collect().item()


def load() -> str:
    """The machine's 1-minute load average: every timing below is printed with it."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


# One display configuration for every table below: all columns, long strings unwrapped.
pl.Config.set_tbl_cols(-1)
pl.Config.set_fmt_str_lengths(60)
pl.Config.set_tbl_width_chars(160)
print(f"profile {s.profile} | bronze {uri['bronze']} | {load()}")

# %% [markdown]
# Start clean: drop this lesson's tables (the ELT's progress lives beside silver, so it
# goes too), re-create its topic, and write the study's dimension tables (sessions,
# devices, patients) under `l06_dims/` with the lab's data generator.

# %%
for table_uri in [*uri.values(), *ROUNDTRIP.values(), *BENCH.values()]:
    delta.drop_table(table_uri, opts)
delta.drop_table(uri["bronze"] + "_dead_letters", opts)
delta.drop_table(s.table_uri(tables.dims_prefix.rstrip("/")), opts)
topics.recreate_topic(s, TOPIC, 3)  # waits out Kafka's background delete (lesson 04)
study = datagen.Simulation(rows=4_096, sessions=SESSIONS, patients=SESSIONS, seed=SEED)
dims_uris = datagen.write_tables(s, study, files=1, prefix=tables.dims_prefix)
print("clean; dimension tables:", ", ".join(n for n in dims_uris if n != "neural_signals"))

# %% [markdown]
# ## 1 · A Spark session with Delta Lake and S3A
#
# **Why:** pyspark ships Spark, not Delta Lake and not the S3 connector. A session that
# reads a Delta table on MinIO needs three things on its configuration: the jars
# (`delta-spark`, `hadoop-aws` and the AWS SDK; `make setup` resolved them once with
# Maven, so nothing downloads now), Delta's SQL extension and catalog, and the S3A
# settings (endpoint, keys, path-style addressing, which MinIO needs).
#
# **Do:** the pyspark builder, spelled out. `local[2]` runs the driver and two worker
# threads in one JVM; 4 shuffle partitions instead of Spark's 200 (200 near-empty tasks
# per shuffle on lab-sized data); a 1 GiB driver for a shared 8 GiB laptop.

# %%
from pyspark.sql import SparkSession  # shown here, where it is taught

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind to loopback, like the driver
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
builder = (
    SparkSession.builder.master("local[2]")
    .appName("neuralake")
    .config("spark.jars", ",".join(str(jar) for jar in spark_jars()))
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.hadoop.fs.s3a.endpoint", s.s3_endpoint)
    .config("spark.hadoop.fs.s3a.access.key", s.access_key_id)
    .config("spark.hadoop.fs.s3a.secret.key", s.secret_access_key)
    .config("spark.hadoop.fs.s3a.path.style.access", "true")
    .config("spark.sql.session.timeZone", "UTC")
    .config("spark.driver.memory", "1g")
    .config("spark.sql.shuffle.partitions", "4")
)
# The helper's remaining settings (driver address, region, no UI, s3:// as S3A, ...).
builder = builder.config(map=neuralake.spark.spark_config(s))
started = time.perf_counter()
sp = builder.getOrCreate()
jvm_s = time.perf_counter() - started
sp.sparkContext.setLogLevel("ERROR")  # keep Spark's warnings out of the lesson's output
print(
    f"Spark {sp.version}, master {sp.sparkContext.master}: JVM started in {jvm_s:.1f} s ({load()})"
)

# %% [markdown]
# `neuralake.spark.session()` is that builder in one call: the same settings
# (`neuralake.spark.spark_config(s)` returns them, the three layers are in
# `docs/spark.md`), plus a one-line error naming the fix when Java or the jars are
# missing. Called again in a process, it returns the running session: the JVM starts
# once per kernel.

# %%
started = time.perf_counter()
assert neuralake.spark.session(s) is sp, "session() returns the session already running"
again_ms = (time.perf_counter() - started) * 1000
conf = neuralake.spark.spark_config(s)
shown = ["spark.master", "spark.sql.extensions", "spark.hadoop.fs.s3a.endpoint"]
print(f"session() again: {again_ms:.1f} ms")
pl.DataFrame({"setting": shown, "value": [sp.sparkContext.getConf().get(k) for k in shown]})

# %% [markdown]
# ## 2 · Spark reads the writer's bronze, and never writes it
#
# **Why:** the streaming writer owns bronze. A Delta commit is "create
# `_delta_log/<version>.json` unless it exists": delta-rs does it with S3's
# conditional put, so of two writers racing for one version exactly one wins. Spark's
# Delta has **no conditional-put commit for S3** (delta-io/delta#3596): it checks, then
# writes, so a Spark commit racing the writer's once-a-second commits could overwrite
# one and silently lose a micro-batch with its Kafka offsets.
#
# **Do:** fill bronze from Kafka with the Python baseline writer
# (`neuralake.streaming.baseline`: the same schema and the same `txn` actions as the
# Rust writer of lessons 03-04; it stops when the topic is drained). The producer sends
# `SESSIONS` recording sessions, one patient and implant each, the ids the dimension
# tables above declare. Then read bronze with Spark and with Polars, from the same
# `s3://` URI: the settings map Hadoop's `s3` scheme to the S3A connector
# (`spark.hadoop.fs.s3.impl`), so `load(uri)` needs no rewriting.


# %%
def ingest(count: int, seed: int) -> int:
    """Produce ``count`` messages (1% malformed) and let the writer drain them: good ones."""
    sent = produce(s, topic=TOPIC, count=count, malformed_ratio=0.01, seed=seed, sessions=SESSIONS)
    writer = baseline.Baseline(s, topic=TOPIC, table=tables.bronze)
    try:
        writer.run(stop_at_end=True)
    finally:
        writer.close()
    return sent.good


good = [ingest(MESSAGES, SEED)]
print(uri["bronze"], "| fs.s3.impl =", sp.conf.get("spark.hadoop.fs.s3.impl"))
bronze_sp = sp.read.format("delta").load(uri["bronze"])  # the s3:// URI, as Polars reads it
by_polars = pl.read_delta(uri["bronze"], storage_options=opts)
same = compare.spark_fingerprint(bronze_sp) == compare.fingerprint(by_polars)
print(f"{good[0]:,} good messages -> bronze: Spark counts {bronze_sp.count():,} rows, "
      f"Polars {by_polars.height:,}; same rows, types and values: {same}")  # fmt: skip
assert same, "Spark and Polars must read the writer's table identically"
per_session = by_polars.group_by("session_id").len().sort("session_id")
print(f"sessions in bronze: {per_session.height} ({per_session['len'].min()}-"
      f"{per_session['len'].max()} rows each)")  # fmt: skip
assert per_session.height == SESSIONS, "the producer sends every session"

# %% [markdown]
# (`guard.spark_path(uri)`, which the library's ELT uses, spells the same table
# `s3a://...`: for a Spark whose configuration lacks the `s3` mapping.)
#
# `compare.fingerprint` is the row count, the schema and an order-free checksum: the sum
# of every row's hash over every column. Any changed value, type, null or time zone
# changes it. (Spark hands its rows to Python as Arrow with `toArrow()`.)
#
# The guard: `guard.write_delta(df, uri, settings)` is the library's only Spark write
# path. It first reads the table's own Delta log; a `txn` action of a writer app
# (`neuralake-writer/...`, `neuralake-baseline/...`) means the writer owns the table,
# and the write is refused with one line. (`neuralake spark owner TABLE` asks the same
# question from a shell.)

# %%
owner = guard.writer_app_id(uri["bronze"], opts)
before = DeltaLog(uri["bronze"], storage_options=opts).version()
try:
    guard.write_delta(sp.range(3), uri["bronze"], s)
    refused = None
except guard.WriterOwnedTableError as error:
    refused = delta.first_line(error)
print(f"owner txn: {owner}\n{refused}")
assert refused is not None and owner is not None, "the guard must refuse the writer's table"
assert DeltaLog(uri["bronze"], storage_options=opts).version() == before, "nothing committed"

# %% [markdown]
# ## 3 · The ELT: bronze -> silver -> gold, incrementally
#
# **Why:** bronze is what Kafka delivered: at-least-once upstream means the same
# message can arrive twice, and a sensor can report impossible values. Analysts want
# **silver** (one row per Kafka message, typed, checked) and **gold** (one row per
# recording session and day, with the session's task, the implant's firmware and the
# patient's cohort). Recomputing everything every run costs more each day; a cold path
# must read only what is new.
#
# **Do, piece by piece.** The transform is three functions in `neuralake/spark/elt.py`;
# each is plain pyspark you can read:
#
# - `elt.to_silver(bronze)`: `dropDuplicates(["kafka_partition", "kafka_offset"])`
#   (the offset identifies a Kafka message), `channel` cast to Int32 and voltages to
#   Float64 (ROAPI's DataFusion cannot compare an Int16 column with a literal);
# - `elt.row_checks(checks)`: the catalog's per-row checks for `neural_signals`, turned
#   into Spark predicates: the catalog is the one place the rules live;
# - `elt.features(silver, sessions, devices, patients)`: `groupBy("session_id",
#   "date").agg(...)` then three left joins with the dimension tables.

# %%
CHECKS = neuro.neural_signals.checks
print("catalog checks:", ", ".join(c.label for c in CHECKS))
predicates = [str(p).removeprefix("Column<'").removesuffix("'>") for p in elt.row_checks(CHECKS)]
pl.DataFrame({"Spark predicate a silver row must satisfy": predicates})

# %% [markdown]
# **Incremental, with the real API.** Spark's Delta *streaming* source reads a table as
# the sequence of its commits. With `trigger(availableNow=True)` it processes every
# commit not yet processed, as micro-batches, then stops: a batch job that remembers
# where it stopped. The memory is the **checkpoint** folder (the last version read).
# Here on bronze, counting rows per micro-batch:

# %%
checkpoint = s.table_uri(f"{PREFIX}demo_checkpoint")
delta.drop_table(s.table_uri(f"{PREFIX}demo_checkpoint"), opts)
batches: list[tuple[int, int]] = []


def read_new() -> list[tuple[int, int]]:
    """One AvailableNow run over bronze: (batch id, rows) of each micro-batch it saw."""
    batches.clear()
    query = (
        sp.readStream.format("delta")
        .load(uri["bronze"])
        .writeStream.foreachBatch(lambda frame, batch_id: batches.append((batch_id, frame.count())))
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return list(batches)


first_read, second_read = read_new(), read_new()
print(f"first run: {first_read}  second run, nothing new: {second_read}")
assert sum(rows for _, rows in first_read) == good[0] and second_read == []

# %% [markdown]
# `elt.run(settings, tables)` wraps exactly that: its `foreachBatch` function
# deduplicates, types and checks each micro-batch, MERGEs it into silver (inserting only
# offsets silver has not seen), recomputes gold for the (session, day) pairs the batch
# touched and MERGEs those rows into gold. From a shell it is
# `neuralake spark elt --bronze l06_bronze --silver l06_silver --gold l06_gold
# --dims-prefix l06_dims/`, which prints the same JSON line as `Run.to_json()` here
# (the notebook calls the function so it reuses this kernel's JVM; the command starts
# a new one). The first run reads every bronze version:

# %%
run1 = elt.run(s, tables)
print(run1.to_json())
pl.DataFrame(
    [{"table": n, "version": t["version"], "rows": t["rows"]} for n, t in run1.tables.items()]
)

# %% [markdown]
# Now new data arrives, and with it trouble: `NEW_MESSAGES` new messages through the
# writer, then an upstream **replay** of `REPLAYED` rows bronze already holds, plus 5
# rows whose `quality` is 1.5 (outside the catalog's `range(quality, 0..1)`). We append
# them with delta-rs, as a second writer would: a second delta-rs writer is safe beside
# the first, both commit with conditional puts.

# %%
good.append(ingest(NEW_MESSAGES, SEED + 1))
replay = pl.read_delta(uri["bronze"], storage_options=opts).sort(elt.KEY).head(REPLAYED)
bad = replay.head(5).with_columns(  # 5 new offsets, in a partition of their own
    kafka_partition=pl.lit(99, pl.Int32),
    kafka_offset=pl.int_range(5, dtype=pl.Int64),
    quality=pl.lit(1.5, pl.Float32),
)
write_deltalake(
    uri["bronze"], pl.concat([replay, bad]).to_arrow(), mode="append",
    partition_by=PARTITION_BY, storage_options=opts,
)  # fmt: skip
run2 = elt.run(s, tables)
print(run2.to_json())
silver_rows = rows_in(uri["silver"])
print(f"bronze versions read: {run1.bronze_versions} then {run2.bronze_versions}; "
      f"silver {run1.tables['silver']['rows']:,} -> {silver_rows:,} rows "
      f"(+{silver_rows - run1.tables['silver']['rows']:,}; new good messages: {good[1]:,})")  # fmt: skip
assert run2.bronze_versions[0] == run1.bronze_versions[1] + 1, "run 2 starts after run 1"
assert run2.bronze_rows == good[1] + REPLAYED + len(bad), "run 2 reads only the new versions"
assert run2.rejected_rows == len(bad), "the rows failing a catalog check are rejected"
assert silver_rows == sum(good), "the replayed rows were not inserted again"

# %% [markdown]
# Read the second line: it starts at the bronze version after the first run's last one,
# and its `bronze_rows` is only what arrived since (new messages + replay + bad rows),
# not the whole table. Silver grew by exactly the new good messages: the replayed rows
# met silver's MERGE on `(kafka_partition, kafka_offset, date)` and were not inserted;
# `rejected_rows` counts the rows the catalog's checks dropped. (`duplicate_rows`
# counts copies *inside* one micro-batch, removed by `dropDuplicates`; copies of rows
# already in silver are removed by the MERGE, which the silver count proves.)
#
# The MERGE that keeps silver free of replays, by hand, with Delta's Spark API
# (`delta.tables.DeltaTable`): merge the replayed rows into silver once more. Silver is
# Spark's own table, and we ask the guard first, as `elt.run` does for each table it
# writes. Watch the row count and the version: a MERGE that matches every row inserts
# nothing, and Delta does not even commit (the version stays, asserted).

# %%
from delta.tables import DeltaTable as SparkDelta  # Delta's Spark API, from delta-spark
from pyspark.sql import functions as F

guard.ensure_spark_may_write(uri["silver"], s)  # raises for a writer-owned table
again = (
    sp.read.format("delta").load(uri["bronze"])
    .where(F.col("kafka_partition") < 99)
    .orderBy(*elt.KEY)
    .limit(REPLAYED)
)  # fmt: skip
on = " AND ".join(f"s.{c} = b.{c}" for c in [*elt.KEY, "date"])
version_before = DeltaLog(uri["silver"], storage_options=opts).version()
(
    SparkDelta.forPath(sp, uri["silver"])
    .alias("s")
    .merge(elt.clean(again, elt.row_checks(CHECKS)).alias("b"), on)
    .whenNotMatchedInsertAll()
    .execute()
)
version_after = DeltaLog(uri["silver"], storage_options=opts).version()
print(f"MERGE of {again.count()} replayed rows: silver {silver_rows:,} -> "
      f"{rows_in(uri['silver']):,} rows, version {version_before} -> {version_after}")  # fmt: skip
assert rows_in(uri["silver"]) == silver_rows, "a replay must not add rows to silver"
assert version_after == version_before, "the text says: nothing inserted, nothing committed"

# %% [markdown]
# The ELT's gold step uses the same API: it recomputes the features of the (session,
# day) pairs a batch touched (a `left_semi` join of silver with those keys), then
# MERGEs them into gold with `whenMatchedUpdateAll().whenNotMatchedInsertAll()`.
#
# Every silver commit records which bronze version it covers, in the commit's
# `userMetadata`, so silver's history answers "where did this come from?":

# %%
history = [
    {"version": c["version"], "operation": c["operation"],
     "bronze_version": json.loads(c["userMetadata"])["bronze_version"]}
    for c in DeltaLog(uri["silver"], storage_options=opts).history()
    if c.get("userMetadata")
]  # fmt: skip
pl.DataFrame(history)

# %% [markdown]
# Gold: one row per session and day, with the dimensions joined in: each session's
# task (from `sessions`), its implant's firmware (`devices`) and its patient's cohort
# (`patients`). The left joins leave a column empty when a dimension row is missing,
# so the cell checks that every one was found.

# %%
gold = pl.read_delta(uri["gold"], storage_options=opts).sort("session_id", "date")
silver_keys = pl.read_delta(uri["silver"], storage_options=opts).select(*elt.GOLD_KEY).unique()
joined = ["task", "cohort", "firmware"]
print(f"gold: {gold.height} rows = {silver_keys.height} (session, day) pairs in silver; "
      + ", ".join(f"{gold[c].n_unique()} {c}s" for c in joined))  # fmt: skip
assert gold.height == silver_keys.height and gold["session_id"].n_unique() == SESSIONS
assert gold.select(joined).null_count().sum_horizontal().item() == 0, "every dimension joined"
assert all(gold[c].n_unique() > 1 for c in joined), "the sessions differ in what the join adds"
gold.select(
    "session_id", "date", "task", "cohort", "firmware", "samples", "channels", "spikes",
    pl.col("mean_quality").round(3),
)  # fmt: skip

# %% [markdown]
# ## 4 · Spark's tables in the catalog: Polars and ROAPI see them
#
# **Why:** a table only the job that wrote it knows about is a dead end. Spark's two
# tables are declared in `neuralake/spark/catalog.py` (columns, descriptions, owner,
# upstream, checks). Here we declare this lesson's copies, the same declarations
# pointed at our tables, run the catalog's quality checks on what Spark wrote, and read
# gold through the catalog with Polars.

# %%
lesson = types.ModuleType("lesson06")
lesson.silver = dataclasses.replace(
    spark_catalog.neural_signals_silver, name=f"{PREFIX}silver", uri=tables.silver,
    upstream=[tables.bronze],
)  # fmt: skip
lesson.gold = dataclasses.replace(
    spark_catalog.session_features, name=f"{PREFIX}gold", uri=tables.gold,
    upstream=[f"{PREFIX}silver"],
)  # fmt: skip
lesson.__all__ = ["silver", "gold"]
catalog = Catalog({"lesson06": ModuleDatabase(lesson)})
reports = catalog.check(settings=s)
pl.DataFrame(
    [
        {"table": rep.table, "check": r.check, "passed": r.passed, "detail": r.detail}
        for rep in reports
        for r in rep.results
    ]
)

# %%
assert all(rep.passed for rep in reports), "Spark's tables must pass their catalog checks"
via_catalog = catalog.find(f"{PREFIX}gold")[1].scan(settings=s).collect()
config = roapi_config(export_catalog(catalog, "lesson06", s))
print(f"gold through the catalog, with Polars: {via_catalog.height} rows")
assert via_catalog.height == gold.height
print("ROAPI would serve:", ", ".join(f"{t['name']} ({t['uri']})" for t in config["tables"]))

# %% [markdown]
# That ROAPI configuration is what `neuralake api serve` writes and loads (lesson 05);
# we do not restart the shared ROAPI here. Gold is partitioned by `date`, so ROAPI
# serves it in provider mode; its `channel` and voltage columns are Int32 and Float64
# on purpose (ROAPI 0.12.7 cannot compare an Int16 column with a literal).
#
# ## 5 · The same transform, two engines, two scales
#
# **Why:** Spark splits a job into tasks over partitions and runs them on many cores or
# many machines; that costs a fixed overhead per job (planning, scheduling, moving rows
# between the JVM and Python). Polars runs the whole query in one process with every
# core of one machine. Which wins depends on the size of the data, so we measure.
#
# **Do:** write a bronze-shaped table at each scale in `SCALES` (spread over the
# study's `SESSIONS` sessions), then time the silver + gold transform with both engines,
# reading from MinIO each time and bringing gold back to Python: Spark's
# `elt.features(elt.clean(...))` and Polars' `polars_elt.features(polars_elt.clean(...))`
# (`neuralake/spark/polars_elt.py`, the same functions written for Polars). Timings
# are warm: each engine runs once untimed on the smallest table (Spark compiles its
# code paths, Polars reads the dimensions), then the best of `REPEATS` runs counts at
# each scale, the least disturbed by the other jobs on the machine. The answers of the
# last run are compared at every scale: both engines must compute the same gold.


# %%
def bronze_table(rows: int) -> pl.DataFrame:
    """``rows`` bronze-shaped rows, spread over the study's sessions (and their implants)."""
    sessions = study.sessions_table().select("session_id", "patient_id", "device_id")
    frame = bronze_rows(rows, seed=SEED).drop("patient_id", "device_id")
    frame = frame.with_columns(session_id=(pl.col("session_id") % SESSIONS + 1).cast(pl.Int32))
    return frame.join(sessions, on="session_id").select(list(BRONZE))


dims_sp = {
    n: sp.read.format("delta").load(dims_uris[n]) for n in ("sessions", "devices", "patients")
}
dims_pl = {
    n: pl.scan_delta(dims_uris[n], storage_options=opts)
    for n in ("sessions", "devices", "patients")
}


def spark_gold(table_uri: str):
    """Spark: read bronze, silver, gold with the dimensions, rows back to Python."""
    bronze = sp.read.format("delta").load(table_uri)
    return elt.features(elt.clean(bronze, elt.row_checks(CHECKS)), **dims_sp).toArrow()


def polars_gold(table_uri: str) -> pl.DataFrame:
    """Polars: the same steps, one lazy query."""
    bronze = pl.scan_delta(table_uri, storage_options=opts)
    return polars_elt.features(polars_elt.clean(bronze, CHECKS), **dims_pl).collect()


def best_ms(fn, table_uri: str):
    """Best wall time of ``REPEATS`` runs of ``fn(table_uri)`` in ms, and the last answer."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = fn(table_uri)
        times.append((time.perf_counter() - started) * 1000)
    return round(min(times), 1), answer


timings = []
for rows, table_uri in BENCH.items():
    frame = bronze_table(rows)
    write_deltalake(table_uri, frame.to_arrow(), partition_by=PARTITION_BY, storage_options=opts)
    if not timings:  # the warm-up runs, untimed
        spark_gold(table_uri), polars_gold(table_uri)
    answers = {}
    for engine, fn in (("spark", spark_gold), ("polars", polars_gold)):
        ms, answers[engine] = best_ms(fn, table_uri)
        timings.append({"engine": engine, "rows": frame.height, "ms": ms})
    agree = compare.fingerprint(answers["spark"], decimals=6) == compare.fingerprint(
        answers["polars"], decimals=6
    )
    assert agree, f"Spark and Polars must compute the same gold at {rows:,} rows"
    print(f"{frame.height:,} rows: same gold from both engines; {load()}")
timings = pl.DataFrame(timings)
wide = timings.pivot("engine", index="rows", values="ms").with_columns(
    spark_over_polars=(pl.col("spark") / pl.col("polars")).round(1)
)
wide

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for engine, color in (("spark", "tab:orange"), ("polars", "tab:blue")):
    part = timings.filter(pl.col("engine") == engine).sort("rows")
    ax.plot(part["rows"], part["ms"] / 1000, "o-", color=color, label=engine)
    for x, y in zip(part["rows"], part["ms"] / 1000, strict=True):
        ax.annotate(f"{y:.2f} s", (x, y), textcoords="offset points", xytext=(4, 6))
ax.set_xscale("log")
ax.set_yscale("log")
ax.margins(x=0.25, y=0.2)  # room for the labels
ax.set_xlabel("bronze rows")
ax.set_ylabel("wall time, best of warm runs (s)")
ax.set_title("bronze -> silver -> gold: Spark local[2] vs Polars")
ax.legend()
plt.show()

# %% [markdown]
# Where does the time go? Fit each engine's line, `time = fixed + per_row x rows`,
# through the measured points (least squares over the `SCALES`): the **fixed** part is
# what a job costs before it touches data (for Spark: planning, scheduling tasks,
# reading the Delta log in the JVM, sending results to Python), the **slope** is the
# cost of more rows. The `worst_miss` column says how far the line passes from the
# farthest measured point: a line is only worth reading if it is small.

# %%
fits = {}
for engine in ("spark", "polars"):
    part = timings.filter(pl.col("engine") == engine).sort("rows")
    x, y = part["rows"].to_numpy(), part["ms"].to_numpy()
    slope, fixed = np.polyfit(x, y, 1)
    miss = float(np.max(np.abs(fixed + slope * x - y) / y))
    fits[engine] = (max(fixed, 0.0), slope, miss)  # noisy points can put the line below 0
pl.DataFrame(
    [
        {"engine": e, "fixed_ms": round(f, 1), "ms_per_million_rows": round(b * 1e6, 1),
         "worst_miss": f"{m:.0%}"}
        for e, (f, b, m) in fits.items()
    ]
)  # fmt: skip

# %%
(fixed_s, slope_s, miss_s), (fixed_p, slope_p, miss_p) = fits["spark"], fits["polars"]
for row in wide.iter_rows(named=True):
    winner = "Polars" if row["polars"] < row["spark"] else "Spark"
    ratio = max(row["spark"], row["polars"]) / min(row["spark"], row["polars"])
    print(f"{row['rows']:>12,} rows: {winner} wins, {ratio:.1f}x")
small = wide.row(0, named=True)
fixed_share = fixed_s / small["spark"]
print(f"Spark at {small['rows']:,} rows: {fixed_share:.0%} of its time is the fitted fixed "
      f"cost; per extra million rows Spark {slope_s * 1e6:,.0f} ms, Polars {slope_p * 1e6:,.0f} ms "
      f"({load()})")  # fmt: skip
assert (wide["polars"] < wide["spark"]).all(), "the text below says Polars wins at every scale"
assert fixed_share > 0.5, "the text below says the fixed cost decides at the small scale"
assert wide["spark_over_polars"][-1] < wide["spark_over_polars"][0], "the gap narrows with size"

# %% [markdown]
# **Reading the numbers** (each claim is asserted in the cell above). Polars wins at
# every scale here. At the small scale the fixed cost decides: more than half of
# Spark's time is the fitted fixed part, spent planning the query, reading the Delta
# log in the JVM, scheduling tasks on its two threads and sending the result from the
# JVM to Python before it has touched much data; Polars' fixed cost is a log read and
# a query plan in one process. As the data grows, the fixed cost matters less, so the
# gap narrows (the `spark_over_polars` column falls). The slopes, the cost of each
# extra million rows, are small beside Spark's fixed cost at these sizes, and on a
# machine shared with other jobs they move from run to run (Spark's can even come out
# near zero or below): read `worst_miss` before you trust them, and push `SCALES` to
# 10 million rows to measure them (exercise 2). What each engine does per row differs:
# Spark's `local[2]` has the same 2 cores as Polars, but turns the columns it reads
# into rows for its operators and exchanges partial results between stages through
# shuffle files, while Polars runs vectorised kernels over Arrow columns.
#
# **So where does Spark win?** Not on one machine at these sizes, and these points do
# not say how many cores it would take: Spark's cost per row on a cluster also pays
# for the network, and a 2-core machine shared with other jobs cannot measure that.
# What moves the line in Spark's favour is what one process does not have: **more
# machines** (cores and memory added by adding executors: section 7 runs the same job
# on a cluster), **data larger than memory** (Polars' in-memory engine needs the
# working set in RAM; Spark spills shuffles to disk and spreads the data over
# executors), and **fault tolerance** (a lost executor re-runs its tasks; a single
# process starts over). That is why the cold path runs on Spark and the interactive
# path on Polars: the same transform, the engine chosen by the size of the job. Push
# `SCALES` (say `[1_000_000, 3_000_000, 10_000_000]`) and watch the ratio and the slopes.
#
# ## 6 · Delta tables across engines: delta-rs -> Spark, Spark -> delta-rs
#
# **Why:** the lakehouse promise is that the table, not the engine, is the interface:
# what one engine writes, any other reads, with the same rows and types. Time zones are
# where it usually breaks: a time-zone-naive Polars `Datetime` becomes a Delta
# `timestampNtz`, which Spark and ROAPI read differently, so the lab writes UTC
# timestamps everywhere.
#
# **Do:** write a table with delta-rs (`deltalake.write_deltalake`) and read it with
# Spark; write a table with Spark (through the guard's `write_delta`: it is Spark's own
# table) and read it with delta-rs and Polars. Compare fingerprints.

# %%
sample = pl.read_delta(uri["silver"], storage_options=opts).head(2_000)
write_deltalake(
    ROUNDTRIP["delta_rs"], sample.to_arrow(), partition_by=["date"], storage_options=opts
)
read_by_spark = sp.read.format("delta").load(ROUNDTRIP["delta_rs"])
delta_rs_to_spark = compare.spark_fingerprint(read_by_spark) == compare.fingerprint(sample)

guard.write_delta(read_by_spark, ROUNDTRIP["spark"], s, mode="overwrite", partition_by=["date"])
read_by_delta_rs = DeltaLog(ROUNDTRIP["spark"], storage_options=opts).to_pyarrow_table()
spark_to_delta_rs = compare.fingerprint(read_by_delta_rs) == compare.fingerprint(sample)
pl.DataFrame(
    {
        "direction": ["delta-rs -> Spark", "Spark -> delta-rs"],
        "rows": [read_by_spark.count(), read_by_delta_rs.num_rows],
        "same fingerprint": [delta_rs_to_spark, spark_to_delta_rs],
    }
)

# %%
assert delta_rs_to_spark and spark_to_delta_rs, "each engine must read the other's table exactly"
spark_commit = DeltaLog(ROUNDTRIP["spark"], storage_options=opts).history(1)[0]
print(f"Spark's commit: {spark_commit['operation']} by {spark_commit.get('engineInfo', '?')}")

# %% [markdown]
# ## 7 · The same ELT on a cluster
#
# **Why:** in `local[2]` the driver and the executors are one JVM: planning, scheduling
# and running tasks never leave the process. A **standalone cluster** splits them: a
# **master** keeps track of the machines, each **worker** offers its cores and memory,
# and for every application a worker starts an **executor** (a JVM of its own) that runs
# tasks; the **driver** (this notebook) plans the job and sends tasks to the executors
# over the network. The ELT does not change; only the master URL does.
#
# **Do:** `neuralake spark cluster up` starts a master and one worker from the pyspark
# wheel's own `bin/spark-class` (the wheel has no `start-master.sh`), on 127.0.0.1:
# the master on port 7077, its web UI on 7080, the worker's on 7081. Its defaults fit
# this lab's 2-core machine: 1 worker x 2 cores x 2 GiB, so one executor of 1 GiB
# running 2 tasks at a time. It returns once the master's JSON status
# (`http://127.0.0.1:7080/json/`) lists the worker as ALIVE. Here we call the same
# function from Python, and stop the cluster again at the end of this section.

# %%
from neuralake.lab.stack import spark_cluster as cluster

spark_cluster = cluster.cluster(s)  # defaults, or NEURALAKE_SPARK_* variables
already_up = cluster.status(spark_cluster)["healthy"]  # a cluster you started: left running
started = time.perf_counter()
cluster.up(spark_cluster, echo=lambda line: None)
up_s = time.perf_counter() - started
master = cluster.master_state(spark_cluster)
print(f"{spark_cluster.master_url}: {master['status']}, {master['aliveworkers']} worker ALIVE "
      f"after {up_s:.1f} s ({load()}); sized {spark_cluster.sizing}")  # fmt: skip
assert master["status"] == "ALIVE" and master["aliveworkers"] >= 1
d = cluster.Cluster  # the dataclass's defaults, as the text above states them
assert (d.master_port, d.master_ui_port, d.worker_ui_port) == (7077, 7080, 7081)
assert (d.workers, d.worker_cores, d.worker_memory) == (1, 2, "2g")
pl.DataFrame(
    [
        {"worker": w["id"], "state": w["state"], "cores": w["cores"], "memory_mb": w["memory"]}
        for w in master["workers"]
        if w["state"] == "ALIVE"
    ]
)

# %% [markdown]
# Now the session. One Python process holds one SparkContext, so we stop the
# `local[2]` one and build the next with the cluster's URL: the same call as from a
# shell with `NEURALAKE_SPARK_MASTER=spark://127.0.0.1:7077`, or
# `neuralake spark elt --master spark://127.0.0.1:7077`. The JVM stays, so this is
# quick; the executor starts after the session does, on the worker.
#
# Then the ELT, the same `elt.run`, from the same bronze into two new tables, and its
# gold compared with the gold `local[2]` wrote in section 3. The executor reads bronze
# from MinIO and writes silver and gold itself: it received the Delta and S3A jars from
# the driver (`spark.jars` are shipped to every executor) and the S3 endpoint and keys
# in the application's configuration.

# %%
sp.stop()
cluster_tables = dataclasses.replace(
    tables, silver=f"{PREFIX}cluster_silver", gold=f"{PREFIX}cluster_gold"
)
for table_uri in (cluster_tables.uri(s, "silver"), cluster_tables.uri(s, "gold")):
    delta.drop_table(table_uri, opts)
try:
    sp = neuralake.spark.session(s, {"spark.master": spark_cluster.master_url})
    sp.sparkContext.setLogLevel("ERROR")
    executors = cluster.wait_for_executors(sp, 1)
    started = time.perf_counter()
    run_cluster = elt.run(s, cluster_tables)
    cluster_elt_s = time.perf_counter() - started
except BaseException:
    neuralake.spark.stop()  # leave no cluster behind when this cell fails
    if not already_up:
        cluster.down(spark_cluster, echo=lambda line: None)
    raise
gold_local = compare.fingerprint(pl.read_delta(uri["gold"], storage_options=opts), decimals=6)
gold_cluster = compare.fingerprint(
    pl.read_delta(cluster_tables.uri(s, "gold"), storage_options=opts), decimals=6
)
print(f"master {sp.sparkContext.master}: ELT in {cluster_elt_s:.1f} s ({load()}), "
      f"{run_cluster.bronze_rows:,} bronze rows -> silver rows {run_cluster.tables['silver']['rows']:,}, "
      f"gold rows {run_cluster.tables['gold']['rows']}; same gold as local[2]: {gold_cluster == gold_local}")  # fmt: skip
assert gold_cluster == gold_local, "the cluster must write the gold local[2] wrote"
assert run_cluster.tables["silver"]["rows"] == silver_rows, "and the same silver rows"

# %% [markdown]
# Same rows, same values (floats rounded to 6 decimals: Spark adds partial sums in the
# order tasks finish). The time printed above includes what `local[2]` never pays: the
# tasks ran on the same 2 cores, but in a second JVM that had to start, receive the
# jars from the driver (about 700 MB, most of it the AWS SDK: printed below) and warm
# up, with every task and every result crossing a socket.
#
# **Measure:** where did the work go? Two REST APIs answer without screenshots. The
# master's (`/json/`) knows the workers and the applications and how many cores each
# holds; the application's own (the driver's web UI, `/api/v1/applications/<id>/...`)
# knows its executors, jobs and stages. `cluster.app_api(sp, "executors")` reads it.

# %%
app_id = sp.sparkContext.applicationId
(app,) = [a for a in cluster.master_state(spark_cluster)["activeapps"] if a["id"] == app_id]
executors = cluster.app_api(sp, "executors")
stages = cluster.app_api(sp, "stages")
jobs = cluster.app_api(sp, "jobs")
shipped_mb = sum(jar.stat().st_size for jar in spark_jars()) / 1e6
print(f"the master: application {app_id} holds {app['cores']} cores, "
      f"{app['memoryperexecutor']} MiB per executor; jars shipped to it: {shipped_mb:.0f} MB")  # fmt: skip
assert app["cores"] == spark_cluster.worker_cores * spark_cluster.workers
assert 600 < shipped_mb < 800, "the text below says about 700 MB"
pl.DataFrame(
    [
        {"executor": e["id"], "address": e["hostPort"], "cores": e["totalCores"],
         "tasks": e["completedTasks"], "input_mb": round(e["totalInputBytes"] / 1e6, 2),
         "shuffle_write_mb": round(e["totalShuffleWrite"] / 1e6, 2),
         "task_time_s": round(e["totalDuration"] / 1000, 1)}
        for e in executors
        if e["id"] != "driver"
    ]
)  # fmt: skip


# %%
def job_call(stage_name: str) -> str:
    """The API call that started a stage's job; Delta's internal closures get one name."""
    call = stage_name.split(" at ")[0]
    return "(inside a Delta operation)" if call.startswith("$anonfun$") else call


stage_table = pl.DataFrame(
    [
        {"stage": st["stageId"], "job call": job_call(st["name"]), "tasks": st["numTasks"],
         "run_time_s": round(st["executorRunTime"] / 1000, 1), "input_mb": round(st["inputBytes"] / 1e6, 2),
         "shuffle_write_mb": round(st["shuffleWriteBytes"] / 1e6, 2)}
        for st in stages
    ]
)  # fmt: skip
tasks_on_executors = sum(e["completedTasks"] for e in executors if e["id"] != "driver")
(driver,) = [e for e in executors if e["id"] == "driver"]
print(f"one ELT run on the cluster: {len(jobs)} jobs, {len(stages)} stages, {tasks_on_executors} "
      f"tasks on the executor, {driver['completedTasks']} on the driver; the five longest stages:")  # fmt: skip
assert tasks_on_executors > 0 and driver["completedTasks"] == driver["totalCores"] == 0
assert len(jobs) >= 24, "the text below says dozens of jobs"
stage_table.sort("run_time_s", descending=True).head(5)

# %% [markdown]
# Dozens of jobs for one small ELT: every count, MERGE, Delta log read and write is a
# job, each split into stages at its shuffles, and most of them move a few kilobytes.
# The "job call" is the API call that started the job (`save` a write, `start` the
# streaming query whose micro-batch runs the ELT). That per-job cost is the fixed cost
# of section 5, paid here over a socket, and the first stages also pay for the new
# executor's JVM warming up.
#
# **What changes on a real cluster.** The same code runs; the machine around it does not.
#
# - **Executors on other machines.** The driver must be reachable from them
#   (`spark.driver.host` becomes an address the workers can reach, not 127.0.0.1), and
#   every byte between stages crosses the network. Every application ships its
#   `spark.jars` to every executor: here 700 MB per application, so real clusters bake
#   Delta and S3A into the workers' image instead.
# - **S3 credentials per executor.** Here the driver's S3 endpoint and keys travel in
#   the application's configuration to each executor. On a real cluster each executor
#   gets its credentials from its machine (an instance role, a Kubernetes service
#   account: `fs.s3a.aws.credentials.provider`), and no key is written in a config.
# - **Shuffle storage.** Map outputs live on the executor's local disk
#   (`SPARK_LOCAL_DIRS`, here `.state/spark-cluster/worker-1/local`). An executor that
#   dies takes its shuffle files with it, and Spark re-runs the stages that wrote them:
#   `tests/test_spark_cluster.py` kills a worker with `kill -9` in the middle of the ELT,
#   and the job still finishes with the same gold. An external shuffle service, or
#   decommissioning that moves shuffle files off a leaving executor, keeps them.
# - **Dynamic allocation.** Here the application holds its executor until it stops.
#   With `spark.dynamicAllocation.enabled`, Spark asks for executors while tasks wait
#   and gives idle ones back; it needs shuffle tracking or the external shuffle service,
#   because a removed executor's shuffle files would otherwise be gone.
#
# From a shell, with nothing else changed (`spark-submit` needs the jars on its command
# line, because it starts the driver's JVM before any Python runs):
#
# ```bash
# neuralake spark cluster up                 # master + 1 worker x 2 cores x 2g
# neuralake spark cluster status             # pids, ALIVE workers, applications, sizing
# neuralake spark elt --master spark://127.0.0.1:7077 --bronze l06_bronze \
#   --silver l06_cluster_silver --gold l06_cluster_gold --dims-prefix l06_dims/
# spark-submit --master spark://127.0.0.1:7077 --jars "$(neuralake spark jars)" \
#   neuralake/spark/elt.py --bronze l06_bronze --silver l06_cluster_silver \
#   --gold l06_cluster_gold --dims-prefix l06_dims/
# neuralake spark cluster down               # stops workers, executors, master by pid
# ```
#
# On a managed Spark (EMR, Dataproc, Databricks) you submit the same file; the platform
# supplies the master and its own Delta and S3 jars. We stop the session and the
# cluster (if this lesson started it) and check that no process is left:

# %%
neuralake.spark.stop()
if not already_up:
    cluster.down(spark_cluster, echo=lambda line: None)
    left = cluster.pids(spark_cluster)
    print(f"cluster stopped; processes left: {left or 'none'}")
    assert left == {}, "cluster down must stop every process it started"
else:
    print("the cluster was running before this lesson: left running")

# %% [markdown]
# ## Exercises
#
# 1. Run the ELT a third time with nothing new (`elt.run(s, tables)`). What do
#    `batches`, `bronze_rows` and the table versions say, and why is that cheap?
# 2. Set `SCALES = [1_000_000, 3_000_000, 10_000_000]`. Does the ratio grow or shrink
#    with size, and does the line still pass near every point (`worst_miss`)? What does
#    the fitted slope predict for 100 million rows, and would Polars still fit in this
#    machine's memory?
# 3. Add `Range("voltage_uv", min=-500, max=500)` to the checks the ELT uses
#    (`elt.row_checks`), replay a few rows with a voltage of 9,000 µV, and watch
#    `rejected_rows`.
# 4. Try to write silver into bronze: `guard.write_delta(sp.read.format("delta")
#    .load(...silver...), uri["bronze"], s)`. Read the error: which `txn` does it name?
#
# The graded version of these skills is lab 06 (`labs/06_spark/`): a new gold feature,
# made incremental, with Spark and Polars proven to agree.
#
# ## Key takeaways
#
# - One helper, `neuralake.spark.session()`, builds a local Spark with Delta and S3A;
#   the same code runs on a cluster when the master changes (`--master`,
#   `NEURALAKE_SPARK_MASTER`): `neuralake spark cluster up` starts one on this machine,
#   and its gold equals `local[2]`'s.
# - Spark reads the writer's tables and writes only its own: Spark's Delta has no
#   conditional-put commit on S3, and the guard reads each table's log to enforce it.
# - Incremental ELT = Delta's streaming source with `AvailableNow` and a checkpoint,
#   plus MERGEs keyed on Kafka offsets: a rerun or a replay adds nothing twice.
# - At lab scale Polars is faster on one machine, by the ratios printed above; Spark's
#   case is data beyond one machine's memory and cores.
# - Delta is the interface: delta-rs and Spark read each other's tables with the same
#   fingerprint, as long as timestamps carry a time zone.
#
# ## Check yourself
#
# 1. Why may Spark read the bronze table while the writer commits to it, but not write
#    to it? What would a lost race cost?
# 2. The second ELT run read more bronze rows than silver grew by. Where did the others
#    go, and which part of the job removed each kind?
# 3. Your transform takes 0.1 s in Polars and 2 s in Spark on 1 million rows. Name two
#    situations where you would still run it on Spark.
# 4. An executor dies in the middle of a job. What does Spark run again, and why can that
#    be more than the tasks it was running?
#
# <details><summary>Answers</summary>
#
# 1. Reading needs no commit: a reader sees a consistent snapshot at one version. A
#    write commits a new log entry; delta-rs does it with a conditional put, but Spark's
#    S3 commit checks and then writes, so it could overwrite the writer's commit of the
#    same version, losing that micro-batch and its Kafka offsets.
# 2. The replayed rows were already in silver: the MERGE on `(kafka_partition,
#    kafka_offset, date)` did not insert them (copies inside one micro-batch are dropped
#    earlier by `dropDuplicates`). The rows failing a catalog check (`quality` 1.5) were
#    filtered out and counted as `rejected_rows`.
# 3. When the data does not fit one machine's memory (Spark spreads and spills it);
#    when it must finish faster than one machine can (a cluster adds cores); when the
#    platform already runs Spark with retries and scheduling (fault tolerance).
# 4. Its running tasks, on another executor; and every earlier stage whose shuffle
#    output lived on its local disk, because the next stage can no longer fetch it
#    (an external shuffle service or decommissioning would have kept those files).
#
# </details>
#
# ## Sources
#
# - Delta Lake protocol (commits, `txn` actions, checkpoints):
#   https://github.com/delta-io/delta/blob/master/PROTOCOL.md
# - Spark's Delta and S3 conditional writes: https://github.com/delta-io/delta/issues/3596
# - Delta Lake with Spark (quick start, streaming source, MERGE):
#   https://docs.delta.io/latest/quick-start.html and
#   https://docs.delta.io/latest/delta-streaming.html
# - Spark Structured Streaming, `Trigger.AvailableNow`:
#   https://spark.apache.org/docs/latest/structured-streaming-programming-guide.html#triggers
# - `spark-submit` and master URLs: https://spark.apache.org/docs/latest/submitting-applications.html
# - Spark's standalone cluster (master, workers, `spark-class`):
#   https://spark.apache.org/docs/latest/spark-standalone.html; the application's REST
#   API (executors, jobs, stages): https://spark.apache.org/docs/latest/monitoring.html#rest-api
# - delta-rs `write_deltalake` and `DeltaTable`: https://delta-io.github.io/delta-rs/api/delta_writer/
# - Polars `scan_delta` and lazy queries:
#   https://docs.pola.rs/api/python/stable/reference/api/polars.scan_delta.html and
#   https://docs.pola.rs/user-guide/lazy/
# - the terms used here: `docs/glossary.md`; the cold path's design: `docs/spark.md`
