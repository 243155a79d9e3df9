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
# **Time:** about 50 minutes. **Prerequisites:** lesson 00 (the stack is running:
# `make up`), basic Polars (`select`, `filter`, `group_by`).
#
# **You will be able to**
#
# 1. write, append to and overwrite a Delta table with `write_deltalake`, and read it
#    back with Polars;
# 2. read the transaction log: which files make up a version, and the statistics each
#    `add` action carries;
# 3. evolve a schema on purpose, travel to an old version and `restore` it;
# 4. measure the small-file problem that streaming appends create, and fix it with
#    `optimize.compact()` and `vacuum`;
# 5. measure data skipping (files and bytes a query really reads) and judge when
#    `optimize.z_order()` pays for its cost.
#
# **Why.** An implant streams 256 channels at 10 kHz: 2.56 million samples per second
# per patient. Neuralink keeps such data as **Delta Lake tables on S3**: plain Parquet
# files plus a transaction log, so many writers and readers can share one table without
# a database server, and every change is a version you can go back to. This lesson
# covers one table and one writer; lesson 01b covers many writers, MERGE, constraints,
# change data feed and partitioning.
#
# Every number below is measured when the notebook runs; none is typed in. Timings are
# the median of several warm runs, so that a one-off connection set-up does not count.

# %% tags=["parameters"]
ROWS = 500_000  # neural-signal rows to generate (rounded up to whole 102.4 ms blocks)
MICRO_BATCHES = 24  # appends, one commit each, in the small-file section
ZORDER_FILES = 8  # z-order aims for files of (table size / ZORDER_FILES)
CHANNEL = 42  # the channel the selective query asks for
REPEATS = 7  # warm runs per timing; the median is shown
SEED = 7

# %%
import json
import time

import boto3
import matplotlib.pyplot as plt
import polars as pl
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, SchemaMismatchError

import neuralake
from neuralake import datagen, delta
from neuralake.timing import warm_ms  # one warm-up call, then the median of `repeats`

s = neuralake.settings()
assert s.profile == "stack", "this lesson measures S3 requests: start the stack (make up)"
print(f"profile: {s.profile}   warehouse: {s.warehouse_uri}")


def table(name: str) -> str:
    """This lesson's copy of a table, dropped first so that re-running starts clean."""
    return delta.fresh_table(s.table_uri(f"l01_{name}"), s.storage_options)


# %% [markdown]
# ## 1 · Write, append, overwrite
#
# `neuralake.datagen` simulates a study: patients, implants, sessions, a cursor the
# patient moves (the labels) and the neural signals, one row per (timestamp, channel).

# %%
sim = datagen.Simulation(rows=ROWS, sessions=2, seed=SEED)
signals = sim.neural_signals()
print(f"{signals.height:,} rows, {signals.estimated_size() / 2**20:.1f} MiB in memory")
signals.head(3)

# %% [markdown]
# `write_deltalake` takes any Arrow-compatible data, Polars frames included. Its `mode`:
#
# | mode | if the table exists | new version? |
# |---|---|---|
# | `"error"` (default) | refuse | no |
# | `"append"` | add files | yes |
# | `"overwrite"` | mark every current file removed, add the new ones | yes |
# | `"ignore"` | do nothing | no |

# %%
signals_uri = table("signals")
first_session, second_session = signals.partition_by("session_id", maintain_order=True)

write_deltalake(signals_uri, first_session, storage_options=s.storage_options)
write_deltalake(signals_uri, second_session, mode="append", storage_options=s.storage_options)

dt = DeltaTable(signals_uri, storage_options=s.storage_options)
print(f"version {dt.version()}: {len(dt.file_uris())} files, {dt.count():,} rows")

# %% [markdown]
# Reading is one line in Polars. `scan_delta` is lazy: nothing is read until
# `collect()`, and filters are pushed into the scan (section 7 measures that).

# %%
per_session = (
    pl.scan_delta(signals_uri, storage_options=s.storage_options)
    .group_by("session_id")
    .agg(rows=pl.len(), spikes=pl.col("spike").sum(), mean_uv=pl.col("voltage_uv").mean().round(2))
    .sort("session_id")
    .collect()
)
per_session

