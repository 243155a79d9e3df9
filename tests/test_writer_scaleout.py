"""The Rust writer scaled out, on real services: several ingest workers in one consumer group
through kill -9, a worker added and one stopped, every message exactly once; and two writers
of different groups on one table, the second refused or fenced with one line.

The workers' Kafka session timeout is lowered to 6 s (the broker's minimum) so that a worker
killed with -9 gives its partitions up within the test's time.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import polars as pl
import psutil
import pytest
from writer_runs import produce_in_background, remove_run, start_ingest

from neuralake.delta import open_table
from neuralake.errors import NeuralakeError
from neuralake.lab.writer import control
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import DEFAULT_APP, app_id, dead_letter_uri

pytestmark = pytest.mark.stack

FAST_GROUP = "session.timeout.ms=6000\nheartbeat.interval.ms=1000"


def quiet(_: str) -> None:
    pass


@pytest.fixture
def names(stack_settings, monkeypatch):
    """A fresh 6-partition topic and table; afterwards the workers stop and both go."""
    monkeypatch.setenv("NEURALAKE_KAFKA_OPTIONS", FAST_GROUP)
    topic = f"tests.scaleout.{uuid.uuid4().hex[:8]}"
    table = f"tests_scaleout_{uuid.uuid4().hex[:8]}"
    topics.ensure_topic(stack_settings, topic, partitions=6)
    yield topic, table
    remove_run(stack_settings, topic, table)


def wait_caught_up(s, topic: str, table: str, timeout: float) -> None:
    """Until the table's txn versions reach the end of every partition."""
    ends = topics.describe(s, topic)["high"].to_list()
    deadline = time.monotonic() + timeout
    done = None
    while time.monotonic() < deadline:
        try:
            t = open_table(s.table_uri(table), s.storage_options)
            done = [t.transaction_version(app_id(DEFAULT_APP, topic, p)) for p in range(len(ends))]
            if all(d is not None and d >= end - 1 for d, end in zip(done, ends, strict=True)):
                return
        except NeuralakeError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"writers stuck at {done}, topic ends at {ends}")


def assert_exactly_once(s, table: str, good: int, malformed: int) -> None:
    uri = s.table_uri(table)
    keys = pl.read_delta(uri, storage_options=s.storage_options).select(
        "kafka_partition", "kafka_offset"
    )
    assert keys.height == good, f"{keys.height} rows for {good} good messages"
    assert keys.n_unique() == good, "a message was written twice"
    dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options).select(
        "kafka_partition", "kafka_offset"
    )
    assert dead.height == malformed, f"{dead.height} dead letters for {malformed} malformed"
    assert dead.n_unique() == malformed, "a dead letter was written twice"


def pid_of(s, table: str, name: str) -> int:
    row = next(r for r in control.status(s, table) if r.name == name)
    assert row.pid is not None, f"{name} is not running"
    return row.pid


def test_workers_killed_added_and_stopped_store_every_message_once(stack_settings, names):
    topic, table = names
    s = stack_settings
    started = time.monotonic()
    control.up(s, topic=topic, table=table, workers=3, only=["ingest"], flush_ms=300, echo=quiet)
    thread, out = produce_in_background(
        s, topic=topic, count=36_000, rate=2_000, malformed_ratio=0.02, seed=5, partitions=6
    )
    time.sleep(4)
    rows = control.status(s, table)
    owned = [p for r in rows for p in (r.partitions or [])]
    assert sorted(owned) == list(range(6)), f"the group shares the 6 partitions: {rows}"

    victim = psutil.Process(pid_of(s, table, "ingest-2"))
    victim.kill()  # kill -9: no goodbye, the group notices after the session timeout
    victim.wait(5)
    time.sleep(2)
    control.up(
        s, topic=topic, table=table, workers=4, only=["ingest"], echo=quiet
    )  # ingest-2 anew + ingest-3
    time.sleep(4)
    control.up(
        s, topic=topic, table=table, workers=3, only=["ingest"], echo=quiet
    )  # stops ingest-3
    assert not any(r.name == "ingest-3" and r.alive for r in control.status(s, table))

    thread.join(60)
    assert out and not isinstance(out[0], Exception), out
    sent = out[0]
    wait_caught_up(s, topic, table, timeout=45)
    assert_exactly_once(s, table, sent.good, sent.malformed)
    rows = control.status(s, table)
    owned = sorted(p for r in rows for p in (r.partitions or []))
    assert owned == list(range(6)), f"after the changes the 3 workers own every partition: {rows}"
    assert sum(r.lag or 0 for r in rows) == 0
    assert time.monotonic() - started < 90


def run_ingest(s, topic: str, table: str, group: str, *args: str) -> subprocess.Popen:
    return start_ingest(s, topic, table, *args, env={"NEURALAKE_WRITER_GROUP_ID": group})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_a_second_group_on_a_running_table_is_refused(stack_settings, names):
    topic, table = names
    s = stack_settings
    sent = produce.produce(s, topic=topic, count=6_000, malformed_ratio=0.01, seed=3, partitions=6)
    first = run_ingest(s, topic, table, "group-a")
    try:
        wait_caught_up(s, topic, table, timeout=40)
        second = run_ingest(s, topic, table, "group-b")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2, err[-2000:]
        (line,) = error_lines(err)
        assert "written by consumer group 'group-a'" in line and "--group-id group-a" in line
    finally:
        first.terminate()
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert_exactly_once(s, table, sent.good, sent.malformed)


def test_two_groups_started_together_never_duplicate_and_one_is_fenced(stack_settings, names):
    topic, table = names
    s = stack_settings
    sent = produce.produce(
        s, topic=topic, count=60_000, malformed_ratio=0.01, seed=21, partitions=6
    )
    args = ("--stop-at-end", "--flush-rows", "3000")
    writers = [run_ingest(s, topic, table, f"group-{g}", *args) for g in "ab"]
    results = [w.communicate(timeout=120) for w in writers]
    codes = [w.returncode for w in writers]
    # Of two groups racing, the one whose name sorts first goes on; the other stops at its
    # first batch that meets the first one's commits (1), or at start if those came first (2).
    assert codes[0] == 0, results[0][1][-1500:]
    assert codes[1] in (1, 2), (codes, results[1][1][-1500:])
    (line,) = error_lines(results[1][1])
    assert "consumer group 'group-a'" in line and "--group-id group-a" in line, line
    # The survivor read to the end: every offset exactly once, in both tables.
    assert json.loads(results[0][0])["messages"] >= 1
    wait_caught_up(s, topic, table, timeout=30)
    assert_exactly_once(s, table, sent.good, sent.malformed)
