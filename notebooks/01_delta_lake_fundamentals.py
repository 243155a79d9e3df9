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
# # 01 · Delta Lake fundamentals, on the stack's S3
#
# **Why.** An implant streams 256 channels at 10 kHz: 2.56 million samples per second
# per patient. Neuralink keeps such data as **Delta Lake tables on S3**: plain Parquet
# files plus a transaction log, so many writers and readers can share one table
# without a database server, and every change is a version you can go back to.
#
# In this lesson you will, on real object storage (MinIO when the stack is up, a local
# folder otherwise):
#
# 1. write, append and overwrite a table, and read its transaction log;
# 2. watch 8 writer processes append to one table at once, and see why S3
#    **conditional writes** make that safe;
# 3. see schema enforcement and evolution, time travel, MERGE, UPDATE and DELETE;
# 4. measure the small-file problem and fix it with `optimize` (compaction, z-order);
# 5. clean up with `vacuum`, speed up opening with checkpoints, and learn why every
#    timestamp must be UTC-aware.
#
# Every number below is measured when the notebook runs; none is typed in.

# %% tags=["parameters"]
ROWS = 500_000  # neural-signal rows to generate (rounded up to whole 102.4 ms blocks)
FILES = 24  # small files to write on purpose, for the optimize section
WRITERS = 8  # concurrent writer processes in the ACID section
COMMITS = 40  # tiny commits for the checkpoint section
SEED = 7

# %%
import json
import subprocess
import sys
import time
from datetime import timedelta

import boto3
import matplotlib.pyplot as plt
import polars as pl
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import SchemaMismatchError

import neuralake
from neuralake import datagen, delta

s = neuralake.settings()
print(f"profile: {s.profile}   warehouse: {s.warehouse_uri}")


def table(name: str) -> str:
    """This lesson's copy of a table: dropped first, so re-running starts clean."""
    uri = s.table_uri(f"l01_{name}")
    delta.drop_table(uri, s.storage_options)
    return uri


