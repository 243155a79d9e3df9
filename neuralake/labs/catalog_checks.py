"""Lab 02, code as a catalog: the table it starts from, and the graders of its exercises.

The lab writes one undocumented Delta table, ``spike_counts`` (spikes per session and
channel, partitioned by session). Students document it as a catalog table, read it
with a filter, give it quality checks, and publish it: site, export and ROAPI config.
Every grader looks at the real thing -- the table's data, what a scan opened, the
files the site generator wrote -- and says what it found and what to do next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from deltalake import write_deltalake

from neuralake.catalog import Catalog, DeltaTable, ModuleDatabase
from neuralake.catalog.pushdown import measure
from neuralake.catalog.quality import run_checks
from neuralake.datagen import Simulation
from neuralake.labs.checks import expect, passed
from neuralake.settings import Settings

TABLE = "spike_counts"
SESSIONS = 4
CHANNELS_BELOW = 8  # exercise 2: session 2, channels 0..7
MIN_DESCRIPTION = 20  # characters: a sentence, not a word


@dataclass(frozen=True)
class Lab02:
    """Where the lab's table and outputs are."""

    settings: Settings
    uri: str  # where spike_counts lives: pass it as DeltaTable(..., uri=lab.uri)
    out: Path  # where exercise 4 writes the site and the ROAPI config
    rows: int

    def data(self) -> pl.DataFrame:
        return pl.read_delta(self.uri, storage_options=self.settings.storage_options or None)


def setup(settings: Settings, *, prefix: str = "lab02_", rows: int = 200_000) -> Lab02:
    """(Re)create ``spike_counts``: one row per session and channel, partitioned by session."""
    signals = Simulation(rows=rows, sessions=SESSIONS, patients=2, seed=3).neural_signals()
    counts = (
        signals.group_by("session_id", "channel")
        .agg(
            spikes=pl.col("spike").sum().cast(pl.Int64),
            mean_quality=pl.col("quality").mean().cast(pl.Float64),
        )
        .sort("session_id", "channel")
    )
    uri = settings.table_uri(prefix + TABLE)
    write_deltalake(
        uri,
        counts.to_arrow(),
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=["session_id"],
        storage_options=settings.storage_options or None,
    )
    out = settings.state_dir / "labs" / f"{prefix}catalog"
    out.mkdir(parents=True, exist_ok=True)
    return Lab02(settings, uri, out, counts.height)


def notebook_catalog(namespace: Any) -> Catalog:
    """The catalog of the tables declared in a notebook (a module like any other)."""
    return Catalog({"lab": ModuleDatabase(namespace)})


# -- exercise 1: document the table ---------------------------------------------------


def check_declared(lab: Lab02, table: Any) -> None:
    expect(
        table is not None,
        f"spike_counts is None: declare it, e.g. DeltaTable({TABLE!r}, uri=lab.uri, "
        "description=..., schema={...})",
    )
    expect(
        isinstance(table, DeltaTable),
        f"spike_counts is a {type(table).__name__}: declare a DeltaTable (the data is Delta)",
    )
    expect(table.name == TABLE, f"the table is named {table.name!r}: name it {TABLE!r}")
    location = table.location(lab.settings)
    expect(location == lab.uri, f"the table points at {location}: pass uri=lab.uri")
    expect(
        len(table.description.strip()) >= MIN_DESCRIPTION,
        f"the description has {len(table.description.strip())} characters: write a sentence "
        f"(at least {MIN_DESCRIPTION}) that says what one row is",
    )
    actual = lab.data().schema
    declared = {c.name: c.dtype for c in table.declared_columns()}
    missing = [c for c in actual if c not in declared]
    expect(not missing, f"the schema does not declare {missing}: declare every column")
    extra = [c for c in declared if c not in actual]
    expect(not extra, f"the data has no column {extra}: remove it from the schema")
    wrong = [f"{c} is {actual[c]}, not {declared[c]}" for c in actual if actual[c] != declared[c]]
    expect(not wrong, f"declared types differ from the data: {'; '.join(wrong)}")
    undescribed = [c.name for c in table.declared_columns() if not c.description.strip()]
    expect(
        not undescribed,
        f"columns {undescribed} have no description: use Column(pl.Int64, 'what it means')",
    )
    expect(
        list(table.partition_columns) == ["session_id"],
        f"partition_columns is {list(table.partition_columns)}: the table is partitioned "
        "by ['session_id'] (look at its folders)",
    )
    expect(
        len(table.docs_filters) > 0,
        "docs_filters is empty: add an example filter, e.g. [Filter('session_id', '=', 1)]",
    )
    example = table.scan(filters=list(table.docs_filters), settings=lab.settings).collect()
    expect(
        example.height > 0,
        f"the example filter {list(table.docs_filters)} matches no rows: pick one that "
        "shows real data",
    )
    passed(
        f"spike_counts is documented: {len(declared)} columns described, the example "
        f"filter returns {example.height} rows"
    )


