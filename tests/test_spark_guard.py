"""Who owns a table, read from its Delta log: commits first, then the last checkpoint."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from neuralake.spark import guard

ROWS = pa.table({"x": pa.array([1, 2], pa.int64())})


def _append(uri: str, app_id: str | None = None) -> None:
    txns = [Transaction(app_id, 7)] if app_id else None
    write_deltalake(
        uri, ROWS, mode="append", commit_properties=CommitProperties(app_transactions=txns)
    )


def test_a_table_without_writer_txn_has_no_owner(tmp_path):
    uri = (tmp_path / "plain").as_uri()
    assert guard.writer_app_id(uri) is None  # not created yet
    _append(uri)
    _append(uri, "some-other-app/anything/0")
    assert guard.writer_app_id(uri) is None


def test_the_writer_txn_is_found_in_a_commit_and_behind_a_checkpoint(tmp_path):
    uri = (tmp_path / "bronze").as_uri()
    _append(uri, "neuralake-writer/signals/0")
    assert guard.writer_app_id(uri) == "neuralake-writer/signals/0"
    DeltaTable(uri).create_checkpoint()
    _append(uri)  # a later commit without txn (as a compaction would be)
    log = sorted(p.name for p in (tmp_path / "bronze" / "_delta_log").iterdir())
    assert any(".checkpoint." in name for name in log)
    assert guard.writer_app_id(uri) == "neuralake-writer/signals/0"


def test_the_guard_error_is_one_line_naming_the_fix(tmp_path):
    import neuralake

    uri = (tmp_path / "bronze").as_uri()
    _append(uri, "neuralake-baseline/signals/2")
    with pytest.raises(guard.WriterOwnedTableError) as error:
        guard.ensure_spark_may_write(uri, neuralake.settings("local"))
    message = str(error.value)
    assert "\n" not in message and "write the result to a table of your own" in message
