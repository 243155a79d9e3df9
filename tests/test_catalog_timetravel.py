"""Time travel through the catalog: read a Delta table at a version or a timestamp."""

from __future__ import annotations

import dataclasses
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import neuralake
from neuralake.catalog import (
    Catalog,
    CatalogError,
    DeltalakeTable,
    Filter,
    ModuleDatabase,
    ParquetTable,
    table,
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> neuralake.Settings:
    warehouse = tmp_path_factory.mktemp("tt-warehouse")
    return dataclasses.replace(neuralake.settings("local"), warehouse_uri=warehouse.as_uri())


@pytest.fixture(scope="module")
def versions(settings) -> tuple[DeltalakeTable, list[datetime]]:
    """A table with three versions (1, 2, then 3 rows) and a time after each commit."""
    signals = DeltalakeTable("tt_signals", schema={"id": pl.Int64, "day": pl.Date})
    uri = signals.location(settings)
    after = []
    for n in (1, 2, 3):
        frame = pl.DataFrame({"id": list(range(n)), "day": [datetime(2026, 1, 1).date()] * n})
        frame.write_delta(uri, mode="overwrite")
        time.sleep(0.05)  # commit times have millisecond resolution: keep them apart
        after.append(datetime.now(UTC))
        time.sleep(0.05)
    return signals, after


def test_version_reads_that_version_lazily(versions, settings) -> None:
    signals, _ = versions
    old = signals.scan(version=0, settings=settings)
    assert isinstance(old, pl.LazyFrame)
    assert old.collect()["id"].to_list() == [0]
    assert signals.scan(version=1, settings=settings).collect().height == 2
    assert signals.scan(settings=settings).collect().height == 3  # latest by default
    filtered = signals.scan(
        version=1,
        filters=[Filter("id", ">", 0), Filter("day", "=", "2026-01-01")],
        settings=settings,
    )
    assert filtered.collect()["id"].to_list() == [1]


def test_timestamp_reads_the_version_current_then(versions, settings) -> None:
    signals, after = versions
    assert signals.version_at(after[0], settings) == 0
    assert signals.scan(timestamp=after[1], settings=settings).collect().height == 2
    naive_text = after[0].replace(tzinfo=None).isoformat()  # no zone: UTC
    assert signals.scan(timestamp=naive_text, settings=settings).collect().height == 1
    history = signals.history(settings)
    assert [v.version for v in history] == [2, 1, 0]
    assert history[0].committed_at <= after[2]


def test_the_database_passes_time_travel_through(versions, settings) -> None:
    signals, after = versions
    module = types.ModuleType("tt")
    module.tt_signals = signals
    module.__all__ = ["tt_signals"]
    db = Catalog({"tt": ModuleDatabase(module)}).db("tt")
    assert db.table("tt_signals", version=0, settings=settings).collect().height == 1
    assert db.table("tt_signals", timestamp=after[1], settings=settings).collect().height == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 7}, "has no version 7: its log holds versions 0 to 2"),
        ({"version": -1}, "is not a version"),
        ({"version": "1"}, "is not a version"),
        ({"timestamp": datetime(2000, 1, 1, tzinfo=UTC)}, "has no version at 2000-01-01T00"),
        ({"timestamp": "yesterday"}, "is not ISO 8601"),
        ({"version": 0, "timestamp": "2026-01-01"}, "not both"),
    ],
)
def test_bad_versions_fail_with_the_fix(versions, settings, kwargs, message: str) -> None:
    signals, _ = versions
    with pytest.raises(CatalogError, match=message):
        signals.scan(settings=settings, **kwargs)


def test_only_tables_with_a_log_travel(tmp_path: Path, settings) -> None:
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "a.parquet")
    plain = ParquetTable("plain", uri=str(tmp_path / "a.parquet"))
    with pytest.raises(CatalogError, match="is a parquet table: only Delta tables"):
        plain.scan(version=0, settings=settings)

    @table
    def computed() -> pl.LazyFrame:
        return pl.LazyFrame({"a": [1]})

    with pytest.raises(CatalogError, match="is a function table: only Delta tables"):
        computed.scan(timestamp=datetime.now(UTC) - timedelta(days=1), settings=settings)


def test_a_materialized_view_travels_through_its_refreshes(settings) -> None:
    rows = iter([1, 2])

    @table(materialize=True, uri="tt/view")
    def view() -> pl.LazyFrame:
        return pl.LazyFrame({"a": list(range(next(rows)))})

    first = view.refresh(settings)
    second = view.refresh(settings)
    assert second.version == first.version + 1
    assert view.scan(version=first.version, settings=settings).collect().height == 1
    assert view.scan(settings=settings).collect().height == 2
