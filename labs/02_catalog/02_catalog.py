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
# # Lab 02 · Code as a catalog
#
# **Learning objectives.** You will:
#
# 1. turn an undocumented Delta table into a catalog table with the right types,
#    partitioning and an example that returns rows;
# 2. read it with a filter that skips files, and know why it does;
# 3. write quality checks that catch broken rows without failing on good ones;
# 4. attach them and publish the table: website, JSON export and ROAPI config from one
#    declaration;
# 5. (stretch) serve a materialized view of it through ROAPI, types intact.
#
# **Time:** 45-75 minutes (exercise 5 is a stretch: 20 of them).
# **Prerequisites:** lesson 02 (`notebooks/02_code_as_a_catalog`), which shows every
# API used here, section by section; the stack running (`make up`).
#
# **Why.** A table nobody documented is a table nobody can trust: which column is the
# partition, what does `mean_quality` mean, may `spikes` be negative? The setup cell
# writes such a table, `spike_counts` (spikes per recording session and electrode
# channel). You make it a catalog table, then **measure** that your read skips files
# and that your checks catch bad rows, then publish it.
#
# **How it works.** After each exercise, run its **check** cell. The check looks at the
# real table and the real files, and says `PASSED` or what it found plus a hint. Run
# the check again and the hint gets more specific (3 levels: the idea, the API, the
# call). `lab.reset("ex3")` puts one exercise back as it was at setup. This notebook is
# a Python module too: `ModuleDatabase(sys.modules[__name__])` finds the tables you
# declare in it.

# %% tags=["parameters"]
PREFIX = "lab02_"  # table names start with this

# %%
import sys

import httpx
import polars as pl
from deltalake import DeltaTable

import neuralake
from neuralake.catalog import (
    Catalog,
    Column,
    DeltalakeTable,
    Filter,
    ModuleDatabase,
    NotNull,
    Range,
    Unique,
    table,
)
from neuralake.catalog.export import export_catalog
from neuralake.catalog.quality import run_checks
from neuralake.catalog.roapi import roapi_config, write_roapi
from neuralake.catalog.site import build_site
from neuralake.lab.api.server import roapi
from neuralake.lab.graders import lab02

s = neuralake.settings()
lab = lab02.setup(s, prefix=PREFIX)
print(f"profile {s.profile}\nspike_counts: {lab.uri} ({lab.rows} rows)")
lab.data().head()

# %% [markdown]
# Before you start, look at the table the way lesson 02 section 2 did: its files, their
# partition values and their statistics are in the Delta log.

# %%
pl.DataFrame(
    DeltaTable(lab.uri, storage_options=lab.storage_options).get_add_actions(flatten=True)
).select("path", "size_bytes", "num_records", "min.channel", "max.channel")

# %% [markdown]
# ## Exercise 1 · Document the table
#
# Declare `spike_counts` as a `DeltalakeTable` named `"spike_counts"` at `lab.uri`, with:
#
# - a description that says what one row is (a sentence);
# - every column with its **exact** type and a description, `Column(pl.Int64, "...")`
#   (the types must be the table's, not the ones you would guess);
# - its partitioning (the log above says how the files are laid out);
# - an example filter in `docs_filters` that returns rows;
# - tags, an owner and `upstream` (where the counts come from: `neural_signals`) if
#   you like: the site shows them.

# %% tags=["solution"]
# Declare spike_counts = DeltalakeTable("spike_counts", uri=lab.uri, ...).
spike_counts = DeltalakeTable(
    "spike_counts",
    uri=lab.uri,
    description="Spikes detected per recording session and electrode channel.",
    schema={
        "session_id": Column(pl.Int32, "The recording session (see sessions)."),
        "channel": Column(pl.Int16, "Electrode channel, 0-based."),
        "spikes": Column(pl.Int64, "Spikes detected on the channel in the session."),
        "mean_quality": Column(pl.Float64, "Average signal quality, 0 (unusable) to 1."),
    },
    partition_columns=["session_id"],
    docs_filters=[Filter("session_id", "=", 1), Filter("channel", "<", 4)],
    tags=["lab", "signals"],
    owner="student@neuralake.dev",
    upstream=["neural_signals"],
)

