"""The Rust writer's promises, on real services: exactly once through kill -9, compaction
and vacuum beside a live ingest, S3 and Kafka restarts, clear start-up errors, and the
process control of ``neuralake writer``.

These tests need the binary. Without it they fail (they do not skip) and say to run
``make setup``, which builds it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import polars as pl
import psutil
import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from writer_runs import produce_in_background, remove_run, start_ingest

import neuralake
from neuralake.delta import data_files, drop_table, open_table
from neuralake.errors import StackError
from neuralake.lab.stack import control as stack_control
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.streaming import metrics, produce, topics, wire
from neuralake.streaming.schemas import DEFAULT_APP, EXAMPLE_MESSAGE, app_id, dead_letter_uri

pytestmark = pytest.mark.stack


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def writer_binary() -> Path:
    try:
        return binary.find()
    except StackError as err:
        pytest.fail(f"{err}", pytrace=False)


@pytest.fixture
def names(stack_settings):
    """A fresh topic and table; afterwards the writer is stopped and both are removed."""
    topic = f"tests.writer.{uuid.uuid4().hex[:8]}"
    table = f"tests_writer_{uuid.uuid4().hex[:8]}"
    yield topic, table
    remove_run(stack_settings, topic, table)


def result_of(thread: threading.Thread, out: list, timeout: float = 120):
    thread.join(timeout)
    assert out, "the producer did not finish"
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]


def wait_caught_up(s, topic: str, table: str, timeout: float = 90) -> None:
    """Until the table's txn versions reach the end of every partition."""
    uri = s.table_uri(table)
    ends = topics.describe(s, topic)["high"].to_list()
    deadline = time.monotonic() + timeout
    while True:
        try:
            t = open_table(uri, s.storage_options)
            done = [t.transaction_version(app_id(DEFAULT_APP, topic, p)) for p in range(len(ends))]
            if all(d is not None and d >= end - 1 for d, end in zip(done, ends, strict=True)):
                return
        except neuralake.errors.NeuralakeError:
            done = None
        assert time.monotonic() < deadline, f"writer stuck at {done}, topic ends at {ends}"
        time.sleep(0.5)


def assert_exactly_once(s, table: str, good: int, malformed: int) -> None:
    uri = s.table_uri(table)
    rows = pl.read_delta(uri, storage_options=s.storage_options, columns=None)
    keys = rows.select("kafka_partition", "kafka_offset")
    assert rows.height == good, f"{rows.height} rows for {good} good messages"
    assert keys.n_unique() == good, "a message was written twice"
    dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options)
    assert dead.height == malformed, f"{dead.height} dead letters for {malformed} malformed"
    assert dead.select("kafka_partition", "kafka_offset").n_unique() == malformed
    assert dead["reason"].str.contains("field|JSON").all()


def ingest_pid(s, table: str) -> int:
    pid = next(r.pid for r in control.status(s, table) if r.name == "ingest")
    assert pid is not None, "the ingest process is not running"
    return pid


# -- (a) exactly once through kill -9 -----------------------------------------------------


def test_kill_9_during_ingest_loses_and_duplicates_nothing(stack_settings, writer_binary, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic)
    control.up(s, topic=topic, table=table, flush_ms=200, echo=quiet)
    thread, out = produce_in_background(
        s, topic=topic, count=60_000, rate=5000, malformed_ratio=0.02, seed=11
    )
    rng = random.Random(7)
    kills = 0
    while kills < 5 or thread.is_alive():
        time.sleep(rng.uniform(0.3, 2.0))
        victim = psutil.Process(ingest_pid(s, table))
        victim.kill()  # kill -9, mid-batch or mid-commit
        victim.wait(5)  # gone (and reaped) before `up` looks for it
        kills += 1
        control.up(s, topic=topic, table=table, echo=quiet)  # restarts only the dead one
    sent = result_of(thread, out)
    wait_caught_up(s, topic, table)
    assert kills >= 5
    assert_exactly_once(s, table, sent.good, sent.malformed)


