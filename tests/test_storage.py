"""neuralake.storage: one file API, the same answers on a file:// and an s3:// warehouse.

Every test runs twice: on a folder under pytest's tmp_path, and on a fresh prefix of the
stack's bucket (MinIO). Lab grading's drop_tables and delta's log readers use it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from deltalake import write_deltalake

import neuralake
from neuralake import delta, storage
from neuralake.datagen import Simulation
from neuralake.errors import ConfigError, TableNotFoundError
from neuralake.lab.graders import grade

SESSIONS = Simulation(rows=1_000, seed=3).sessions_table()


@pytest.fixture(params=["file", "s3"])
def warehouse(request, tmp_path) -> Iterator[neuralake.Settings]:
    """Settings whose warehouse is empty: a local folder, or a new prefix on the stack."""
    if request.param == "file":
        yield dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())
        return
    s = request.getfixturevalue("stack_settings")
    prefix = s.table_uri(f"test_storage_{uuid.uuid4().hex[:8]}")
    yield dataclasses.replace(s, warehouse_uri=prefix)
    storage.delete(prefix, s.storage_options)


def test_list_read_and_delete_a_table(warehouse: neuralake.Settings) -> None:
    uri, options = warehouse.table_uri("sessions"), warehouse.storage_options
    write_deltalake(uri, SESSIONS, storage_options=options)
    write_deltalake(uri, SESSIONS, mode="append", storage_options=options)

    log = storage.list_files(f"{uri}/_delta_log", options)
    assert [name for name, _ in log] == [f"{v:020d}.json" for v in range(2)]
    text = storage.read_text(f"{uri}/_delta_log/{0:020d}.json", options)
    assert len(text.encode()) == log[0][1] and '"protocol"' in text

    everything = storage.list_files(uri, options, recursive=True)
    data = [name for name, _ in everything if name.endswith(".parquet")]
    assert len(data) == 2 and len(everything) == 4  # two data files, two commits
    assert delta.data_files(uri, options)["name"].sort().to_list() == sorted(data)
    assert storage.list_folders(warehouse.warehouse_uri, options) == ["sessions"]

    assert storage.delete(uri, options) == 4
    assert storage.delete(uri, options) == 0  # nothing left: not an error
    assert storage.list_folders(warehouse.warehouse_uri, options) == []


def test_a_missing_folder_is_missing_on_both(warehouse: neuralake.Settings) -> None:
    uri, options = warehouse.table_uri("never_written"), warehouse.storage_options
    with pytest.raises(FileNotFoundError):
        storage.list_files(uri, options)
    assert storage.list_folders(uri, options) == []
    with pytest.raises(TableNotFoundError, match="write it first"):
        delta.log_files(uri, options)


def test_drop_tables_deletes_only_the_prefixed_tables(warehouse: neuralake.Settings) -> None:
    options = warehouse.storage_options
    for name in ("grade_ann_01_x", "grade_ann_01_y", "grade_bob_01_x"):
        write_deltalake(warehouse.table_uri(name), SESSIONS, storage_options=options)
    assert grade.drop_tables(warehouse, "grade_ann_01_") == 4  # a commit and a file each
    assert storage.list_folders(warehouse.warehouse_uri, options) == ["grade_bob_01_x"]
    assert grade.drop_tables(warehouse, "grade_ann_01_") == 0


def test_paths_inside_each_filesystem() -> None:
    assert storage.path("file:///tmp/wh/t%20x/") == "/tmp/wh/t x"
    assert storage.path("s3://bucket/warehouse/t/") == "bucket/warehouse/t"
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        storage.filesystem("gs://bucket/x")