# %%
lab02.check_declared(lab, spike_counts)

# %% [markdown]
# ## Exercise 2 · Read it with a filter that skips files
#
# Store in `session_two` a **function** that returns the rows of session 2, channels 0
# to 7, read through your table as a **LazyFrame** (no `.collect()`). The check calls it
# inside `measure` (lesson 02, section 6), so that the scan sends its requests through a
# log, collects it and counts the files the scan opened, which must be fewer than all
# of them. A LazyFrame built before the check could not be counted: it already knows
# where S3 is. Before you run the check, predict how many files it will open, then look
# at `session_two().explain()`.


# %% tags=["solution"]
# Store in session_two a function returning a LazyFrame of session 2, channels 0 to 7.
def session_two() -> pl.LazyFrame:
    return spike_counts.scan(filters=[Filter("session_id", "=", 2), Filter("channel", "<", 8)])


# %%
lab02.check_filtered(lab, session_two)

# %% [markdown]
# ## Exercise 3 · Quality checks that catch broken rows
#
# Declare, in a list `checks`, the rules every row of `spike_counts` must keep. The
# check runs your list on the real data (it is clean: every check must pass) and on
# rows it breaks in several ways a row of spike counts can be wrong (each must make a
# check fail). Think about what is *impossible* for each column, and about what
# identifies a row. Try your list first with
# `run_checks("spike_counts", spike_counts.scan(), checks)`.

# %% tags=["solution"]
# Store in checks the list of checks every row must pass.
checks = [
    NotNull("spikes"),
    Range("spikes", min=0),
    Range("mean_quality", min=0, max=1),
    Unique("session_id", also=["channel"]),
]
print("passes on the data:", run_checks("spike_counts", spike_counts.scan(), checks).passed)

# %%
lab02.check_quality(lab, checks)

# %% [markdown]
# ## Exercise 4 · Publish it
#
# Attach your checks to the table (`spike_counts.checks = checks`), so the catalog
# runs them. Then build the catalog of this notebook's tables, run its quality checks,
# export it with the quality reports, write the site into `lab.out / "site"` and the
# ROAPI config into `lab.out / "roapi.yaml"`. Store the site's `index.html` path in
# `site_index` and the config's path in `roapi_path`. Then open the site's index in
# your browser, search for your table and copy one of its snippets.

# %% tags=["solution"]
# Attach checks to spike_counts, publish, and store the site's index.html path in
# site_index and the ROAPI config's path in roapi_path.
spike_counts.checks = checks
catalog = Catalog({"lab": ModuleDatabase(sys.modules[__name__])})
export = export_catalog(catalog, "lab02", s, quality=catalog.check())
site_index = build_site(export, lab.out / "site")
roapi_path = write_roapi(export, lab.out / "roapi.yaml")

# %%
lab02.check_published(lab, site_index, roapi_path)

# %% [markdown]
# ## Exercise 5 (stretch) · Serve a materialized view through ROAPI
#
# A dashboard wants, per session, the total spikes over all channels and the mean of
# the channels' `mean_quality`, over HTTP. ROAPI cannot run Python, so:
#
# 1. declare `session_spikes` as a **materialized** function table (`@table`) stored
#    at `lab.view_uri`, with `spike_counts` in its lineage (`upstream`) and a docstring
#    that describes it; columns `session_id`, `spikes`, `mean_quality`;
# 2. build it (refresh it);
# 3. write a ROAPI config that serves it into `served_config` (mind which tables the
#    catalog holds when you export), serve its tables with `roapi(tables, s, folder)`
#    (lesson 02, section 10: it starts ROAPI on free ports, waits until it answers and
#    stops it when the `with` block ends), and read `SELECT * FROM session_spikes`
#    from it into the DataFrame `served`, with the view's **column types**.
#
# The check starts its own ROAPI on your config, and compares `served` with the view.


