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
# # 01b · Delta Lake in production: many writers, MERGE, constraints, partitions
#
# **Time:** about 50 minutes. **Prerequisites:** lesson 01 (write, append, the
# transaction log, time travel, compaction); the stack is running (`make up`).
#
# **You will be able to**
#
# 1. explain why concurrent appends to a table on S3 are safe (conditional writes), and
#    handle a commit that does conflict: read delta-rs' `CommitFailedError`, reload,
#    re-apply;
# 2. upsert and de-duplicate with `DeltaTable.merge(...)`, make appends idempotent with
#    transaction identifiers, and update or delete rows;
# 3. protect a table with a `CHECK` constraint and follow its changes with the change
#    data feed;
# 4. choose a partition column by measuring files, write time and read time, and
#    recognise over-partitioning;
# 5. keep a streaming table fast to open with checkpoints, and readable by every engine
#    with UTC timestamps.
#
# **Why.** Lesson 01 had one writer and one reader. A real table has a streaming
# ingester appending every few seconds, a compaction job, a backfill fixing last week,
# and readers everywhere. This lesson is about what happens when they meet.
#
# Every number below is measured when the notebook runs.

# %% tags=["parameters"]
WRITERS = 8  # concurrent writer processes in section 1
ROWS = 500_000  # neural-signal rows for the partitioning section
COMMITS = 40  # tiny commits for the checkpoint section
EVENT_SECONDS = 10.0  # seconds of cursor events (60 per second per session) for MERGE
REPEATS = 5  # warm runs per timing; the median is shown
SEED = 7

# %%
import json
import subprocess
import sys
import threading
import time

import boto3
import matplotlib.pyplot as plt
import polars as pl
from botocore.exceptions import ClientError
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

import neuralake
from neuralake import datagen, delta
from neuralake.delta import first_line  # delta-rs errors run to many lines
from neuralake.timing import warm_ms

# The setup of lesson 01: the stack's settings, and table(name) for a fresh table.
s = neuralake.settings()
assert s.profile == "stack", "this lesson uses the stack's S3: start it first (make up)"
print(f"profile: {s.profile}   warehouse: {s.warehouse_uri}")


def table(name: str) -> str:
    return delta.fresh_table(s.table_uri(f"l01b_{name}"), s.storage_options)


# %% [markdown]
# ## 1 · Many writers, one table
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
outputs = [p.communicate(timeout=120)[0] for p in procs]
assert all(p.returncode == 0 for p in procs), "a writer failed: see its output above"
seconds = {r["writer"]: r["seconds"] for r in map(json.loads, outputs)}

acid = DeltaTable(acid_uri, storage_options=s.storage_options)
commits = pl.DataFrame(
    [
        {
            "version": c["version"],
            "retries": c["operationMetrics"].get("num_retries", 0),
            "rows": c["operationMetrics"]["num_added_rows"],
        }
        for c in acid.history()
        if c["version"] > 0
    ]
).sort("version")
rows_per_writer = (
    pl.read_delta(acid_uri, storage_options=s.storage_options).group_by("writer").len()
)
print(
    f"{WRITERS} writers -> {acid.version()} new versions; commit times (s): "
    f"{min(seconds.values()):.2f} to {max(seconds.values()):.2f}"
)
commits

# %%
assert acid.version() == WRITERS, "every writer should have committed its own version"
assert rows_per_writer.filter(pl.col("writer") >= 0)["len"].to_list() == [1000] * WRITERS, (
    "every writer's 1,000 rows should be in the table"
)

# %% [markdown]
# One version per writer and 1,000 rows from each. The `retries` column counts how
# many times a commit lost a race for a version number and took the next one.
#
# ### Why this is safe on S3: conditional writes
#
# "Create `_delta_log/5.json` only if it does not exist" must be **atomic**. A local
# file system has that (create-exclusive). S3 did not until August 2024: two `PUT`s of
# the same key both "succeeded" and the last one silently won, losing a commit. That is
# why Neuralink's talk described a **DynamoDB lock**: writers took a lock in DynamoDB
# before writing the commit object.
#
# Since 2024, S3 (and MinIO) accept `PUT` with the header `If-None-Match: *`: the
# server refuses the write with `412 Precondition Failed` if the key exists. delta-rs
# uses it for every commit, and deltalake 1.6.2 removed the DynamoDB locking provider.
# The server must enforce the header; one that ignores it loses commits under
# concurrency. Here is what every commit relies on, done by hand with boto3:

