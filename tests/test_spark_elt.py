"""Spark and the writer's tables: same rows as Polars, a write guard, an incremental ELT.

One bronze table is built for the module with the Python baseline writer (the same
schema and ``txn`` scheme as the Rust writer), then the ELT runs three times: on the
first batch of messages, on a second batch, and with nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable, QueryBuilder
from typer.testing import CliRunner

import neuralake
from neuralake import datagen, delta
from neuralake.catalog.examples import neuro
from neuralake.lab.cli import spark as cli
from neuralake.lab.stack.processes import free_port
from neuralake.spark import compare, elt, guard, polars_elt, session
from neuralake.streaming import baseline, produce, topics

pytestmark = pytest.mark.stack

ROAPI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "roapi"
FIRST, SECOND = 6_000, 2_500  # messages per batch: tiny, the point is which rows move


@dataclass
class World:
    s: neuralake.Settings
    tables: elt.Tables
    runs: list[elt.Run]
    messages: list[int]  # good messages produced before each run


def _write_bronze(s: neuralake.Settings, topic: str, table: str, count: int) -> int:
    sent = produce.produce(s, topic=topic, count=count, malformed_ratio=0.01, seed=count)
    writer = baseline.Baseline(s, topic=topic, table=table)
    try:
        writer.run(stop_at_end=True)
    finally:
        writer.close()
    return sent.good


@pytest.fixture(scope="module")
def world(stack_settings) -> Iterator[World]:
    s = stack_settings
    tag = uuid.uuid4().hex[:8]
    tables = elt.Tables(
        bronze=f"spark_test_{tag}_bronze",
        silver=f"spark_test_{tag}_silver",
        gold=f"spark_test_{tag}_gold",
        dims_prefix=f"spark_test_{tag}_dims/",
    )
    topic = f"spark_test_{tag}"
    sim = datagen.Simulation(rows=4_096, sessions=2, patients=1, seed=1)
    datagen.write_tables(s, sim, files=1, prefix=tables.dims_prefix)
    runs, messages = [], []
    messages.append(_write_bronze(s, topic, tables.bronze, FIRST))
    runs.append(elt.run(s, tables))
    messages.append(_write_bronze(s, topic, tables.bronze, SECOND))
    result = CliRunner().invoke(cli.app, ["elt", *_options(tables)])
    assert result.exit_code == 0, result.output
    runs.append(elt.Run(**json.loads(result.output.strip().splitlines()[-1])))
    runs.append(elt.run(s, tables))
    yield World(s, tables, runs, messages)
    for name in ("bronze", "silver", "gold"):
        uri = tables.uri(s, name)
        delta.drop_table(uri, s.storage_options)
    delta.drop_table(tables.uri(s, "bronze") + "_dead_letters", s.storage_options)
    delta.drop_table(s.table_uri(tables.dims_prefix.rstrip("/")), s.storage_options)
    topics.delete_topic(s, topic)


def _options(tables: elt.Tables) -> list[str]:
    return [
        *("--bronze", tables.bronze, "--silver", tables.silver, "--gold", tables.gold),
        *("--dims-prefix", tables.dims_prefix),
    ]


def _polars(world: World, name: str) -> pl.DataFrame:
    return pl.read_delta(world.tables.uri(world.s, name), storage_options=world.s.storage_options)


def _spark(world: World, uri: str):
    return session(world.s).read.format("delta").load(guard.spark_path(uri))


def test_spark_reads_the_writer_tables_like_polars(world):
    bronze = world.tables.uri(world.s, "bronze")
    for uri in (bronze, bronze + "_dead_letters"):
        by_polars = pl.read_delta(uri, storage_options=world.s.storage_options)
        assert by_polars.height > 0, uri
        assert compare.spark_fingerprint(_spark(world, uri)) == compare.fingerprint(by_polars)


def test_spark_refuses_to_write_a_writer_owned_table(world):
    bronze = world.tables.uri(world.s, "bronze")
    before = DeltaTable(bronze, storage_options=world.s.storage_options).version()
    rows = session(world.s).range(3)
    for uri in (bronze, bronze + "_dead_letters"):
        with pytest.raises(guard.WriterOwnedTableError, match=r"neuralake-baseline/spark_test"):
            guard.write_delta(rows, uri, world.s)
    assert DeltaTable(bronze, storage_options=world.s.storage_options).version() == before
    silver = world.tables.uri(world.s, "silver")
    assert guard.writer_app_id(silver, world.s.storage_options) is None  # Spark's own
    result = CliRunner().invoke(cli.app, ["owner", world.tables.bronze])
    assert json.loads(result.output)["writer_owned"] is True


def test_the_second_run_processes_only_new_bronze_versions(world):
    first, second, idle = world.runs
    assert first.bronze_rows == world.messages[0]
    assert second.bronze_rows == world.messages[1]  # only the second batch's rows
    assert second.bronze_versions[0] == first.bronze_versions[1] + 1
    assert idle.batches == 0 and idle.bronze_rows == 0 and idle.bronze_versions == []
    assert idle.tables == second.tables  # nothing new: no commit
    bronze = _polars(world, "bronze")
    silver = _polars(world, "silver")
    assert silver.height == bronze.unique(elt.KEY).height == sum(world.messages)
    assert second.tables["silver"]["rows"] == silver.height


def test_gold_has_one_row_per_session_day_with_the_dimensions(world):
    gold = _polars(world, "gold")
    silver = _polars(world, "silver")
    expected = silver.group_by("session_id", "date").agg(
        samples=pl.len(), spikes=pl.col("spike").sum().cast(pl.Int64)
    )
    got = gold.select("session_id", "date", "samples", "spikes")
    assert got.sort("session_id", "date").equals(
        expected.sort("session_id", "date").cast(got.schema)
    )
    assert gold["task"].null_count() == 0 and gold["firmware"].null_count() == 0
    assert gold["cohort"].null_count() == 0


def test_spark_tables_read_the_same_in_polars_datafusion_and_roapi(world, tmp_path):
    s = world.s
    for name in ("silver", "gold"):
        uri = world.tables.uri(s, name)
        expected = compare.spark_fingerprint(_spark(world, uri))
        assert expected.rows > 0
        assert compare.fingerprint(_polars(world, name)) == expected, f"polars {name}"
        table = DeltaTable(uri, storage_options=s.storage_options)
        reader = QueryBuilder().register("t", table).execute("SELECT * FROM t")
        assert compare.fingerprint(pa.table(reader)) == expected, f"datafusion {name}"
        columns = list(expected.schema)
        assert compare.fingerprint(_roapi_rows(s, name, uri, tmp_path), columns) == expected


def _roapi_rows(s: neuralake.Settings, name: str, uri: str, tmp: Path) -> pa.Table:
    """Serve one table with ROAPI on free ports and fetch every row as Arrow."""
    http = f"127.0.0.1:{free_port()}"
    config = {
        "addr": {
            "http": http,
            "postgres": f"127.0.0.1:{free_port()}",
            "flight_sql": f"127.0.0.1:{free_port()}",
        },
        "tables": [
            {"name": name, "uri": uri, "option": {"format": "delta", "use_memory_table": False}}
        ],
    }
    path = tmp / f"roapi_{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp / f"roapi_{name}.log").open("w")
    process = subprocess.Popen(
        [str(ROAPI), "-c", str(path)],
        env={**os.environ, **s.roapi_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp / f"roapi_{name}.log").read_text()
            try:
                answer = httpx.get(
                    f"http://{http}/api/tables/{name}",
                    headers={"ACCEPT": "application/vnd.apache.arrow.stream"},
                    timeout=30,
                )
                if answer.is_success:
                    return pa.ipc.open_stream(answer.content).read_all()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ROAPI did not answer within 60 s"
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_the_catalog_declares_exactly_what_spark_writes(world):
    from neuralake.spark import catalog

    declared = {"silver": catalog.neural_signals_silver, "gold": catalog.session_features}
    for name, table in declared.items():
        columns = {c.name: c.dtype for c in table.declared_columns()}
        assert dict(_polars(world, name).schema) == columns, name
        assert getattr(elt.Tables(), name) == table.uri  # the job's defaults are the catalog's


def test_polars_computes_the_same_gold_as_spark(world):
    """The dual-engine claim of lesson 06: Polars' transform, Spark's table, same rows."""
    opts = world.s.storage_options
    scan = {
        name: pl.scan_delta(
            world.s.table_uri(world.tables.dims_prefix + name), storage_options=opts
        )
        for name in ("sessions", "devices", "patients")
    }
    bronze = pl.scan_delta(world.tables.uri(world.s, "bronze"), storage_options=opts)
    by_polars = polars_elt.features(
        polars_elt.clean(bronze, neuro.neural_signals.checks), **scan
    ).collect()
    by_spark = _polars(world, "gold").select(polars_elt.GOLD_COLUMNS)
    assert by_polars.height == by_spark.height > 0
    assert compare.fingerprint(by_polars, decimals=6) == compare.fingerprint(by_spark, decimals=6)
