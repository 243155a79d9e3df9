"""The generated ROAPI config, served by the real ``roapi`` binary, answers like the catalog."""

from __future__ import annotations

import dataclasses
import os
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

import neuralake
from neuralake import delta
from neuralake.catalog import Catalog, DeltalakeTable, Filter, ModuleDatabase, ParquetTable
from neuralake.catalog.errors import CatalogError
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import seed
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import (
    MEMORY_BATCH_ROWS,
    MEMORY_RELOAD_INTERVAL_S,
    RELOAD_INTERVAL_S,
    WINDOW_RELOAD_INTERVAL_S,
    WINDOW_SUFFIX,
    roapi_config,
    served_names,
    windows,
    write_roapi,
)
from neuralake.lab.stack import processes
from neuralake.lab.stack.processes import free_port

ROAPI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "roapi"


def _serve(settings: neuralake.Settings, tmp: Path) -> Iterator[tuple[str, dict]]:
    """Seed ``settings``' warehouse, write the config on free ports, run ROAPI on it."""
    seed(settings, load_postgres=False)
    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    catalog.refresh("channel_stats", settings=settings)
    export = export_catalog(catalog, "neuralake.catalog.examples.neuro", settings, inspect=False)
    for http in _roapi(export, settings, tmp):
        yield http, export


def _roapi(export: dict, settings: neuralake.Settings, tmp: Path) -> Iterator[str]:
    """Run ROAPI on the export's config (free ports) until the caller is done; yield its HTTP."""
    http = f"127.0.0.1:{free_port()}"
    config = write_roapi(
        export,
        tmp / "roapi.yaml",
        http=http,
        postgres=f"127.0.0.1:{free_port()}",
        flight_sql=f"127.0.0.1:{free_port()}",
    )
    with processes.serving(
        [str(ROAPI), "-c", str(config)],
        name="roapi",
        check=lambda: httpx.get(f"http://{http}/api/schema", timeout=1).raise_for_status(),
        log_file=tmp / "roapi.log",
        pid_file=tmp / "roapi.pid",
        env={**os.environ, **settings.roapi_env},
        timeout=30,
        cwd=tmp,
    ):
        yield http


def _check_answers(http: str, export: dict, settings: neuralake.Settings) -> None:
    db = ModuleDatabase(neuro)
    # Every served table is there, with the catalog's columns.
    schema = httpx.get(f"http://{http}/api/schema", timeout=10).json()
    served = [t["name"] for t in export["tables"] if t["roapi"]["served"]]
    assert sorted(schema) == sorted(served)

    # The SQL snippet of the sessions page returns the rows the catalog returns.
    sessions = next(t for t in export["tables"] if t["name"] == "sessions")
    answer = httpx.post(f"http://{http}/api/sql", content=sessions["snippets"]["sql"], timeout=30)
    assert answer.is_success, answer.text
    expected = db.table("sessions", filters=neuro.sessions.docs_filters, settings=settings)
    got_ids = sorted(row["session_id"] for row in answer.json())
    assert got_ids == sorted(expected.collect()["session_id"].to_list())
    assert got_ids  # the docs filter promises rows

    # REST with a quoted string filter, and a partitioned table over SQL.
    rest = httpx.get(
        f"http://{http}/api/tables/sessions",
        params={"columns": "session_id,task", "filter[task]": "'webgrid'"},
        timeout=10,
    )
    assert rest.is_success, rest.text
    assert {r["task"] for r in rest.json()} == {"webgrid"}
    spikes = httpx.post(
        f"http://{http}/api/sql",
        content="SELECT session_id, count(voltage_uv) AS n FROM neural_signals "
        "WHERE session_id = 2 AND spike = true GROUP BY session_id",
        timeout=30,
    ).json()
    catalog_spikes = (
        db.table("neural_signals", settings=settings)
        .filter((pl.col("session_id") == 2) & pl.col("spike"))
        .select(pl.len())
        .collect()
        .item()
    )
    assert spikes == [{"session_id": 2, "n": catalog_spikes}]

    # The materialized view is served like any Delta table.
    view = httpx.post(
        f"http://{http}/api/sql", content="SELECT count(std_uv) AS n FROM channel_stats", timeout=30
    ).json()
    assert view == [{"n": 4 * 256}]


