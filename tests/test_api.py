"""The hot path on the running stack: a private ROAPI over a bronze-shaped Delta table.

Proves that new commits are served within the reload bound, that psql (PostgreSQL
wire) and a Flight SQL client (ADBC) return the same rows as the HTTP API, and that
the client's errors are one clear line.
"""

from __future__ import annotations

import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import polars as pl
import pytest
from deltalake import write_deltalake

from neuralake import delta
from neuralake.api import explain
from neuralake.api.client import QueryError, RoapiClient
from neuralake.api.sample import bronze_rows, day
from neuralake.catalog.roapi import RELOAD_INTERVAL_S
from neuralake.errors import StackError
from neuralake.lab.api.server import delta_entry, roapi

pytestmark = pytest.mark.stack

#: The stated bound: a commit is served within one reload interval, plus the re-read of
#: the log and one query (1 s of slack on a shared 2-core machine).
FRESHNESS_BOUND_S = RELOAD_INTERVAL_S + 1.0


@pytest.fixture(scope="module")
def served(stack_settings, tmp_path_factory) -> Iterator[tuple[RoapiClient, object, str]]:
    """ROAPI serving a fresh 20,000-row bronze table (partitioned by date) as ``bronze``,
    and an unpartitioned copy of it in memory as ``bronze_memory``."""
    name = f"test_api_{uuid.uuid4().hex[:8]}"
    uri, copy = stack_settings.table_uri(name), stack_settings.table_uri(f"{name}_memory")
    rows = bronze_rows(20_000, seed=1).to_arrow()
    options = stack_settings.storage_options
    write_deltalake(uri, rows, partition_by=["date"], storage_options=options)
    write_deltalake(copy, rows, storage_options=options)
    folder = tmp_path_factory.mktemp("roapi")
    tables = [delta_entry("bronze", uri), delta_entry("bronze_memory", copy, memory=True)]
    try:
        with roapi(tables, stack_settings, folder) as at, RoapiClient(at.http) as client:
            yield client, at, uri
    finally:
        for table_uri in (uri, copy):
            delta.drop_table(table_uri, options)


def test_a_commit_is_served_within_the_reload_bound(served, stack_settings) -> None:
    client, _, uri = served
    before = client.sql("SELECT count(voltage_uv) AS n FROM bronze")["n"][0]
    write_deltalake(
        uri,
        bronze_rows(500, seed=2, start=day(1)).to_arrow(),
        mode="append",
        partition_by=["date"],
        storage_options=stack_settings.storage_options,
    )
    committed = time.monotonic()
    while client.sql("SELECT count(voltage_uv) AS n FROM bronze")["n"][0] != before + 500:
        assert time.monotonic() - committed < FRESHNESS_BOUND_S + 5, "the commit never showed up"
        time.sleep(0.1)
    seen_after = time.monotonic() - committed
    assert seen_after < FRESHNESS_BOUND_S, f"served after {seen_after:.1f} s"


SQL = "SELECT session_id, channel, voltage_uv FROM bronze WHERE session_id = 7 AND channel < 4"