# -- (a2) one bad message never stops ingestion (two writers: test_writer_scaleout.py) ------


def send(s, topic: str, values: list[bytes], partition: int | None = None) -> None:
    """Send ``values`` in order (to one partition, or spread by librdkafka) and wait for all."""
    producer = Producer({**s.kafka_config, "enable.idempotence": True, "linger.ms": 20})
    failed: list = []
    extra = {} if partition is None else {"partition": partition}
    for value in values:
        producer.produce(topic, value, on_delivery=lambda e, _: e and failed.append(e), **extra)
        producer.poll(0)
    assert producer.flush(60) == 0 and not failed, failed


def run_to_end(s, topic: str, table: str, *args: str, group: str | None = None) -> subprocess.Popen:
    """``ingest --stop-at-end`` on ``table``, as a process of its own."""
    group = group or f"tests.writer.{uuid.uuid4().hex[:8]}"
    env = {"NEURALAKE_WRITER_GROUP_ID": group}
    return start_ingest(s, topic, table, "--stop-at-end", *args, env=env)


def finished(process: subprocess.Popen, timeout: float = 120) -> tuple[dict, str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out), err


def test_an_out_of_range_timestamp_is_a_dead_letter_and_ingestion_goes_on(
    stack_settings, writer_binary, names
):
    """A valid-JSON timestamp far past year 9999 used to panic delta-rs's partition
    formatting inside the commit, on every restart: now both decoders call it malformed."""
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic, partitions=1)
    good = [json.dumps({**EXAMPLE_MESSAGE, "channel": i % 100}).encode() for i in range(500)]
    bad = json.dumps({**EXAMPLE_MESSAGE, "timestamp": 10**18}).encode()  # ~ year 33,658
    with pytest.raises(wire.Malformed, match=r"^field 'timestamp'"):
        wire.decode(bad)  # the Python reference agrees
    send(s, topic, [*good[:300], bad, *good[300:]], partition=0)

    summary, _ = finished(run_to_end(s, topic, table, "--flush-rows", "100"))
    assert (summary["rows"], summary["dead_letters"]) == (500, 1)
    uri = s.table_uri(table)
    rows = pl.read_delta(uri, storage_options=s.storage_options)
    assert sorted(rows["kafka_offset"].to_list()) == [o for o in range(501) if o != 300]
    dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options)
    assert dead["kafka_offset"].to_list() == [300]
    assert dead["payload"].to_list() == [bad]
    assert dead["reason"][0].startswith("field 'timestamp'"), dead["reason"][0]