# %% [markdown]
# An overwrite deletes nothing: it commits "remove these files, add those". The old
# files stay until `vacuum` (section 8), which is what makes time travel work. (The
# one-second pause lets section 4 pick a moment between two commits.)

# %%
time.sleep(1)
write_deltalake(signals_uri, first_session, mode="overwrite", storage_options=s.storage_options)
dt = DeltaTable(signals_uri, storage_options=s.storage_options)
rows_v1 = DeltaTable(signals_uri, version=1, storage_options=s.storage_options).count()
print(f"version {dt.version()}: {dt.count():,} rows; version 1 still has {rows_v1:,}")
assert rows_v1 == signals.height, "version 1 should still hold both sessions"

# %% [markdown]
# ## 2 · The transaction log, `_delta_log/`
#
# A Delta table is a folder of Parquet files plus `_delta_log/`, one JSON file per
# version (`00000000000000000000.json`, ...). The table's state at version *n* is the
# replay of commits 0..*n*: a file is part of the table if it was `add`ed and not yet
# `remove`d. Nothing else (no server, no catalog) knows what the table contains.
#
# On S3 a folder is only a key prefix, and listing it is one `ListObjectsV2` request.
# Here it is with boto3, the AWS client for Python, on the table's `_delta_log/` prefix:

# %%
s3 = boto3.client("s3", **s.boto3_kwargs)
bucket, _, table_key = signals_uri.removeprefix("s3://").partition("/")
listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{table_key}/_delta_log/")["Contents"]
for obj in listed:
    print(f"s3://{bucket}/{obj['Key']}  {obj['Size']:,} bytes")

# %% [markdown]
# `delta.log_files` lists the same folder on any warehouse (an S3 bucket or a local
# folder) and returns it as a table:

# %%
log = delta.log_files(signals_uri, s.storage_options)
assert log.rows() == [(o["Key"].rsplit("/", 1)[1], o["Size"]) for o in listed]
log

# %% [markdown]
# Each line of a commit file is one **action**. Version 0 holds `protocol` (what a
# reader must understand), `metaData` (schema, partition columns, table properties),
# one `add` per Parquet file, and `commitInfo`:

# %%
commit0 = delta.read_commit(signals_uri, 0, s.storage_options)
pl.DataFrame({"action": [next(iter(a)) for a in commit0]}).group_by("action").len()

# %% [markdown]
# Here is a whole `add` action. Its `stats` field is a JSON string written by the
# writer: the row count and, per column, the minimum, maximum and null count of this
# file. Readers use them to skip files without opening them (section 7).

# %%
add = next(a["add"] for a in commit0 if "add" in a)
stats = json.loads(add["stats"])
print(json.dumps({k: v for k, v in add.items() if k != "stats"}, indent=1))
print("numRecords:", stats["numRecords"])
columns = list(stats["minValues"])
pl.DataFrame(
    {
        "column": columns,
        "min": [str(stats["minValues"][c]) for c in columns],
        "max": [str(stats["maxValues"][c]) for c in columns],
        "nulls": [stats["nullCount"][c] for c in columns],
    }
)

# %% [markdown]
# The same statistics, for every file of the current version, come from the API
# without reading JSON by hand: `DeltaTable.get_add_actions(flatten=True)` returns one
# row per file with `min.<column>` / `max.<column>` fields.

# %%
actions = pl.DataFrame(dt.get_add_actions(flatten=True))
actions.select("size_bytes", "num_records", "min.channel", "max.channel", "min.timestamp")

# %% [markdown]
# Version 2, the overwrite, only adds and removes:

# %%
commit2 = delta.read_commit(signals_uri, 2, s.storage_options)
kinds = pl.DataFrame({"action": [next(iter(a)) for a in commit2]}).group_by("action").len()
kinds.sort("action")

# %% [markdown]
# ## 3 · Schema enforcement and evolution
#
# The table's schema lives in the log. A write whose columns do not match is refused
# **before** anything is committed:

# %%
bad = first_session.head(3).with_columns(pl.col("channel").cast(pl.String).alias("electrode"))
try:
    write_deltalake(signals_uri, bad, mode="append", storage_options=s.storage_options)
