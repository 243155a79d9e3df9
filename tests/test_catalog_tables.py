"""The catalog on real Delta, Parquet and CSV tables in a local warehouse."""

from __future__ import annotations

import dataclasses
import sys
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import neuralake
from neuralake import storage
from neuralake.catalog import (
    AcceptedValues,
    Catalog,
    CatalogError,
    CsvTable,
    DeltalakeTable,
    Filter,
    Freshness,
    ModuleDatabase,
    NotNull,
    ParquetTable,
    PostgresTable,
    Range,
    Unique,
    UnknownNameError,
    load_catalog,
    table,
)
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import seed
from neuralake.catalog.loader import load_module
from neuralake.catalog.pushdown import measure


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> neuralake.Settings:
    """Local settings with a fresh warehouse holding the neuro example tables."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    settings = dataclasses.replace(neuralake.settings("local"), warehouse_uri=warehouse.as_uri())
    seed(settings)
    return settings


@pytest.fixture(scope="module")
def db() -> ModuleDatabase:
    return ModuleDatabase(neuro)


def test_a_module_is_a_database(db: ModuleDatabase) -> None:
    assert list(db.tables()) == [
        "neural_signals",
        "sessions",
        "devices",
        "cursor_events",
        "patients",
        "session_quality",
        "channel_stats",
    ]
    assert db.get("session_quality").description.startswith("Spike rate and signal quality")


def test_unknown_names_list_what_exists(db: ModuleDatabase) -> None:
    catalog = Catalog({"neuro": db})
    with pytest.raises(UnknownNameError, match="unknown database 'nuero': choose one of neuro"):
        catalog.db("nuero")
    with pytest.raises(UnknownNameError, match="choose one of channel_stats, cursor_events"):
        db.table("signals")


def test_declared_schemas_match_the_data(db: ModuleDatabase, local) -> None:
    for name in ["neural_signals", "sessions", "devices", "cursor_events", "session_quality"]:
        table = db.get(name)
        declared = {c.name: c.dtype for c in table.declared_columns()}
        assert dict(db.table(name, settings=local).collect_schema()) == declared, name


def test_filters_and_columns_are_applied(db: ModuleDatabase, local) -> None:
    frame = db.table(
        "neural_signals",
        filters=[Filter("session_id", "=", 2), Filter("channel", "<", 3)],
        columns=["session_id", "channel", "voltage_uv"],
        settings=local,
    ).collect()
    assert frame.columns == ["session_id", "channel", "voltage_uv"]
    assert frame.height > 0
    assert set(frame["session_id"]) == {2}
    assert frame["channel"].max() < 3


def test_unknown_filter_column_is_refused_before_reading(db: ModuleDatabase, local) -> None:
    with pytest.raises(CatalogError, match="has no column chanel"):
        db.table("neural_signals", filters=[Filter("chanel", "=", 1)], settings=local)


@pytest.fixture(scope="module")
def on_stack(stack_settings: neuralake.Settings) -> Iterator[neuralake.Settings]:
    """The neuro example tables in a warehouse folder of their own on the stack's S3."""
    folder = stack_settings.table_uri(f"test_catalog_{uuid.uuid4().hex[:8]}")
    settings = dataclasses.replace(stack_settings, warehouse_uri=folder)
    seed(settings, load_postgres=False)
    yield settings
    storage.delete(folder, settings.storage_options)


@pytest.mark.stack
def test_filters_prune_partitions_and_a_later_filter_still_pushes_down(db, on_stack) -> None:
    signals = db.get("neural_signals")
    session_3 = [Filter("session_id", "=", 3)]
    everything, full = measure(lambda s: signals.scan(settings=s), on_stack)
    one, filtered = measure(lambda s: signals.scan(filters=session_3, settings=s), on_stack)
    later, chained = measure(
        lambda s: signals.scan(settings=s).filter(pl.col("session_id") == 3), on_stack
    )
    files = DeltaTable(signals.location(on_stack), storage_options=on_stack.storage_options)
    assert full.files_opened == len(files.file_uris()) >= 4
    assert filtered.files_opened < full.files_opened / 2
    assert chained.files_opened == filtered.files_opened  # lazy: .filter() reached the scan
    assert filtered.bytes_read < full.bytes_read / 2
    assert one.equals(later)
    assert one.height == everything.height // 4
    # Inside make_frame the given settings are every catalog read's default.
    _, default = measure(lambda _: signals.scan(filters=session_3), on_stack)
    assert default.files_opened == filtered.files_opened