def timed(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


# %% [markdown]
# ## 1 · Write, append, overwrite
#
# `neuralake.datagen` simulates a study: patients, implants, sessions, a cursor the
# patient moves (the labels) and the neural signals, one row per (timestamp, channel).

# %%
sim = datagen.Simulation(rows=ROWS, sessions=2, seed=SEED)
start = time.perf_counter()
signals = sim.neural_signals()
seconds = time.perf_counter() - start
print(
    f"{signals.height:,} rows generated in {seconds:.2f} s ({signals.height / seconds:,.0f} rows/s)"
)
signals.head()

# %% [markdown]
# `write_deltalake` takes any Arrow-compatible data, Polars frames included.
# `mode="error"` (the default) refuses to write over an existing table; `"append"` adds
# files; `"overwrite"` replaces the table's contents **in a new version**.

# %%
signals_uri = table("signals")
first_session, second_session = signals.partition_by("session_id", maintain_order=True)

write_deltalake(signals_uri, first_session, storage_options=s.storage_options)
write_deltalake(signals_uri, second_session, mode="append", storage_options=s.storage_options)

dt = DeltaTable(signals_uri, storage_options=s.storage_options)
print("version", dt.version(), "| files", len(dt.file_uris()), "| rows", dt.count())
delta.history(signals_uri, s.storage_options).select("version", "operation", "parameters")

# %% [markdown]
# Reading is one line in Polars. `scan_delta` is lazy: filters are pushed into the scan.

# %%
per_session = (
    pl.scan_delta(signals_uri, storage_options=s.storage_options)
    .group_by("session_id")
    .agg(rows=pl.len(), spikes=pl.col("spike").sum(), mean_uv=pl.col("voltage_uv").mean())
    .sort("session_id")
    .collect()
)
per_session

# %% [markdown]
# An overwrite does not delete anything: it commits "remove these files, add those".
# The old files stay until `vacuum` (section 8), which is what makes time travel work.

# %%
time.sleep(1)  # a pause, so that section 5 can pick a moment between versions 1 and 2
write_deltalake(signals_uri, first_session, mode="overwrite", storage_options=s.storage_options)
dt = DeltaTable(signals_uri, storage_options=s.storage_options)
print("version", dt.version(), "| rows now", dt.count())
print("rows at version 1:", DeltaTable(signals_uri, 1, storage_options=s.storage_options).count())

# %% [markdown]
# ## 2 · The transaction log, `_delta_log/`
#
# A Delta table is a folder of Parquet files plus `_delta_log/`, one JSON file per
# version (`00000000000000000000.json`, ...). The table's state at version *n* is the
# replay of commits 0..*n*: a file is part of the table if it was `add`ed and not yet
# `remove`d. Nothing else (no server, no catalog) knows what the table contains.

# %%
delta.log_files(signals_uri, s.storage_options)

# %%
for action in delta.read_commit(signals_uri, 0, s.storage_options):
    kind, body = next(iter(action.items()))
    print(f"{kind:10s}", json.dumps(body)[:150])

# %% [markdown]
# Version 0 holds the `protocol` (which features a reader must understand), the
# `metaData` (schema, partition columns), one `add` per Parquet file (with row count
# and min/max statistics per column), and `commitInfo`. Version 2, the overwrite:

# %%
print(
    {
        kind: sum(kind in action for action in delta.read_commit(signals_uri, 2, s.storage_options))
        for kind in ("add", "remove", "commitInfo")
    }
)

# %% [markdown]
# ## 3 · ACID, live: 8 writers, one table
#
# Each process below opens the table and appends its own rows at the same instant.
# Committing version *n* means creating the object `_delta_log/<n>.json`. If two
# writers both try to create version 5, exactly one must win; the loser re-reads the
# log, checks that the winner's commit does not conflict with its own (two appends never
# do), and tries version 6. Nobody overwrites anybody.

# %%
acid_uri = table("acid")
write_deltalake(
    acid_uri, pl.DataFrame({"writer": [-1], "row": [0]}), storage_options=s.storage_options
)

WRITER = """
import json, sys, time
import polars as pl
from deltalake import write_deltalake
uri, options = sys.argv[1], json.loads(sys.argv[2])
writer, go = int(sys.argv[3]), float(sys.argv[4])
rows = pl.DataFrame({"writer": [writer] * 1000, "row": list(range(1000))})
time.sleep(max(0.0, go - time.time()))          # all writers start together
start = time.perf_counter()
write_deltalake(uri, rows, mode="append", storage_options=options)
print(json.dumps({"writer": writer, "seconds": time.perf_counter() - start}))
"""

go = time.time() + 5  # enough for every process to import deltalake first
procs = [
    subprocess.Popen(
        [sys.executable, "-c", WRITER, acid_uri, json.dumps(s.storage_options), str(i), str(go)],
        stdout=subprocess.PIPE,
        text=True,
    )
    for i in range(WRITERS)
]
results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
assert all(p.returncode == 0 for p in procs), "a writer failed: see its output above"

acid = DeltaTable(acid_uri, storage_options=s.storage_options)
commits = delta.history(acid_uri, s.storage_options).filter(pl.col("version") > 0)
retries = commits["metrics"].map_elements(lambda m: json.loads(m).get("num_retries", 0))
counts = pl.read_delta(acid_uri, storage_options=s.storage_options).group_by("writer").len()
print(f"versions: {acid.version()} (expected {WRITERS})")
print(f"commits that lost a race and retried: {(retries > 0).sum()}")
print(f"rows per writer: {sorted(counts.filter(pl.col('writer') >= 0)['len'].to_list())}")
print(f"commit time per writer, s: {sorted(round(r['seconds'], 2) for r in results)}")

# %% [markdown]
# Every commit landed: one version per writer and 1,000 rows from each. The commits
# that "had to retry" lost a race for a version number and simply took the next one.
#
# ### Why this is safe on S3: conditional writes
#
# "Create `_delta_log/5.json` only if it does not exist" must be **atomic**. A local
# file system has that (create-exclusive or hard links). S3 did not until August 2024:
# two `PUT`s of the same key both "succeeded" and the last one silently won, losing a
# commit. That is why Neuralink's talk described a **DynamoDB lock**: writers took a
# lock in DynamoDB before writing the commit object.
#
# Since 2024, S3 (and MinIO) support `PUT` with the header `If-None-Match: *`: the
# server refuses the write with `412 Precondition Failed` if the key exists. delta-rs
# uses it for every commit, and version 1.6.2 removed the DynamoDB locking provider
# altogether. One caveat: the server must enforce the header; one that ignores it
# loses commits under concurrency.
#
# Here is what the table's writers rely on, done by hand with boto3 on a scratch key:

# %%
if s.profile == "local":
    print("local profile: no S3 here; start the stack (neuralake stack up) to see this live")
else:
    s3 = boto3.client("s3", **s.boto3_kwargs)
    key = s.table_uri("l01_conditional/_delta_log/00000000000000000000.json")
    key = key.removeprefix(f"s3://{s.bucket}/")
    s3.delete_object(Bucket=s.bucket, Key=key)
    s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "A"}', IfNoneMatch="*")
    print("writer A: created", key)
    try:
        s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "B"}', IfNoneMatch="*")
        print("writer B: ALSO created it: this server does not enforce If-None-Match!")
    except ClientError as error:
        print("writer B: refused:", error.response["Error"]["Code"])
    body = s3.get_object(Bucket=s.bucket, Key=key)["Body"].read()
    print("the object still says", body)