def test_roapi_serves_the_catalog_from_local_files(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp_path / "wh").as_uri()
    )
    for http, export in _serve(settings, tmp_path):
        _check_answers(http, export, settings)


@pytest.mark.stack
def test_roapi_serves_the_catalog_from_s3(stack_settings, tmp_path: Path) -> None:
    prefix = f"s3://{stack_settings.bucket}/test-catalog-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(stack_settings, warehouse_uri=prefix)
    try:
        for http, export in _serve(settings, tmp_path):
            assert export["tables"][0]["location"].startswith("s3://")
            _check_answers(http, export, settings)
    finally:
        assert delta.drop_table(prefix, settings.storage_options) > 0


def test_roapi_serves_hive_partition_columns(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        neuralake.settings("local"), warehouse_uri=(tmp_path / "wh").as_uri()
    )
    frame = pl.DataFrame({"channel": [1, 1, 2, 9], "x": [10, 20, 30, 40]})
    frame.write_parquet(tmp_path / "polars", partition_by="channel")  # files keep the column
    for (channel,), part in frame.group_by("channel"):  # Spark/pyarrow style: folders only
        (tmp_path / "bare" / f"channel={channel}").mkdir(parents=True)
        part.drop("channel").write_parquet(tmp_path / "bare" / f"channel={channel}" / "0.parquet")
    module = types.ModuleType("pq")
    for name in ("polars", "bare"):
        setattr(
            module,
            name,
            ParquetTable(
                name,
                uri=str(tmp_path / name),
                partitioning="hive",
                partition_columns=["channel"],
                schema={"x": pl.Int64, "channel": pl.Int64},
                docs_filters=[[Filter("channel", "=", 9)], [Filter("channel", "=", 2)]],
            ),
        )
    module.__all__ = ["polars", "bare"]
    export = export_catalog(Catalog({"pq": ModuleDatabase(module)}), "pq", settings)
    for http in _roapi(export, settings, tmp_path):
        for entry in export["tables"]:
            snippet = entry["snippets"]["sql"]
            answer = httpx.post(f"http://{http}/api/sql", content=snippet, timeout=30)
            assert answer.is_success, answer.text
            assert sorted((r["channel"], r["x"]) for r in answer.json()) == [(2, 30), (9, 40)]


def _module(name: str, *tables) -> types.ModuleType:
    module = types.ModuleType(name)
    for t in tables:
        setattr(module, t.name, t)
    module.__all__ = [t.name for t in tables]
    return module


def test_clashing_names_are_served_as_database_table() -> None:
    schema = {"x": pl.Int64}
    catalog = Catalog(
        {
            "lab": ModuleDatabase(_module("lab", DeltalakeTable("signals", schema=schema))),
            "prod": ModuleDatabase(
                _module(
                    "prod",
                    DeltalakeTable("signals", schema=schema),
                    DeltalakeTable("only", schema=schema),
                )
            ),
        }
    )
    export = export_catalog(catalog, "m", neuralake.settings("local"), inspect=False)
    assert served_names(export) == {
        "lab.signals": "lab_signals",
        "prod.signals": "prod_signals",
        "prod.only": "only",
    }
    config = roapi_config(export)
    assert [t["name"] for t in config["tables"]] == ["lab_signals", "prod_signals", "only"]
    assert config["reload_interval"] == {"secs": RELOAD_INTERVAL_S, "nanos": 0}
    assert config["disable_read_only"] is True  # ROAPI reloads tables only then


def test_snippets_query_the_served_name_when_names_clash() -> None:
    schema = {"x": pl.Int64}
    catalog = Catalog(
        {
            "lab": ModuleDatabase(
                _module(
                    "lab",
                    DeltalakeTable("signals", schema=schema, docs_filters=[Filter("x", ">", 1)]),
                )
            ),
            "prod": ModuleDatabase(
                _module(
                    "prod",
                    DeltalakeTable("signals", schema=schema),
                    DeltalakeTable("only", schema=schema),
                )
            ),
        }
    )
    export = export_catalog(catalog, "m", neuralake.settings("local"), inspect=False)
    sql = {t["id"]: t["snippets"]["sql"] for t in export["tables"]}
    assert sql == {
        "lab.signals": "SELECT * FROM lab_signals WHERE x > 1 LIMIT 100",
        "prod.signals": "SELECT * FROM prod_signals LIMIT 100",
        "prod.only": "SELECT * FROM only LIMIT 100",
    }
    curl = next(t["snippets"]["curl"] for t in export["tables"] if t["id"] == "prod.signals")
    assert "'SELECT * FROM prod_signals LIMIT 100'" in curl


