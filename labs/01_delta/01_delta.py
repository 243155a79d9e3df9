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
# # Lab 01 · Delta Lake, when things go wrong
#
# Six exercises on real Delta tables, each a situation a data engineer meets in the
# first month on a lakehouse: an unexplained change, a bad overwrite, a replayed
# batch, a slow dashboard, two writers racing, a job that crashes and restarts.
#
# **You will be able to**
#
# 1. audit a table's history and read any earlier version;
# 2. undo a bad write with `restore`, keeping the history honest;
# 3. land a batch without duplicates with an insert-only `MERGE`;
# 4. choose a partitioning for a query and prove, from the log, which files it skips;
# 5. recover from a conflicting commit without losing the other writer's change;
# 6. (stretch) make a micro-batch append idempotent with transaction identifiers.
#
# **Time:** about 75 minutes, plus 20 for the stretch exercise.
# **Prerequisites:** lessons 01 and 01b (`notebooks/01_delta_lake_fundamentals`,
# `notebooks/01b_delta_lake_in_production`) and the stack running (`make up`).
#
# **How it is graded.** After each exercise, run its **check** cell. The check reads the
# table itself (its data, its older versions, its commits, what a query opened) and
# says `PASSED`, or what it found and a hint. Hints come in three tiers: the first
# failure gives the **concept**, the second the **API** to look up, the third the
# **call** itself. Ask for a tier at any time with `hint("lab01.ex3", 2)`.
#
# **Starting over.** Each exercise has its own tables. `lab.reset("ex3")` rebuilds only
# exercise 3's and restarts its hints; the setup cell rebuilds everything.

# %% tags=["parameters"]
PREFIX = "lab01_"  # table names start with this
SEED = 1  # the simulated study; change it for different data

# %%
import time

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

import neuralake
from neuralake import delta
from neuralake.lab.graders import hint, lab01  # noqa: F401 (hint: yours to call when stuck)

