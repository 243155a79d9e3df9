# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Welcome to Neuralake Lab
#
# Neuralink records thousands of channels of neural data from every device, and its data
# platform has two jobs at once: answer a question about the last few seconds of data in
# milliseconds, and crunch months of it for research. Its answer is a **lakehouse**:
# open table files (Delta Lake) on object storage (S3), a catalog written as Python code,
# a low-latency path (Rust, Polars, ROAPI) and a heavy-lifting path (Spark) over the
# *same* tables.
#
# In this lab you build that platform piece by piece, and every piece runs for real on
# your machine: a real S3 server, a real Kafka broker, the real ROAPI binary, real Spark.
#
# ## The path through the lab
#
# | Lesson | You learn | Runs on |
# |---|---|---|
# | 00 Welcome (this one) | what runs where, and where your data lives | the whole stack |
# | 01 Delta Lake fundamentals | ACID commits on S3, schema evolution, time travel, compaction | MinIO + delta-rs |
# | 02 Code as a Catalog | tables defined in Python, a generated catalog site, pushdown | MinIO + PostgreSQL |
# | later | Rust low-latency writer, Kafka ingestion, ROAPI, Spark, benchmarks | the whole stack |
#
# Each lesson has a lab in `labs/` with auto-graded exercises.
#
# ## The architecture
#
# ```
#   devices ──► Kafka ──► Rust writer ──► Delta tables on S3 (MinIO) ◄── compaction, vacuum
#                                              │
#                        ┌─────────────────────┼──────────────────────┐
#                        ▼                     ▼                      ▼
#                 hot path: ROAPI       Polars / DataFusion     cold path: Spark
#                 SQL + REST, ms        in a notebook            batch, minutes
#                        ▲                     ▲                      ▲
#                        └──── the catalog (Python code) describes every table ────┘
# ```
#
# Everything is configured in one place, `neuralake.settings()`: endpoints, credentials,
# bucket, warehouse. Switch profile (`local`, `stack`, `aws`) and the same code runs on
# a folder, on the lab's stack, or on real AWS.

# %% tags=["parameters"]
# How many S3 objects and on-disk files to list when we look at where data lives.
SHOW_OBJECTS = 5

# %%
import time
import uuid
from pathlib import Path

import boto3
import polars as pl
import psycopg
from confluent_kafka.admin import AdminClient

import neuralake
from neuralake import stack

s = neuralake.settings()
print("profile:", s.profile)
print("warehouse:", s.warehouse_uri)

# %% [markdown]
# ## Is everything running?
#
# `neuralake stack status` (or `make status`) asks every service a real question: S3
# lists the bucket, Kafka creates and describes a topic, PostgreSQL runs a query. An open
# port is not enough: a service that accepts connections but cannot answer is not
# healthy.

# %%
rows = stack.status(s)
pl.DataFrame([row.__dict__ for row in rows]).select(
    "service", "mode", "address", "pid", "healthy", "error"
)

# %%
assert all(row.healthy for row in rows), "start the stack first: make up"

# %% [markdown]
# ## Talk to each service yourself
#
# The settings hand each client exactly what it needs: `boto3_kwargs` for boto3,
# `kafka_config` for confluent-kafka, `postgres_dsn` for psycopg, `storage_options`
# for delta-rs and Polars. Each call below is timed, so you see what a round trip to a
# local service costs.


# %%
def timed(call):
    started = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - started) * 1000


s3 = boto3.client("s3", **s.boto3_kwargs)
admin = AdminClient(s.kafka_config)

probe_key = f"welcome/hello-{uuid.uuid4().hex[:8]}.txt"
checks = {
    "S3 put object": lambda: s3.put_object(Bucket=s.bucket, Key=probe_key, Body=b"hello lake"),
    "S3 get object": lambda: s3.get_object(Bucket=s.bucket, Key=probe_key)["Body"].read(),
    "Kafka list topics": lambda: sorted(admin.list_topics(timeout=10).topics),
    "PostgreSQL query": lambda: (
        psycopg.connect(s.postgres_dsn).execute("select version()").fetchone()[0]
    ),
}
results = []
for name, call in checks.items():
    answer, ms = timed(call)
    results.append({"check": name, "ms": round(ms, 1), "answer": str(answer)[:60]})
pl.DataFrame(results)

# %% [markdown]
# A local round trip costs milliseconds (the first call of each client is slower: it
# opens connections). Keep that number in mind: Delta Lake commits are a handful of such
# S3 requests, which is why small, frequent writes need the care lesson 01 shows.
#
# ## Where does the data live?
#
# In S3 terms, everything lives in the bucket `neuralake`; tables go under
# `warehouse/`. On disk, the native stack keeps every service's data in the project's
# state folder, so it survives `make down` / `make up`:

# %%
for row in rows:
    print(f"{row.service:<9} {row.data}")

# %%
listing = s3.list_objects_v2(Bucket=s.bucket, MaxKeys=SHOW_OBJECTS)
objects = [{"key": o["Key"], "bytes": o["Size"]} for o in listing.get("Contents", [])]
pl.DataFrame(objects, schema={"key": pl.String, "bytes": pl.Int64})

# %% [markdown]
# MinIO stores each object as a folder named after its key, holding an `xl.meta` file
# (metadata, and the bytes themselves when the object is small). Here is the object we
# just wrote, seen from the filesystem (native stack only: in Docker it sits in a volume):

# %%
minio_data = Path(next(row.data for row in rows if row.service == "minio"))
on_disk = minio_data / s.bucket / probe_key
if on_disk.exists():
    print(on_disk)
    for item in sorted(on_disk.iterdir())[:SHOW_OBJECTS]:
        print("  ", item.name, item.stat().st_size, "bytes")
else:
    print("the data folder is inside a Docker volume:", minio_data)

# %%
_ = s3.delete_object(Bucket=s.bucket, Key=probe_key)

# %% [markdown]
# ## Exercise
#
# 1. Run `make status` in a terminal and compare it with the table above.
# 2. Stop the stack (`make down`), start it again (`make up`) and check that an object
#    you put in S3 is still there. Which folder under `.state/` holds it?
# 3. Print `neuralake.settings("local")`: where would your tables go without the stack?
#
# Next: **01 Delta Lake fundamentals**.