def test_a_view_never_refreshed_names_the_fix(local) -> None:
    @table(materialize=True, uri="never_built_view")
    def never_built() -> pl.LazyFrame:
        return pl.LazyFrame({"a": [1]})

    with pytest.raises(CatalogError, match=r"not been built .*catalog.refresh\('never_built'\)"):
        never_built.scan(settings=local)


def test_function_table_reads_with_the_callers_settings(db: ModuleDatabase, local) -> None:
    frame = db.table(
        "session_quality", filters=[Filter("task", "=", "cursor_control")], settings=local
    ).collect()
    assert frame["task"].unique().to_list() == ["cursor_control"]
    assert frame.height == 2


def test_materialized_view_refreshes_into_delta(local) -> None:
    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    first = catalog.refresh("channel_stats", settings=local)
    second = catalog.refresh("neuro.channel_stats", settings=local)
    assert second.version == first.version + 1
    view = catalog.db("neuro").table("channel_stats", settings=local).collect()
    assert view.height == 4 * 256  # sessions x channels
    with pytest.raises(CatalogError, match="is a delta table, not a view"):
        catalog.refresh("sessions", settings=local)


def test_unbuilt_view_says_how_to_build_it(tmp_path: Path) -> None:
    empty = dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())
    with pytest.raises(CatalogError, match=r"run catalog.refresh\('channel_stats'\)"):
        neuro.channel_stats.scan(settings=empty)


def test_delta_schema_is_read_from_the_log_when_not_declared(local) -> None:
    bare = DeltalakeTable("bare", uri="catalog/sessions")
    columns = bare.columns(local)
    assert [c.name for c in columns][:3] == ["session_id", "patient_id", "device_id"]
    version = bare.latest_version(local)
    assert version.version == 0


def test_parquet_hive_and_csv_tables(tmp_path: Path, local) -> None:
    frame = pl.DataFrame({"day": ["d1", "d1", "d2"], "x": [1, 2, 3]})
    for day, part in frame.group_by("day"):
        out = tmp_path / "pq" / f"day={day[0]}"
        out.mkdir(parents=True)
        part.drop("day").write_parquet(out / "part-0.parquet")
    hive = ParquetTable(
        "events_pq",
        uri=str(tmp_path / "pq"),
        partitioning="hive",
        partition_columns=["day"],
        schema={"x": pl.Int64, "day": pl.String},
    )
    assert hive.scan(filters=[Filter("day", "=", "d2")], settings=local).collect()[
        "x"
    ].to_list() == [3]
    frame.write_csv(tmp_path / "f.csv")
    csv = CsvTable("f", uri=str(tmp_path / "f.csv"), schema={"day": pl.String, "x": pl.Int32})
    got = csv.scan(filters=[Filter("x", ">=", 2)], settings=local).collect()
    assert got.schema["x"] == pl.Int32 and got["x"].to_list() == [2, 3]
    with pytest.raises(CatalogError, match="set partitioning='hive'"):
        ParquetTable("p", partition_columns=["day"])


def test_quality_checks_pass_on_good_data_and_catch_bad_data(tmp_path: Path, local) -> None:
    catalog = load_catalog("neuralake.catalog.examples.neuro")
    reports = {r.table: r for r in catalog.check(settings=local)}
    assert reports["neuro.sessions"].passed
    assert reports["neuro.neural_signals"].rows == 1_048_576
    assert not reports["neuro.patients"].passed  # local profile: no PostgreSQL
    assert "no DSN" in reports["neuro.patients"].error
    assert neuro.patients.location(local) == "postgresql:(no DSN)#public.patients"

    bad = pl.DataFrame({"id": [1, 1, None], "task": ["rest", "nap", "rest"], "q": [0.5, 2.0, 0.1]})
    bad.write_parquet(tmp_path / "bad.parquet")
    table = ParquetTable(
        "bad",
        uri=str(tmp_path / "bad.parquet"),
        checks=[
            NotNull("id"),
            Unique("id"),
            Range("q", min=0, max=1),
            AcceptedValues("task", ["rest"]),
        ],
    )
    from neuralake.catalog.quality import run_checks

    report = run_checks("bad", table.scan(settings=local), table.checks)
    assert [r.passed for r in report.results] == [False, False, False, False]
    assert [r.detail for r in report.results] == [
        "1 rows are null",
        "2 rows share a key with another row",
        "1 rows outside [0, 1]",
        "1 rows not in ['rest']",
    ]


