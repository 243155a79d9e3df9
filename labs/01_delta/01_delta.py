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
# # Lab 01 · Delta Lake
#
# Five exercises on a real Delta table. After each one, run the **check** cell below
# it: the check reads the table itself (its current version, its older versions, the
# files in storage) and either says `PASSED` or tells you what it found and what to
# do next. Lesson 01 (`notebooks/01_delta_lake_fundamentals`) shows every API you need.
#
# Stuck on a table? Run the setup cell again: it rebuilds both tables from scratch.

# %% tags=["parameters"]
PREFIX = "lab01_"  # table names start with this
ROWS = 200_000  # neural-signal rows
FILES = 14  # small files the signals start as

# %%
import polars as pl
from deltalake import DeltaTable, write_deltalake

import neuralake
from neuralake.labs import lab01

s = neuralake.settings()
lab = lab01.setup(s, prefix=PREFIX, rows=ROWS, files=FILES)
sessions_uri, signals_uri = lab.sessions_uri, lab.signals_uri
print(f"profile {s.profile}\nsessions: {sessions_uri}\nsignals:  {signals_uri}")
pl.read_delta(sessions_uri, storage_options=s.storage_options).sort("session_id")

# %% [markdown]
# ## Exercise 1 · Recover a deleted row
#
# Somebody deleted session 2 from `sessions`. Use the table's history to find the
# version before the delete, read session 2 from it, and put it back, leaving the other
# sessions as they are.

# %% tags=["solution"]
# Put session 2 back into sessions_uri, exactly as it was before the DELETE.
history = DeltaTable(sessions_uri, storage_options=s.storage_options).history()
deleted_at = next(c["version"] for c in history if c["operation"] == "DELETE")
before = pl.read_delta(sessions_uri, version=deleted_at - 1, storage_options=s.storage_options)
write_deltalake(
    sessions_uri,
    before.filter(pl.col("session_id") == 2),
    mode="append",
    storage_options=s.storage_options,
)

# %%
lab01.check_recovered(lab)

# %% [markdown]
# ## Exercise 2 · Which commit changed a value?
#
# Session 1's `task` is not what was recorded on the day. Find the version of
# `sessions` whose commit changed it, and store that version number in `changed_in`.

# %% tags=["solution"]
# Store in changed_in the version (an int) that changed session 1's task.
latest = DeltaTable(sessions_uri, storage_options=s.storage_options).version()
tasks = [
    pl.read_delta(sessions_uri, version=v, storage_options=s.storage_options).filter(
        pl.col("session_id") == 1
    )["task"][0]
    for v in range(latest + 1)
]
changed_in = next(v for v in range(1, latest + 1) if tasks[v] != tasks[v - 1])

# %%
lab01.check_changed_in(lab, changed_in)

# %% [markdown]
# ## Exercise 3 · Evolve the schema
#
# `lab.new_session` is a new session with a column the table does not have yet:
# `surgeon`. Append it so that the table gains the column and older sessions read it
# as null.

# %%
lab.new_session

# %% tags=["solution"]
# Append lab.new_session to sessions_uri, adding its new column to the table's schema.
write_deltalake(
    sessions_uri,
    lab.new_session,
    mode="append",
    schema_mode="merge",
    storage_options=s.storage_options,
)

# %%
lab01.check_evolved(lab)

# %% [markdown]
# ## Exercise 4 · Compact the small files
#
# The signals were ingested as many small files. Look at how many (`neuralake.delta.
# inspect` or `len(DeltaTable(...).file_uris())`), then compact the table below
# `lab01.MAX_FILES` files without changing a single row.

# %%
neuralake.delta.inspect(signals_uri, s.storage_options).select("version", "files", "rows")

# %% tags=["solution"]
# Compact signals_uri below lab01.MAX_FILES files.
DeltaTable(signals_uri, storage_options=s.storage_options).optimize.compact()

# %%
lab01.check_compacted(lab)

# %% [markdown]
# ## Exercise 5 · Vacuum
#
# Storage still holds every file that any older version of the signals used (the
# small files, and a whole earlier ingest). Delete the files the current version does
# not need. Look at a dry run first. (Retention 0 is for this lab only: in production
# keep the 7-day default, so that running readers never lose a file.)

# %% tags=["solution"]
# Vacuum signals_uri so that storage holds only the files the current version uses.
table = DeltaTable(signals_uri, storage_options=s.storage_options)
print(len(table.vacuum(retention_hours=0, enforce_retention_duration=False)), "files to delete")
table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)

# %%
lab01.check_vacuumed(lab)

# %% [markdown]
# Done: you recovered data by time travel, audited a table's history, evolved its
# schema, and fixed its small files. Next: lesson 02.
