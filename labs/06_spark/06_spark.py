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
# # Lab 06 · The cold path: a new gold feature, incremental, in two engines
#
# The neuroscience team wants one number per electrode before they trust a recording:
# for every session, day and **channel**, the clean samples, the spikes and the **RMS
# voltage** (`sqrt(mean(voltage_uv²))`: a dead electrode is near 0, a noisy one far
# above its neighbours). You have the writer's bronze table, with what real bronze
# holds: an upstream replay (the same Kafka messages twice) and a few rows whose
# `quality` is outside the catalog's range. Five exercises: read bronze with Spark,
# write silver as Spark's own table, add the feature in Spark, keep it up to date
# incrementally, and prove Polars computes the same rows.
#
# **You will be able to** read a writer-owned table with Spark without writing it,
# write Spark's own Delta tables through the guard, build a gold table with a Spark
# group-by, update it incrementally with Delta's streaming source and MERGE, and prove
# two engines agree with a fingerprint.
#
# **Time:** about 50 minutes. **Prerequisites:** lesson 06
# (`notebooks/06_spark_workhorse`): every API you need is shown there, and each hint
# names its section. The stack running (`make up`) and Spark's jars resolved
# (`make setup`).
#
# **How it is graded.** After each exercise, run its **check** cell. The checks compute
# the truth from bronze with Polars and read what Spark wrote with delta-rs; exercise
# 4's check adds new bronze data and calls your function, like a scheduler. A check
# says `PASSED`, or what it found and a hint: the first failure gives the **concept**,
# the second the **API**, the third the **call**. Ask for a tier any time with
# `hint("lab06.ex3", 2)`.
#
# **Starting over.** The setup cell rebuilds everything; `lab.reset("ex2")` drops
# silver, `lab.reset("ex3")` drops the feature table, `lab.reset("ex4")` forgets the
# stream's progress; each restarts that exercise's hints. Spark starts once per kernel
# (10 to 40 s); every cell after that reuses it.

# %% tags=["parameters"]
PREFIX = "lab06_"  # table names start with this
ROWS = 30_000  # clean bronze rows (3 sessions, 64 channels each)

# %%
import polars as pl
from delta.tables import DeltaTable as SparkDelta
from pyspark.sql import functions as F

import neuralake
from neuralake.catalog.examples import neuro
from neuralake.labs import hint, lab06  # noqa: F401 (hint: yours to call when stuck)
from neuralake.spark import compare, elt, guard, polars_elt

s = neuralake.settings()
opts = s.storage_options
lab = lab06.setup(s, prefix=PREFIX, rows=ROWS)
sp = neuralake.spark.session(s)
bronze_path = guard.spark_path(lab.bronze_uri)
print(f"bronze: {lab.bronze_uri}\nsilver to write: {lab.silver_uri}")
print(f"feature table to write: {lab.features_uri}")

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
    print(str(error)[:160], "...")

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
# double). Then write its result over all of silver to `lab.features_uri`,
# partitioned by `date`. You will reuse the function in exercise 4.


# %% tags=["solution"]
# Define channel_features_spark(silver), then write its result to lab.features_uri.
def channel_features_spark(silver):
    return silver.groupBy("session_id", "date", "channel").agg(
        F.count(F.lit(1)).alias("samples"),
        F.sum(F.col("spike").cast("long")).alias("spikes"),
        F.sqrt(F.avg(F.col("voltage_uv") * F.col("voltage_uv"))).alias("rms_uv"),
    )


silver = sp.read.format("delta").load(guard.spark_path(lab.silver_uri))
features = channel_features_spark(silver)
guard.write_delta(features, lab.features_uri, s, mode="overwrite", partition_by=["date"])

# %%
lab06.check_features(lab, channel_features_spark)

# %% [markdown]
# ## Exercise 4 · Make it incremental
#
# Write `update_features()`. Each call must process only the bronze versions not
# processed by an earlier call (keep the stream's checkpoint at `lab.checkpoint`), and
# for each micro-batch: clean it, MERGE it into silver (insert only the Kafka messages
# silver does not have), recompute `channel_features_spark` for the (session, day,
# channel) keys the batch touched, from silver, and MERGE those rows into the feature
# table. It builds on silver (exercise 2) and the feature table (exercise 3).
#
# The check calls your function once to catch up (its first run reads every bronze
# version), then adds new data for one session to bronze, calls it again and looks at
# the commits: only MERGEs, touching only the new data's keys. Then it calls it once
# more with nothing new: nothing may be committed.
#
# *Why it matters:* a cold path that recomputes everything gets slower every day; one
# that reads only new versions costs what the new data costs.

# %% tags=["solution"]
# Define update_features(): AvailableNow over bronze, a MERGE into silver and one into
# the feature table per micro-batch, for the touched keys only.
CHECKS = elt.row_checks(neuro.neural_signals.checks)
FEATURE_KEY = ["session_id", "date", "channel"]


def merge_batch(batch, batch_id: int) -> None:
    spark = batch.sparkSession
    good = elt.clean(batch, CHECKS)
    if good.isEmpty():
        return
    silver_path = guard.spark_path(lab.silver_uri)
    on_message = " AND ".join(f"s.{c} = b.{c}" for c in ["kafka_partition", "kafka_offset", "date"])
    (
        SparkDelta.forPath(spark, silver_path)
        .alias("s")
        .merge(good.alias("b"), on_message)
        .whenNotMatchedInsertAll()
        .execute()
    )
    touched = good.select(*FEATURE_KEY).distinct()
    silver = spark.read.format("delta").load(silver_path)
    fresh = channel_features_spark(silver.join(touched, FEATURE_KEY, "left_semi"))
    (
        SparkDelta.forPath(spark, guard.spark_path(lab.features_uri))
        .alias("f")
        .merge(fresh.alias("n"), " AND ".join(f"f.{c} = n.{c}" for c in FEATURE_KEY))
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def update_features() -> None:
    for uri in (lab.silver_uri, lab.features_uri):  # Spark's own tables, asked first
        guard.ensure_spark_may_write(uri, s)
    query = (
        sp.readStream.format("delta")
        .load(bronze_path)
        .writeStream.foreachBatch(merge_batch)
        .option("checkpointLocation", lab.checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


# %%
lab06.check_incremental(lab, update_features)

# %% [markdown]
# ## Exercise 5 · Prove Spark and Polars agree
#
# Write `polars_channel_features(bronze)`: from a `pl.LazyFrame` of bronze, the same
# feature in Polars (a `pl.DataFrame` with the same six columns). Then compare its
# fingerprint with the fingerprint of Spark's table at `lab.features_uri`, floats
# rounded to 6 decimals, and store the result in `agree` (a bool).
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
by_spark = pl.read_delta(lab.features_uri, storage_options=opts).select(mine.columns)
agree = compare.fingerprint(mine, decimals=6) == compare.fingerprint(by_spark, decimals=6)
print(f"{mine.height} rows; same fingerprint: {agree}")

# %%
lab06.check_agree(lab, polars_channel_features, agree)

# %% [markdown]
# ## Takeaways
#
# - Spark reads the writer's tables and writes its own, through the guard.
# - A gold feature is a group-by on the key the question asks about, computed from
#   deduplicated, checked silver.
# - Incremental = the streaming source's checkpoint (which bronze versions are done) +
#   MERGEs on the keys new data touched.
# - Two engines agree when their fingerprints over every row do; round only the floats
#   they computed.
#
# Next: the benchmarks (`notebooks/07_benchmarks`) compare the engines on TPC-H.
