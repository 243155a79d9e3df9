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
# A dashboard team needs, for any recording session, the spike count of each channel,
# fast and from a PostgreSQL client as well as from Python. You have the bronze table
# (`date`-partitioned, like the writer's). Five exercises: build a serving table,
# declare both tables with the right ROAPI mode, serve them with no API code, answer
# from `psql`, and meet a latency budget with evidence.
#
# **You will be able to** choose a serving table and ROAPI mode for a query, serve a
# catalog through ROAPI, query it over the PostgreSQL wire protocol and from Python as
# Arrow, and prove a latency budget with percentiles.
#
# **Time:** about 45 minutes. **Prerequisites:** lesson 05
# (`notebooks/05_serving_with_roapi`): every API you need is shown there. The stack
# running (`make up`).
#
# **How it is graded.** After each exercise, run its **check** cell. The checks read
# the tables with Polars, ask ROAPI what it serves and time queries themselves. A check
# says `PASSED`, or what it found and a hint: the first failure gives the **concept**,
# the second the **API**, the third the **call**. Ask for a tier any time with
# `hint("lab05.ex2", 2)`.
#
# **Starting over.** The setup cell rebuilds the tables; `lab.reset("ex1")` drops the
# summary table and restarts exercise 1's hints.
#
# Note: exercise 3 restarts the stack's ROAPI on this lab's catalog.

# %% tags=["parameters"]
PREFIX = "lab05_"  # table names start with this
ROWS = 50_000  # rows of the bronze table

# %%
import subprocess
import types

import polars as pl

import neuralake
from neuralake.api import latency
from neuralake.api.client import RoapiClient
from neuralake.api.serve import serve
from neuralake.catalog import Catalog, DeltalakeTable, ModuleDatabase
from neuralake.labs import hint, lab05  # noqa: F401 (hint: yours to call when stuck)

s = neuralake.settings()
opts = s.storage_options
lab = lab05.setup(s, prefix=PREFIX, rows=ROWS)
print(f"bronze: {lab.bronze_uri}\nsummary to write: {lab.summary_uri}")
pl.scan_delta(lab.bronze_uri, storage_options=opts).head(3).collect()

# %% [markdown]
# ## Exercise 1 · A serving table
#
# Write the Delta table at `lab.summary_uri`: one row per `session_id` and `channel`,
# with `samples` (rows, Int64), `spikes` (spike rows, Int64) and `mean_uv` (mean
# voltage, Float64). Decide whether to partition it.
#
# *Why it matters:* the dashboard's question touches 64 rows of this table instead of
# every sample of the bronze table, each time it is asked.

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
# ## Exercise 2 · Declare both tables, each served the right way
#
# Declare `bronze_table` and `summary_table` as catalog `DeltalakeTable`s named `lab.bronze`
# and `lab.summary` (the warehouse holds them under those names). Choose for each how
# ROAPI should hold it: the bronze table keeps receiving commits and is partitioned; the
# summary is small.
#
# *Why it matters:* the wrong mode either fails to load or serves stale or slow
# answers.

# %% tags=["solution"]
# Define bronze_table and summary_table (neuralake.catalog.DeltalakeTable) with the right modes.
bronze_table = DeltalakeTable(lab.bronze, partition_columns=["date"])
summary_table = DeltalakeTable(lab.summary, roapi_memory_table=True)

# %%
lab05.check_declared(lab, bronze_table, summary_table)

# %% [markdown]
# ## Exercise 3 · Serve them, without writing an API
#
# Put both tables in a catalog (one database, `lab05`) and serve it through the stack's
# ROAPI.
#
# *Why it matters:* adding a table should be a catalog entry, not a deployment.

# %% tags=["solution"]
# Serve a catalog holding bronze_table and summary_table through the stack's ROAPI.
module = types.ModuleType("lab05")
module.bronze, module.summary = bronze_table, summary_table
module.__all__ = ["bronze", "summary"]
served = serve(Catalog({"lab05": ModuleDatabase(module)}), "lab05", s)

# %%
lab05.check_served(lab)

# %% [markdown]
# ## Exercise 4 · Ask from psql
#
# The dashboard's database driver speaks PostgreSQL. Use `psql` against ROAPI
# (`s.roapi_postgres`; user and database `roapi`) to get `(channel, spikes)` of session
# `lab.session` from the summary, ordered by channel. Store the rows in `psql_rows`, a
# list of tuples of ints.

# %% tags=["solution"]
# Store in psql_rows the (channel, spikes) tuples psql returns for session lab.session.
host, port = s.roapi_postgres.rsplit(":", 1)
sql = f"SELECT channel, spikes FROM {lab.summary} WHERE session_id = {lab.session} ORDER BY channel"
dsn = f"host={host} port={port} user=roapi dbname=roapi sslmode=disable"
out = subprocess.run(
    ["psql", dsn, "--no-psqlrc", "-At", "-F,", "-c", sql],
    capture_output=True,
    text=True,
    check=True,
).stdout
psql_rows = [tuple(int(v) for v in line.split(",")) for line in out.splitlines()]

# %%
lab05.check_psql(lab, psql_rows)

# %% [markdown]
# ## Exercise 5 · Stretch: within budget, with evidence
#
# Write `channel_spikes(session_id)` returning a Polars DataFrame with columns
# `channel` and `spikes` (ordered by channel) from ROAPI, typed as the table is (ask
# for Arrow, not JSON). Then time at least 200 calls over different sessions and store
# the milliseconds in `samples_ms`. The budget: your p99 must beat the p50 of the naive
# query (aggregating the bronze table per call), which the check measures as it runs.
#
# *Why it matters:* a latency claim without a distribution is a guess.

# %% tags=["solution"]
# Define channel_spikes(session_id) -> pl.DataFrame, and store >= 200 timings in samples_ms.
client = RoapiClient(settings=s)


def channel_spikes(session_id: int) -> pl.DataFrame:
    return client.sql(
        f"SELECT channel, spikes FROM {lab.summary} "
        f"WHERE session_id = {session_id} ORDER BY channel"
    )


samples_ms = latency.measure(channel_spikes, [1 + i % 100 for i in range(200)])
print(latency.percentiles(samples_ms))

# %%
lab05.check_budget(lab, channel_spikes, samples_ms)

# %% [markdown]
# ## Takeaways
#
# - A serving table turns an aggregate over every sample into a read of a few rows.
# - Provider mode for tables that change (and partitioned ones), memory mode for small
#   tables that the dashboard reads all the time.
# - One YAML file, written by the catalog, gives HTTP, PostgreSQL-wire and Flight SQL.
# - A budget is met with a distribution (p99 over hundreds of calls), measured under
#   the same conditions as the thing it is compared with.
#
# Next: the cold path, Spark on the same tables (lesson still being built).