def test_warehouse_relative_uris_follow_the_profile(local) -> None:
    stack = neuralake.settings("stack")
    assert neuro.sessions.location(local) == local.warehouse_uri + "/catalog/sessions"
    assert neuro.sessions.location(stack) == "s3://neuralake/warehouse/catalog/sessions"
    assert DeltalakeTable("x", uri="s3://other/x").location(local) == "s3://other/x"


def test_schema_accepts_pyarrow_polars_and_mappings() -> None:
    arrow = pa.schema(
        [
            pa.field("id", pa.int32(), metadata={"description": "The key."}),
            pa.field("day", pa.date32()),
        ]
    )
    from_arrow = DeltalakeTable("a", schema=arrow).declared_columns()
    assert [(c.name, c.dtype, c.description) for c in from_arrow] == [
        ("id", pl.Int32, "The key."),
        ("day", pl.Date, ""),
    ]
    from_polars = DeltalakeTable("b", schema=pl.Schema({"id": pl.Int32, "day": pl.Date}))
    assert [(c.name, c.dtype) for c in from_polars.declared_columns()] == [
        ("id", pl.Int32),
        ("day", pl.Date),
    ]
    with pytest.raises(CatalogError, match=r"pass a pyarrow\.Schema, a pl\.Schema or a dict"):
        DeltalakeTable("c", schema=["id"])


@pytest.mark.parametrize("name", ["a%s", "a b", "1x"])
def test_column_and_relation_names_are_identifiers(name: str) -> None:
    with pytest.raises(CatalogError, match="is not an identifier"):
        DeltalakeTable("t", schema={name: pl.Int64})
    with pytest.raises(CatalogError, match="is not an identifier"):
        PostgresTable("p", relation=f"public.{name}", schema={"id": pl.Int64})


def test_docs_filters_are_checked_against_the_schema_when_declared() -> None:
    with pytest.raises(CatalogError, match="has no column dya"):
        DeltalakeTable("t", schema={"day": pl.Date}, docs_filters=[Filter("dya", "=", 1)])
    with pytest.raises(CatalogError, match="is not an ISO Date"):
        DeltalakeTable("t", schema={"day": pl.Date}, docs_filters=[Filter("day", "=", "1/2/26")])
    either = [[Filter("day", "=", "2026-01-01")], [Filter("day", ">", "2026-02-01")]]
    assert (
        len(DeltalakeTable("t", schema={"day": pl.Date}, docs_filters=either).docs_filter_groups)
        == 2
    )


def test_a_date_filter_written_as_text_reads_a_date_column(tmp_path: Path, local) -> None:
    frame = pl.DataFrame({"day": [date(2026, 1, 1), date(2026, 1, 2)], "x": [1, 2]})
    frame.write_delta(str(tmp_path / "days"))
    days = DeltalakeTable(
        "days", uri=str(tmp_path / "days"), schema={"day": pl.Date, "x": pl.Int64}
    )
    got = days.scan(filters=[Filter("day", "=", "2026-01-02")], settings=local).collect()
    assert got["x"].to_list() == [2]
    undeclared = DeltalakeTable("days", uri=str(tmp_path / "days"))  # types from the Delta log
    got = undeclared.scan(filters=[Filter("day", "<", "2026-01-02")], settings=local).collect()
    assert got["x"].to_list() == [1]
    generator = (Filter("x", ">", n) for n in [0])
    assert days.scan(filters=generator, settings=local).collect().height == 2