def test_memory_mode_is_set_per_table_and_refused_for_partitioned_tables() -> None:
    small = DeltalakeTable("small", schema={"x": pl.Int64}, roapi_memory_table=True)
    export = export_catalog(
        Catalog({"db": ModuleDatabase(_module("db", small))}),
        "m",
        neuralake.settings("local"),
        inspect=False,
    )
    (entry,) = roapi_config(export)["tables"]
    assert entry["option"]["use_memory_table"] is True
    assert entry["reload_interval"] == {"secs": MEMORY_RELOAD_INTERVAL_S, "nanos": 0}
    assert entry["batch_size"] == MEMORY_BATCH_ROWS  # few large batches: less work per query
    wide = DeltalakeTable(
        "wide",
        schema={"x": pl.Int64, "d": pl.Date},
        partition_columns=["d"],
        roapi_memory_table=True,
    )
    with pytest.raises(CatalogError, match="drop roapi_memory_table=True"):
        export_catalog(
            Catalog({"db": ModuleDatabase(_module("db", wide))}), "m", neuralake.settings("local")
        )


def test_a_serving_window_is_set_per_table_and_served_from_memory_every_second() -> None:
    live = DeltalakeTable(
        "live", schema={"x": pl.Int64, "d": pl.Date}, partition_columns=["d"], roapi_window_s=30
    )
    export = export_catalog(
        Catalog({"db": ModuleDatabase(_module("db", live))}),
        "m",
        neuralake.settings("local"),
        inspect=False,
    )
    provider, window = roapi_config(export)["tables"]
    assert (provider["name"], provider["option"]["use_memory_table"]) == ("live", False)
    assert window["name"] == "live" + WINDOW_SUFFIX
    assert window["option"] == {"format": "parquet", "use_memory_table": True}
    assert window["reload_interval"] == {"secs": WINDOW_RELOAD_INTERVAL_S, "nanos": 0}
    assert window["uri"].endswith("live_recent/recent.parquet")
    (described,) = windows(export).values()
    assert described["seconds"] == 30 and described["live_uri"].endswith("live")
    bad = DeltalakeTable("bad", schema={"x": pl.Int64}, roapi_window_s=0)
    with pytest.raises(CatalogError, match="positive number of seconds"):
        export_catalog(
            Catalog({"db": ModuleDatabase(_module("db", bad))}), "m", neuralake.settings("local")
        )


def test_serve_replaces_what_another_prefix_served(tmp_path: Path) -> None:
    """The limit, documented in docs/api.md: one ROAPI per stack, one config, so a
    second student's ``serve`` (another PREFIX) leaves the first one's tables unserved."""
    from neuralake.lab.api.serve import served_tables, write_config

    settings = dataclasses.replace(neuralake.settings("local"), state_dir=tmp_path)
    for prefix in ("a_", "b_"):
        table = DeltalakeTable(f"{prefix}bronze", schema={"x": pl.Int64})
        export = export_catalog(
            Catalog({"db": ModuleDatabase(_module("db", table))}), "m", settings, inspect=False
        )
        write_config(export, settings, RELOAD_INTERVAL_S)
        assert served_tables(settings) == {f"{prefix}bronze"}


def test_a_windowed_table_has_a_snippet_for_its_window() -> None:
    live = DeltalakeTable("live", schema={"x": pl.Int64}, roapi_window_s=60)
    plain = DeltalakeTable("plain", schema={"x": pl.Int64})
    export = export_catalog(
        Catalog({"db": ModuleDatabase(_module("db", live, plain))}),
        "m",
        neuralake.settings("local"),
        inspect=False,
    )
    snippets = {t["name"]: t["snippets"] for t in export["tables"]}
    assert snippets["live"]["sql_recent"] == "SELECT * FROM live_recent LIMIT 100"
    assert "sql_recent" not in snippets["plain"]