except SchemaMismatchError as error:
    print(f"refused, {type(error).__name__}: {delta.first_line(error)[:110]}")
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
print("columns now:", evolved.columns)
evolved.group_by("label").len().sort("label", nulls_last=True)

# %% [markdown]
# ## 4 · Time travel and restore
#
# Every version stays readable until `vacuum` deletes its files. `DeltaTable.history()`
# lists the commits, newest first; `delta.history` is the same as a small table.

# %%
commits = DeltaTable(signals_uri, storage_options=s.storage_options).history()
pl.DataFrame(
    {
        "version": [c["version"] for c in commits],
        "operation": [c["operation"] for c in commits],
        "mode": [c.get("operationParameters", {}).get("mode") for c in commits],
        "rows added": [c.get("operationMetrics", {}).get("num_added_rows") for c in commits],
    }
)

# %% [markdown]
# Read any version with `DeltaTable(uri, version=n)` or `pl.read_delta(uri, version=n)`:

# %%
versions = pl.DataFrame(
    {
        "version": list(range(4)),
        "rows (DeltaTable)": [
            DeltaTable(signals_uri, version=v, storage_options=s.storage_options).count()
            for v in range(4)
        ],
        "rows (pl.read_delta)": [
            pl.read_delta(signals_uri, version=v, storage_options=s.storage_options).height
            for v in range(4)
        ],
    }
)
versions

# %% [markdown]
# By timestamp: the table as it was at a moment, i.e. the last version committed at or
# before it. The moment must be timezone-aware. delta-rs compares it with each commit
# file's modification time **in storage** (set by the server a few ms after the
# writer's `commitInfo` time), so pick a moment well between two commits:

# %%
hist = delta.history(signals_uri, s.storage_options)
t1, t2 = (hist.filter(pl.col("version") == v)["timestamp"][0] for v in (1, 2))
moment = t1 + (t2 - t1) / 2
as_of = DeltaTable(signals_uri, storage_options=s.storage_options)
as_of.load_as_version(moment)
print(f"at {moment:%H:%M:%S.%f} UTC: version {as_of.version()}, {as_of.count():,} rows")
assert as_of.version() == 1, "the moment lies between the commits of versions 1 and 2"

# %% [markdown]
# Reading an old version changes nothing. To make an old version current again (undo a
# bad overwrite), `restore` commits a new version whose files are those of the old
# one. History stays linear: the bad version is still there to inspect.

# %%
dt = DeltaTable(signals_uri, storage_options=s.storage_options)
restored = dt.restore(1)
print(pl.DataFrame([restored]))
print(f"now version {dt.version()} with {dt.count():,} rows (as version 1)")
assert dt.count() == rows_v1, "restore(1) should bring back version 1's rows"

# %% [markdown]
# ## 5 · Overwrite part of a table
#
# Re-processing one session should not rewrite the others. `mode="overwrite"` with a
# `predicate` replaces only the rows that match it, and checks that every new row
# matches it too (a safety net against writing session 2's data over session 1).

# %%
fixed = first_session.with_columns(pl.col("quality") * 0.5)
write_deltalake(
    signals_uri,
    fixed,
    mode="overwrite",
    predicate="session_id = 1",
    storage_options=s.storage_options,
)
(
    pl.read_delta(signals_uri, storage_options=s.storage_options)
    .group_by("session_id")
    .agg(rows=pl.len(), mean_quality=pl.col("quality").mean().round(3))
    .sort("session_id")
)

# %% [markdown]
# The safety net, tried: session 2's rows with the predicate of session 1 are refused,
# and nothing is committed.

# %%
version_before = DeltaTable(signals_uri, storage_options=s.storage_options).version()
try:
    write_deltalake(
        signals_uri,
        second_session.head(5),
        mode="overwrite",
        predicate="session_id = 1",
        storage_options=s.storage_options,
    )
    refused = None
except DeltaError as error:
    refused = delta.first_line(error)
print(f"refused: {refused}")
assert refused is not None, "rows outside the predicate must be refused"
assert DeltaTable(signals_uri, storage_options=s.storage_options).version() == version_before