# %%
s3 = boto3.client("s3", **s.boto3_kwargs)
key = s.table_uri("l01b_conditional/_delta_log/00000000000000000000.json")
key = key.removeprefix(f"s3://{s.bucket}/")
s3.delete_object(Bucket=s.bucket, Key=key)
s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "A"}', IfNoneMatch="*")
print("writer A: created", key)
try:
    s3.put_object(Bucket=s.bucket, Key=key, Body=b'{"writer": "B"}', IfNoneMatch="*")
    refused = None
except ClientError as error:
    refused = error.response["Error"]["Code"]
print("writer B:", f"refused with {refused}" if refused else "ALSO created it")
print("the object still says", s3.get_object(Bucket=s.bucket, Key=key)["Body"].read())
assert refused == "PreconditionFailed", "this S3 server does not enforce If-None-Match"

# %% [markdown]
# ## 2 · When commits do conflict
#
# Appends never conflict: they only add files. Operations that **read** the table and
# then rewrite part of it can: a `DELETE` and an `UPDATE` that both rewrite the same
# file started from the same version, and whichever commits second would silently undo
# the first if it just took the next version number. delta-rs checks the winner's
# commit against what the loser read, and refuses.
#
# Two threads, each with its own `DeltaTable` opened at the same version, then a
# barrier so both operate at once: one deletes session 2, the other updates session 3
# (different rows, but the same Parquet file).

# %%
race_uri = table("race")
sessions = datagen.Simulation(rows=1, sessions=4, seed=SEED).sessions_table()
write_deltalake(race_uri, sessions, storage_options=s.storage_options)

OPERATIONS = {
    "delete session 2": lambda dt: dt.delete("session_id = 2"),
    "update session 3": lambda dt: dt.update(
        predicate="session_id = 3", updates={"task": "'webgrid_v2'"}
    ),
}


