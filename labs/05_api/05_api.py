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
# # Lab 05 · The hot path
#
# A dashboard team needs, for any recording session, numbers per electrode channel,
# fast, from Python and from a PostgreSQL client. You have the bronze table
# (`date`-partitioned, like the writer's) and the tables around it. Five exercises, each
# a decision the lesson's measurements prepare you for: what to serve, how ROAPI should
# hold each table, the right question in SQL over the PostgreSQL wire, a file layout a
# query can prune, and a latency budget that only the right choices meet.
#
# **You will be able to** design a serving table for a query, choose ROAPI's provider or
# memory mode per table from how it is read and written, ask ROAPI a question over the
# PostgreSQL wire protocol, lay out a provider table so its files are skipped, and meet
# a p50/p95 budget measured over hundreds of calls.
#
# **Time:** about 60 minutes. **Prerequisites:** lesson 05
# (`notebooks/05_serving_with_roapi`) and section 7 of lesson 01 (z-order); every API
# you need is shown there, and each hint names its section.
# The stack running (`make up`).
#
# **How it is graded.** After each exercise, run its **check** cell. The checks read
# the tables with Polars and start their own ROAPI on free ports for as long as the
# check runs (the stack's ROAPI is not touched): they serve your declarations, call
# your functions, read `EXPLAIN ANALYZE` and time the calls themselves. A check says
# `PASSED`, or what it found and a hint: the first failure gives the **concept**, the
# second the **API**, the third the **call**. Ask for a tier any time with
# `hint("lab05.ex2", 2)`.
#
# **Every exercise stands alone.** The setup cell writes every exercise's tables, so
# you may do them in any order. `lab.reset("ex4")` puts back exercise 4's table (and
# only it) and restarts its hints.
#
# **Trying a function before its check.** `with lab05.serving(lab) as api:` runs a
# ROAPI serving the summary (`lab.serving`) and bronze until the block ends; `api.http`
# and `api.postgres` are its addresses.

# %% tags=["parameters"]
PREFIX = "lab05_"  # table names start with this
ROWS = 50_000  # rows of the bronze table

# %%
import subprocess
import time

import polars as pl
from deltalake import DeltaTable

import neuralake
from neuralake import delta
from neuralake.catalog import DeltalakeTable
from neuralake.lab.graders import hint, lab05  # noqa: F401 (hint: yours to call when stuck)

s = neuralake.settings()
opts = s.storage_options
started = time.perf_counter()
lab = lab05.setup(s, prefix=PREFIX, rows=ROWS)
print(f"every exercise's tables written in {time.perf_counter() - started:.1f} s")
print(f"bronze: {lab.bronze_uri}\nsummary to write: {lab.summary_uri}")
pl.scan_delta(lab.bronze_uri, storage_options=opts).head(3).collect()

# %% [markdown]
# ## Exercise 1 · A serving table
#
# The dashboard asks, again and again, for one session's channels: how many samples,
# how many spikes, the mean voltage. Write the Delta table at `lab.summary_uri` that
# answers it with a read of a few rows: columns `session_id`, `channel`, `samples`
# (Int64), `spikes` (Int64) and `mean_uv` (Float64). Decide its grain and whether to
# partition it, knowing that exercise 2 wants to hold tables like it in ROAPI's memory.
#
# *Why it matters:* the question then touches 64 rows of this table instead of every
# sample of the bronze table, each time it is asked.

# %% tags=["solution"]
# Write lab.summary_uri from lab.bronze_uri: session_id, channel, samples, spikes, mean_uv.
(
    pl.scan_delta(lab.bronze_uri, storage_options=opts)
    .group_by("session_id", "channel")
    .agg(
        samples=pl.len().cast(pl.Int64),
        spikes=pl.col("spike").sum().cast(pl.Int64),
        mean_uv=pl.col("voltage_uv").mean().cast(pl.Float64),
    )
    .collect()
    .write_delta(lab.summary_uri, mode="overwrite", storage_options=opts)
)

# %%
lab05.check_summary(lab)

# %% [markdown]
# ## Exercise 2 · A serving mode for each table
#
# Four tables are to be served. What you know about them:
#
# | table | partitioned by | how it changes | how it is read |
# |---|---|---|---|
# | `lab.bronze` | `date` | the writer commits every second | the last minute of a session, a few queries a second |
# | `lab.serving` (the summary) | nothing | rewritten every 10 minutes | thousands of times a minute |
# | `lab.devices` | nothing | 10 rows, changed monthly | joined into most dashboard queries |
# | `lab.alerts` | nothing | an alerting job commits every second, for good | a few times an hour |
#
# Store in `declared` a list of four catalog `DeltalakeTable`s, one per table, named as
# the table (the warehouse holds them under those names), each declared with its
# partition columns and the ROAPI mode you choose for it. The check serves your
# declarations through the catalog's ROAPI config and counts every table through it.
#
# *Why it matters:* the wrong mode fails to load, re-reads a growing table every few
# seconds, or sends thousands of queries a minute to S3.

# %% tags=["solution"]
# Store in declared four DeltalakeTables (lab.bronze, lab.serving, lab.devices, lab.alerts).
declared = [
    DeltalakeTable(lab.bronze, partition_columns=["date"]),  # partitioned: provider only
    DeltalakeTable(lab.serving, roapi_memory_table=True),  # small, read all the time
    DeltalakeTable(lab.devices, roapi_memory_table=True),  # tiny, nearly constant
    DeltalakeTable(lab.alerts),  # grows every second, read rarely: a reload would re-read it
]