PSQL = ["--no-psqlrc", "-At", "-F,", "-c"]  # unaligned rows, comma-separated, no header


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def test_psql_returns_the_rows_of_the_http_api(served) -> None:
    client, at, _ = served
    over_http = _sorted(client.sql(SQL))
    assert over_http.height > 0
    host, port = at.postgres.rsplit(":", 1)
    out = subprocess.run(
        ["psql", f"host={host} port={port} user=roapi dbname=roapi sslmode=disable", *PSQL, SQL],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rows = [line.split(",") for line in out.splitlines()]
    over_psql = pl.DataFrame(
        [(int(a), int(b), float(c)) for a, b, c in rows],
        schema={"session_id": pl.Int32, "channel": pl.Int16, "voltage_uv": pl.Float32},
        orient="row",
    )
    assert _sorted(over_psql).equals(over_http)


def test_flight_sql_returns_the_rows_of_the_http_api(served) -> None:
    client, at, _ = served
    with warnings.catch_warnings():  # ADBC warns that ROAPI cannot turn autocommit off
        warnings.simplefilter("ignore")
        with flightsql.connect(f"grpc://{at.flight_sql}") as conn, conn.cursor() as cursor:
            cursor.execute(SQL)
            over_flight = pl.from_arrow(cursor.fetch_arrow_table())
    assert _sorted(over_flight).equals(_sorted(client.sql(SQL)))


def test_rest_and_graphql_agree_with_sql(served) -> None:
    client, _, _ = served
    expected = client.sql("SELECT channel, voltage_uv FROM bronze WHERE session_id = 7")
    rest = client.rest("bronze", columns=["channel", "voltage_uv"], filters={"session_id": 7})
    graphql = client.graphql("{bronze(filter: {session_id: 7}) {channel voltage_uv}}")
    assert _sorted(rest).equals(_sorted(expected))
    assert _sorted(graphql).equals(_sorted(expected))


def test_arrow_keeps_the_column_types(served) -> None:
    client, _, _ = served
    frame = client.sql("SELECT timestamp, channel, date FROM bronze LIMIT 1")
    assert frame.schema == pl.Schema(
        {"timestamp": pl.Datetime("us", "UTC"), "channel": pl.Int16, "date": pl.Date}
    )


def test_int16_literal_comparisons_work(served, stack_settings) -> None:
    client, _, uri = served
    counts = client.sql("SELECT count(voltage_uv) AS n FROM bronze WHERE channel = 3")
    table = pl.read_delta(uri, storage_options=stack_settings.storage_options)
    assert counts["n"][0] == table.filter(pl.col("channel") == 3).height > 0


def test_explain_analyze_shows_pruning_and_memory_batches(served) -> None:
    client, _, _ = served
    point = "SELECT * FROM {t} WHERE kafka_partition = 0 AND kafka_offset = 12345"
    provider = explain.scan_metrics(explain.plan(client, point.format(t="bronze")))
    assert provider["files_scanned"] == 1  # the Delta log's statistics leave one file
    assert provider["row_groups_matched_statistics"] == 1
    assert provider["bytes_scanned"] > 0  # read from S3 at query time
    memory = explain.scan_metrics(explain.plan(client, point.format(t="bronze_memory")))
    assert memory["memory_batches"] == 1  # MEMORY_BATCH_ROWS: one batch, not three
    assert memory["files_scanned"] == 0  # no storage request at query time
    assert client.sql(point.format(t="bronze_memory")).equals(client.sql(point.format(t="bronze")))


def test_bad_sql_is_one_line_naming_the_problem(served) -> None:
    client, _, _ = served
    with pytest.raises(QueryError, match="No field named nope") as error:
        client.sql("SELECT nope FROM bronze")
    assert "\n" not in str(error.value)
    with pytest.raises(QueryError, match="not found"):
        client.sql("SELECT 1 FROM no_such_table")


def test_the_count_star_panic_becomes_a_hint(served) -> None:
    client, _, _ = served
    with pytest.raises(QueryError, match=r"count a data column instead"):
        client.sql("SELECT count(*) FROM bronze WHERE date = '2026-11-23'")


def test_the_client_answers_the_next_query_after_a_panic(served) -> None:
    """A query that panics inside ROAPI costs only that query: the same client's next query
    gets its answer (lesson 05 shows the panic, then the query that works)."""
    client, _, _ = served
    rows = client.sql("SELECT voltage_uv FROM bronze_memory").height  # the unchanged copy
    for _ in range(3):
        with pytest.raises(QueryError, match=r"count a data column instead"):
            client.sql("SELECT count(*) FROM bronze WHERE date = '2026-11-23'")
        answer = client.sql("SELECT count(voltage_uv) AS n FROM bronze_memory")
        assert answer["n"][0] == rows == 20_000


def test_a_server_that_is_down_names_the_fix() -> None:
    with pytest.raises(StackError, match=r"not answering at http://127\.0\.0\.1:9: start it"):
        RoapiClient("127.0.0.1:9").sql("SELECT 1")


def test_a_missing_table_stops_roapi_with_its_error(tmp_path: Path, stack_settings) -> None:
    missing = delta_entry("x", stack_settings.table_uri(f"test_api_{uuid.uuid4().hex[:8]}"))
    with (
        pytest.raises(StackError, match="roapi exited"),
        roapi([missing], stack_settings, tmp_path),
    ):
        pass


def test_a_server_that_exits_is_reported_by_its_error_line_not_its_last_line():
    from neuralake.lab.stack.processes import error_line

    log = "starting\nerror: unexpected argument '--bad' found\n\nFor more, try '--help'.\n"
    assert error_line(log) == "error: unexpected argument '--bad' found"
    assert error_line("just one line\n") == "just one line"
    assert error_line("") == "(empty log)"


def test_sample_rows_have_the_bronze_schema_in_its_order() -> None:
    from neuralake.streaming.schemas import BRONZE

    rows = bronze_rows(100, seed=2)
    assert rows.schema == BRONZE and rows.columns == list(BRONZE)
    assert rows["timestamp"].min() == day(0)