def test_python_optimize_racing_the_compactor_never_duplicates_a_row(
    stack_settings, writer_binary, names
):
    """deltalake's own optimize.compact() and `neuralake-writer compact` rewrite the same small
    files at the same moment: whichever commits second must give up, never commit its copy."""
    topic, table = names
    s = stack_settings
    uri = s.table_uri(table)
    topics.ensure_topic(s, topic, partitions=1)
    env = control.process_env(s, topic=topic, table_uri=uri)
    outcomes = []
    for round_ in range(3):
        produce.produce(s, topic=topic, count=4000, seed=30 + round_)
        finished(run_to_end(s, topic, table, "--flush-rows", "200"))  # ~20 small files
        before = pl.read_delta(uri, storage_options=s.storage_options)
        ours = subprocess.Popen(
            [str(writer_binary), "compact", "--once", "--min-files", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            DeltaTable(uri, storage_options=s.storage_options).optimize.compact()
            theirs = "committed"
        except CommitFailedError:
            theirs = "lost"
        out, err = ours.communicate(timeout=120)
        assert ours.returncode == 0, err[-2000:]
        outcomes.append((theirs, json.loads(out)))
        after = pl.read_delta(uri, storage_options=s.storage_options)
        keys = after.select("kafka_partition", "kafka_offset")
        assert after.height == keys.n_unique() == before.height == 4000 * (round_ + 1), outcomes
    print("rounds (optimize.compact, neuralake-writer compact):", outcomes)


# -- (b) compaction and vacuum beside a live ingest ---------------------------------------


def test_compact_and_vacuum_beside_ingest_keep_every_version_readable(
    stack_settings, writer_binary, names
):
    topic, table = names
    s = stack_settings
    uri = s.table_uri(table)
    topics.ensure_topic(s, topic)
    control.up(
        s,
        topic=topic,
        table=table,
        flush_ms=250,
        compact_interval_s=5,
        target_size=2 * 2**20,
        min_files=4,
        vacuum_interval_s=5,
        retention_hours=0.003,  # 10.8 s: files compaction removed early in the run expire in it
        echo=quiet,
    )
    # 30 s of stream: compaction passes about 6 times, vacuum deletes what the first ones removed
    thread, out = produce_in_background(s, topic=topic, count=60_000, rate=2000, seed=5)
    table_now = _wait_for_table(uri, s)
    walker = DeltaTable(uri, version=0, storage_options=s.storage_options)
    rows_at: dict[int, int] = {}  # version -> rows, from the log
    files_at: dict[int, set[str]] = {}  # version -> its data files

    def walk_to(latest: int) -> None:
        """Record every version up to ``latest``, replaying the log one commit at a time."""
        for version in range(max(rows_at, default=-1) + 1, latest + 1):
            walker.load_as_version(version)
            adds = pl.DataFrame(walker.get_add_actions(flatten=True))
            rows_at[version] = int(adds["num_records"].sum()) if adds.height else 0
            files_at[version] = set(adds["path"].to_list()) if adds.height else set()

    read_latest = 0
    while thread.is_alive():
        table_now.update_incremental()
        walk_to(table_now.version())
        # The latest version always reads, however busy vacuum is.
        assert table_now.to_pyarrow_dataset().count_rows() == rows_at[table_now.version()]
        read_latest += 1
        time.sleep(0.5)
    sent = result_of(thread, out)
    wait_caught_up(s, topic, table)
    ingest = metrics.values(_metrics_url(s, table, "ingest"))
    assert ingest["neuralake_writer_rows_total"] == sent.good
    compact = metrics.values(_metrics_url(s, table, "compact"))
    assert compact["neuralake_compact_files_removed_total"] > 0
    control.down(s, table, echo=quiet)  # vacuum must not delete files while we check them
    table_now.update_incremental()
    walk_to(table_now.version())

    counts = [rows_at[v] for v in sorted(rows_at)]
    assert all(a <= b for a, b in itertools.pairwise(counts)), "rows dropped"
    assert read_latest >= 20  # the run lasted about 30 s: many reads mid-run

    stored = {name for name in data_files(uri, s.storage_options)["name"].to_list()}
    intact = [v for v, files in files_at.items() if files and files <= stored]
    for version in intact:
        snapshot = DeltaTable(uri, version=version, storage_options=s.storage_options)
        assert snapshot.to_pyarrow_dataset().count_rows() == rows_at[version]

    final = open_table(uri, s.storage_options)
    assert final.to_pyarrow_dataset().count_rows() == sent.good
    history = final.history()
    operations = [c["operation"] for c in history]
    assert "OPTIMIZE" in operations, operations[:10]
    assert any(op.startswith("VACUUM") for op in operations), operations[:10]
    ever_added = len(set().union(*files_at.values()))
    assert len(final.file_uris()) < ever_added / 4, "compaction did not shrink the file count"
    assert len(stored) < ever_added, "vacuum deleted nothing"


def _wait_for_table(uri: str, s, timeout: float = 30) -> DeltaTable:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_table(uri, s.storage_options)
        except neuralake.errors.TableNotFoundError:
            assert time.monotonic() < deadline, f"no table at {uri}"
            time.sleep(0.2)


def _metrics_url(s, table: str, name: str) -> str:
    return next(r.metrics_url for r in control.status(s, table) if r.name == name)


# -- (c) S3 and Kafka restarts, on a throwaway stack ---------------------------------------


def test_writer_rides_out_s3_and_kafka_restarts(isolated_env, writer_binary):
    s = neuralake.settings("stack")
    stack_control.up(s, only=["minio", "kafka"], echo=quiet)
    topic, table = "restarts", "restarts_bronze"
    try:
        topics.ensure_topic(s, topic)
        control.up(s, topic=topic, table=table, flush_ms=200, echo=quiet)
        thread, out = produce_in_background(
            s, topic=topic, count=50_000, rate=2000, malformed_ratio=0.01, seed=2
        )
        for service in ("minio", "kafka"):
            time.sleep(4)
            pid = next(r.pid for r in stack_control.status(s) if r.service == service)
            psutil.Process(pid).terminate()
            psutil.Process(pid).wait(60)
            time.sleep(3)  # the writer runs on without it for a while
            assert all(r.alive for r in control.status(s, table)), "a writer process died"
            stack_control.up(s, only=["minio", "kafka"], echo=quiet)
        sent = result_of(thread, out, timeout=240)
        wait_caught_up(s, topic, table, timeout=120)
        assert_exactly_once(s, table, sent.good, sent.malformed)
        assert all(r.alive for r in control.status(s, table))
    finally:
        control.down(s, echo=quiet)
        stack_control.down(s, echo=quiet)


# -- (d) start-up errors: exit 2 and one line naming the fix -------------------------------


def run_ingest(s, topic: str, table_uri: str, **env) -> subprocess.CompletedProcess:
    environment = {
        **control.process_env(s, topic=topic, table_uri=table_uri),
        "NEURALAKE_WRITER_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        **env,
    }
    return subprocess.run(
        [str(binary.find()), "ingest"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-1000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_unknown_topic_is_a_clear_error(stack_settings, writer_binary, names):
    _, table = names
    result = run_ingest(stack_settings, "no.such.topic", stack_settings.table_uri(table))
    assert_one_line_error(result, "topic 'no.such.topic' does not exist", "--topic")


def test_unreachable_broker_is_a_clear_error(stack_settings, writer_binary, names):
    topic, table = names
    port = free_port()
    started = time.monotonic()
    result = run_ingest(
        stack_settings,
        topic,
        stack_settings.table_uri(table),
        NEURALAKE_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
    )
    assert time.monotonic() - started < 30
    assert_one_line_error(result, f"127.0.0.1:{port}")


def test_unreachable_s3_is_a_clear_error(stack_settings, writer_binary, names):
    topic, table = names
    topics.ensure_topic(stack_settings, topic)
    port = free_port()
    result = run_ingest(
        stack_settings,
        topic,
        stack_settings.table_uri(table),
        NEURALAKE_S3_ENDPOINT=f"http://127.0.0.1:{port}",
    )
    assert_one_line_error(result, f"127.0.0.1:{port}")


def test_refused_s3_credentials_are_a_clear_error(stack_settings, writer_binary, names):
    topic, table = names
    topics.ensure_topic(stack_settings, topic)
    result = run_ingest(
        stack_settings,
        topic,
        stack_settings.table_uri(table),
        NEURALAKE_S3_SECRET_ACCESS_KEY="not-the-secret",
    )
    assert_one_line_error(result, "refused the credentials", "--s3-secret-access-key")


def test_a_table_with_another_schema_is_a_clear_error(stack_settings, writer_binary, names):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic)
    uri = s.table_uri(table)
    write_deltalake(uri, pl.DataFrame({"x": [1]}).to_arrow(), storage_options=s.storage_options)
    assert_one_line_error(run_ingest(s, topic, uri), uri)

    # `neuralake writer up` shows the writer's own line, and names the log.
    result = subprocess.run(
        [sys.executable, "-m", "neuralake", "writer", "up", "--topic", topic, "--table", table],
        env={**os.environ, "NEURALAKE_PROFILE": "stack"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: writer ingest exited during start (exit code 2)")
    assert f"{control.log_file(s, table, 'ingest')}: error: " in line
    assert uri in line


def test_writer_up_surfaces_the_missing_topic(stack_settings, writer_binary, names):
    _, table = names
    with pytest.raises(StackError) as err:
        control.up(stack_settings, topic="no.such.topic", table=table, echo=quiet)
    assert "exited during start" in str(err.value)
    assert "error: topic 'no.such.topic' does not exist" in str(err.value)


# -- (e) process control ------------------------------------------------------------------


def processes_of(rows: list[control.WriterStatus]) -> list[tuple]:
    """What identifies a writer process: its name, pid, liveness and metrics URL."""
    return [(r.name, r.pid, r.alive, r.metrics_url) for r in rows]


def test_up_is_idempotent_restarts_the_dead_and_down_stops_only_its_own(
    stack_settings, writer_binary, names
):
    topic, table = names
    s = stack_settings
    topics.ensure_topic(s, topic)
    first = control.up(s, topic=topic, table=table, echo=quiet)
    assert [r.name for r in first] == ["ingest", "compact", "vacuum"]
    assert all(r.alive for r in first)
    assert len({r.metrics_url for r in first}) == 3
    # Nothing restarted (the ingest row's partitions and lag move with the group: not compared).
    assert processes_of(control.up(s, topic=topic, table=table, echo=quiet)) == processes_of(first)

    psutil.Process(first[0].pid).kill()
    psutil.Process(first[0].pid).wait(5)
    assert [r.alive for r in control.status(s, table)] == [False, True, True]
    again = control.up(s, topic=topic, table=table, echo=quiet)
    assert again[0].pid != first[0].pid and processes_of(again[1:]) == processes_of(first[1:])
    assert metrics.values(again[0].metrics_url)["neuralake_writer_ready"] == 1

    with pytest.raises(StackError, match="is running on topic"):
        control.up(s, topic=f"{topic}.other", table=table, echo=quiet)

    stranger = subprocess.Popen(["bash", "-c", "exec -a neuralake-writer sleep 60"])
    try:
        result = subprocess.run(
            [sys.executable, "-m", "neuralake", "writer", "status", "--json"],
            env={**os.environ, "NEURALAKE_PROFILE": "stack"},
            capture_output=True,
            text=True,
        )
        rows = [r for r in json.loads(result.stdout) if r["table"] == table]
        assert [r["name"] for r in rows] == ["ingest", "compact", "vacuum"]
        assert set(rows[0]) == {
            "table", "name", "pid", "alive", "metrics_url", "table_uri", "topic",
            "dead_letter_uri", "log", "partitions", "lag",
        }  # fmt: skip
        assert rows[0]["topic"] == topic and rows[0]["table_uri"] == s.table_uri(table)
        assert rows[0]["dead_letter_uri"] == dead_letter_uri(s.table_uri(table))

        pids = [r.pid for r in again]
        assert control.down(s, table, echo=quiet) == [
            f"{table}/{n}" for n in control.PROCESSES[::-1]
        ]
        assert not any(psutil.pid_exists(p) for p in pids)
        assert stranger.poll() is None, "down stopped a process it did not start"
        assert control.down(s, table, echo=quiet) == []
    finally:
        stranger.kill()


def test_only_ingest_then_one_shot_compact_and_vacuum_then_forget(
    stack_settings, writer_binary, names
):
    topic, table = names
    s = stack_settings
    uri = s.table_uri(table)
    topics.ensure_topic(s, topic)
    started = control.up(s, topic=topic, table=table, only=["ingest"], flush_ms=100, echo=quiet)
    assert [(r.name, r.alive) for r in started] == [("ingest", True)]
    sent = produce.produce(s, topic=topic, count=3000, rate=3000, malformed_ratio=0.01, seed=3)
    wait_caught_up(s, topic, table)
    files = len(DeltaTable(uri, storage_options=s.storage_options).file_uris())
    assert files > 3, "expected several small commits at flush_ms=100"

    dead_uri = dead_letter_uri(uri)
    dead_files = len(DeltaTable(dead_uri, storage_options=s.storage_options).file_uris())
    assert dead_files >= 2, "expected the malformed messages in several small commits"

    compacted = control.run_once(s, "compact", table=table, min_files=2)
    assert compacted["files_removed"] >= files - 3 and compacted["files_added"] >= 1
    # The same pass compacts the dead-letter table: one file, every dead letter kept.
    assert compacted["dead_letters"]["files_removed"] == dead_files
    assert len(DeltaTable(dead_uri, storage_options=s.storage_options).file_uris()) == 1
    after = DeltaTable(uri, storage_options=s.storage_options)
    assert len(after.file_uris()) < files
    rows = pl.read_delta(uri, storage_options=s.storage_options).height
    assert rows == sent.sent - sent.malformed, "compaction changed the rows"
    dead = pl.read_delta(dead_uri, storage_options=s.storage_options)
    dead_keys = dead.select("kafka_partition", "kafka_offset")
    assert dead.height == dead_keys.n_unique() == sent.malformed
    vacuumed = control.run_once(s, "vacuum", table=table, retention_hours=0)
    assert vacuumed["files_deleted"] == compacted["files_removed"]
    assert vacuumed["dead_letters"]["files_deleted"] == dead_files
    assert set(vacuumed) == {"files_deleted", "log_files_deleted", "version", "dead_letters"}
    assert data_files(dead_uri, s.storage_options).height == 1, "vacuum left one live file"
    with pytest.raises(neuralake.errors.ConfigError, match="choose one of compact, vacuum"):
        control.run_once(s, "ingest", table=table)

    with pytest.raises(StackError, match="stop it first"):
        control.forget(s, table, echo=quiet)
    control.down(s, table, echo=quiet)
    assert control.forget(s, table, echo=quiet) > 0
    assert not (s.state_dir / "writer" / table).exists()
    for target in (uri, dead_letter_uri(uri)):
        with pytest.raises(neuralake.errors.TableNotFoundError):
            open_table(target, s.storage_options)


def test_two_tables_get_their_own_ports(stack_settings, writer_binary, names):
    topic, table = names
    s = stack_settings
    other = f"{table}_b"
    topics.ensure_topic(s, topic)
    try:
        a = control.up(s, topic=topic, table=table, echo=quiet)
        b = control.up(s, topic=topic, table=other, echo=quiet)
        assert not {r.metrics_url for r in a} & {r.metrics_url for r in b}
        assert all(r.alive for r in a + b)
        assert other in [r.table for r in control.status(s)]
    finally:
        control.down(s, other, echo=quiet)
        assert other not in [r.table for r in control.status(s)]  # stopped: no longer listed
        shutil.rmtree(s.state_dir / "writer" / other, ignore_errors=True)
        for target in (s.table_uri(other), dead_letter_uri(s.table_uri(other))):
            drop_table(target, s.storage_options)


# -- building ---------------------------------------------------------------------------------


def test_a_missing_cargo_names_rustup():
    without_cargo = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "neuralake", "writer", "build"],
        env=without_cargo,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: `cargo` is not on PATH")
    assert "https://rustup.rs" in result.stderr and result.stderr.count("\n") == 1

    script = Path(__file__).resolve().parents[1] / "scripts" / "system-deps.sh"
    result = subprocess.run(["bash", script], env=without_cargo, capture_output=True, text=True)
    assert result.returncode == 2
    assert "rustup" in result.stderr and result.stderr.count("\n") == 1
