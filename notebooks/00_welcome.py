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
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Welcome to Neuralake Lab
#
# **Time:** about 15 minutes. **Prerequisites:** Python and a terminal; the stack is
# started with `make up` (or `make lab`, which also opens this notebook).
#
# **You will be able to**
#
# 1. name the parts of a lakehouse and say which job each one does;
# 2. check that every service of the lab's stack answers, from Python;
# 3. measure what one round trip to each service costs, cold and warm;
# 4. find where your data lives, in S3 terms and on disk.
#
# **Why.** Neuralink records thousands of channels of neural data from every device,
# and its data platform has two jobs at once: answer a question about the last few
# seconds of data in milliseconds, and crunch months of it for research. Its answer is
# a **lakehouse**: the data lives once, as open table files in cheap object storage
# (the "lake"), and a transaction log on top gives it what a database ("warehouse")
# gives: atomic commits, a schema, versions. Every engine, fast or heavy, reads the
# same tables.
#
# In this lab you build that platform piece by piece, and every piece runs for real on
# your machine: a real S3 server, a real Kafka broker, real PostgreSQL.

# %% tags=["parameters"]
SHOW_OBJECTS = 5  # how many S3 objects to list when we look at where data lives
REPEATS = 20  # warm calls per service; the median is shown

# %% [markdown]
# ## The architecture
#
# Data flows from left to right; the catalog describes every table without holding
# any data.

# %%
from IPython.display import SVG, display

display(SVG(filename="../docs/img/architecture.svg"))

# %% [markdown]
# The words in the picture, defined once (all of them are in `docs/glossary.md`, with
# links to their primary sources):
#
# | term | what it is |
# |---|---|
# | **S3**, object storage | a key-value store for files ("objects") over HTTP; cheap, durable, no in-place edits. **MinIO** is an S3-compatible server you run yourself. |
# | **Delta Lake** | a table format: Parquet data files plus a transaction log (`_delta_log/`) of JSON commits that says which files make up each version. |
# | **Kafka**, **KRaft** | Kafka is a durable, replayable log of events that producers append to and consumers read at their own pace. KRaft is Kafka's built-in consensus (Raft), which replaced ZooKeeper. |
# | **Rust writer** | a small service that consumes Kafka and appends to Delta tables, one commit every few seconds. |
# | **ROAPI** | a server that exposes tables (Delta, Parquet, CSV...) as SQL and REST endpoints, with no code to write. |
# | **DataFusion** | a query engine in Rust (Apache Arrow project): ROAPI and delta-rs use it to run SQL. |
# | **Polars** | a DataFrame library (Rust, with a Python API) that reads Delta tables lazily. |
# | **Spark** | a distributed engine for big batch jobs; here it runs in local mode. |
# | **hot path / cold path** | the hot path answers fresh, small questions in milliseconds (ROAPI); the cold path runs big jobs over history in minutes (Spark). |
# | **pushdown** | handing a filter or a column selection to the scan, so it reads less: skipping files by their statistics, columns it does not need. |
# | **catalog** | the list of tables with their schema, docs and location; here written as Python code. |
#
# ## The path through the lab
#
# | lesson | you learn | runs on |
# |---|---|---|
# | 00 Welcome (this one) | what runs where, and where your data lives | the whole stack |
# | 01 Delta Lake fundamentals | the transaction log, time travel, small files, data skipping | MinIO + delta-rs |
# | 01b Delta Lake in production | concurrent writers and conflicts, MERGE, constraints, change data feed, partitioning | MinIO + delta-rs |
# | 02 Code as a Catalog | tables defined in Python, a generated catalog site, pushdown | MinIO + PostgreSQL |
# | 03 The low-latency writer | ingest, compaction and vacuum as three processes; the small-file problem; `txn` actions; conditional writes | Rust writer + MinIO |
# | 04 Kafka into Delta, exactly once | topics, partitions, consumer groups, lag; a kill -9 that loses nothing; dead letters and replay; freshness | Kafka + Rust writer |
# | 05 Serving with ROAPI | SQL, REST, GraphQL, Postgres wire and Flight SQL on the live table; latency against a hand-written service | ROAPI |
# | 06 Spark, the workhorse | `session()` with Delta + S3A, the guard refusing the writer's bronze, the incremental ELT bronze -> silver -> gold, Spark vs Polars at two scales, delta-rs <-> Spark | Spark + MinIO |
# | 07 Benchmarks | Polars, DataFusion, DuckDB and Spark on TPC-H: answers checked, then timed | all engines |
# | 08 The whole pipeline | producer -> Kafka -> writer -> bronze served live by ROAPI, silver and gold by Spark; lineage and checks from the catalog; freshness and lag through an outage; alert rules; who wrote what from the Delta log | the whole stack |
#
# Lessons 01 to 06 each have a lab in `labs/` with auto-graded exercises; lesson 08
# puts every part together and adds monitoring and governance.
#
# Everything is configured in one place, `neuralake.settings()`: endpoints,
# credentials, bucket, warehouse. Switch profile (`local`, `stack`, `aws`) and the
# same code runs on a folder, on the lab's stack, or on real AWS.