# %% [markdown]
# ## 4 · Schema enforcement and evolution
#
# The table's schema lives in the log. A write whose columns do not match is refused
# **before** anything is committed:

# %%
bad = first_session.head(3).with_columns(pl.col("channel").cast(pl.String).alias("electrode"))
try:
    write_deltalake(signals_uri, bad, mode="append", storage_options=s.storage_options)
except SchemaMismatchError as error:
    print("refused:", error)
print("version still", DeltaTable(signals_uri, storage_options=s.storage_options).version())

# %% [markdown]
# When a new column is intended, say so: `schema_mode="merge"` adds it, and the rows
# written before read it as null.

# %%
labelled = first_session.head(1000).with_columns(label=pl.lit("reviewed"))
write_deltalake(
    signals_uri, labelled, mode="append", schema_mode="merge", storage_options=s.storage_options
)
evolved = pl.read_delta(signals_uri, storage_options=s.storage_options)
print(evolved.schema)
evolved.group_by("label").len()

# %% [markdown]
# ## 5 · Time travel, by version and by timestamp
#
# Every version stays readable (until vacuum). `history` gives each commit's time.

# %%
hist = delta.history(signals_uri, s.storage_options)
hist.select("version", "timestamp", "operation")

# %%
for version in hist["version"].sort():
    rows = pl.read_delta(signals_uri, version=version, storage_options=s.storage_options).height
    print(f"version {version}: {rows:,} rows")

# %% [markdown]
# By timestamp: the table as it was at a moment, i.e. the last version committed at
# or before it. The moment must be timezone-aware. delta-rs compares it with each
# commit file's modification time **in storage** (set by the server a few ms after
# the writer's `commitInfo` time), so pick a moment well between two commits:

# %%
t1, t2 = (hist.filter(pl.col("version") == v)["timestamp"][0] for v in (1, 2))
moment = t1 + (t2 - t1) / 2
as_of = DeltaTable(signals_uri, storage_options=s.storage_options)
as_of.load_as_version(moment)
print(f"at {moment}: version {as_of.version()}, {as_of.count():,} rows")

# %% [markdown]
# ## 6 · MERGE (upsert), UPDATE, DELETE
#
# Sessions get corrected after the fact: a task was mislabelled, a session was
# missing. `merge` matches source rows to table rows by a predicate and says what to do
# with matches and non-matches, in one atomic commit.

# %%
sessions_uri = table("sessions")
sessions = sim.sessions_table()
write_deltalake(sessions_uri, sessions, storage_options=s.storage_options)