# %% tags=["solution"]
# Declare session_spikes, refresh it, write served_config, and read the view from ROAPI
# into served.
@table(
    materialize=True,
    uri=lab.view_uri,
    upstream=["spike_counts"],
    tags=["lab", "derived"],
    schema={
        "session_id": Column(pl.Int32, "The recording session."),
        "spikes": Column(pl.Int64, "Spikes over all channels of the session."),
        "mean_quality": Column(pl.Float64, "Mean of the channels' mean_quality, 0 to 1."),
    },
)
def session_spikes() -> pl.LazyFrame:
    """Spikes and signal quality per session, for the dashboard (served by ROAPI)."""
    return (
        spike_counts.scan()
        .group_by("session_id")
        .agg(pl.col("spikes").sum(), pl.col("mean_quality").mean())
        .sort("session_id")
    )


catalog = Catalog({"lab": ModuleDatabase(sys.modules[__name__])})  # now with the view
print("refreshed: version", catalog.refresh("session_spikes").version)
export = export_catalog(catalog, "lab02", s)
served_config = write_roapi(export, lab.out / "roapi-view.yaml")
with roapi(roapi_config(export)["tables"], s, lab.out / "roapi-view") as listeners:
    answer = httpx.post(
        f"http://{listeners.http}/api/sql",
        content="SELECT * FROM session_spikes ORDER BY session_id",
        headers={"Accept": "application/vnd.apache.arrow.stream"},  # keeps the types
        timeout=30,
    )
answer.raise_for_status()
served = pl.read_ipc_stream(answer.content)
served

# %%
lab02.check_view(lab, session_spikes, served_config, served)

# %% [markdown]
# ## Key takeaways
#
# - A declaration (`DeltalakeTable` + `Column`s + `docs_filters` + `checks`) is the whole
#   catalog entry: the site, the export, the checks and the ROAPI config come from it.
# - Types in the catalog must be the table's: check them against the log, never guess.
# - A filter skips files only if it reaches the scan (stay lazy) and compares a column
#   the log has partition values or min/max statistics for.
# - Good checks encode what is impossible (negative counts, quality above 1, a key seen
#   twice); a check that fails on clean data is a bug in the check.
# - ROAPI serves files, not Python: materialize a function table to serve it, and read
#   its answers as Arrow to keep the types.
#
# ## Self-check
#
# 1. Your exercise 2 read opened 1 file. Which filter did that, and how many files would
#    `Filter("channel", "<", 8)` alone open? Why?
# 2. Why does `Range("spikes", min=0, max=100)` belong in no catalog, even if it passes
#    today?
# 3. Why does the ROAPI config leave out a function table declared without
#    `materialize=True`, and what does materializing change?
#
# <details><summary>Answers</summary>
#
# 1. `Filter("session_id", "=", 2)`: `session_id` is the partition column, so only the
#    files in `session_id=2/` are opened. `channel < 8` alone opens every file: each one
#    holds channels 0 to 255 (the log's min/max for `channel`), so none can be skipped.
# 2. A bound that is not impossible, only unusual, fails the day a busy session arrives:
#    checks should say what can never be true, or people learn to ignore them.
# 3. ROAPI reads files (Delta, Parquet); a plain function table exists only as Python
#    code that runs when the catalog reads it, so the export marks it "skipped" with
#    that reason. `materialize=True` plus a refresh stores the function's result as a
#    Delta table at `uri`, which ROAPI can read like any other (and reads fast).
#
# </details>
#
# ## Sources
#
# - Neuralink's datarepo (tables, filters, catalog site, ROAPI export):
#   https://github.com/neuralinkcorp/datarepo
# - Polars `scan_delta`:
#   https://docs.pola.rs/api/python/stable/reference/api/polars.scan_delta.html
# - ROAPI: Delta tables https://roapi.github.io/docs/config/dataset-formats/delta.html
#   and response formats https://roapi.github.io/docs/api/response.html
# - Delta Lake protocol, file statistics:
#   https://github.com/delta-io/delta/blob/master/PROTOCOL.md#per-file-statistics