# %%
import statistics
import time
import uuid
from pathlib import Path

import boto3
import matplotlib.pyplot as plt
import polars as pl
import psycopg
from confluent_kafka.admin import AdminClient

import neuralake
from neuralake.lab import stack

s = neuralake.settings()
print("profile:", s.profile)
print("warehouse:", s.warehouse_uri)

# %% [markdown]
# ## Is everything running?
#
# `neuralake stack status` (or `make status`) asks every service a real question: S3
# lists the bucket, Kafka creates and describes a topic, PostgreSQL runs a query. An
# open port is not enough: a service that accepts connections but cannot answer is
# not healthy.

# %%
rows = stack.status(s)
pl.DataFrame([row.__dict__ for row in rows]).select("service", "mode", "address", "healthy")

# %%
assert all(row.healthy for row in rows), "start the stack first: make up"

# %% [markdown]
# ## Talk to each service yourself, and time it
#
# The settings hand each client exactly what it needs: `boto3_kwargs` for boto3,
# `kafka_config` for confluent-kafka, `postgres_dsn` for psycopg, `storage_options`
# for delta-rs and Polars. Each client is created once (that opens its connections);
# then we time the **first** call, and the median of `REPEATS` calls after it. The
# first call often pays for set-up (a connection, a metadata fetch) that later calls
# reuse, so a single timing says little.

# %%
s3 = boto3.client("s3", **s.boto3_kwargs)
admin = AdminClient(s.kafka_config)
postgres = psycopg.connect(s.postgres_dsn)
probe_key = f"welcome/hello-{uuid.uuid4().hex[:8]}.txt"

checks = {
    "S3 put object": lambda: s3.put_object(Bucket=s.bucket, Key=probe_key, Body=b"hello lake"),
    "S3 get object": lambda: s3.get_object(Bucket=s.bucket, Key=probe_key)["Body"].read(),
    "Kafka list topics": lambda: admin.list_topics(timeout=10).topics,
    "PostgreSQL query": lambda: postgres.execute("select version()").fetchone()[0],
}


def summary(name: str, answer) -> str:
    """A few words about an answer, instead of dumping it."""
    if name == "S3 put object":
        return f"HTTP {answer['ResponseMetadata']['HTTPStatusCode']}"
    if name == "S3 get object":
        return f"{len(answer)} bytes: {answer.decode()!r}"
    if name == "Kafka list topics":
        return f"{len(answer)} topics"
    return " ".join(answer.split()[:2])


timings, latencies = [], {}
for name, call in checks.items():
    start = time.perf_counter()
    answer = call()
    first_ms = (time.perf_counter() - start) * 1000
    warm = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        warm.append((time.perf_counter() - start) * 1000)
    latencies[name] = warm
    timings.append(
        {
            "check": name,
            "first ms": round(first_ms, 1),
            "warm median ms": round(statistics.median(warm), 2),
            "warm max ms": round(max(warm), 1),
            "answer": summary(name, answer),
        }
    )
timings = pl.DataFrame(timings)
timings

# %%
fig, ax = plt.subplots(figsize=(8, 2.8))
ax.boxplot(list(latencies.values()), orientation="horizontal", tick_labels=list(latencies))
ax.scatter(timings["first ms"], range(1, timings.height + 1), marker="x", color="red", zorder=3)
ax.set_xscale("log")
ax.set_xlabel(f"milliseconds per call ({REPEATS} warm calls each, log scale)")
ax.set_title("One round trip to each local service (red x: the first call)")
fig.tight_layout()
plt.show()

# %%
assert timings["warm median ms"].max() < 1000, "a warm local call should take well under 1 s"

