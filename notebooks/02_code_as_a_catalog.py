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
# # 02 · Code as a catalog
#
# **Why.** A lakehouse soon holds hundreds of tables. Where is the session table? What
# does `quality` mean? Who owns it? Is it fresh? Which tables break if it changes?
# Neuralink's answer (their open-source `datarepo`, formerly `neuralake`) is to keep the
# catalog **in code**: a Python module is a database, each table is a declaration in
# it, and a website, copy-paste snippets and an HTTP/SQL API are *generated* from it.
# A new table is a pull request, reviewed like any code.
#
# In this lesson you will:
#
# 1. declare tables in a module and browse and query them as a catalog;
# 2. join a Delta table, a function table and a PostgreSQL table in one lazy query;
# 3. **measure** filter pushdown: files and bytes read with and without a filter;
# 4. run data-quality checks and refresh a materialized view;
# 5. generate the catalog website and the ROAPI config, and query ROAPI.
#
# This library goes past datarepo where it is weak: reads stay lazy (so later filters
# still push down), filters never become SQL text, the site never runs a table, and the
# ROAPI YAML is really written.

# %% tags=["parameters"]
ROWS = 1_000_000  # neural-signal rows to generate (rounded up to whole 102.4 ms blocks)
SESSIONS = 4  # recording sessions; neural_signals is partitioned by session
REPEATS = 3  # timing runs per measurement (the best one is reported)

# %%
import inspect
import os
import subprocess
import time
from html import escape

import polars as pl
import requests
import yaml
from IPython.display import HTML, display

import neuralake
from neuralake.catalog import Catalog, CatalogError, Filter, ModuleDatabase
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import seed
from neuralake.catalog.export import export_catalog
from neuralake.catalog.pushdown import measure
from neuralake.catalog.roapi import roapi_yaml, write_roapi
from neuralake.catalog.site import build_site
from neuralake.settings import project_dir
from neuralake.stack.processes import free_port

s = neuralake.settings()
print(f"profile {s.profile}: warehouse {s.warehouse_uri}, PostgreSQL {bool(s.postgres_dsn)}")

# %% [markdown]
# ## 1 · Create the data
#
# The example catalog `neuralake/catalog/examples/neuro.py` describes the study's
# tables. This lesson makes its own copy of the data, under `catalog/` in the warehouse,
# and loads the patients into PostgreSQL (the "clinical registry") when the stack is up.

# %%
started = time.perf_counter()
seeded = seed(s, rows=ROWS, sessions=SESSIONS)
print(
    f"wrote {seeded.signal_rows:,} signal rows and {len(seeded.uris)} tables "
    f"in {time.perf_counter() - started:.2f} s; patients in PostgreSQL: "
    f"{seeded.patients_in_postgres}"
)

# %% [markdown]
# ## 2 · A Python module is a database
#
# Here is one declaration from the module. Everything the website shows comes from it:
# location, schema with column descriptions, partitioning, example filters, tags,
# owner, lineage (`upstream`) and quality checks.

# %%
source = inspect.getsource(neuro)
start = source.index("sessions = DeltaTable(")
print(source[start : source.index("\n)\n", start) + 2])

# %% [markdown]
# `ModuleDatabase` collects every table object in the module; `Catalog` names databases.

# %%
catalog = Catalog({"neuro": ModuleDatabase(neuro)})
db = catalog.db("neuro")
pl.DataFrame(
    [
        {
            "table": t.name,
            "kind": getattr(t, "kind_label", t.kind),
            "owner": t.owner,
            "tags": ", ".join(t.tags),
            "checks": len(t.checks),
            "upstream": ", ".join(t.upstream),
        }
        for t in db.tables().values()
    ]
)

# %% [markdown]
# `db.table(name, filters=..., columns=...)` returns a **LazyFrame**: nothing is read
# yet. A typo gets an error that lists what exists.