s = neuralake.settings()
start = time.perf_counter()
lab = lab01.setup(s, prefix=PREFIX, seed=SEED)
print(f"profile {s.profile}; tables under {s.table_uri(PREFIX)}*")
print(f"six exercises set up in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## Exercise 1 · Which commit changed a value?
#
# Session 1's `task` is not what was recorded on the day. Find the version of
# `lab.ex1.uri` whose commit changed it, and store that version number in `changed_in`.
#
# *Why it matters:* "who changed this, and when?" is the first question of every data
# incident. On a Delta table the answer is in the log, for every version, without any
# audit system.

# %%
delta.history(lab.ex1.uri, s.storage_options).select("version", "operation", "parameters")

# %% tags=["solution"]
# Store in changed_in the version (an int) whose commit changed session 1's task.
latest = DeltaTable(lab.ex1.uri, storage_options=s.storage_options).version()
tasks = [
    pl.read_delta(lab.ex1.uri, version=v, storage_options=s.storage_options).filter(
        pl.col("session_id") == 1
    )["task"][0]
    for v in range(latest + 1)
]
changed_in = next(v for v in range(1, latest + 1) if tasks[v] != tasks[v - 1])

# %%
lab01.check_changed_in(lab, changed_in)

# %% [markdown]
# ## Exercise 2 · Undo a bad write
#
# A backfill job overwrote `lab.ex2.uri` with two half-empty rows, and somebody then
# "fixed" them by hand. Bring the table back to its last good state. Find that state
# yourself: not every commit before the bad one is bad.
#
# *Why it matters:* a wrong overwrite is the most common lakehouse accident. Because
# the old files are still in storage (until `vacuum`), undoing it is one metadata
# commit, not a re-ingest, provided you pick the right version.

# %%
pl.read_delta(lab.ex2.uri, storage_options=s.storage_options)

# %% tags=["solution"]
# Make lab.ex2.uri hold its last good version again, in a commit that says what it did.
history = DeltaTable(lab.ex2.uri, storage_options=s.storage_options).history()
bad = min(
    c["version"]
    for c in history
    if c["operation"] == "WRITE" and c["operationParameters"].get("mode") == "Overwrite"
)
DeltaTable(lab.ex2.uri, storage_options=s.storage_options).restore(bad - 1)

# %%
lab01.check_restored(lab)

# %% [markdown]
# ## Exercise 3 · Land a replayed batch exactly once
#
# The spike detector crashed and its restart re-sent a batch, `lab.ex3.batch`. Part of
# it is already in `lab.ex3.uri`, and the batch repeats some of its own rows. Put every
# spike in the table **exactly once**, in a single `MERGE` commit, without touching the
# spikes already there.
#
# *Why it matters:* at-least-once delivery (Kafka, retries, restarts) is the norm, so
# every ingest must tolerate duplicates. Overwriting the whole table with a deduplicated
# copy would work once, but rewrites every file and races every other writer.

# %%
print(
    f"{lab.ex3.batch.height:,} rows in the batch, "
    f"{DeltaTable(lab.ex3.uri, storage_options=s.storage_options).count():,} in the table"
)
lab.ex3.batch.head()

# %% tags=["solution"]
# Merge lab.ex3.batch into lab.ex3.uri so that every spike is in the table exactly once.
spike_key = ["session_id", "channel", "timestamp"]
merged = (
    DeltaTable(lab.ex3.uri, storage_options=s.storage_options)
    .merge(
        lab.ex3.batch.unique(subset=spike_key),
        predicate=" AND ".join(f"t.{c} = s.{c}" for c in spike_key),
        source_alias="s",
        target_alias="t",
    )
    .when_not_matched_insert_all()
    .execute()
)
print({k: merged[k] for k in ("num_source_rows", "num_target_rows_inserted")})

# %%
lab01.check_deduplicated(lab)

# %% [markdown]
# ## Exercise 4 · Partition for the query, and prove files are skipped
#
# The dashboard reads one session at a time, `lab01.dashboard_query(lab, uri)`. The
# signals, `lab.ex4.source_uri`, were ingested from four implants at once, so every
# file holds rows of every session and the dashboard's query opens them all. Write a copy of the
# signals to `lab.ex4.target_uri`, partitioned so that the dashboard's query for
# `lab.ex4.session` skips as many files as it can without making the table a heap of
# tiny files. Then predict, from the new table's log alone, how many files that query
# skips, and store it in `files_skipped`: the check runs the query and compares.
#
# *Why it matters:* on S3 each file opened is a request and a footer read. The
# partitioning decides which queries can skip files, and it is hard to change later.

# %%
source = pl.DataFrame(
    DeltaTable(lab.ex4.source_uri, storage_options=s.storage_options).get_add_actions(flatten=True)
)
print(f"{source.height} files; session_id per file:")
source.select("path", "num_records", "min.session_id", "max.session_id")

# %%
print("distinct values per column:")
pl.read_delta(lab.ex4.source_uri, storage_options=s.storage_options).select(pl.all().n_unique())

# %% tags=["solution"]
# Write the signals to lab.ex4.target_uri, partitioned for the dashboard's query.
# Then store in files_skipped how many of the new table's files the query for
# lab.ex4.session skips, computed from the table's add actions.
signals = pl.read_delta(lab.ex4.source_uri, storage_options=s.storage_options)
write_deltalake(
    lab.ex4.target_uri,
    signals,
    mode="overwrite",
    schema_mode="overwrite",  # lets a re-run change the partitioning
    partition_by=["session_id"],
    storage_options=s.storage_options,
)
files = pl.DataFrame(
    DeltaTable(lab.ex4.target_uri, storage_options=s.storage_options).get_add_actions(flatten=True)
)
files_skipped = files.filter(pl.col("partition.session_id") != lab.ex4.session).height

# %%
lab01.check_partitioned(lab, files_skipped)

# %% [markdown]
# ## Exercise 5 · Recover from a conflicting commit
#
# Two jobs write `lab.ex5.uri`, the channel gains. Writer A applies a drift correction
# (every gain x `lab01.DRIFT`). Writer B, a moment earlier, doubled the gains of
# channels 0-7 after a headstage swap. A read the table before B committed, so its
# commit failed (below). Make A's change land **once**, on top of B's, so that both
# changes are in the table.
#
# *Why it matters:* Delta's concurrency is optimistic: writers do not lock, and a
# loser must redo its work on the new version. Retrying blindly, or writing back what
# was computed from the old version, silently undoes someone else's commit.

# %%
print(lab.ex5.error.splitlines()[0])
delta.history(lab.ex5.uri, s.storage_options).select("version", "operation", "parameters")

# %% tags=["solution"]
# Make writer A's drift correction (every gain x lab01.DRIFT) land once, after B's commit.
for attempt in range(1, 6):
    try:
        DeltaTable(lab.ex5.uri, storage_options=s.storage_options).update(
            updates={"gain": f"gain * {lab01.DRIFT}"}
        )
        print(f"committed on attempt {attempt}")
        break
    except CommitFailedError as error:
        print(f"attempt {attempt} lost a race, reading the table again: {error}")
else:
    raise RuntimeError("five attempts lost the race: is another job looping?")

# %%
lab01.check_conflict_resolved(lab)

# %% [markdown]
# ## Exercise 6 · Stretch: an idempotent micro-batch append
#
# The ingest job `lab.ex6.app_id` appends numbered micro-batches to `lab.ex6.uri`. It
# committed batches 1-3, crashed, and on restart replays batches 2-6
# (`lab.ex6.replay`, a list of `(batch_id, frame)`). Write
# `append_batch(uri, batch_id, frame)` that appends a batch only if the table has not
# recorded it yet, in the same commit that records it, and run it over the replay. The
# check then calls your function itself: with a batch that already landed (nothing may
# be committed) and with a new one, twice.
#
# No lookup in the data: a real stream has no unique key to compare on, and reading
# the table to find out would cost a scan per batch. Delta's answer is the transaction
# identifier (`txn` action) of the Delta protocol: see "Transaction Identifiers" in
# https://github.com/delta-io/delta/blob/master/PROTOCOL.md#transaction-identifiers.
# delta-rs writes one with `CommitProperties(app_transactions=[Transaction(app_id,
# version)])` and reads it back with `DeltaTable.transaction_version(app_id)`.
#
# *Why it matters:* this is how exactly-once streaming sinks (Spark Structured
# Streaming, the Kafka-to-Delta writer) survive restarts: the table itself remembers
# the last batch each writer committed, atomically with the data.


# %% tags=["solution"]
# Define append_batch(uri, batch_id, frame) that commits frame with its batch id unless
# the table already recorded that batch for lab.ex6.app_id, then replay lab.ex6.replay.
def append_batch(uri: str, batch_id: int, frame: pl.DataFrame) -> bool:
    """Append ``frame`` as batch ``batch_id``; False if the table already has it."""
    table = DeltaTable(uri, storage_options=s.storage_options)
    if (table.transaction_version(lab.ex6.app_id) or 0) >= batch_id:
        return False
    write_deltalake(
        uri,
        frame,
        mode="append",
        storage_options=s.storage_options,
        commit_properties=CommitProperties(
            app_transactions=[Transaction(lab.ex6.app_id, batch_id)]
        ),
    )
    return True


for batch_id, frame in lab.ex6.replay:
    appended = append_batch(lab.ex6.uri, batch_id, frame)
    print(f"batch {batch_id}: {'appended' if appended else 'skipped'}")

# %%
lab01.check_idempotent(lab, append_batch)

# %% [markdown]
# ## Takeaways
#
# - The log is the audit trail: every version stays readable until `vacuum`, so
#   "what changed, when" and "undo it" are reads and metadata commits, not restores
#   from backup.
# - `restore` re-adds the files of a good version in a new commit; the bad versions
#   stay in the history, which is what an incident review needs.
# - Ingest must be idempotent. Deduplicate inside a batch, and insert only what the
#   table lacks (`MERGE ... WHEN NOT MATCHED INSERT`), or record each batch with a
#   transaction identifier and skip what the table already has.
# - Partition on a low-cardinality column your queries filter on; check the result by
#   counting the files a query opens, not by guessing.
# - Optimistic concurrency means the loser redoes its work on the new version, once.
#   Never write back what was computed from a version that is no longer current.
#
# **Sources:** the Delta protocol (actions, `txn`, conflicts):
# https://github.com/delta-io/delta/blob/master/PROTOCOL.md; the delta-rs Python API
# (`merge`, `restore`, `CommitProperties`, `transaction_version`):
# https://delta-io.github.io/delta-rs/api/delta_table/
#
# Next: lesson 02, code as a catalog (`notebooks/02_code_as_a_catalog`).