# %% [markdown]
# ## 6 · The small-file problem: one commit per micro-batch
#
# A streaming writer (lesson 00's Rust writer, a Spark stream) commits every few
# seconds: one append, one commit, and at least one new Parquet file each time. Let us
# do exactly that: `MICRO_BATCHES` appends of consecutive slices of the signals.

# %%
small_uri = table("signals_small")
batch_rows = -(-signals.height // MICRO_BATCHES)  # ceiling division
start = time.perf_counter()
for i in range(MICRO_BATCHES):
    batch = signals.slice(i * batch_rows, batch_rows)
    write_deltalake(small_uri, batch, mode="append", storage_options=s.storage_options)
append_s = time.perf_counter() - start

small = DeltaTable(small_uri, storage_options=s.storage_options)
small_info = delta.inspect(small_uri, s.storage_options).row(0, named=True)
print(
    f"{MICRO_BATCHES} appends of {batch_rows:,} rows in {append_s:.1f} s: "
    f"{small.version() + 1} commits, {small_info['files']} files, "
    f"{small_info['mean_file_bytes'] / 1024:.0f} KiB per file"
)
assert small_info["files"] == MICRO_BATCHES, "each append should add exactly one file"

# %% [markdown]
# What does it cost to read? `delta.RequestLog` is a small pass-through proxy in front
# of MinIO that records every request delta-rs and Polars send: the ground truth of
# which files a query opened and how many bytes it pulled. We open the table once
# through it, then run two queries: a full scan, and one channel.


# %%
def full_scan(source: DeltaTable, options: dict[str, str]) -> pl.DataFrame:
    return (
        pl.scan_delta(source, storage_options=options)
        .select(pl.col("voltage_uv").abs().mean())
        .collect()
    )


def one_channel(source: DeltaTable, options: dict[str, str]) -> pl.DataFrame:
    return (
        pl.scan_delta(source, storage_options=options)
        .filter(pl.col("channel") == CHANNEL)
        .select(pl.col("voltage_uv").min())
        .collect()
    )


def measure(stage: str) -> dict:
    """Open the table once, then count files, bytes and warm time of both queries."""
    row = {"stage": stage}
    with delta.RequestLog(s.storage_options) as log:
        opened = DeltaTable(small_uri, storage_options=log.storage_options)
        row["files in the table"] = len(opened.file_uris())
        row["log requests to open"] = log.summary()["log requests"]
        for name, query in (("full scan", full_scan), ("one channel", one_channel)):
            log.clear()
            query(opened, log.storage_options)
            read = log.summary()
            row[f"{name}: files opened"] = read["data files opened"]
            row[f"{name}: KiB read"] = read["data bytes read"] // 1024
    now = DeltaTable(small_uri, storage_options=s.storage_options)
    for name, query in (("full scan", full_scan), ("one channel", one_channel)):
        row[f"{name}: ms"] = warm_ms(lambda query=query: query(now, s.storage_options), REPEATS)
    return row


def by_stage(rows: list[dict]) -> pl.DataFrame:
    """One column per stage, one row per measure: easy to compare side by side."""
    frame = pl.DataFrame(rows)
    return (
        frame.drop("stage")
        .select(pl.all().cast(pl.String))
        .transpose(include_header=True, header_name="measure", column_names=frame["stage"])
    )


stages = [measure("small files")]
assert stages[0]["log requests to open"] >= MICRO_BATCHES, "opening reads every commit file"
assert stages[0]["one channel: files opened"] == MICRO_BATCHES, "every micro-batch has channel 42"
assert stages[0]["full scan: files opened"] == MICRO_BATCHES, "a full scan opens every file"
by_stage(stages)

# %% [markdown]
# Read the table above. Opening the table replayed the log: at least one GET per
# commit file (row "log requests to open"), before any data was read. Both queries
# opened every file: each micro-batch holds all 256 channels, so no file can be
# skipped. And each file costs at least one request, however small it is.
#
# **Compaction** rewrites small files into few big ones (delta-rs aims for 100 MiB by
# default), in one commit. Readers keep reading the old files until that commit lands,
# so it is safe to run while the table is in use.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
start = time.perf_counter()
compaction = dt.optimize.compact()
compact_s = time.perf_counter() - start
print(
    f"compact: {compaction['numFilesRemoved']} files -> {compaction['numFilesAdded']} "
    f"in {compact_s:.2f} s"
)
stages.append(measure("compacted"))
by_stage(stages)

# %%
assert stages[1]["files in the table"] < stages[0]["files in the table"], (
    "compaction should leave fewer files"
)
assert stages[1]["one channel: files opened"] == stages[1]["files in the table"], (
    "after compaction every file still holds every channel, so nothing can be skipped"
)
assert stages[1]["full scan: files opened"] < stages[0]["full scan: files opened"]
assert stages[1]["log requests to open"] >= stages[0]["log requests to open"], (
    "compaction adds a commit: the log it leaves is no shorter"
)

# %% [markdown]
# Fewer files, fewer requests for data: a query now opens one file instead of
# `MICRO_BATCHES`. Opening the table did not get cheaper: compaction is one more commit,
# and the log still replays every earlier one (lesson 01b shows the checkpoints that
# fix that). And the one-channel query still reads the whole table:
# one file, and that file holds every channel. To read less, the rows must be arranged
# so that some files can be skipped.
#
# ## 7 · Data skipping, measured, and z-order
#
# Polars (like Spark and delta-rs itself) compares a filter with each file's min/max
# statistics from the log and never opens a file whose range excludes the value. That
# only helps if files have narrow, different ranges. Right now:

# %%
print(delta.file_stats(DeltaTable(small_uri, storage_options=s.storage_options), "channel"))

# %% [markdown]
# **Z-order** rewrites the table sorted along a space-filling curve of the chosen
# columns (with one column, simply sorted by it), cut into files of `target_size`
# bytes. Each file then covers a narrow range of channels. We ask for files of one
# `ZORDER_FILES`-th of the table. Before the rewrite we keep the old file statistics,
# for the plot below.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
before_stats = delta.file_stats(
    DeltaTable(small_uri, version=MICRO_BATCHES - 1, storage_options=s.storage_options),
    "channel",
)
before_columns = delta.column_bytes(dt)
table_bytes = delta.inspect(small_uri, s.storage_options)["bytes"][0]
start = time.perf_counter()
zorder = dt.optimize.z_order(["channel"], target_size=table_bytes // ZORDER_FILES)
zorder_s = time.perf_counter() - start
print(
    f"z-order: {zorder['numFilesRemoved']} file -> {zorder['numFilesAdded']} files "
    f"in {zorder_s:.2f} s (compaction took {compact_s:.2f} s)"
)
stages.append(measure("z-ordered"))
by_stage(stages)

# %%
after_stats = delta.file_stats(DeltaTable(small_uri, storage_options=s.storage_options), "channel")
expected = after_stats.filter((pl.col("min") <= CHANNEL) & (pl.col("max") >= CHANNEL)).height
zordered_bytes = delta.inspect(small_uri, s.storage_options)["bytes"][0]
z = stages[2]
print(
    f"channel = {CHANNEL}: the statistics say {expected} of {after_stats.height} files can "
    f"hold it; the query opened {z['one channel: files opened']} and read "
    f"{z['one channel: KiB read']:,} KiB of the z-ordered table's {zordered_bytes // 1024:,} KiB"
)
assert z["one channel: files opened"] == expected, "the scan should open only matching files"
assert z["one channel: files opened"] < z["files in the table"] / 2, (
    "z-order should let most files be skipped"
)
assert z["one channel: KiB read"] < stages[1]["one channel: KiB read"] / 2, (
    "the selective query should read far fewer bytes after z-order"
)

# %% [markdown]
# The request log is the ground truth of skipping: a skipped file is a file nobody
# asked S3 for, whatever the reader decided and however it logs it. Lesson 02 packages
# it for any query as `measure(make_frame, settings)`.
#
# Each bar below is one data file, from its minimum to its maximum channel; the dashed
# line is the channel we ask for. A file the line does not cross is skipped.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
for ax, file_stats, title in (
    (axes[0], before_stats, f"{before_stats.height} micro-batch files"),
    (axes[1], after_stats, f"after z-order: {after_stats.height} files"),
):
    hit = (file_stats["min"] <= CHANNEL) & (file_stats["max"] >= CHANNEL)
    ax.barh(
        range(file_stats.height),
        (file_stats["max"] - file_stats["min"] + 1).to_list(),
        left=file_stats["min"].to_list(),
        color=["#d95f02" if h else "#bbbbbb" for h in hit],
    )
    ax.axvline(CHANNEL, color="black", linestyle="--", linewidth=1)
    ax.set_title(f"{title}: {int(hit.sum())} opened for channel {CHANNEL}")
    ax.set_xlabel("channel range in the file (min to max)")
    ax.invert_yaxis()
axes[0].set_ylabel("file")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### What z-order cost
#
# Skipping is not free. Compare the three stages and the columns' sizes:

# %%
after_columns = delta.column_bytes(DeltaTable(small_uri, storage_options=s.storage_options))
sizes = (
    before_columns.rename({"bytes": "KiB before"})
    .join(after_columns.rename({"bytes": "KiB after"}), on="column")
    .with_columns(pl.col("KiB before") // 1024, pl.col("KiB after") // 1024)
    .with_columns(added=pl.col("KiB after") - pl.col("KiB before"))
    .sort("added", descending=True)
)
growth_pct = round(100 * (zordered_bytes / table_bytes - 1))
print(f"table size: {table_bytes // 1024:,} KiB compacted -> {zordered_bytes // 1024:,} KiB")
print(f"z-ordered ({growth_pct:+d} %); the rewrite took {zorder_s:.2f} s")
sizes

# %% [markdown]
# Three costs, all visible above:
#
# 1. **The rewrite.** Z-order reads and rewrites the whole table (here in the time
#    printed above, against compaction's); on a big table that is real compute, and
#    the new rows must be z-ordered again later.
# 2. **Size.** Sorting by channel broke the time order inside each file. Look at the
#    `added` column: `timestamp` was a run of increasing values that compressed to
#    almost nothing, and is now shuffled within each channel range. That is where most
#    of the growth comes from.
# 3. **The full scan.** It now opens every z-ordered file instead of one compacted
#    file: compare the full-scan rows of the stage table.
#
# **When it pays:** when most queries filter on the z-ordered column(s), read far more
# often than the table is rewritten, and the table is large enough that bytes, not
# per-request latency, dominate. Compare the one-channel milliseconds of the three
# stages above with the KiB read: at this small default scale time falls by a smaller
# factor than bytes, because every query also pays fixed costs (planning, a request
# per file); exercise 1 scales it up. For a query by time, the micro-batch order
# was already ideal: each small file covered a narrow time range.

# %%
assert zordered_bytes > table_bytes, "z-order is expected to grow this table (see the text)"
assert z["full scan: files opened"] == z["files in the table"] > 1, "a full scan opens every file"
worst = sizes["column"][0]
assert worst == "timestamp", f"expected timestamp to grow most, found {worst}"
assert sizes["added"][0] > sizes["added"].sum() / 2, "timestamp should be most of the growth"
compacted, zordered = stages[1], stages[2]
time_factor = compacted["one channel: ms"] / zordered["one channel: ms"]
bytes_factor = compacted["one channel: KiB read"] / max(zordered["one channel: KiB read"], 1)
print(
    f"one channel, compacted -> z-ordered: {time_factor:.1f}x less time, {bytes_factor:.1f}x fewer bytes"
)
assert time_factor < bytes_factor, "time should fall by a smaller factor than bytes (see the text)"
by_time = delta.file_stats(
    DeltaTable(small_uri, version=MICRO_BATCHES - 1, storage_options=s.storage_options),
    "timestamp",
).sort("min")
assert (by_time["min"].shift(-1) >= by_time["max"]).drop_nulls().all(), (
    "each micro-batch file covers its own stretch of time (see the text)"
)

# %% [markdown]
# ## 8 · Vacuum: deleting what no version needs
#
# Compaction and z-order left every old file in place: old versions still point at
# them. `vacuum` deletes files that no version within the retention period needs (7
# days by default). It is a **dry run unless you say otherwise**.

# %%
dt = DeltaTable(small_uri, storage_options=s.storage_options)
stored_before = delta.data_files(small_uri, s.storage_options).height
print("dry run, default retention:", len(dt.vacuum()), "files")
print(
    "dry run, 0 hours:",
    len(dt.vacuum(retention_hours=0, enforce_retention_duration=False)),
    "files",
)

# %%
deleted = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
stored_after = delta.data_files(small_uri, s.storage_options).height
print(f"deleted {len(deleted)} files: {stored_before} Parquet files stored -> {stored_after}")
assert stored_after == len(dt.file_uris()), "only the current version's files should remain"
try:
    pl.read_delta(small_uri, version=0, storage_options=s.storage_options)
except Exception as error:  # whatever delta-rs raises: we show its type
    print(f"time travel to version 0 now fails: {type(error).__name__}")

# %% [markdown]
# Retention 0 is for this lesson only: a reader that opened version *n* a second ago
# may still be reading files vacuum deletes. Keep the 7-day default in production, and
# know that `vacuum` also ends time travel to the versions whose files it deleted.
#
# ## Exercises
#
# 1. Re-run with `ROWS = 4_000_000` and `MICRO_BATCHES = 96` (parameters cell). How do
#    the one-channel milliseconds of the three stages compare now? Does z-order pay?
# 2. Set `CHANNEL` to a value that sits on the border of two z-ordered files (read
#    `after_stats`). How many files does the query open?
# 3. Z-order on `["channel", "timestamp"]` instead. What happens to the size of the
#    `timestamp` column, and to a query for one channel over one second?
# 4. Find, with `history()`, the version at which `label` first appeared, and read the
#    table just before it with `pl.read_delta(..., version=...)`.
#
# The graded version of these skills is lab 01 (`labs/01_delta/`).
#
# ## Key takeaways
#
# - A Delta table is Parquet files plus a log of JSON commits; a version is the replay
#   of the log, and every `add` carries the file's row count and min/max statistics.
# - Overwrites, `restore` and `schema_mode="merge"` are just new commits: nothing is
#   deleted until `vacuum`, which also ends time travel to what it deleted.
# - One commit per micro-batch means one file (at least) per micro-batch: reading cost
#   grows with the number of files and commits. `optimize.compact()` fixes the files.
# - Data skipping uses the per-file statistics; measure it as files and bytes opened.
#   Z-order makes it selective, at the price of a rewrite and, often, a bigger table.
#
# ## Check yourself
#
# 1. A colleague overwrote the table by mistake an hour ago. Which two calls undo it,
#    and what must not have happened in between?
# 2. Why did the one-channel query open every file after compaction, even though the
#    table had only one file?
# 3. Your table is queried by `session_id` and by time, never by channel. Should you
#    z-order it by channel?
#
# <details><summary>Answers</summary>
#
# 1. `DeltaTable(uri).history()` to find the last good version, then
#    `DeltaTable(uri).restore(version)`. Nobody may have run `vacuum` with a retention
#    shorter than the time since then, or the old version's files are gone.
# 2. Skipping works per file: the single file's channel range was 0-255, which
#    contains every channel, so it had to be opened (and all of it read).
# 3. No: z-order by channel costs a rewrite and breaks time order (the table grew);
#    the micro-batch (time) order already made time filters selective. Z-order by the
#    columns queries filter on, if any rewrite is needed at all.
#
# </details>
#
# ## Primary sources
#
# - Delta transaction protocol (actions, statistics, checkpoints):
#   https://github.com/delta-io/delta/blob/master/PROTOCOL.md
# - delta-rs Python API (`write_deltalake`, `DeltaTable`, `optimize`, `vacuum`,
#   `restore`): https://delta-io.github.io/delta-rs/api/delta_table/
# - delta-rs guides on small files and z-order:
#   https://delta-io.github.io/delta-rs/usage/optimize/small-file-compaction-with-optimize/
#   and https://delta-io.github.io/delta-rs/usage/optimize/delta-lake-z-order/
# - Polars `scan_delta`: https://docs.pola.rs/api/python/stable/reference/api/polars.scan_delta.html
# - Glossary of the terms used here: `docs/glossary.md`