# %%
cursor_sessions = db.table(
    "sessions",
    filters=[Filter("task", "=", "cursor_control")],
    columns=["session_id", "patient_id", "task", "started_at"],
)
print(type(cursor_sessions).__name__)
display(cursor_sessions.collect())
try:
    db.table("session")
except CatalogError as error:
    print("error:", error)

# %% [markdown]
# Filters are `Filter(column, op, value)`: a list means AND, a list of lists means OR.

# %%
either = [
    [Filter("session_id", "=", 1), Filter("channel", "<", 2)],
    [Filter("session_id", "=", 2), Filter("channel", "in", [7, 8])],
]
db.table("neural_signals", filters=either).group_by("session_id", "channel").len().sort(
    "session_id", "channel"
).collect()

# %% [markdown]
# ## 3 · One lazy query over three kinds of tables
#
# `sessions` is a Delta table on S3, `session_quality` a **function table** (a Python
# function that returns a LazyFrame; its docstring is its description), `patients` a
# table in **PostgreSQL**. They join in one Polars plan.

# %%
print(db.get("session_quality").description)
if s.postgres_dsn:
    joined = (
        db.table("sessions", columns=["session_id", "patient_id", "task"])
        .join(db.table("session_quality"), on=["session_id", "task"])
        .join(db.table("patients", columns=["patient_id", "code", "cohort"]), on="patient_id")
        .sort("session_id")
    )
    display(joined.collect())
else:
    print("no PostgreSQL in this profile: start the stack (neuralake stack up) for the join")

# %% [markdown]
# PostgreSQL filters are sent as **parameters**, never spliced into the SQL text. Here
# is the query the catalog sends for a hostile value; the value travels separately:

# %%
query, params = db.get("patients").query(
    [Filter("code", "=", "P0001' OR '1'='1")], ["patient_id", "code"], limit=None
)
print(query.as_string(None))
print("parameters:", params)
if s.postgres_dsn:
    hostile = db.table("patients", filters=[Filter("code", "=", "P0001' OR '1'='1")])
    print("rows matched by the hostile value:", hostile.collect().height)

# %% [markdown]
# ## 4 · Measure filter pushdown
#
# `neural_signals` is partitioned by `session_id`. Because the read is lazy, a filter
# reaches the Parquet reader: it skips whole files by partition value and by per-file
# min/max statistics. `measure` reports what Polars says it opened and skipped, the
# bytes this process read (local files only: S3 traffic is not counted there) and time.

# %%
local_files = s.warehouse_uri.startswith("file://")


def best_of(make_frame):
    runs = [measure(make_frame(), local=local_files) for _ in range(REPEATS)]
    return min(runs, key=lambda run: run[1].seconds)


first_session_end = (
    db.table("sessions", filters=[Filter("session_id", "=", 1)]).select("ended_at").collect().item()
)
cases = {
    "no filter": lambda: db.table("neural_signals"),
    "filters=[session_id = 2]": lambda: db.table(
        "neural_signals", filters=[Filter("session_id", "=", 2)]
    ),
    "later .filter(session_id == 2)": lambda: db.table("neural_signals").filter(
        pl.col("session_id") == 2
    ),
    "timestamp < end of session 1": lambda: db.table("neural_signals").filter(
        pl.col("timestamp") < first_session_end
    ),
}
rows = []
for label, make in cases.items():
    _, m = best_of(make)
    rows.append(
        {
            "query": label,
            "rows": m.rows,
            "files opened": m.files_opened,
            "files total": m.files_total,
            "MB read": None if m.bytes_read is None else round(m.bytes_read / 1e6, 2),
            "ms": round(m.seconds * 1000, 1),
        }
    )
pushdown = pl.DataFrame(rows)
pushdown

# %% [markdown]
# The filter given to the catalog and the `.filter()` written afterwards open the same
# files: the read stayed lazy, so the optimizer moved the later filter into the scan.
# The timestamp filter is on a column that is *not* a partition: the per-file min/max
# statistics in the Delta log let the reader skip files anyway.