# -- exercise 2: read with a filter ---------------------------------------------------


def check_filtered(lab: Lab02, frame: Any) -> None:
    expect(frame is not None, "session_two is None: read spike_counts with filters=[...]")
    expect(
        isinstance(frame, pl.LazyFrame),
        f"session_two is a {type(frame).__name__}: keep it lazy (no .collect()) so the "
        "filter reaches the scan",
    )
    result, scan = measure(frame, local=lab.settings.warehouse_uri.startswith("file://"))
    expected = lab.data().filter((pl.col("session_id") == 2) & (pl.col("channel") < CHANNELS_BELOW))
    expect(
        result.height == expected.height,
        f"session_two has {result.height} rows; session 2, channels 0-{CHANNELS_BELOW - 1} "
        f"has {expected.height}: filter on session_id and channel",
    )
    key = ["session_id", "channel"]
    expect(
        set(result.columns) >= set(key)
        and result.select(key).sort(key).equals(expected.select(key).sort(key)),
        "session_two has the right number of rows but not the right ones: keep session 2, "
        f"channels below {CHANNELS_BELOW}",
    )
    expect(
        scan.files_opened < scan.files_total,
        f"the scan opened all {scan.files_total} files: filter on the partition column "
        "session_id so whole files are skipped",
    )
    passed(f"{result.height} rows; the scan opened {scan.files_opened} of {scan.files_total} files")


# -- exercise 3: quality checks -------------------------------------------------------


def check_quality(lab: Lab02, table: Any, checks: Any) -> None:
    expect(
        checks is not None,
        "checks is None: declare a list of checks, e.g. [NotNull('spikes'), Range(...)]",
    )
    expect(table is not None, "spike_counts is None: do exercise 1 first")
    expect(
        tuple(table.checks) == tuple(checks),
        "spike_counts.checks is not your list: attach it with spike_counts.checks = checks",
    )
    good = run_checks(TABLE, table.scan(settings=lab.settings), checks)
    failing = [r.check for r in good.results if not r.passed]
    expect(not failing, f"{failing} fail on the real data: the data is clean, fix the check")
    sample = lab.data().head(3)
    for label, bad in {
        "a negative spike count": sample.with_columns(spikes=pl.Series([-1, 0, 1])),
        "a missing spike count": sample.with_columns(
            spikes=pl.Series([None, 0, 1], dtype=pl.Int64)
        ),
    }.items():
        report = run_checks(TABLE, bad.lazy(), checks)
        expect(not report.passed, f"your checks let {label} through: add a check that fails on it")
    passed(f"{len(checks)} checks pass on the data and catch negative or missing spike counts")


# -- exercise 4: publish --------------------------------------------------------------


def check_published(lab: Lab02, site_index: Any, roapi_path: Any) -> None:
    expect(site_index is not None, "site_index is None: build the site with build_site(...)")
    expect(roapi_path is not None, "roapi_path is None: write the config with write_roapi(...)")
    site = Path(site_index).parent
    export_file = site / "catalog.json"
    expect(export_file.exists(), f"{export_file} is missing: build the site from an export")
    tables = {t["name"]: t for t in json.loads(export_file.read_text())["tables"]}
    expect(TABLE in tables, f"the export lists {sorted(tables)}, not {TABLE}: declare it first")
    entry = tables[TABLE]
    expect(
        all(c["description"] for c in entry["columns"]) and entry["description"],
        "the exported table or a column has no description: re-export after exercise 1",
    )
    expect(
        entry["quality"] is not None and entry["quality"]["passed"],
        "the export has no passing quality report for spike_counts: pass "
        "quality=catalog.check() to export_catalog",
    )
    page = site / "tables" / f"{entry['id']}.html"
    expect(page.exists(), f"{page} is missing: build the site into lab.out")
    html = page.read_text()
    expect(
        "Filter(&#39;session_id&#39;" in html or "Filter(&#39;" in html,
        "the table page shows no example filter: declare docs_filters and rebuild",
    )
    config = yaml.safe_load(Path(roapi_path).read_text())
    served = {t["name"]: t for t in config["tables"]}
    expect(TABLE in served, f"the ROAPI config serves {sorted(served)}, not {TABLE}")
    expected_uri = lab.uri.removeprefix("file://")
    got_uri = served[TABLE]["uri"]
    expect(
        got_uri == expected_uri,
        f"ROAPI would read {got_uri}, not {expected_uri}: export with the lab's settings",
    )
    passed(f"{TABLE} is on the site ({page.name}), in catalog.json and in the ROAPI config")