# %%
lab05.check_modes(lab, declared)

# %% [markdown]
# ## Exercise 3 · The right question, over the PostgreSQL wire
#
# The dashboard's driver speaks PostgreSQL. It wants the five channels of a session
# with the highest **spike rate** (spikes per sample), highest first, ties broken by the
# lower channel number, each with its rate. Write `top_spike_rate(postgres, session_id,
# n=5)`: given ROAPI's PostgreSQL address (`"host:port"`), it asks the summary
# `lab.serving` with `psql` and returns a list of `(channel, rate)` tuples, an int and
# a float.
#
# The check starts a ROAPI, calls your function for two sessions and compares with the
# summary. To try it first: `with lab05.serving(lab) as api:
# print(top_spike_rate(api.postgres, lab.session))`.
#
# *Why it matters:* any PostgreSQL client can query the lakehouse, and SQL's rules
# (types, ordering, ties) decide whether the dashboard shows the right channels.


# %% tags=["solution"]
# Define top_spike_rate(postgres, session_id, n=5) -> list of (channel, rate), with psql.
def top_spike_rate(postgres: str, session_id: int, n: int = 5) -> list[tuple[int, float]]:
    host, port = postgres.rsplit(":", 1)
    sql = (
        f"SELECT channel, CAST(spikes AS DOUBLE) / samples AS rate FROM {lab.serving} "
        f"WHERE session_id = {session_id} ORDER BY rate DESC, channel LIMIT {n}"
    )
    out = subprocess.run(
        ["psql", f"host={host} port={port} user=roapi dbname=roapi sslmode=disable",
         "--no-psqlrc", "-At", "-F,", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    return [(int(c), float(r)) for c, r in (line.split(",") for line in out.splitlines())]


# %%
lab05.check_rates(lab, top_spike_rate)

# %% [markdown]
# ## Exercise 4 · A layout the session query can prune
#
# Some questions need the raw samples, so they go to a provider table. The table at
# `lab.layout_uri` holds bronze's rows as 16 small files, as the writer leaves them
# between compactions, and the dashboard's query is
# `SELECT channel, count(voltage_uv) ... WHERE session_id = <s> GROUP BY channel`.
# Change the table's layout (not its rows) so that this query opens **at most a third
# of the table's files** for any session.
#
# The check serves the table with a ROAPI of its own and reads `files_scanned` from
# `EXPLAIN ANALYZE` for five sessions. It also compares the rows with the ones the
# table started with.
#
# *Why it matters:* a provider pays for every file it opens, on every query; a layout
# decides which files a query can skip without opening them.

# %%
print(delta.file_stats(DeltaTable(lab.layout_uri, storage_options=opts), "session_id"))

# %% tags=["solution"]
# Rewrite lab.layout_uri's files (same rows) so a session's query opens at most 1/3 of them.
table_bytes = delta.inspect(lab.layout_uri, opts)["bytes"][0]
zorder = DeltaTable(lab.layout_uri, storage_options=opts).optimize.z_order(
    ["session_id"], target_size=table_bytes // 16
)
print(f"{zorder['numFilesRemoved']} files -> {zorder['numFilesAdded']} files")

# %%
lab05.check_layout(lab)

# %% [markdown]
# ## Exercise 5 · Stretch: within budget
#
# The dashboard's objective for "spikes per channel of a session": over 300 calls, p50
# under 30 ms and p95 under 100 ms, on this machine as busy as it is. Choose a table to
# serve and how ROAPI holds it (`fast_table`, a `DeltalakeTable`), and write
# `channel_spikes(client, session_id)`: given a `RoapiClient` connected to a ROAPI
# serving `fast_table`, it returns a Polars DataFrame with columns `channel` and
# `spikes`, ordered by channel, typed as the table stores them.
#
# The check serves `fast_table` as you declared it, compares one answer with bronze,
# then times 300 calls over every session and prints what it measured.
#
# *Why it matters:* a latency objective is met by design (what is read, from where),
# and shown with a distribution measured under the conditions it must hold in.

# %% tags=["solution"]
# Declare fast_table; define channel_spikes(client, session_id) -> pl.DataFrame.
fast_table = DeltalakeTable(lab.serving, roapi_memory_table=True)


def channel_spikes(client, session_id: int) -> pl.DataFrame:
    return client.sql(
        f"SELECT channel, spikes FROM {lab.serving} "
        f"WHERE session_id = {session_id} ORDER BY channel"
    )


# %%
lab05.check_budget(lab, fast_table, channel_spikes)

# %% [markdown]
# ## Takeaways
#
# - A serving table turns an aggregate over every sample into a read of a few rows.
# - Provider mode pays per query, memory mode per reload: memory for small tables that
#   are read all the time and change rarely; provider for partitioned tables and for
#   tables that change often.
# - SQL answers what you asked: an integer divided by an integer is an integer.
# - A provider skips files only when the layout gives them narrow min/max ranges for
#   the column a query filters on; compaction alone does not.
# - A budget is met with a distribution (p50 and p95 over hundreds of calls), measured
#   under the same conditions as the thing it is compared with.
#
# Next: lesson 06 (`notebooks/06_spark_workhorse`), the cold path: Spark on the same
# tables, and lab 06.
