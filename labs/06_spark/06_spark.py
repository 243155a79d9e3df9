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
# # Lab 06 · The cold path: a new gold feature, in two engines, made incremental
#
# The neuroscience team wants one number per electrode before they trust a recording:
# for every session, day and **channel**, the clean samples, the spikes and the **RMS
# voltage** (`sqrt(mean(voltage_uv²))`: a dead electrode is near 0, a noisy one far
# above its neighbours). You have the writer's bronze table, with what real bronze
# holds: an upstream replay (the same Kafka messages twice) and a few rows whose
# `quality` is outside the catalog's range. Seven exercises, rising: read bronze with
# Spark, write silver as Spark's own table, add the feature in Spark, prove Polars
# computes the same rows, then make the feature incremental in three steps that build
# on each other: one batch into silver exactly once, only the feature rows that batch
# touched, and the stream that runs both for every new bronze version.
#
# **You will be able to** read a writer-owned table with Spark without writing it,
# write Spark's own Delta tables through the guard, build a gold table with a Spark
# group-by, prove two engines agree with a fingerprint, and update a gold table
# incrementally with MERGE and Delta's streaming source.
#
# **Time:** about 70 minutes. **Prerequisites:** lesson 06
# (`notebooks/06_spark_workhorse`): every API you need is shown there, and each hint
# names its section. The stack running (`make up`) and Spark's jars resolved
# (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The checks compute
# the truth from bronze with Polars and read what Spark wrote with delta-rs; from
# exercise 5 on they call your functions on tables they built, like a scheduler. A check
# says `PASSED`, or what it found and a hint: the first failure gives the **concept**,
# the second the **API**, the third the **call**. Ask for a tier any time with
# `hint("lab06.ex3", 2)`.
#
# **Every exercise stands alone.** The setup cell writes what each exercise starts from
# (exercise 3 gets a silver table, exercise 6 a silver table that already holds its
# batch, ...), so no exercise needs another's result, though later ones reuse the
# functions you wrote. `lab.reset("ex6")` puts back exercise 6's tables (and only
# them) and restarts its hints. Spark starts once per kernel (10 to 40 s); every cell
# after that reuses it.

# %% tags=["parameters"]
PREFIX = "lab06_"  # table names start with this
ROWS = 30_000  # clean bronze rows (3 sessions, 64 channels each)

# %%
import time

import polars as pl
from delta.tables import DeltaTable as SparkDelta
from pyspark.sql import functions as F

import neuralake
from neuralake.catalog.examples import neuro
from neuralake.lab.graders import hint, lab06  # noqa: F401 (hint: yours to call when stuck)
from neuralake.spark import compare, elt, guard, polars_elt

s = neuralake.settings()
opts = s.storage_options
started = time.perf_counter()
sp = neuralake.spark.session(s)
lab = lab06.setup(s, prefix=PREFIX, rows=ROWS)
print(f"Spark and every exercise's tables ready in {time.perf_counter() - started:.0f} s")
bronze_path = guard.spark_path(lab.bronze_uri)
print(f"bronze: {lab.bronze_uri}\nsilver to write: {lab.silver_uri}")

# %% [markdown]
# ## Exercise 1 · Read the writer's table
#
# With Spark, count the bronze rows that repeat a Kafka message bronze already holds
# (the replay). Store the count in `duplicates` (an int).
#
# *Why it matters:* every later number (samples, spikes) is wrong by exactly this many
# rows if the job does not remove them, and the values alone cannot tell a replayed
# message from a new one.

# %% tags=["solution"]
# Store in duplicates (an int) how many bronze rows repeat a Kafka message, using Spark.
bronze = sp.read.format("delta").load(bronze_path)
duplicates = bronze.count() - bronze.dropDuplicates(["kafka_partition", "kafka_offset"]).count()

# %%
lab06.check_duplicates(lab, duplicates)

# %% [markdown]
# ## Exercise 2 · Silver, Spark's own table
#
# Bronze belongs to the streaming writer: the guard refuses Spark's writes to it (run
# the next cell). Write **silver** to `lab.silver_uri` instead: one row per Kafka
# message, typed like the ELT's silver, without the rows the catalog's checks for
# `neural_signals` reject, partitioned by `date`, through the guard's write path.
#
# *Why it matters:* Spark's Delta has no conditional-put commit on S3; a Spark write
# racing the writer could silently drop one of its commits. Spark's results go to
# Spark's tables.