corrections = pl.concat(
    [
        sessions.filter(pl.col("session_id") == 2).with_columns(task=pl.lit("webgrid_v2")),
        sessions.filter(pl.col("session_id") == 2).with_columns(
            session_id=pl.lit(3, pl.Int32), started_at=pl.col("started_at") + timedelta(days=1)
        ),
    ]
)
dt = DeltaTable(sessions_uri, storage_options=s.storage_options)
metrics = (
    dt.merge(
        corrections, predicate="t.session_id = s.session_id", source_alias="s", target_alias="t"
    )
    .when_matched_update_all()
    .when_not_matched_insert_all()
    .execute()
)
print({k: metrics[k] for k in ("num_target_rows_updated", "num_target_rows_inserted")})
pl.read_delta(sessions_uri, storage_options=s.storage_options).sort("session_id").select(
    "session_id", "task", "started_at"
)

# %% [markdown]
# `update` and `delete` take SQL predicates. Like every change, they rewrite the
# affected Parquet files (Parquet is immutable) and commit remove + add actions.

# %%
print(dt.update(predicate="session_id = 1", updates={"task": "'cursor_control_v2'"}))
print(dt.delete(predicate="session_id = 3"))
pl.read_delta(sessions_uri, storage_options=s.storage_options).sort("session_id").select(
    "session_id", "task"
)

# %% [markdown]
# ## 7 · The small-file problem, and `optimize`
#
# Streaming ingestion writes a file per micro-batch. Each file costs a request, a
# footer read and its own statistics, whatever its size. Let us write the signals as
# many small files and measure two queries: a full scan, and one channel over time.

# %%
small_uri = table("signals_small")
datagen.write_frames(
    small_uri,
    sim.signal_chunks(),
    datagen.schemas.NEURAL_SIGNALS,
    s.storage_options,
    files=FILES,
    total_rows=sim.signal_rows,
)


def full_scan():
    return (
        pl.scan_delta(small_uri, storage_options=s.storage_options)
        .select(pl.col("voltage_uv").abs().mean())
        .collect()
    )


def one_channel():
    return (
        pl.scan_delta(small_uri, storage_options=s.storage_options)
        .filter(pl.col("channel") == 42)
        .select(pl.col("voltage_uv").min())
        .collect()
    )


def measure(stage: str) -> dict:
    info = delta.inspect(small_uri, s.storage_options).row(0, named=True)
    return {
        "stage": stage,
        "files": info["files"],
        "full scan ms": timed(full_scan),
        "one channel ms": timed(one_channel),
    }


stages = [measure("small files")]
stages[-1]

# %% [markdown]
# **Compaction** rewrites small files into few big ones (100 MiB target by default),
# in one commit. Readers keep reading the old files until the commit lands.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
print(dt.optimize.compact())
stages.append(measure("compacted"))
stages[-1]