def test_freshness_works_on_a_date_column(tmp_path: Path, local) -> None:
    today = datetime.now(UTC).date()
    pl.DataFrame({"day": [today - timedelta(days=9), today]}).write_parquet(
        tmp_path / "new.parquet"
    )
    pl.DataFrame({"day": [today - timedelta(days=3)]}).write_parquet(tmp_path / "old.parquet")
    checks = [Freshness("day", days=1)]
    new = ParquetTable("new", uri=str(tmp_path / "new.parquet"), checks=checks)
    old = ParquetTable("old", uri=str(tmp_path / "old.parquet"), checks=checks)
    reports = {r.table: r for r in Catalog({"d": _module_db("d", new, old)}).check(settings=local)}
    assert reports["d.new"].error is None and reports["d.new"].passed  # dated today: fresh
    assert reports["d.old"].error is None and not reports["d.old"].passed
    # counted from the end of that day: 2 to 3 days ago, whatever the time of day now
    detail = reports["d.old"].results[0].detail
    assert detail.startswith("newest row is ") and detail.endswith(" days old"), detail
    assert 2.0 <= float(detail.split()[3]) <= 3.0, detail


def _module_db(name: str, *tables) -> ModuleDatabase:
    module = types.ModuleType(name)
    for t in tables:
        setattr(module, t.name, t)
    module.__all__ = [t.name for t in tables]
    return ModuleDatabase(module)


def test_a_module_database_keeps_only_its_own_tables(tmp_path: Path) -> None:
    (tmp_path / "first_db.py").write_text(
        "from neuralake.catalog import DeltalakeTable\nshared = DeltalakeTable('shared')\n",
        encoding="utf-8",
    )
    (tmp_path / "second_db.py").write_text(
        "from neuralake.catalog import DeltalakeTable\n"
        "from neuralake_catalog_files.first_db import shared\n"
        "own = DeltalakeTable('own')\n",
        encoding="utf-8",
    )
    (tmp_path / "third_db.py").write_text(
        "from neuralake_catalog_files.first_db import shared\n__all__ = ['shared']\n",
        encoding="utf-8",
    )
    first = load_module(str(tmp_path / "first_db.py"))
    second = load_module(str(tmp_path / "second_db.py"))
    third = load_module(str(tmp_path / "third_db.py"))
    assert list(ModuleDatabase(first).tables()) == ["shared"]
    assert list(ModuleDatabase(second).tables()) == ["own"]  # imported, not declared here
    assert list(ModuleDatabase(third).tables()) == ["shared"]  # re-exported on purpose
    catalog = Catalog({"first": ModuleDatabase(first), "second": ModuleDatabase(second)})
    assert catalog.find("shared")[0] == "first"  # not ambiguous


def test_a_catalog_file_named_like_a_stdlib_module_leaves_it_alone(tmp_path: Path) -> None:
    import site

    (tmp_path / "site.py").write_text(
        "from neuralake.catalog import DeltalakeTable\nweb = DeltalakeTable('web')\n",
        encoding="utf-8",
    )
    catalog = load_catalog(str(tmp_path / "site.py"))
    assert sys.modules["site"] is site
    assert catalog.dbs() == ["site"] and list(catalog.db("site").tables()) == ["web"]


@pytest.mark.parametrize("name", ["my db", "../x", "a%b", "x.y"])
def test_database_names_are_identifiers(name: str) -> None:
    with pytest.raises(CatalogError, match=r"database name .* is not an identifier"):
        Catalog({name: ModuleDatabase(neuro)})


def test_the_old_name_deltatable_still_works_and_warns():
    import neuralake.catalog
    import neuralake.catalog.tables

    with pytest.warns(DeprecationWarning, match="DeltalakeTable") as caught:
        from neuralake.catalog import DeltaTable
    assert DeltaTable is DeltalakeTable
    assert caught[0].filename == __file__  # points at the line that used the old name
    with pytest.warns(DeprecationWarning):
        assert neuralake.catalog.tables.DeltaTable is DeltalakeTable
    with pytest.raises(AttributeError, match="no attribute 'NoSuchTable'"):
        neuralake.catalog.NoSuchTable  # noqa: B018
    assert "DeltaTable" not in neuralake.catalog.__all__