# %%
try:
    guard.write_delta(sp.range(1), lab.bronze_uri, s)
except guard.WriterOwnedTableError as error:
    print(error)

# %% tags=["solution"]
# Write silver to lab.silver_uri with Spark: deduplicated, typed, checked, partitioned by date.
bronze = sp.read.format("delta").load(bronze_path)
silver = elt.clean(bronze, elt.row_checks(neuro.neural_signals.checks))
guard.write_delta(silver, lab.silver_uri, s, mode="overwrite", partition_by=["date"])

# %%
lab06.check_silver(lab)

# %% [markdown]
# ## Exercise 3 · The new gold feature, in Spark
#
# Write `channel_features_spark(silver)`: a Spark DataFrame with one row per
# `session_id`, `date` and `channel`, and the columns `samples` (rows, long), `spikes`
# (spike rows, long) and `rms_uv` (the square root of the mean of `voltage_uv²`,
# double). Then write its result over the silver the lab gives you
# (`lab.path("given_silver")`, Spark's address of it) to `lab.features_uri`,
# partitioned by `date`. Exercise 6 reuses the function.


# %% tags=["solution"]
# Define channel_features_spark(silver), then write its result over the given silver
# to lab.features_uri.
def channel_features_spark(silver):
    return silver.groupBy("session_id", "date", "channel").agg(
        F.count(F.lit(1)).alias("samples"),
        F.sum(F.col("spike").cast("long")).alias("spikes"),
        F.sqrt(F.avg(F.col("voltage_uv") * F.col("voltage_uv"))).alias("rms_uv"),
    )


given = sp.read.format("delta").load(lab.path("given_silver"))
features = channel_features_spark(given)
guard.write_delta(features, lab.features_uri, s, mode="overwrite", partition_by=["date"])

# %%
lab06.check_features(lab, channel_features_spark)

# %% [markdown]
# ## Exercise 4 · Prove Spark and Polars agree
#
# Write `polars_channel_features(bronze)`: from a `pl.LazyFrame` of bronze, the same
# feature in Polars (a `pl.DataFrame` with the same six columns). Then compare its
# fingerprint with the fingerprint of the feature table Spark computed from bronze
# (`lab.uri("spark_features")`, written by the setup cell), floats rounded to 6
# decimals, and store the result in `agree` (a bool).
#
# *Why it matters:* the cold path runs on Spark and the notebooks on Polars; if they
# disagree on one number, nobody can say which dashboard is right. A fingerprint over
# every row and column is a proof, not a spot check.


# %% tags=["solution"]
# Define polars_channel_features(bronze) -> pl.DataFrame, then store in agree whether
# its fingerprint equals that of Spark's table (compare.fingerprint(..., decimals=6)).
def polars_channel_features(bronze: pl.LazyFrame) -> pl.DataFrame:
    return (
        polars_elt.clean(bronze, neuro.neural_signals.checks)
        .group_by("session_id", "date", "channel")
        .agg(
            samples=pl.len().cast(pl.Int64),
            spikes=pl.col("spike").cast(pl.Int64).sum(),
            rms_uv=(pl.col("voltage_uv") ** 2).mean().sqrt(),
        )
        .collect()
    )


mine = polars_channel_features(pl.scan_delta(lab.bronze_uri, storage_options=opts))
by_spark = pl.read_delta(lab.uri("spark_features"), storage_options=opts).select(mine.columns)
agree = compare.fingerprint(mine, decimals=6) == compare.fingerprint(by_spark, decimals=6)
print(f"{mine.height} rows; same fingerprint: {agree}")

# %%
lab06.check_agree(lab, polars_channel_features, agree)

# %% [markdown]
# ## Exercise 5 · Incremental, step 1: one batch into silver, exactly once
#
# A job that recomputes everything gets slower every day. The incremental job handles
# one **micro-batch** of new bronze rows at a time, and a batch can hold what bronze
# always may: messages silver already has (a replay) and rows the catalog's checks
# reject. Write `merge_into_silver(batch, silver_path)`: given a Spark DataFrame of
# bronze rows and Spark's address of a silver table, it adds to silver every clean
# message silver does not hold yet, and nothing else, in one commit. Merging the same
# batch twice must leave silver as the first merge did.
#
# The check builds a silver table and a batch (each time it runs), calls your function
# twice, and reads silver's rows and commits.