# %% [markdown]
# **Z-order** sorts rows so that rows with close values of the chosen columns sit in
# the same files, which makes the per-file min/max statistics selective: a query for
# one channel can skip the files whose channel range excludes it. That needs several
# files, so we ask for files of one eighth of this small table.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
table_bytes = delta.inspect(small_uri, s.storage_options)["bytes"][0]
print(dt.optimize.z_order(["channel"], target_size=table_bytes // 8))
stages.append(measure("z-ordered"))
results = pl.DataFrame(stages)
results

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
stats = pl.DataFrame(dt.get_add_actions(flatten=True))
skippable = stats.filter((pl.col("min.channel") > 42) | (pl.col("max.channel") < 42)).height
print(f"{stats.height} files; {skippable} of them can be skipped for channel = 42 by their stats")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, column in zip(axes, ["files", "full scan ms", "one channel ms"], strict=True):
    ax.bar(results["stage"], results[column], color=["#c44", "#4a4", "#48c"])
    ax.set_title(column)
fig.suptitle(f"{sim.signal_rows:,} rows on {s.profile}: measured in this run")
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the numbers above rather than a rule of thumb: they depend on the table's size,
# the number of files and the store's latency per request. Exercise 1 below scales the
# file count up so you can measure how the gap grows.

# %% [markdown]
# ## 8 · Vacuum: deleting what no version needs
#
# Optimize left every small file in place (old versions still point at them).
# `vacuum` deletes files that are no longer part of the table and older than the
# retention period (7 days by default). It is a **dry run unless you say otherwise**.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
print("dry run with the default retention:", len(dt.vacuum()), "files")
candidates = dt.vacuum(retention_hours=0, enforce_retention_duration=False)
print("dry run with 0 hours:", len(candidates), "files would be deleted")

# %%
deleted = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
print("deleted", len(deleted), "files; versions now", dt.version())
try:
    pl.read_delta(small_uri, version=0, storage_options=s.storage_options)
except Exception as error:  # the files of version 0 are gone
    print("time travel to version 0 now fails:", type(error).__name__, str(error)[:120])

# %% [markdown]
# Retention 0 is for this lesson only: a reader that opened version *n* a second ago
# may still be reading files vacuum deletes. Keep the 7-day default in production.

# %% [markdown]
# ## 9 · Checkpoints: why a streaming table needs them
#
# Opening a table replays its log. After thousands of small commits (a streaming
# writer commits every few seconds) that is thousands of GETs. A **checkpoint** is a
# Parquet file holding the replayed state; readers start from the latest one
# (`_delta_log/_last_checkpoint` says which). delta-rs writes one every 100 commits by
# default; here we make `COMMITS` tiny commits and measure opening before and after.

# %%
stream_uri = table("stream")
tick = pl.DataFrame({"tick": [0]})
write_deltalake(
    stream_uri,
    tick,
    storage_options=s.storage_options,
    configuration={"delta.checkpointInterval": "1000"},  # no automatic checkpoint here
)
for i in range(1, COMMITS):
    write_deltalake(
        stream_uri,
        tick.with_columns(tick=pl.lit(i)),
        mode="append",
        storage_options=s.storage_options,
    )


def open_table():
    return DeltaTable(stream_uri, storage_options=s.storage_options).version()


before = timed(open_table)
DeltaTable(stream_uri, storage_options=s.storage_options).create_checkpoint()
after = timed(open_table)
print(f"open {COMMITS} commits: {before:.1f} ms from JSON, {after:.1f} ms from the checkpoint")
delta.log_files(stream_uri, s.storage_options).tail(3)

# %% [markdown]
# ## 10 · Protocol versions, and why timestamps must be UTC-aware
#
# The `protocol` action says what a reader and writer must support. Old readers
# (Spark versions, ROAPI 0.12, which embeds an older delta-rs) refuse a table whose
# protocol they do not know. A timezone-**naive** timestamp becomes Delta's
# `timestampNtz` type, which needs reader version 3 and writer version 7:

# %%
aware_uri, naive_uri = table("ts_aware"), table("ts_naive")
moments = pl.DataFrame({"t": signals["timestamp"].head(3)})  # Datetime("us", "UTC")
write_deltalake(aware_uri, moments, storage_options=s.storage_options)
write_deltalake(
    naive_uri,
    moments.with_columns(pl.col("t").dt.replace_time_zone(None)),
    storage_options=s.storage_options,
)
pl.concat(
    [
        delta.inspect(uri, s.storage_options).select(
            pl.lit(name).alias("timestamps"),
            "min_reader_version",
            "min_writer_version",
            "reader_features",
        )
        for name, uri in [("UTC-aware", aware_uri), ("naive", naive_uri)]
    ]
)

# %% [markdown]
# Every table the lab generates uses `Datetime("us", "UTC")`, so it stays at reader 1
# / writer 2, readable by Spark and ROAPI.
#
# ## Exercises
#
# 1. Re-run with `FILES = 200`. How do the full-scan and one-channel times change,
#    before and after compaction? Which one does z-order help, and why?
# 2. Raise `WRITERS` to 16. Do all commits still land? How many had to retry?
# 3. Raise `COMMITS` to 200 with `delta.checkpointInterval` left at its default.
#    Look at `_delta_log/`: when did delta-rs write a checkpoint by itself?
# 4. Find, with `history`, the version at which `label` first appeared, and read the
#    table just before it.
#
# The graded version of these skills is lab 01 (`labs/01_delta/`).
