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
# The setup cell writes a Delta table, `spike_counts` (spikes per session and channel),
# that nobody has documented. In four exercises you make it a catalog table: declare
# it with a description and described columns, read it with a filter that skips
# files, give it quality checks, and publish it to the website, the JSON export and the
# ROAPI config. After each exercise, run the **check** cell below it: it looks at the
# real table and the real files and says `PASSED` or what to do next.
#
# Lesson 02 (`notebooks/02_code_as_a_catalog`) shows every API you need. This notebook
# is a Python module too: `ModuleDatabase(sys.modules[__name__])` finds the tables you
# declare in it.

# %% tags=["parameters"]
PREFIX = "lab02_"  # table names start with this
ROWS = 200_000  # neural-signal rows the counts are computed from

# %%
import sys

import polars as pl

import neuralake
from neuralake.catalog import (
    Column,
    DeltaTable,
    Filter,
    NotNull,
    Range,
)
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import write_roapi
from neuralake.catalog.site import build_site
from neuralake.labs import catalog_checks

s = neuralake.settings()
lab = catalog_checks.setup(s, prefix=PREFIX, rows=ROWS)
print(f"profile {s.profile}\nspike_counts: {lab.uri}")
lab.data().head()

# %% [markdown]
# ## Exercise 1 · Document the table
#
# Declare `spike_counts` as a `DeltaTable` at `lab.uri`: a description of what one row
# is, every column with its type and a description (`Column(pl.Int64, "...")`), its
# partitioning (look at the data's folders, or at `lab.data()`), and an example filter
# in `docs_filters` that returns rows.

# %% tags=["solution"]
# Declare spike_counts = DeltaTable("spike_counts", uri=lab.uri, ...).
spike_counts = DeltaTable(
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
catalog_checks.check_declared(lab, spike_counts)

# %% [markdown]
# ## Exercise 2 · Read it with a filter
#
# Read session 2, channels 0 to 7, through your table, as a **LazyFrame** (no
# `.collect()`): the check collects it and counts the files the scan opened.

# %% tags=["solution"]
# Store in session_two a LazyFrame of session 2, channels 0 to 7.
session_two = spike_counts.scan(filters=[Filter("session_id", "=", 2), Filter("channel", "<", 8)])

# %%
catalog_checks.check_filtered(lab, session_two)

# %% [markdown]
# ## Exercise 3 · Quality checks
#
# Declare checks that fail when a spike count is negative or missing, keep them in
# `checks`, and attach them to the table (`spike_counts.checks = checks`). The check
# runs them on the real data (they must pass) and on broken rows (they must fail).

# %% tags=["solution"]
# Store the list in checks, then attach it: spike_counts.checks = checks.
checks = [NotNull("spikes"), Range("spikes", min=0), Range("mean_quality", min=0, max=1)]
spike_counts.checks = checks

# %%
catalog_checks.check_quality(lab, spike_counts, checks)

# %% [markdown]
# ## Exercise 4 · Publish it
#
# Build the catalog of this notebook's tables, run its quality checks, export it (with
# the quality reports), and write the site into `lab.out / "site"` and the ROAPI config
# into `lab.out / "roapi.yaml"`. Then open the site's index in your browser and search
# for your table.

# %% tags=["solution"]
# Store the site's index.html path in site_index and the ROAPI config path in roapi_path.
catalog = catalog_checks.notebook_catalog(sys.modules[__name__])
export = export_catalog(catalog, "lab02", s, quality=catalog.check())
site_index = build_site(export, lab.out / "site")
roapi_path = write_roapi(export, lab.out / "roapi.yaml")

# %%
catalog_checks.check_published(lab, site_index, roapi_path)

# %% [markdown]
# Done: `spike_counts` is documented, queryable with pushdown, guarded by checks, and
# published. Next: lesson 03.
