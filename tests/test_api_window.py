"""The serving window on the running stack: real S3, real ROAPI.

Proves the window holds exactly the live table's recent rows (no history, no duplicate
after a compaction, nothing older than its length), and that ROAPI serves a new commit
from memory within the stated bound: one window refresh plus one ROAPI reload.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.api.client import RoapiClient
from neuralake.api.sample import bronze_rows
from neuralake.api.window import Window, window_uri
from neuralake.catalog.roapi import WINDOW_RELOAD_INTERVAL_S, window_table_entry
from neuralake.lab.api.server import roapi

pytestmark = pytest.mark.stack

#: A commit is served after one window refresh (run by the test here) and one ROAPI
#: reload, plus the reload's work and one query: 2 s of slack on a shared 2-core machine.
SERVED_WITHIN_S = WINDOW_RELOAD_INTERVAL_S + 2.0


def _rows(n: int, first_offset: int, start: datetime, seed: int) -> pl.DataFrame:
    rows = bronze_rows(n, seed=seed, start=start)
    return rows.with_columns(pl.col("kafka_offset") + first_offset)


@pytest.fixture()
def live(stack_settings) -> Iterator[tuple[str, str, dict]]:
    """A bronze-shaped live table: 3,000 rows a day old, then 2,000 rows of now."""
    uri = stack_settings.table_uri(f"test_window_{uuid.uuid4().hex[:8]}")
    options = stack_settings.storage_options
    now = datetime.now(UTC)
    for frame in (
        _rows(3_000, 0, now - timedelta(days=1), seed=1),
        _rows(2_000, 3_000, now - timedelta(seconds=1), seed=2),
    ):
        write_deltalake(uri, frame.to_arrow(), mode="append", partition_by=["date"],
                        storage_options=options)  # fmt: skip
    try:
        yield uri, window_uri(uri), options
    finally:
        delta.drop_table(uri, options)
        delta.drop_table(window_uri(uri).rsplit("/", 1)[0], options)


def _window_offsets(out: str, options: dict) -> pl.Series:
    return pl.read_parquet(out, storage_options=options)["kafka_offset"]


def test_the_window_holds_the_recent_rows_only(live) -> None:
    uri, out, options = live
    window = Window(uri, out, 60, options)
    first = window.refresh()
    assert (first.rows, first.written) == (2_000, True)
    assert _window_offsets(out, options).min() == 3_000  # the day-old rows stay out
    assert window.refresh().written is False  # no new version: nothing rewritten


def test_a_compaction_adds_no_duplicate(live) -> None:
    uri, out, options = live
    window = Window(uri, out, 60, options)
    window.refresh()
    more = _rows(500, 5_000, datetime.now(UTC), seed=3)
    write_deltalake(uri, more.to_arrow(), mode="append", partition_by=["date"],
                    storage_options=options)  # fmt: skip
    DeltaTable(uri, storage_options=options).optimize.compact()  # rewrites rows it holds
    assert window.refresh().rows == 2_500
    offsets = _window_offsets(out, options)
    assert offsets.n_unique() == offsets.len() == 2_500


def test_rows_older_than_the_window_leave_it(live) -> None:
    uri, out, options = live
    window = Window(uri, out, 4, options)
    for first_offset in (5_000, 6_000):  # 100 rows of now, twice, 4.5 s apart
        more = _rows(100, first_offset, datetime.now(UTC), seed=4)
        write_deltalake(uri, more.to_arrow(), mode="append", partition_by=["date"],
                        storage_options=options)  # fmt: skip
        window.refresh()
        assert first_offset in _window_offsets(out, options).to_list()
        time.sleep(4.5 if first_offset == 5_000 else 0)
    assert _window_offsets(out, options).min() == 6_000  # the first 100 left the window


def test_roapi_serves_a_commit_from_the_window_within_the_bound(
    live, stack_settings, tmp_path
) -> None:
    uri, out, options = live
    window = Window(uri, out, 60, options)
    window.refresh()
    with (
        roapi([window_table_entry("recent", out)], stack_settings, tmp_path) as at,
        RoapiClient(at.http) as client,
    ):
        count = "SELECT count(voltage_uv) AS n FROM recent"
        assert client.sql(count)["n"][0] == 2_000
        more = _rows(700, 5_000, datetime.now(UTC), seed=5)
        write_deltalake(uri, more.to_arrow(), mode="append", partition_by=["date"],
                        storage_options=options)  # fmt: skip
        started = time.monotonic()
        assert window.refresh().rows == 2_700
        while client.sql(count)["n"][0] != 2_700:
            assert time.monotonic() - started < SERVED_WITHIN_S, "ROAPI never reloaded the window"
            time.sleep(0.05)
        plan = client.sql("EXPLAIN ANALYZE SELECT * FROM recent WHERE kafka_offset = 5001")
        assert "partition_sizes" in "\n".join(plan["plan"].to_list())  # a memory table


def test_serve_s_window_process_writes_the_window_and_stops_by_pid(
    live, stack_settings, tmp_path
) -> None:
    """What ``serve()`` does for a windowed table, without touching the stack's ROAPI."""
    import dataclasses

    from neuralake.lab.api.serve import restart_windows, start_window, stop_windows

    uri, out, options = live
    settings = dataclasses.replace(stack_settings, state_dir=tmp_path)
    start_window({"name": "t_recent", "live_uri": uri, "uri": out, "seconds": 60}, settings)
    assert pl.read_parquet(out, storage_options=options).height == 2_000
    assert restart_windows(settings, echo=lambda _: None) == []  # it runs: nothing to do
    # `stack down` (or a machine restart) stops it; `stack up` starts it again
    assert stop_windows(settings, forget=False) == ["t_recent"]
    delta.drop_table(out.rsplit("/", 1)[0], options)  # so the restart must write it anew
    assert restart_windows(settings, echo=lambda _: None) == ["t_recent"]
    assert pl.read_parquet(out, storage_options=options).height == 2_000
    assert stop_windows(settings) == ["t_recent"]
    assert stop_windows(settings) == []  # stopped and forgotten
    assert restart_windows(settings, echo=lambda _: None) == []
    # a window whose live table is gone does not stop `stack up`: one line, then forgotten
    start_window({"name": "t_recent", "live_uri": uri, "uri": out, "seconds": 60}, settings)
    stop_windows(settings, forget=False)
    delta.drop_table(uri, options)
    said: list[str] = []
    assert restart_windows(settings, echo=said.append) == []
    assert len(said) == 1 and "not restarted, forgotten" in said[0], said
    assert restart_windows(settings, echo=said.append) == [] and len(said) == 1