# %% tags=["solution"]
# Define merge_into_silver(batch, silver_path): the batch's clean, new messages into silver.
def merge_into_silver(batch, silver_path: str) -> None:
    clean = elt.clean(batch, elt.row_checks(neuro.neural_signals.checks))
    same_message = " AND ".join(
        f"s.{c} = b.{c}" for c in ["kafka_partition", "kafka_offset", "date"]
    )
    (
        SparkDelta.forPath(batch.sparkSession, silver_path)
        .alias("s")
        .merge(clean.alias("b"), same_message)
        .whenNotMatchedInsertAll()
        .execute()
    )


# %%
lab06.check_merge_silver(lab, merge_into_silver)

# %% [markdown]
# ## Exercise 6 · Incremental, step 2: only the feature rows the batch touched
#
# Silver now holds the batch. Write `refresh_features(batch, silver_path,
# features_path)`: it brings the feature table up to date for that batch, recomputing
# (with your `channel_features_spark`) only the (session, day, channel) rows the batch
# touched, from silver, and writing them into the feature table in one commit that
# replaces the stale rows and adds new ones. Every other row stays as it is.
#
# The check gives your function a silver table that already holds the batch and a
# feature table from before it, then compares the feature table with the truth and
# reads the commit's metrics: how many rows it merged.
#
# *Why it matters:* a feature row depends on every sample of its key, not only the
# new ones; recomputing all keys costs the whole table, recomputing the batch alone is
# wrong.


# %% tags=["solution"]
# Define refresh_features(batch, silver_path, features_path): recompute the touched
# (session_id, date, channel) rows from silver and MERGE them into the feature table.
FEATURE_KEY = ["session_id", "date", "channel"]


def refresh_features(batch, silver_path: str, features_path: str) -> None:
    spark = batch.sparkSession
    clean = elt.clean(batch, elt.row_checks(neuro.neural_signals.checks))
    touched = clean.select(*FEATURE_KEY).distinct()
    silver = spark.read.format("delta").load(silver_path)
    fresh = channel_features_spark(silver.join(touched, FEATURE_KEY, "left_semi"))
    (
        SparkDelta.forPath(spark, features_path)
        .alias("f")
        .merge(fresh.alias("n"), " AND ".join(f"f.{c} = n.{c}" for c in FEATURE_KEY))
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


# %%
lab06.check_refresh(lab, refresh_features)

# %% [markdown]
# ## Exercise 7 · Stretch: the stream that runs both steps
#
# Write `run_incremental()`: each call processes the bronze versions of
# `lab.path("stream_bronze")` that no earlier call processed, remembering its progress
# at `lab.checkpoint`, and for each micro-batch runs your two steps on
# `lab.path("stream_silver")` and `lab.path("stream_features")`. Then it returns.
#
# The check puts the stream's tables back as setup left them (no checkpoint), calls
# your function once to catch up (the first call reads every bronze version), then
# adds new data for one session to the stream's bronze and calls it again, and
# reads the commits: only MERGEs, touching only the new data's keys. Then it calls it
# once more with nothing new: nothing may be committed.
#
# *Why it matters:* a cold path that reads only new versions costs what the new data
# costs, and a scheduler can call it as often as it likes.


# %% tags=["solution"]
# Define run_incremental(): an AvailableNow stream over the stream's bronze, both steps
# per micro-batch, its progress at lab.checkpoint.
def process(batch, batch_id: int) -> None:
    merge_into_silver(batch, lab.path("stream_silver"))
    refresh_features(batch, lab.path("stream_silver"), lab.path("stream_features"))


def run_incremental() -> None:
    query = (
        sp.readStream.format("delta")
        .load(lab.path("stream_bronze"))
        .writeStream.foreachBatch(process)
        .option("checkpointLocation", lab.checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


# %%
lab06.check_stream(lab, run_incremental)

# %% [markdown]
# ## Takeaways
#
# - Spark reads the writer's tables and writes its own, through the guard.
# - A gold feature is a group-by on the key the question asks about, computed from
#   deduplicated, checked silver.
# - Two engines agree when their fingerprints over every row do; round only the floats
#   they computed.
# - Incremental = a MERGE that inserts only unseen messages + a MERGE of the feature
#   rows the batch touched, recomputed from silver + the streaming source's checkpoint
#   (which bronze versions are done). That is what `elt.run` does for the lesson's gold.
#
# Next: the benchmarks (`notebooks/07_benchmarks`) compare the engines on TPC-H.
