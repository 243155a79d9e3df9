"""The export (the JSON contract), the static site it renders, and the ROAPI YAML."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
import types
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

import neuralake
from neuralake.catalog import Catalog, DeltalakeTable, Filter, ModuleDatabase, ParquetTable, table
from neuralake.catalog.examples import neuro
from neuralake.catalog.export import FORMAT, export_catalog
from neuralake.catalog.roapi import roapi_config, roapi_yaml
from neuralake.catalog.site import build_site

ROOT = Path(__file__).resolve().parents[1]
EVIL = '<script>alert("owned")</script>'
MODULE = "neuralake.catalog.examples.neuro"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> neuralake.Settings:
    """Local settings with an EMPTY warehouse: building must not need any data."""
    warehouse = tmp_path_factory.mktemp("empty-warehouse")
    return dataclasses.replace(neuralake.settings("local"), warehouse_uri=warehouse.as_uri())


@pytest.fixture(scope="module")
def export(settings) -> dict:
    return export_catalog(
        Catalog({"neuro": ModuleDatabase(neuro)}), "neuralake.catalog.examples.neuro", settings
    )


def test_export_describes_every_table(export: dict) -> None:
    assert export["format"] == FORMAT
    by_id = {t["id"]: t for t in export["tables"]}
    assert list(by_id) == [f"neuro.{n}" for n in ModuleDatabase(neuro).tables()]
    signals = by_id["neuro.neural_signals"]
    assert signals["kind"] == "delta"
    assert signals["partition_columns"] == ["session_id"]
    assert signals["columns"][5] == {
        "name": "voltage_uv",
        "type": "Float32",
        "description": "Filtered voltage in microvolts.",
    }
    assert signals["docs_filters"] == [[["session_id", "=", 1], ["spike", "=", True]]]
    assert signals["warehouse_path"] == "catalog/neural_signals"
    assert by_id["neuro.session_quality"]["upstream"] == ["neuro.neural_signals", "neuro.sessions"]
    assert by_id["neuro.sessions"]["downstream"] == [
        "neuro.cursor_events",
        "neuro.session_quality",
    ]
    assert by_id["neuro.channel_stats"]["kind_label"] == "materialized view"
    json.dumps(export)  # the contract is plain JSON


def test_export_runs_no_table_and_reports_missing_logs(export: dict) -> None:
    signals = next(t for t in export["tables"] if t["name"] == "neural_signals")
    assert signals["freshness"]["error"].startswith("TableNotFoundError")
    assert signals["columns"], "declared schemas need no I/O"


def test_export_reads_freshness_from_the_delta_log(tmp_path: Path, settings) -> None:
    pl.DataFrame({"a": [1]}).write_delta(str(tmp_path / "t"))
    pl.DataFrame({"a": [2]}).write_delta(str(tmp_path / "t"), mode="append")
    module = types.ModuleType("fresh")
    module.t = DeltalakeTable("t", uri=str(tmp_path / "t"))
    module.__all__ = ["t"]  # declared here, in the test: listed to belong to "fresh"
    data = export_catalog(Catalog({"fresh": ModuleDatabase(module)}), "fresh", settings)
    entry = data["tables"][0]
    assert entry["freshness"]["version"] == 1
    assert entry["schema_source"] == "delta log"
    assert entry["columns"] == [{"name": "a", "type": "Int64", "description": ""}]


def test_roapi_config_serves_exactly_the_delta_tables(export: dict, settings) -> None:
    config = yaml.safe_load(roapi_yaml(export))
    assert config["addr"] == {
        "http": settings.roapi_http,
        "postgres": settings.roapi_postgres,
        "flight_sql": settings.roapi_flight_sql,
    }
    assert all(v.startswith("127.0.0.1:") for v in config["addr"].values())
    names = [t["name"] for t in config["tables"]]
    assert names == ["neural_signals", "sessions", "devices", "cursor_events", "channel_stats"]
    signals = config["tables"][0]
    assert (
        signals["uri"] == settings.warehouse_uri.removeprefix("file://") + "/catalog/neural_signals"
    )
    assert signals["option"] == {"format": "delta", "use_memory_table": False}
    text = roapi_yaml(export)
    assert "# skipped neuro.session_quality: function tables are computed in Python" in text
    assert "# skipped neuro.patients: postgres tables are not exported" in text


def test_roapi_config_uses_s3_uris_for_the_stack(export: dict) -> None:
    stack = export_catalog(
        Catalog({"neuro": ModuleDatabase(neuro)}),
        "neuralake.catalog.examples.neuro",
        neuralake.settings("stack"),
        inspect=False,
    )
    uris = [t["uri"] for t in roapi_config(stack)["tables"]]
    assert uris[0] == "s3://neuralake/warehouse/catalog/neural_signals"


def _evil_catalog() -> Catalog:
    module = types.ModuleType("evil")

    @table(tags=[EVIL, "ok"], owner=EVIL, docs_filters=[Filter("a", "=", EVIL)])
    def sneaky() -> pl.LazyFrame:
        return pl.LazyFrame({"a": [1]})

    sneaky.description = EVIL
    module.sneaky = sneaky
    module.__all__ = ["sneaky"]
    return Catalog({"evil": ModuleDatabase(module)})


def test_user_text_is_escaped_everywhere(tmp_path: Path, settings) -> None:
    data = export_catalog(_evil_catalog(), "evil", settings)
    build_site(data, tmp_path)
    for page in [tmp_path / "index.html", tmp_path / "tables" / "evil.sneaky.html"]:
        html = page.read_text()
        assert EVIL not in html, page
        assert "&lt;script&gt;alert(" in html
        assert len(re.findall(r"<script>", html)) == 1  # only the page's own script


def test_site_has_every_page_and_no_external_asset(tmp_path: Path, export: dict) -> None:
    build_site(export, tmp_path)
    pages = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert pages == sorted(f"{t['id']}.html" for t in export["tables"])
    assert json.loads((tmp_path / "catalog.json").read_text())["tables"] == export["tables"]
    for page in [tmp_path / "index.html", *(tmp_path / "tables").iterdir()]:
        html = page.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), page
        assert "@import" not in html


def test_table_page_shows_schema_lineage_and_snippets(tmp_path: Path, export: dict) -> None:
    build_site(export, tmp_path)
    html = (tmp_path / "tables" / "neuro.session_quality.html").read_text()
    assert '<svg id="lineage"' in html
    assert 'href="neuro.neural_signals.html"' in html
    assert "Spikes per second per channel." in html
    assert "load_catalog(&#39;neuralake.catalog.examples.neuro&#39;)" in html
    assert "not served: function tables are computed in Python" in html


def test_cli_writes_site_export_and_roapi(tmp_path: Path, settings) -> None:
    env = {"NEURALAKE_PROFILE": "local", "NEURALAKE_WAREHOUSE_URI": settings.warehouse_uri}
    module = "neuralake.catalog.examples.neuro"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "neuralake", "catalog", *args],
            env={**__import__("os").environ, **env},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    started = time.perf_counter()
    assert run("site", "-m", module, "-o", str(tmp_path / "site")).returncode == 0
    assert (tmp_path / "site" / "tables" / "neuro.sessions.html").exists()
    assert time.perf_counter() - started < 30
    assert run("export", "-m", module, "-o", str(tmp_path / "c.json")).returncode == 0
    assert len(json.loads((tmp_path / "c.json").read_text())["tables"]) == 7
    done = run("roapi", "-m", module, "-o", str(tmp_path / "r.yaml"))
    assert done.returncode == 0 and "skipped neuro.patients" in done.stdout
    failed = run("site", "-m", "no.such.module", "-o", str(tmp_path / "x"))
    assert failed.returncode == 2
    assert failed.stderr.strip().startswith("error: cannot import catalog module 'no.such.module'")


def _run_snippet(code: str) -> pl.DataFrame:
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)  # the page's snippet, as a reader would paste it
    return namespace["frame"]


def test_or_groups_and_hive_partitions_work_in_every_snippet(tmp_path: Path, settings) -> None:
    frame = pl.DataFrame(
        {
            "day": [date(2026, 1, d) for d in (1, 1, 2, 3)],
            "channel": [1, 2, 1, 9],
            "x": [10, 20, 30, 40],
        }
    )
    frame.write_parquet(tmp_path / "hive", partition_by="channel")
    frame.write_parquet(tmp_path / "one.parquet")
    either = [
        [Filter("channel", "=", 1), Filter("day", ">", "2026-01-01")],
        [Filter("channel", "=", 9)],
    ]
    module = types.ModuleType("pq")
    module.hive = ParquetTable(
        "hive",
        uri=str(tmp_path / "hive"),
        partitioning="hive",
        partition_columns=["channel"],
        schema={"day": pl.Date, "x": pl.Int64, "channel": pl.Int64},
        docs_filters=either,
    )
    module.one = ParquetTable(
        "one",
        uri=str(tmp_path / "one.parquet"),
        schema={"day": pl.Date, "channel": pl.Int64, "x": pl.Int64},
        docs_filters=[Filter("day", "=", "2026-01-01")],
    )
    module.__all__ = ["hive", "one"]
    catalog = Catalog({"pq": ModuleDatabase(module)})
    data = export_catalog(catalog, "pq", settings)
    hive, one = data["tables"]
    assert hive["docs_filters"] == [
        [["channel", "=", 1], ["day", ">", "2026-01-01"]],
        [["channel", "=", 9]],
    ]
    assert "hive_partitioning=True" in hive["snippets"]["polars"]
    assert "**" not in one["snippets"]["polars"]  # a single file is read as is
    assert hive["snippets"]["sql"] == (
        "SELECT * FROM hive WHERE (channel = 1 AND day > DATE '2026-01-01') OR (channel = 9) "
        "LIMIT 100"
    )
    expected = catalog.db("pq").table("hive", filters=either, settings=settings).collect()
    assert sorted(expected["x"]) == [30, 40]
    assert sorted(_run_snippet(hive["snippets"]["polars"])["x"]) == [30, 40]
    assert sorted(_run_snippet(one["snippets"]["polars"])["x"]) == [10, 20]
    assert "[Filter('channel', '=', 9)]," in hive["snippets"]["python"]

    build_site(data, tmp_path / "site")
    page = (tmp_path / "site" / "tables" / "pq.hive.html").read_text(encoding="utf-8")
    assert (
        "(<code>channel = 1</code> and <code>day &gt; 2026-01-01</code>) or "
        "(<code>channel = 9</code>)." in page
    )

    config = roapi_config(data)["tables"][0]
    assert config["partition_columns"] == [
        {"name": "channel", "data_type": "Int64", "nullable": True}
    ]
    assert [c["name"] for c in config["schema"]["columns"]] == ["day", "x"]
    assert config["option"] == {"format": "parquet", "use_memory_table": False}


def test_tags_with_spaces_and_unicode_survive_the_site(tmp_path: Path, settings) -> None:
    module = types.ModuleType("tagged")
    module.t = DeltalakeTable("t", tags=["clinical data", "µ-volts"], description="Voltage in µV.")
    module.__all__ = ["t"]
    build_site(
        export_catalog(Catalog({"tagged": ModuleDatabase(module)}), "tagged", settings), tmp_path
    )
    index = (tmp_path / "index.html").read_bytes().decode("utf-8")  # the pages declare UTF-8
    assert """data-tags='["clinical data", "\\u00b5-volts"]'""" in index  # JSON: spaces kept
    assert 'data-tag="clinical data"' in index and 'data-tag="µ-volts"' in index


def test_files_are_utf8_whatever_the_locale(tmp_path: Path, settings) -> None:
    # An ASCII locale without UTF-8 mode: Path.write_text() without encoding= would fail
    # on the "µs" in neural_signals' description.
    env = {
        **os.environ,
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "NEURALAKE_PROFILE": "local",
        "NEURALAKE_WAREHOUSE_URI": settings.warehouse_uri,
    }
    probe = [sys.executable, "-c", "import locale; print(locale.getpreferredencoding())"]
    assert subprocess.run(probe, env=env, capture_output=True, text=True).stdout.strip() != "UTF-8"
    out = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "neuralake", "catalog", "site", "-m", MODULE, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    page = (out / "tables" / "neuro.neural_signals.html").read_bytes().decode("utf-8")
    assert "100 µs" in page


@pytest.mark.parametrize("command", [["neuralake", "catalog"]])
def test_cli_without_a_command_prints_usage(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "export" in done.stdout and "roapi" in done.stdout


def test_cli_usage_errors_print_no_traceback() -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "neuralake", "catalog", "site"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "Missing option '--module'" in missing.stderr
