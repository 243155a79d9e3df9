"""neuralake.delta: inspect a table, read its log, and fail with one-line errors."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

import neuralake
from neuralake import datagen, delta
from neuralake.datagen import Simulation, schemas
from neuralake.errors import (
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    EndpointUnreachableError,
    NeuralakeError,
    TableNotFoundError,
    TableSchemaError,
)
from neuralake.lab.stack.processes import free_port

SIM = Simulation(rows=300_000, seed=5)


def _history_of_four_versions(uri: str, options: dict[str, str]) -> None:
    """v0 write, v1 append (2 files in all), v2 overwrite, v3 delete."""
    sessions = SIM.sessions_table()
    write_deltalake(uri, sessions, storage_options=options)
    write_deltalake(uri, sessions, mode="append", storage_options=options)
    write_deltalake(uri, sessions, mode="overwrite", storage_options=options)
    DeltaTable(uri, storage_options=options).delete("session_id = 1")


def _check_inspect_and_log(uri: str, options: dict[str, str]) -> None:
    info = delta.inspect(uri, options, small_file_bytes=1).row(0, named=True)
    assert info["version"] == 3
    assert info["rows"] == SIM.sessions - 1
    assert info["files"] == 1 and info["small_files"] == 0  # nothing is below 1 byte
    assert delta.inspect(uri, options)["small_files"][0] == 1  # below the default
    assert (info["min_reader_version"], info["min_writer_version"]) == (1, 2)
    assert info["last_operation"] == "DELETE"

    history = delta.history(uri, options)
    assert history["version"].to_list() == [3, 2, 1, 0]
    assert history["operation"].to_list() == ["DELETE", "WRITE", "WRITE", "WRITE"]
    assert history["timestamp"].dtype == pl.Datetime("us", "UTC")

    names = delta.log_files(uri, options)["name"].to_list()
    assert names == [f"{v:020d}.json" for v in range(4)]
    first = delta.read_commit(uri, 0, options)
    kinds = {next(iter(action)) for action in first}
    assert {"protocol", "metaData", "add", "commitInfo"} <= kinds
    overwrite = delta.read_commit(uri, 2, options)
    assert sum("remove" in a for a in overwrite) == 2  # both files of v0 and v1

    stored = delta.data_files(uri, options)
    assert stored.height == 4  # v0, v1, v2 and the delete's rewrite: nothing vacuumed
    assert len(DeltaTable(uri, storage_options=options).file_uris()) == 1


@pytest.fixture
def local(tmp_path) -> neuralake.Settings:
    return dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())


def test_inspect_history_and_log_local(local):
    uri = local.table_uri("sessions")
    _history_of_four_versions(uri, local.storage_options)
    _check_inspect_and_log(uri, local.storage_options)


def test_inspect_counts_small_files(local):
    uri = local.table_uri("signals")
    datagen.write_frames(
        uri, SIM.signal_chunks(), schemas.NEURAL_SIGNALS, files=6, total_rows=SIM.signal_rows
    )
    info = delta.inspect(uri).row(0, named=True)
    assert info["small_files"] == info["files"] >= 4
    assert info["mean_file_bytes"] == info["bytes"] // info["files"]
    assert info["bytes"] == pl.DataFrame(DeltaTable(uri).get_add_actions())["size_bytes"].sum()


def test_drop_table_removes_everything(local):
    uri = local.table_uri("gone")
    _history_of_four_versions(uri, local.storage_options)
    assert delta.drop_table(uri) >= 8  # 4 commits + 4 data files
    assert delta.drop_table(uri) == 0
    with pytest.raises(TableNotFoundError):
        delta.inspect(uri)


def test_missing_table_names_the_fix(local):
    with pytest.raises(TableNotFoundError, match="write it first") as caught:
        delta.inspect(local.table_uri("never_written"))
    assert "\n" not in str(caught.value)


def test_schema_mismatch_is_one_line_and_changes_nothing(local):
    uri = local.table_uri("sessions")
    _history_of_four_versions(uri, local.storage_options)
    with pytest.raises(TableSchemaError, match="schema_mode='merge'") as caught:
        datagen.write_frames(uri, [SIM.devices_table()], schemas.DEVICES, mode="append")
    assert "\n" not in str(caught.value)
    assert DeltaTable(uri).version() == 3


def test_unreachable_endpoint_names_the_fix():
    dead = f"http://127.0.0.1:{free_port()}"
    options = {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_ENDPOINT_URL": dead,
        "AWS_ALLOW_HTTP": "true",
    }
    with pytest.raises(EndpointUnreachableError, match="neuralake stack up") as caught:
        delta.inspect("s3://neuralake/warehouse/anything", options)
    assert dead in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(EndpointUnreachableError, match="neuralake stack up"):
        delta.log_files("s3://neuralake/warehouse/anything", options)


# -- against the stack's S3 ----------------------------------------------------------------


@pytest.fixture
def stack_uri(stack_settings) -> Iterator[str]:
    uri = stack_settings.table_uri(f"test_delta_{uuid.uuid4().hex[:8]}")
    yield uri
    delta.drop_table(uri, stack_settings.storage_options)


@pytest.mark.stack
def test_inspect_history_and_log_on_s3(stack_settings, stack_uri):
    _history_of_four_versions(stack_uri, stack_settings.storage_options)
    _check_inspect_and_log(stack_uri, stack_settings.storage_options)


@pytest.mark.stack
def test_wrong_credentials_name_the_fix(stack_settings, stack_uri):
    _history_of_four_versions(stack_uri, stack_settings.storage_options)
    wrong = {**stack_settings.storage_options, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    with pytest.raises(CredentialsError, match="NEURALAKE_S3_SECRET_ACCESS_KEY") as caught:
        delta.inspect(stack_uri, wrong)
    assert "\n" not in str(caught.value)
    with pytest.raises(CredentialsError, match="NEURALAKE_S3_SECRET_ACCESS_KEY"):
        delta.log_files(stack_uri, wrong)
    with pytest.raises(CredentialsError):
        datagen.write_frames(stack_uri, [SIM.sessions_table()], schemas.SESSIONS, wrong)
    assert delta.inspect(stack_uri, stack_settings.storage_options)["version"][0] == 3


@pytest.mark.stack
def test_missing_bucket_names_the_fix(stack_settings):
    uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/warehouse/x"
    options = stack_settings.storage_options
    with pytest.raises(BucketNotFoundError, match="NEURALAKE_S3_BUCKET") as caught:
        delta.inspect(uri, options)
    assert "\n" not in str(caught.value)
    with pytest.raises(BucketNotFoundError, match="NEURALAKE_S3_BUCKET"):
        delta.log_files(uri, options)
    with pytest.raises(BucketNotFoundError):
        datagen.write_frames(uri, [SIM.sessions_table()], schemas.SESSIONS, options)


@pytest.mark.stack
def test_missing_table_on_s3_is_not_a_storage_error(stack_settings, stack_uri):
    with pytest.raises(TableNotFoundError):
        delta.inspect(stack_uri, stack_settings.storage_options)


@pytest.mark.stack
def test_schema_mismatch_on_s3_changes_nothing(stack_settings, stack_uri):
    options = stack_settings.storage_options
    _history_of_four_versions(stack_uri, options)
    with pytest.raises(TableSchemaError):
        datagen.write_frames(
            stack_uri, [SIM.devices_table()], schemas.DEVICES, options, mode="append"
        )
    assert DeltaTable(stack_uri, storage_options=options).version() == 3


def test_every_new_error_is_a_neuralake_error():
    for error in (
        BucketNotFoundError,
        CredentialsError,
        EndpointUnreachableError,
        TableNotFoundError,
        TableSchemaError,
    ):
        assert issubclass(error, NeuralakeError)


# -- file statistics and what a scan reads ---------------------------------------------------


def _three_channel_ranges(uri: str, options: dict[str, str] | None = None) -> None:
    """Three appends, one file each: channels 0-9, 10-19, 20-29."""
    for first in (0, 10, 20):
        frame = pl.DataFrame(
            {"channel": list(range(first, first + 10)) * 50, "v": [1.0] * 500},
            schema={"channel": pl.Int16, "v": pl.Float64},
        )
        write_deltalake(uri, frame, mode="append", storage_options=options)


def test_file_stats_gives_each_files_range(local):
    uri = local.table_uri("ranges")
    _three_channel_ranges(uri)
    stats = delta.file_stats(DeltaTable(uri), "channel")
    assert stats.select("min", "max").rows() == [(0, 9), (10, 19), (20, 29)]
    assert stats["rows"].to_list() == [500] * 3
    with pytest.raises(ConfigError, match="no statistics for 'electrode'") as caught:
        delta.file_stats(DeltaTable(uri), "electrode")
    assert "\n" not in str(caught.value)


def test_column_bytes_add_up_to_less_than_the_files(local):
    uri = local.table_uri("ranges")
    _three_channel_ranges(uri)
    table = DeltaTable(uri)
    columns = delta.column_bytes(table)
    assert set(columns["column"]) == {"channel", "v"}
    files = pl.DataFrame(table.get_add_actions(flatten=True))["size_bytes"].sum()
    assert 0 < columns["bytes"].sum() < files  # the footers and headers are the rest


def test_request_log_needs_a_plain_http_endpoint():
    with pytest.raises(ConfigError, match="stack profile") as caught:
        delta.RequestLog({"AWS_REGION": "us-east-1"})
    assert "\n" not in str(caught.value)


@pytest.mark.stack
def test_request_log_counts_only_the_files_a_filtered_scan_opens(stack_settings, stack_uri):
    options = stack_settings.storage_options
    _three_channel_ranges(stack_uri, options)
    sizes = delta.file_stats(DeltaTable(stack_uri, storage_options=options), "channel")
    with delta.RequestLog(options) as log:
        table = DeltaTable(stack_uri, storage_options=log.storage_options)
        assert log.summary()["log requests"] >= 3  # one commit file per append, at least
        log.clear()
        result = (
            pl.scan_delta(table, storage_options=log.storage_options)
            .filter(pl.col("channel") == 15)
            .select(pl.len())
            .collect()
        )
        read = log.summary()
        log.clear()
        pl.scan_delta(table, storage_options=log.storage_options).select(pl.len()).collect()
        everything = log.summary()
    assert result.item() == 50  # the data is right, through the proxy
    assert read["data files opened"] == 1
    assert read["data bytes read"] <= sizes.filter(pl.col("min") == 10)["bytes"].item() * 2
    assert everything["data files opened"] == 3
    assert (log.frame()["status"] < 400).all()  # every forwarded request succeeded


@pytest.mark.stack
def test_measure_counts_the_files_a_query_requests(stack_settings, stack_uri):
    """catalog.pushdown.measure builds the query through a request log and counts its GETs."""
    from neuralake.catalog import CatalogError
    from neuralake.catalog.pushdown import measure

    _three_channel_ranges(stack_uri, stack_settings.storage_options)

    def channel_count(channel: int | None):
        def make(s: neuralake.Settings) -> pl.LazyFrame:
            frame = pl.scan_delta(stack_uri, storage_options=s.storage_options)
            if channel is not None:
                frame = frame.filter(pl.col("channel") == channel)
            return frame.select(pl.len())

        return make

    one, one_read = measure(channel_count(15), stack_settings)
    every, every_read = measure(channel_count(None), stack_settings)
    assert (one.item(), every.item()) == (50, 1500)
    assert (one_read.files_opened, every_read.files_opened) == (1, 3)
    assert 0 < one_read.bytes_read < every_read.bytes_read
    assert one_read.log_requests >= 3  # the query opened the table: one commit per append
    direct = pl.scan_delta(stack_uri, storage_options=stack_settings.storage_options)
    with pytest.raises(CatalogError, match="sent no request through the log"):
        measure(lambda _: direct, stack_settings)  # built around the log: nothing to count
    with pytest.raises(CatalogError, match="not a LazyFrame built already"):
        measure(direct, stack_settings)  # a query built already: its reader bypasses the log


def test_measure_refuses_a_local_warehouse_in_one_line(local):
    from neuralake.catalog.pushdown import measure

    with pytest.raises(ConfigError, match="not a local warehouse or AWS S3: use the stack") as err:
        measure(lambda s: pl.scan_delta(s.table_uri("none")), local)
    assert "\n" not in str(err.value)


@pytest.mark.stack
def test_request_log_forwards_signed_writes_and_conditional_puts(stack_settings, stack_uri):
    """Commits go through too: signed PUTs, the conditional commit puts among them, land."""
    options = stack_settings.storage_options
    with delta.RequestLog(options) as log:
        for n in range(2):  # the second commit's If-None-Match put must not overwrite the first
            write_deltalake(
                stack_uri,
                pl.DataFrame({"n": [n]}).to_arrow(),
                mode="append",
                storage_options=log.storage_options,
            )
        puts = log.frame().filter(pl.col("method") == "PUT")
    assert DeltaTable(stack_uri, storage_options=options).version() == 1
    assert pl.read_delta(stack_uri, storage_options=options)["n"].sort().to_list() == [0, 1]
    assert puts.filter(pl.col("key").str.contains("/_delta_log/")).height >= 2
    assert (puts["status"] < 400).all()