def race(run_one) -> list[dict]:
    """Run both operations at once, each in a thread with its own DeltaTable."""
    barrier = threading.Barrier(len(OPERATIONS))
    outcomes = []

    def worker(name, operation):
        outcomes.append({"operation": name, **run_one(operation, barrier)})

    threads = [threading.Thread(target=worker, args=item) for item in OPERATIONS.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def once(operation, barrier) -> dict:
    dt = DeltaTable(race_uri, storage_options=s.storage_options)
    barrier.wait()  # both tables are now at the same version
    try:
        operation(dt)
        return {"result": "committed", "error": ""}
    except CommitFailedError as error:
        return {"result": f"failed: {type(error).__name__}", "error": first_line(error)}


outcomes = race(once)
pl.Config.set_fmt_str_lengths(120)
pl.DataFrame(outcomes)

# %%
failed = [o for o in outcomes if o["result"] != "committed"]
assert len(failed) == 1, f"exactly one of the two should lose, got {outcomes}"

# %% [markdown]
# The loser gets `deltalake.exceptions.CommitFailedError` with a message naming the
# conflict (read it above; which operation loses depends on timing). Nothing was
# committed for it. The fix is in the message: the operation's query must be rerun on
# the new version. A retry loop does exactly that: **reload** the table (a fresh
# `DeltaTable` sees the latest version), **re-apply** the operation, and give up after
# a few attempts.


# %%
def commit_with_retry(uri: str, operation, attempts: int = 5) -> int:
    """Apply ``operation(DeltaTable)`` to the latest version; return the attempts it took."""
    for attempt in range(1, attempts + 1):
        dt = DeltaTable(uri, storage_options=s.storage_options)  # reload: latest version
        try:
            operation(dt)
            return attempt
        except CommitFailedError as error:
            print(f"attempt {attempt} lost a race: {first_line(error)[:70]}...")
            time.sleep(0.05 * attempt)  # back off a little before re-applying
    raise RuntimeError(f"gave up after {attempts} attempts: too much contention on {uri}")


# %% [markdown]
# The same race again, from the original table, but through `commit_with_retry`:

# %%
write_deltalake(race_uri, sessions, mode="overwrite", storage_options=s.storage_options)


def with_retry(operation, barrier) -> dict:
    barrier.wait()
    return {"attempts": commit_with_retry(race_uri, operation)}


retried = race(with_retry)
final = pl.read_delta(race_uri, storage_options=s.storage_options).sort("session_id")
print(pl.DataFrame(retried))
final.select("session_id", "task")

# %%
assert 2 not in final["session_id"].to_list(), "the delete should have landed"
assert final.filter(pl.col("session_id") == 3)["task"][0] == "webgrid_v2", "and the update"

# %% [markdown]
# Both changes landed. (If both threads happened not to overlap, each took one attempt:
# the table above shows what happened in this run.) Keep the retry loop around the
# whole read-modify-write, never around the commit alone: the point is to re-read.
#
# ## 3 · MERGE: upsert and de-duplicate
#
# `DeltaTable.merge(source, predicate, ...)` joins a source (any Arrow data) to the
# table on a predicate, then says what to do with matches and non-matches, in **one
# atomic commit**.
#
# ### Upsert
#
# Sessions get corrected after the fact: a task was mislabelled, a session was missing.

# %%
sessions_uri = table("sessions")
write_deltalake(sessions_uri, sessions.head(2), storage_options=s.storage_options)

corrections = pl.concat(
    [
        sessions.filter(pl.col("session_id") == 2).with_columns(task=pl.lit("webgrid_v2")),
        sessions.filter(pl.col("session_id") == 3),
    ]
)
dt = DeltaTable(sessions_uri, storage_options=s.storage_options)
upsert = (
    dt.merge(
        corrections,
        predicate="t.session_id = s.session_id",
        source_alias="s",
        target_alias="t",
    )
    .when_matched_update_all()
    .when_not_matched_insert_all()
    .execute()
)
print(pl.DataFrame([upsert]).select("num_target_rows_updated", "num_target_rows_inserted"))
pl.read_delta(sessions_uri, storage_options=s.storage_options).select("session_id", "task").sort(
    "session_id"
)

# %% [markdown]
# ### De-duplicate a replayed batch
#
# Kafka delivers **at least once**: after a crash, a consumer replays the last
# micro-batch. A plain append then stores its rows twice. Here, cursor events: a first
# batch, then a replayed batch that overlaps it and even repeats rows within itself.

# %%
events = datagen.Simulation(duration=EVENT_SECONDS, sessions=2, seed=SEED).cursor_events()
half = events.height // 2
first_batch = events.head(half + half // 2)
replayed = pl.concat([events.slice(half), events.slice(half, 10)])  # overlaps, and repeats
print(f"first batch {first_batch.height} rows, replayed batch {replayed.height} rows")

naive_uri, events_uri = table("events_naive"), table("events")
for uri in (naive_uri, events_uri):
    write_deltalake(uri, first_batch, storage_options=s.storage_options)
write_deltalake(naive_uri, replayed, mode="append", storage_options=s.storage_options)
naive = pl.read_delta(naive_uri, storage_options=s.storage_options)
duplicates = naive.height - naive.unique(["session_id", "timestamp"]).height
print(f"plain append: {naive.height} rows, {duplicates} of them duplicates")

# %% [markdown]
# With MERGE, insert a source row only if no row with the same key exists. Two rules
# make it correct: de-duplicate the source first (`unique` on the key: MERGE refuses a
# source where several rows match one target row), and match on the **whole key**.


# %%
def merge_events(batch: pl.DataFrame) -> dict:
    dt = DeltaTable(events_uri, storage_options=s.storage_options)
    return (
        dt.merge(
            batch.unique(["session_id", "timestamp"], keep="last"),
            predicate="t.session_id = s.session_id AND t.timestamp = s.timestamp",
            source_alias="s",
            target_alias="t",
        )
        .when_not_matched_insert_all()
        .execute()
    )


first_merge = merge_events(replayed)
second_merge = merge_events(replayed)  # the same batch once more: must change nothing
merged = pl.read_delta(events_uri, storage_options=s.storage_options)
pl.DataFrame([first_merge, second_merge]).select(
    pl.Series("run", ["replayed batch", "again"]),
    "num_source_rows",
    "num_target_rows_inserted",
    "num_target_files_added",
)

# %%
print(f"merged table: {merged.height} rows; the events themselves: {events.height}")
assert merged.height == events.height, "MERGE should store each event exactly once"
assert second_merge["num_target_rows_inserted"] == 0, "a replayed batch must insert nothing"

# %% [markdown]
# The second run inserted nothing: the merge is **idempotent**, so a consumer can
# replay a batch safely. (A merge with no change adds no data file, but it still
# commits a version; check `history()`.)
#
# ### Idempotent appends without a join: transaction identifiers
#
# MERGE reads the table to find what exists. A streaming writer that numbers its
# batches can do cheaper: record "application X committed batch N" **in the same
# commit** as the data, as a `txn` action of the Delta protocol. On restart it asks the
# table for the last batch it committed and skips what is already there. That is how
# Kafka-to-Delta writers keep exactly-once appends (the batch number is then the
# Kafka offset).

# %%
APP_ID = "cursor-ingest"
txn_uri = table("events_txn")
batches = list(enumerate(events.iter_slices(n_rows=-(-events.height // 4)), start=1))


def append_batch(batch_id: int, batch: pl.DataFrame) -> bool:
    """Append a numbered batch once; return False if the table already has it."""
    table_now = DeltaTable(txn_uri, storage_options=s.storage_options)
    if (table_now.transaction_version(APP_ID) or 0) >= batch_id:
        return False
    write_deltalake(
        txn_uri,
        batch,
        mode="append",
        storage_options=s.storage_options,
        commit_properties=CommitProperties(app_transactions=[Transaction(APP_ID, batch_id)]),
    )
    return True


write_deltalake(txn_uri, events.clear(), storage_options=s.storage_options)  # empty table
first_run = [append_batch(i, b) for i, b in batches[:3]]  # crash after batch 3...
replay = [append_batch(i, b) for i, b in batches[1:]]  # ...restart from batch 2
txn_table = DeltaTable(txn_uri, storage_options=s.storage_options)
print(f"{len(batches)} batches; first run appended {sum(first_run)}, then crashed")
print(f"the replay from batch 2 appended {sum(replay)} of {len(replay)}")
print(f"last batch recorded for {APP_ID!r}: {txn_table.transaction_version(APP_ID)}")
print(f"rows: {txn_table.count()} (events: {events.height})")
assert txn_table.count() == events.height, "each batch should be stored exactly once"

# %% [markdown]
# The `txn` action is in the commit file next to the `add`, so data and batch number
# land atomically: either both or neither.
#
# ## 4 · UPDATE and DELETE
#
# `update` and `delete` take SQL predicates. Like every change, they rewrite the
# affected Parquet files (Parquet is immutable) and commit `remove` + `add` actions.

# %%
dt = DeltaTable(sessions_uri, storage_options=s.storage_options)
changes = [
    {"operation": "update", **dt.update(predicate="session_id = 1", updates={"task": "'calib'"})},
    {"operation": "delete", **dt.delete(predicate="session_id = 3")},
]
print(pl.DataFrame(changes).select("operation", "num_added_files", "num_removed_files"))
pl.read_delta(sessions_uri, storage_options=s.storage_options).select("session_id", "task").sort(
    "session_id"
)

# %% [markdown]
# ## 5 · Constraints: refuse bad data at write time
#
# A `CHECK` constraint is a SQL expression every row must satisfy. Adding one checks
# the existing rows, then stores it in the table's metadata, so **every** writer that
# respects the protocol enforces it, not only your code.

# %%
signals = datagen.Simulation(rows=ROWS, sessions=2, seed=SEED).neural_signals()
checked_uri = table("signals_checked")
write_deltalake(checked_uri, signals.head(10_000), storage_options=s.storage_options)
dt = DeltaTable(checked_uri, storage_options=s.storage_options)
writer_before = dt.protocol().min_writer_version
dt.alter.add_constraint({"quality_in_range": "quality >= 0 AND quality <= 1"})
writer_after = dt.protocol().min_writer_version
print(f"writer protocol version: {writer_before} -> {writer_after}")
print("constraints:", {k: v for k, v in dt.metadata().configuration.items() if "constraint" in k})

bad_batch = signals.slice(10_000, 5).with_columns(quality=pl.lit(1.5, pl.Float32))
try:
    write_deltalake(checked_uri, bad_batch, mode="append", storage_options=s.storage_options)
    violation = None
except DeltaError as error:
    violation = error
print(f"refused: {type(violation).__name__}: {first_line(violation)}")
print("version still", DeltaTable(checked_uri, storage_options=s.storage_options).version())
assert violation is not None, "a row with quality 1.5 must be refused"
assert writer_after > writer_before, "a constraint should raise the writer protocol version"

# %% [markdown]
# The whole batch was refused and nothing was committed. Adding the constraint also
# raised the table's writer protocol version (printed above): a writer too old to know
# constraints may no longer write to the table, so it cannot bypass the check.
#
# ## 6 · Change data feed: what changed, row by row
#
# Downstream jobs (a feature table, a search index) want the **changes** since they
# last ran, not the whole table. With the table property `delta.enableChangeDataFeed`,
# every update, delete and merge also writes the changed rows, tagged with
# `_change_type`; `load_cdf` reads them back for a range of versions.

# %%
feed_uri = table("sessions_feed")
write_deltalake(
    feed_uri,
    sessions.head(3),
    storage_options=s.storage_options,
    configuration={"delta.enableChangeDataFeed": "true"},
)
dt = DeltaTable(feed_uri, storage_options=s.storage_options)
dt.update(predicate="session_id = 1", updates={"task": "'calib'"})  # version 1
dt.delete(predicate="session_id = 2")  # version 2
(
    dt.merge(sessions.tail(1), "t.session_id = s.session_id", source_alias="s", target_alias="t")
    .when_not_matched_insert_all()
    .execute()
)  # version 3
changes = pl.DataFrame(dt.load_cdf(starting_version=1).read_all())
changes.select("_commit_version", "_change_type", "session_id", "task").sort(
    "_commit_version", "_change_type"
)

# %%
kinds = set(changes["_change_type"])
assert {"update_preimage", "update_postimage", "delete", "insert"} <= kinds, kinds

# %% [markdown]
# An update shows up twice (the row before, `update_preimage`, and after,
# `update_postimage`); a delete once, with the deleted values. A consumer remembers the
# last version it processed and asks for `starting_version=` that plus one.
#
# ## 7 · Partitioning, and over-partitioning
#
# `partition_by=["col"]` stores rows in one folder per value (`col=3/part-....parquet`),
# and records the value in each `add` action. A query filtering on it skips whole
# folders without even looking at statistics. The catch: every partition value gets at
# least one file per write. Let us write the same signals three ways and measure (each
# write is done twice and the faster counts; query times are warm medians).

# %%
LAYOUTS = {"none": None, "session_id": ["session_id"], "channel": ["channel"]}
session_filter = pl.col("session_id") == 2
channel_filter = pl.col("channel") == 42


def count_files(uri: str, predicate: pl.Expr) -> tuple[int, int]:
    """Data files a filtered scan opens, and KiB it reads (through the request log)."""
    with delta.RequestLog(s.storage_options) as log:
        pl.scan_delta(uri, storage_options=log.storage_options).filter(predicate).select(
            pl.col("voltage_uv").mean()
        ).collect()
        read = log.summary()
    return read["data files opened"], read["data bytes read"] // 1024


def write_seconds(uri: str, partition_by: list[str] | None) -> float:
    """Write the signals twice (create, then overwrite); the faster of the two, in s."""
    times = []
    for mode in ("error", "overwrite"):
        start = time.perf_counter()
        write_deltalake(
            uri, signals, mode=mode, partition_by=partition_by, storage_options=s.storage_options
        )
        times.append(time.perf_counter() - start)
    return round(min(times), 2)


layouts = []
for name, partition_by in LAYOUTS.items():
    uri = table(f"part_{name}")
    write_s = write_seconds(uri, partition_by)
    dt = DeltaTable(uri, storage_options=s.storage_options)
    row = {"partitioned by": name, "files": len(dt.file_uris()), "write s": write_s}
    for label, predicate in (("one session", session_filter), ("one channel", channel_filter)):
        row[f"{label}: files opened"], row[f"{label}: KiB"] = count_files(uri, predicate)
        row[f"{label}: ms"] = warm_ms(
            lambda predicate=predicate, dt=dt: (
                pl.scan_delta(dt, storage_options=s.storage_options)
                .filter(predicate)
                .select(pl.col("voltage_uv").mean())
                .collect()
            ),
            REPEATS,
        )
    row["full scan: ms"] = warm_ms(
        lambda dt=dt: (
            pl.scan_delta(dt, storage_options=s.storage_options)
            .select(pl.col("voltage_uv").mean())
            .collect()
        ),
        REPEATS,
    )
    layouts.append(row)
layouts = pl.DataFrame(layouts)
layouts.drop("partitioned by").select(pl.all().cast(pl.String)).transpose(
    include_header=True, header_name="measure", column_names=layouts["partitioned by"]
)

# %% [markdown]
# Where does a reader find the partition values? In each file's `add` action
# (`partitionValues`), which `get_add_actions(flatten=True)` shows as
# `partition.<column>`. Counting the files a query can skip is then a filter on the log:

# %%
by_session = DeltaTable(s.table_uri("l01b_part_session_id"), storage_options=s.storage_options)
files = pl.DataFrame(by_session.get_add_actions(flatten=True))
print(files.select(pl.col("path").str.slice(0, 24), "partition.session_id", "num_records"))
skippable = files.filter(pl.col("partition.session_id") != 2).height
print(f"session_id = 2: {skippable} of {files.height} files can be skipped by the log alone")
by_channel = DeltaTable(s.table_uri("l01b_part_channel"), storage_options=s.storage_options)
print("a file of the table partitioned by channel:", by_channel.file_uris()[0])
by = {row["partitioned by"]: row for row in layouts.iter_rows(named=True)}
assert by["session_id"]["one session: KiB"] < by["none"]["one session: KiB"], (
    "partitioning by session should read less for one session"
)
assert by["channel"]["files"] >= 256, "partitioning by channel makes a file per channel"
assert by["channel"]["one channel: files opened"] == 1, "one channel's folder only"
assert by["channel"]["full scan: ms"] > by["none"]["full scan: ms"], "256 files scan slower"

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
colors = ["#999999", "#1b9e77", "#d95f02"]
for ax, column in zip(axes, ["files", "write s", "full scan: ms"], strict=True):
    bars = ax.bar(layouts["partitioned by"], layouts[column], color=colors)
    ax.bar_label(bars)
    ax.set_title(column)
    ax.set_xlabel("partitioned by")
fig.suptitle(f"{signals.height:,} rows written three ways (write: best of 2; scan: median)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table and the bars:
#
# - **By `session_id`** (2 values): the one-session query opens only that session's
#   folder: compare its KiB with the unpartitioned table's. Two files, nothing lost.
# - **By `channel`** (256 values): the one-channel query opens one small file, but
#   the table is now at least 256 files for this one write; every later append adds up
#   to 256 more. The write and the full scan pay a request (and a Parquet footer) per
#   file: compare their times with the unpartitioned table. That is
#   **over-partitioning**: a partition column with many values, or too little data per
#   value.
#
# A rule of thumb from the Delta Lake docs: partition only by a low-cardinality column
# that most queries filter on, and only when each partition holds at least about 1 GB.
# Below that, one unpartitioned table with good statistics (lesson 01's z-order) is
# usually better.
#
# ## 8 · Checkpoints: keeping a streaming table fast to open
#
# Opening a table replays its log: one GET (at least) per commit file. A streaming
# writer commits every few seconds, thousands of times a day. A **checkpoint** is a
# Parquet file holding the replayed state; readers start from the latest one
# (`_delta_log/_last_checkpoint` says which) and only read the commits after it.
# delta-rs writes one every 100 commits by default (`delta.checkpointInterval`); here
# we disable it, make `COMMITS` tiny commits, and measure opening before and after.

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


def opening() -> dict:
    with delta.RequestLog(s.storage_options) as log:
        DeltaTable(stream_uri, storage_options=log.storage_options)
        requests = log.summary()["log requests"]
    ms = warm_ms(
        lambda: DeltaTable(stream_uri, storage_options=s.storage_options).version(), REPEATS
    )
    return {"log requests": requests, "open ms": ms}


before = opening()
DeltaTable(stream_uri, storage_options=s.storage_options).create_checkpoint()
after = opening()
pl.DataFrame([{"log": f"{COMMITS} JSON commits", **before}, {"log": "checkpoint", **after}])

# %%
assert after["log requests"] < before["log requests"], "a checkpoint should save requests"
delta.log_files(stream_uri, s.storage_options).tail(3)

# %% [markdown]
# ## 9 · Protocol versions, and why timestamps must be UTC-aware
#
# The `protocol` action says what a reader and writer must support. Old readers (older
# Spark versions, ROAPI 0.12, which embeds an older delta-rs) refuse a table whose
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
protocols = pl.concat(
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
protocols

# %%
assert protocols["min_reader_version"].to_list() == [1, 3], "naive timestamps need reader 3"

# %% [markdown]
# Every table the lab generates uses `Datetime("us", "UTC")`, so it stays at reader 1
# / writer 2, readable by Spark and ROAPI.
#
# ## Exercises
#
# 1. Raise `WRITERS` to 16. Do all commits still land? What is the largest `retries`?
# 2. Change `OPERATIONS` so that the two threads both **append**. Does either fail?
#    Why not?
# 3. Write a merge that upserts cursor events (update `x`, `y` when the key exists).
#    What does MERGE do if the source still contains duplicates of a key?
# 4. Partition the signals by `session_id` **and** `channel`. How many files? What
#    does the one-session query open now?
# 5. Raise `COMMITS` to 200 and remove `delta.checkpointInterval`. When did delta-rs
#    write a checkpoint by itself?
#
# The graded version of these skills is lab 01 (`labs/01_delta/`).
#
# ## Key takeaways
#
# - Concurrent appends are safe on S3 because commits are conditional writes
#   (`If-None-Match`); no lock service is needed any more.
# - Read-modify-write operations (update, delete, merge, overwrite) can conflict:
#   catch `CommitFailedError`, reload the table, re-apply, with a bounded retry loop.
# - MERGE upserts in one commit; with a de-duplicated source and the whole key in the
#   predicate, an insert-only MERGE makes replays idempotent. Numbered batches can use
#   transaction identifiers instead, committed atomically with the data.
# - Constraints and the change data feed live in the table's metadata, so every
#   protocol-respecting writer and reader honours them.
# - Partition by a low-cardinality column that queries filter on; too many partition
#   values means too many small files. Checkpoints keep opening cheap.
#
# ## Check yourself
#
# 1. Two jobs run `DELETE WHERE session_id = 7` and `UPDATE ... WHERE session_id = 8`
#    on the same table at once. Can both succeed? What must the loser do?
# 2. Your consumer crashed after committing a batch but before saving its Kafka
#    offset, and replays the batch. How do you keep the table free of duplicates?
# 3. A table gets 5 GB a day, and queries filter on `device_id` (20,000 devices) and
#    on day. Which partition column(s)?
#
# <details><summary>Answers</summary>
#
# 1. Yes, eventually, but not both on the first try if they rewrite the same file:
#    the second commit fails with `CommitFailedError`. The loser reloads the table and
#    re-runs its operation on the new version (a bounded retry loop).
# 2. Write with an insert-only MERGE on the event key (`when_not_matched_insert_all`),
#    after `unique()` on the key in the batch: a replayed batch inserts nothing. Or, if
#    batches are numbered, commit each with a transaction identifier
#    (`CommitProperties(app_transactions=[Transaction(app_id, batch)])`) and skip the
#    batches `transaction_version(app_id)` says are already there.
# 3. The day (about 5 GB per partition, and most queries filter on it). Not
#    `device_id`: 20,000 values would mean 20,000 tiny files per day. Use statistics
#    (z-order by `device_id` within the day) for device filters.
#
# </details>
#
# ## Primary sources
#
# - Delta transaction protocol (commits, conflicts, checkpoints, constraints, change
#   data files): https://github.com/delta-io/delta/blob/master/PROTOCOL.md
# - Amazon S3 conditional writes (August 2024):
#   https://aws.amazon.com/about-aws/whats-new/2024/08/amazon-s3-conditional-writes/
# - delta-rs Python API (`merge`, `alter`, `load_cdf`, `create_checkpoint`):
#   https://delta-io.github.io/delta-rs/api/delta_table/
# - delta-rs usage guides (merge, constraints, change data feed, partitioning):
#   https://delta-io.github.io/delta-rs/usage/
# - Delta Lake best practices (choosing partition columns):
#   https://docs.delta.io/latest/best-practices.html
# - Glossary of the terms used here: `docs/glossary.md`