# %%
full, filtered = pushdown.row(0, named=True), pushdown.row(1, named=True)
print(
    f"a session filter opens {filtered['files opened']} of {full['files total']} files, "
    f"{full['ms'] / max(filtered['ms'], 0.1):.1f}x faster"
)

# %% [markdown]
# ## 5 · Quality checks and a materialized view
#
# Checks are declared on each table (`NotNull`, `Unique`, `Range`, `AcceptedValues`,
# `Freshness`). The catalog runs all checks of a table in **one** lazy pass.
# `channel_stats` is a function table declared with `materialize=True`: refreshing it
# stores the result as a Delta table, which is fast to read and ROAPI can serve.

# %%
version = catalog.refresh("channel_stats")
print(f"channel_stats refreshed: version {version.version} at {version.committed_at}")
reports = catalog.check()
pl.DataFrame(
    [
        {"table": r.table, "check": c.check, "passed": c.passed, "detail": c.detail}
        for r in reports
        for c in r.results
    ]
)

# %%
_, computed = best_of(lambda: neuro.channel_stats.compute())
_, stored = best_of(lambda: db.table("channel_stats"))
print(
    f"computing channel_stats: {computed.seconds * 1000:.0f} ms; "
    f"reading the materialized view: {stored.seconds * 1000:.0f} ms"
)

# %% [markdown]
# ## 6 · The generated website
#
# `neuralake catalog site` (here: `build_site`) renders static HTML from the export,
# with Jinja2: an index with search and tag filters, and a page per table with its
# schema, quality status, freshness (Delta version and commit time), lineage drawn as
# SVG, and snippets. It loads nothing from the internet. Below: the `sessions` page.

# %%
out = project_dir() / "build" / "catalog_site"
started = time.perf_counter()
export = export_catalog(catalog, "neuralake.catalog.examples.neuro", s, quality=reports)
index = build_site(export, out)
print(f"built {len(export['tables'])} pages in {time.perf_counter() - started:.2f} s: {index}")
page = (out / "tables" / "neuro.sessions.html").read_text()
HTML(
    f'<div><iframe srcdoc="{escape(page)}" style="width:100%;height:720px;border:1px solid #ccc">'
    "</iframe></div>"
)

# %% [markdown]
# ## 7 · The same catalog as an API: ROAPI
#
# The ROAPI config is written from the same export: every Delta table (and the
# materialized view), with the stack's addresses. Function and PostgreSQL tables are
# listed as skipped, with the reason.

# %%
print(roapi_yaml(export))

# %% [markdown]
# Start the real `roapi` binary on this config (on free ports, so it never collides
# with a ROAPI the stack runs) and send it the SQL snippet from the `sessions` page.


# %%
def free_address() -> str:
    return f"127.0.0.1:{free_port()}"  # a port the kernel just picked as unused


http = free_address()
config = write_roapi(
    export, out / "roapi.yaml", http=http, postgres=free_address(), flight_sql=free_address()
)
roapi_bin = project_dir() / ".venv" / "bin" / "roapi"
server = subprocess.Popen(
    [str(roapi_bin), "-c", str(config)],
    env={**os.environ, **s.roapi_env},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    for _ in range(150):
        try:
            if requests.get(f"http://{http}/api/schema", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    sql = next(t for t in export["tables"] if t["name"] == "sessions")["snippets"]["sql"]
    print(sql)
    answer = requests.post(f"http://{http}/api/sql", data=sql, timeout=30)
    answer.raise_for_status()
    display(pl.DataFrame(answer.json()))
finally:
    server.terminate()
    server.wait(timeout=10)

# %% [markdown]
# ## Exercise
#
# Add a table to a catalog module: a `DeltaTable` (or an `@table` function) with a
# description, described columns, a `docs_filters` example and at least one quality
# check. Rebuild the site and find your table with the search box; check that it is in
# `catalog.json` and, if it is a Delta table, in the ROAPI config.
# Lab 02 (`labs/02_catalog/`) walks through it and checks your work.

# %%
print(yaml.safe_dump({"tables in the export": [t["id"] for t in export["tables"]]}))
