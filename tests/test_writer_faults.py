"""The Rust writer's edge cases on real services: SIGTERM at any moment, the start policy of a
new table, offsets removed by retention, a recreated topic, partitions added while running,
and a table whose schema changes under it."""

from __future__ import annotations

import datetime
import json
import random
import shutil
import signal
import subprocess
import time
import uuid

import polars as pl
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions
from deltalake import write_deltalake
from writer_runs import start_ingest

from neuralake.delta import drop_table, open_table
from neuralake.errors import NeuralakeError
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import DEFAULT_APP, app_id, dead_letter_uri

pytestmark = pytest.mark.stack


@pytest.fixture
def names(stack_settings):
    topic = f"tests.faults.{uuid.uuid4().hex[:8]}"
    table = f"tests_faults_{uuid.uuid4().hex[:8]}"
    yield topic, table
    shutil.rmtree(stack_settings.state_dir / "writer" / table, ignore_errors=True)
    topics.delete_topic(stack_settings, topic)
    uri = stack_settings.table_uri(table)
    for target in (uri, dead_letter_uri(uri)):
        drop_table(target, stack_settings.storage_options)


def ingest(s, topic: str, table: str, *args: str) -> subprocess.Popen:
    return start_ingest(s, topic, table, *args, env={"NEURALAKE_WRITER_FLUSH_MS": "200"})


def txn_versions(s, topic: str, table: str, partitions: int) -> list[int | None]:
    try:
        t = open_table(s.table_uri(table), s.storage_options)
    except NeuralakeError:
        return [None] * partitions
    return [t.transaction_version(app_id(DEFAULT_APP, topic, p)) for p in range(partitions)]


def wait_caught_up(s, topic: str, table: str, timeout: float = 40) -> None:
    ends = topics.describe(s, topic)["high"].to_list()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = txn_versions(s, topic, table, len(ends))
        if all(d is not None and d >= e - 1 for d, e in zip(done, ends, strict=True)):
            return
        time.sleep(0.3)
    raise AssertionError(f"stuck at {done}, topic ends at {ends}")


def offsets_in(s, table: str) -> pl.DataFrame:
    return pl.read_delta(s.table_uri(table), storage_options=s.storage_options).select(
        "kafka_partition", "kafka_offset"
    )


def error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("error: ")]
    return line


def test_sigterm_at_any_moment_stops_within_seconds_and_loses_nothing(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=3)
    first = produce.produce(s, topic=topic, count=30_000, malformed_ratio=0.0, seed=1)
    rng = random.Random(3)
    stops = []
    for _ in range(4):
        writer = ingest(s, topic, table)
        time.sleep(rng.uniform(1.0, 3.0))  # mid-catch-up, mid-batch or mid-commit
        signalled = time.monotonic()
        writer.send_signal(signal.SIGTERM)
        _, err = writer.communicate(timeout=30)
        stops.append(time.monotonic() - signalled)
        assert writer.returncode == 0, err[-1500:]
    assert max(stops) < 8, f"seconds from SIGTERM to exit: {stops}"
    last = ingest(s, topic, table)
    try:
        wait_caught_up(s, topic, table)
    finally:
        last.send_signal(signal.SIGTERM)
        last.communicate(timeout=30)
    keys = offsets_in(s, table)
    assert keys.height == keys.n_unique() == first.good, (keys.height, first.good)


def test_offset_reset_latest_starts_a_new_table_at_the_end(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=2)
    produce.produce(s, topic=topic, count=1_000, seed=1, partitions=2)
    ends_before = topics.describe(s, topic)["high"].to_list()
    writer = ingest(s, topic, table, "--offset-reset", "latest")
    try:
        time.sleep(4)  # joined the group, both partitions assigned at their end
        later = produce.produce(s, topic=topic, count=500, seed=2, partitions=2)
        wait_caught_up(s, topic, table)
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.communicate(timeout=30)
    keys = offsets_in(s, table)
    assert keys.height == later.good, "only the messages produced after the start"
    for p, end in enumerate(ends_before):
        assert (keys.filter(pl.col("kafka_partition") == p)["kafka_offset"].min() or end) >= end


def test_offsets_removed_by_retention_are_counted_and_logged(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=1)
    produce.produce(s, topic=topic, count=1_000, seed=1, partitions=1)
    first = ingest(s, topic, table, "--stop-at-end")
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err[-1500:]
    produce.produce(s, topic=topic, count=1_000, seed=2, partitions=1)
    # What retention does to old segments: the log now starts at 1,500.
    admin = AdminClient(s.kafka_config)
    for future in admin.delete_records([TopicPartition(topic, 0, 1_500)]).values():
        future.result(30)
    second = ingest(s, topic, table, "--stop-at-end")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err[-1500:]
    gap = [line for line in err.splitlines() if "removed from the topic" in line]
    assert len(gap) == 1 and "500 offsets of partition 0 (1000..1499)" in gap[0], gap
    keys = offsets_in(s, table)["kafka_offset"]
    assert keys.n_unique() == keys.len() and not keys.is_between(1_000, 1_499).any()
    assert json.loads(out)["messages"] == 500


def test_a_recreated_topic_is_a_clear_error(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=1)
    produce.produce(s, topic=topic, count=2_000, seed=1, partitions=1)
    writer = ingest(s, topic, table, "--stop-at-end")
    writer.communicate(timeout=60)
    topics.recreate_topic(s, topic, 1)
    produce.produce(s, topic=topic, count=100, seed=2, partitions=1)
    again = ingest(s, topic, table, "--stop-at-end")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2, err[-1500:]
    line = error_line(err)
    assert "deleted and recreated" in line and "--table" in line, line


def test_partitions_added_while_running_are_ingested(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=2)
    produce.produce(s, topic=topic, count=1_000, seed=1, partitions=2)
    writer = ingest(s, topic, table)
    try:
        wait_caught_up(s, topic, table)
        admin = AdminClient(s.kafka_config)
        for future in admin.create_partitions([NewPartitions(topic, 4)]).values():
            future.result(30)
        sent = produce.produce(s, topic=topic, count=4_000, seed=2, partitions=4)
        wait_caught_up(s, topic, table, timeout=60)  # needs partitions 2 and 3 in the table
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.communicate(timeout=30)
    keys = offsets_in(s, table)
    assert keys.height == keys.n_unique() == 1_000 + sent.good
    assert set(keys["kafka_partition"].unique().to_list()) == {0, 1, 2, 3}


def test_a_schema_changed_under_the_writer_ends_it_with_the_fix(stack_settings, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=1)
    produce.produce(s, topic=topic, count=500, seed=1, partitions=1)
    writer = ingest(s, topic, table, "--give-up-s", "3")
    try:
        wait_caught_up(s, topic, table)
        write_deltalake(
            s.table_uri(table),
            pl.DataFrame({"something_else": [1], "date": [datetime.date(2026, 1, 1)]}).to_arrow(),
            mode="overwrite",
            partition_by=["date"],
            schema_mode="overwrite",
            storage_options=s.storage_options,
        )
        changed = time.monotonic()
        produce.produce(s, topic=topic, count=100, seed=2, partitions=1)
        _, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 1, err[-1500:]
    assert time.monotonic() - changed < 30
    line = error_line(err)
    assert "schema changed" in line and "restore the table's schema" in line, line
