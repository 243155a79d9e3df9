"""Monitoring: the pure logic of samples, alert rules and the audit, then the real thing.

The unit tests feed hand-made samples and commit actions; the stack test runs the Rust
writer on a throw-away topic, watches it through a crash, and audits its table.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from confluent_kafka import KafkaError, KafkaException
from deltalake import CommitProperties, write_deltalake

from neuralake import delta
from neuralake.errors import ConfigError
from neuralake.lab.writer import control
from neuralake.monitoring import Rule, Watch, audit, evaluate
from neuralake.monitoring.alerts import firing
from neuralake.monitoring.audit import commit_row, elt_behind
from neuralake.monitoring.watch import increase, windowed_ratio, writer_columns
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import dead_letter_uri

# -- samples ------------------------------------------------------------------------


def test_writer_columns_sum_the_partitions_lag_and_leave_missing_metrics_null():
    scraped = {
        'neuralake_writer_consumer_lag{partition="0"}': 5.0,
        'neuralake_writer_consumer_lag{partition="1"}': 7.0,
        "neuralake_writer_messages_total": 100.0,
    }
    columns = writer_columns(scraped)
    assert columns["writer_lag"] == 12.0
    assert columns["messages_total"] == 100.0
    assert columns["dead_letters_total"] is None
    assert writer_columns({})["writer_lag"] is None  # no gauge before the first commit


def test_increase_treats_a_drop_as_a_restart_like_prometheus():
    assert increase([10.0, 15.0, None, 3.0, 8.0]) == [None, 5.0, None, None, 5.0]
    assert increase([10.0, 15.0, 4.0]) == [None, 5.0, 4.0]  # reset: grew by 4 since


def test_windowed_ratio_counts_only_the_last_window():
    t = [0.0, 1.0, 5.0, 6.0, 14.0]
    dead = [None, 1.0, 1.0, 1.0, 0.0]
    consumed = [None, 10.0, 10.0, 10.0, 10.0]
    # none before the samples span 5 s; then the last 5 s only
    assert windowed_ratio(t, dead, consumed, window_s=5) == [None, None, 0.1, 0.1, 0.0]
    # dead letters committed a moment before their batch's rows: no ratio from 10 messages
    assert windowed_ratio(t, dead, consumed, 5, min_whole=25) == [None, None, None, 0.1, None]


def test_a_probe_that_cannot_answer_gives_nulls_and_its_name_in_down():
    def timed_out() -> int:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    watch = Watch("http://127.0.0.1:9/metrics", broker_lag=timed_out, files=lambda: 3)
    row = watch.sample("test")
    assert (row["broker_lag"], row["messages_total"], row["files"]) == (None, None, 3)
    assert row["down"] == "writer,broker"
    assert watch.frame()["dead_letter_ratio"].to_list() == [None]


# -- alert rules ----------------------------------------------------------------------


def test_a_rule_fires_only_once_the_breach_has_lasted_for_s():
    rule = Rule("lag", "lag", above=10, for_s=2)
    t = [0, 1, 2, 3, 4, 5]
    values = [0, 20, 20, 20, 5, 20]
    assert firing(rule, t, values) == [False, False, False, True, False, False]


def test_missing_values_fire_only_when_the_rule_says_so():
    silent = Rule.absent("silent", "messages_total")
    assert firing(silent, [0, 1], [100.0, None]) == [False, True]
    assert silent.condition == "messages_total missing"
    assert firing(Rule("lag", "lag", above=1), [0, 1], [None, None]) == [False, False]


def test_evaluate_reports_first_firing_time_worst_value_and_the_state_at_the_end():
    samples = pl.DataFrame({"t_s": [0.0, 1.0, 2.0, 3.0], "lag": [0, 50, 60, 0]})
    result = evaluate([Rule("lag", "lag", above=10, for_s=1, why="behind")], samples)
    row = result.row(0, named=True)
    assert row["fired"] and row["first_fired_s"] == 2.0
    assert row["worst"] == 60 and not row["firing_at_end"]
    assert row["condition"] == "lag > 10 for 1 s"


def test_a_rule_on_an_unknown_column_fails_with_one_line_naming_the_columns():
    with pytest.raises(ConfigError, match=r"not a column of the samples: use one of \['t_s'"):
        evaluate([Rule("x", "nope", above=1)], pl.DataFrame({"t_s": [0.0]}))


# -- audit ------------------------------------------------------------------------


def _commit(operation: str, **info) -> dict:
    return {"commitInfo": {"timestamp": 1_700_000_000_000, "operation": operation, **info}}


def _add(rows: int, size: int, data_change: bool = True) -> dict:
    stats = json.dumps({"numRecords": rows})
    return {"add": {"path": "x.parquet", "size": size, "dataChange": data_change, "stats": stats}}


def test_a_streaming_commit_is_attributed_to_its_txn_app_with_its_offsets():
    row = commit_row(
        7,
        [
            _commit("WRITE", engineInfo="delta-rs:1.1.3"),
            _add(100, 2_000),
            {"txn": {"appId": "neuralake-writer/sig/1", "version": 40}},
            {"txn": {"appId": "neuralake-writer/sig/0", "version": 12}},
        ],
    )
    assert row["writer"] == "neuralake-writer" and row["engine"] == "delta-rs:1.1.3"
    assert row["txn"] == "sig p0=12 p1=40"
    assert (row["rows_added"], row["bytes_added"], row["data_change"]) == (100, 2_000, True)


def test_compaction_adds_bytes_but_no_rows():
    remove = {"remove": {"path": "a.parquet", "dataChange": False}}
    row = commit_row(9, [_commit("OPTIMIZE"), _add(300, 9_000, False), remove, remove])
    assert row["writer"] == "compaction" and row["data_change"] is False
    assert (row["rows_added"], row["bytes_added"], row["files_removed"]) == (0, 9_000, 2)


def test_a_job_named_in_user_metadata_is_the_writer_and_its_bronze_version_is_kept():
    meta = json.dumps({"app": "neuralake-spark-elt", "bronze_version": 42})
    row = commit_row(
        3, [_commit("MERGE", engineInfo="Apache-Spark/4.0 Delta-Lake/4.0", userMetadata=meta)]
    )
    assert (row["writer"], row["bronze_version"]) == ("neuralake-spark-elt", 42)
    free_text = commit_row(4, [_commit("WRITE", clientVersion="delta-rs.1.1", userMetadata="hi")])
    assert (free_text["writer"], free_text["bronze_version"]) == ("delta-rs.1.1", None)


def test_elt_behind_counts_only_data_changes_after_the_covered_version():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    bronze = pl.DataFrame(
        {
            "version": [1, 2, 3, 4],
            "committed_at": [now - timedelta(seconds=s) for s in (40, 30, 20, 10)],
            "data_change": [True, True, False, True],
        }
    )
    silver = pl.DataFrame({"bronze_version": [None, 1]}, schema={"bronze_version": pl.Int64})
    behind = elt_behind(bronze, silver, now=now)
    assert (behind["covered"], behind["versions_behind"], behind["seconds_behind"]) == (1, 2, 30.0)
    caught_up = pl.DataFrame({"bronze_version": [4]})
    assert elt_behind(bronze, caught_up, now=now)["seconds_behind"] == 0.0


# -- the real thing ---------------------------------------------------------------------


@pytest.mark.stack
def test_watch_and_audit_a_writer_through_a_crash(stack_settings):
    s = stack_settings
    tag = uuid.uuid4().hex[:8]
    topic, table = f"monitoring-test-{tag}", f"monitoring_test_{tag}"
    uri = s.table_uri(table)
    group = f"neuralake-writer.{table}"
    topics.ensure_topic(s, topic, 2)
    try:
        writer = control.up(s, topic=topic, table=table, compact_interval_s=1, min_files=2,
                            echo=lambda _: None)  # fmt: skip
        ingest = next(w for w in writer if w.name == "ingest")
        watch = Watch(
            ingest.metrics_url,
            broker_lag=lambda: int(topics.group_lag(s, group, topic)["lag"].sum()),
        )
        for seed in range(3):  # three batches: at least three commits, then compaction
            produce(s, topic=topic, count=500, malformed_ratio=0.02, seed=seed, partitions=2)
            time.sleep(1.5)
        deadline = time.monotonic() + 60
        while (watch.sample("up")["rows_total"] or 0) + (
            watch.samples[-1]["dead_letters_total"] or 0
        ) < 1_500:
            assert time.monotonic() < deadline, "the writer did not catch up in 60 s"
            time.sleep(0.3)
        os.kill(ingest.pid, signal.SIGKILL)
        time.sleep(0.5)
        crashed = watch.sample("down")
        assert "writer" in crashed["down"] and crashed["messages_total"] is None
        samples = watch.frame()
        silent = Rule.absent("silent", "messages_total")
        assert evaluate([silent], samples)["firing_at_end"][0]

        deadline = time.monotonic() + 30  # compaction runs every second once 2 files wait
        while "OPTIMIZE" not in delta.history(uri, s.storage_options)["operation"]:
            assert time.monotonic() < deadline, "compaction did not commit within 30 s"
            time.sleep(0.5)
        log = audit.commits(uri, s.storage_options)
        writes = log.filter(pl.col("writer") == "neuralake-writer")
        assert writes.height >= 1 and writes["txn"].str.starts_with(topic).all()
        compactions = log.filter(pl.col("operation") == "OPTIMIZE")
        assert not compactions["data_change"].any() and compactions["rows_added"].sum() == 0
        rows = pl.read_delta(uri, storage_options=s.storage_options).height
        assert log["rows_added"].sum() == rows, "every row added once, by a data change"
        dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options).height
        assert dead > 0 and rows + dead == 1_500

        # A commit made by a job that names itself in userMetadata (as the Spark ELT does).
        other = s.table_uri(f"{table}_job")
        meta = json.dumps({"app": "test-job", "bronze_version": int(log["version"].max())})
        write_deltalake(
            other,
            pl.DataFrame({"x": [1, 2]}).to_arrow(),
            storage_options=s.storage_options,
            commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}),
        )
        both = audit.audit({"bronze": uri, "job": other}, s.storage_options)
        job = both.filter(pl.col("table") == "job").row(0, named=True)
        assert (job["writer"], job["rows_added"]) == ("test-job", 2)
        assert job["bronze_version"] == log["version"].max()
    finally:
        control.down(s, table, echo=lambda _: None)
        for name in (uri, dead_letter_uri(uri), s.table_uri(f"{table}_job")):
            delta.drop_table(name, s.storage_options)
        topics.delete_topic(s, topic)