# %% [markdown]
# Read the table: a warm call to a local service costs the milliseconds in the
# `warm median ms` column. Compare `first ms`: a client's first call may pay for
# set-up that later calls reuse (a connection, a metadata fetch), and any single call
# can hit a busy moment of the machine (see `warm max ms`). That is why timings in this
# lab are medians of several warm calls. Keep the S3 numbers in mind: a
# Delta Lake commit is a handful of such S3 requests, and opening a table costs at least
# one request per commit file. That is why small, frequent writes need the care lesson 01
# measures.
#
# ## Where does the data live?
#
# In S3 terms, everything lives in the bucket `neuralake`; tables go under
# `warehouse/`. On disk, the native stack keeps every service's data in the project's
# state folder, so it survives `make down` / `make up`:

# %%
pl.DataFrame([{"service": row.service, "data folder": row.data} for row in rows])

# %%
pl.Config.set_fmt_str_lengths(80)
listing = s3.list_objects_v2(Bucket=s.bucket, MaxKeys=SHOW_OBJECTS)
objects = [{"key": o["Key"], "bytes": o["Size"]} for o in listing.get("Contents", [])]
pl.DataFrame(objects, schema={"key": pl.String, "bytes": pl.Int64})

# %% [markdown]
# MinIO stores each object as a folder named after its key, holding an `xl.meta` file
# (metadata, and the bytes themselves when the object is small). Here is the object we
# just wrote, seen from the filesystem (native stack only: in Docker it sits in a
# volume):

# %%
minio_data = Path(next(row.data for row in rows if row.service == "minio"))
on_disk = minio_data / s.bucket / probe_key
if on_disk.exists():
    print(on_disk.relative_to(minio_data))
    for item in sorted(on_disk.iterdir())[:SHOW_OBJECTS]:
        print(f"  {item.name}: {item.stat().st_size} bytes")
else:
    print("the data folder is inside a Docker volume:", minio_data)

# %%
s3.delete_object(Bucket=s.bucket, Key=probe_key)
postgres.close()

# %% [markdown]
# ## Exercises
#
# 1. Run `make status` in a terminal and compare it with the status table above.
# 2. Stop the stack (`make down`), start it again (`make up`) and check that an object
#    you put in S3 is still there. Which folder under `.state/` holds it?
# 3. Print `neuralake.settings("local")`: where would your tables go without the stack?
# 4. Time `psycopg.connect(s.postgres_dsn)` itself, ten times. How does a fresh
#    connection compare with the warm query above? What does that tell you about
#    connection pools?
#
# ## Key takeaways
#
# - A lakehouse keeps one copy of the data in open files on object storage; a
#   transaction log makes it a table, and every engine reads that same table.
# - The hot path (ROAPI, milliseconds) and the cold path (Spark, minutes) differ in
#   engine, not in data.
# - Time warm calls, several of them, and report the median: a single call may pay for
#   set-up or hit a busy moment.
#
# ## Check yourself
#
# 1. Why can Polars, ROAPI and Spark all read the same table without copying it?
# 2. What does the catalog hold, and what does it not hold?
# 3. Why does the lab report the median of several warm calls rather than one call?
#
# <details><summary>Answers</summary>
#
# 1. The table is open files (Parquet) plus an open log format (Delta) in S3; each
#    engine implements the Delta protocol and reads the files directly.
# 2. It holds each table's description (schema, docs, location); not the data, which
#    stays in the Delta tables on S3.
# 3. A first call may pay for set-up that later calls reuse (a connection, a metadata
#    fetch), and any single call can be slowed by other work on the machine; the
#    median of warm calls is what a running service pays, and ignores the outliers.
#
# </details>
#
# ## Primary sources
#
# - Lakehouse: Armbrust et al., "Lakehouse: A New Generation of Open Platforms..."
#   (CIDR 2021): https://www.cidrdb.org/cidr2021/papers/cidr2021_paper17.pdf
# - Delta Lake protocol: https://github.com/delta-io/delta/blob/master/PROTOCOL.md
# - Kafka KRaft: https://kafka.apache.org/documentation/#kraft
# - ROAPI: https://roapi.github.io/docs/ · DataFusion: https://datafusion.apache.org/
# - MinIO: https://github.com/minio/minio · boto3 S3 client:
#   https://boto3.amazonaws.com/v1/documentation/api/latest/reference/services/s3.html
#
# Next: **01 Delta Lake fundamentals**.
