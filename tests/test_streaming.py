"""The streaming core's Python side on the running stack: the wire format, the producer,
the topic helpers, and the Python baseline writer's exactly-once promise (also across
kill -9). The Rust writer's own promises are in test_writer.py."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import polars as pl
import prometheus_client
import psutil
import pytest
from confluent_kafka import Consumer, TopicPartition
from deltalake import CommitProperties, Transaction, write_deltalake

import neuralake
from neuralake.delta import drop_table
from neuralake.errors import ConfigError, StackError, TableSchemaError
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.streaming import baseline, freshness, metrics, produce, topics, wire
from neuralake.streaming.schemas import (
    BRONZE,
    DEAD_LETTERS,
    EXAMPLE_MESSAGE,
    MESSAGE,
    app_id,
    arrow_schema,
    dead_letter_uri,
)

# -- the wire format (pure logic) ----------------------------------------------------------


def message(**changes) -> bytes:
    return json.dumps({**EXAMPLE_MESSAGE, **changes}).encode()


def test_a_good_message_decodes_to_its_row():
    row = wire.decode(message())
    assert list(row) == MESSAGE.names()
    assert row["timestamp"] == 1_795_461_284_123_456  # 2026-11-23T19:14:44.123456Z in µs
    assert wire.decode(message(timestamp=row["timestamp"]))["timestamp"] == row["timestamp"]
    assert wire.decode(message(timestamp="2026-11-23T20:14:44.123456+01:00")) == row


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b'{"timestamp": "2026', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (message(channel=70_000), "field 'channel' = 70000 is out of range for Int16"),
        (message(session_id=2**31), "field 'session_id' = 2147483648 is out of range for Int32"),
        (message(spike="yes"), "field 'spike' must be true or false"),
        (message(channel=3.5), "field 'channel' must be an integer"),
        (message(device_id=True), "field 'device_id' must be an integer"),
        (message(quality="high"), "field 'quality' must be a number"),
        (message(voltage_uv=1e39), "field 'voltage_uv' = 1e+39 is out of range for Float32"),
        (message(quality=None), "field 'quality' is null"),
        (message(timestamp="2026-11-23T19:14:44"), "field 'timestamp' is not RFC 3339 with a UTC"),
        (message(timestamp="yesterday"), "field 'timestamp' is not RFC 3339"),
        (None, "no value"),
    ],
)
def test_a_malformed_message_names_the_field_and_the_problem(payload, reason):
    with pytest.raises(wire.Malformed, match=re.escape(reason)):
        wire.decode(payload)


def test_a_missing_field_is_named():
    payload = {k: v for k, v in EXAMPLE_MESSAGE.items() if k != "patient_id"}
    with pytest.raises(wire.Malformed, match="field 'patient_id' is missing"):
        wire.decode(json.dumps(payload).encode())


def test_encoding_in_bulk_round_trips_through_decode():
    frame = neuralake.datagen.Simulation(rows=1000, sessions=1, patients=1).neural_signals()
    values, keys = wire.encode(frame.head(600))
    assert len(values) == len(keys) == 600
    decoded = pl.DataFrame([wire.decode(v) for v in values]).with_columns(
        pl.col("timestamp").cast(BRONZE["timestamp"])
    )
    assert decoded.cast(dict(MESSAGE)).equals(frame.head(600))
    assert keys[:2] == [b"1:0", b"1:1"]


def test_the_contract_schemas():
    assert BRONZE.names()[:8] == MESSAGE.names()
    assert BRONZE.names()[8:] == ["kafka_partition", "kafka_offset", "kafka_timestamp", "date"]
    assert BRONZE["channel"] == pl.Int16 and BRONZE["kafka_offset"] == pl.Int64
    assert BRONZE["kafka_timestamp"] == pl.Datetime("us", "UTC")
    assert DEAD_LETTERS.names() == [
        "kafka_topic", "kafka_partition", "kafka_offset", "payload", "reason", "received_at",
    ]  # fmt: skip
    assert app_id("neuralake-writer", "neural-signals", 2) == "neuralake-writer/neural-signals/2"
    assert dead_letter_uri("s3://b/w/t/") == "s3://b/w/t_dead_letters"


# -- on the stack ---------------------------------------------------------------------------


@pytest.fixture
def topic(stack_settings):
    """A fresh topic name; the topic is deleted afterwards."""
    name = f"tests.streaming.{uuid.uuid4().hex[:8]}"
    yield name
    topics.delete_topic(stack_settings, name)


@pytest.fixture
def table(stack_settings):
    """A fresh table name; the table and its dead letters are dropped afterwards."""
    name = f"tests_streaming_{uuid.uuid4().hex[:8]}"
    yield name
    uri = stack_settings.table_uri(name)
    for target in (uri, dead_letter_uri(uri)):
        drop_table(target, stack_settings.storage_options)


def consume_all(s: neuralake.Settings, topic: str, expected: int) -> list:
    """Every message of ``topic`` (all partitions, from the beginning)."""
    consumer = Consumer({**s.kafka_config, "group.id": f"check-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in topics.partitions(s, topic)])
    found = []
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        found += [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
    consumer.close()
    return found


def reason(payload: bytes) -> str:
    with pytest.raises(wire.Malformed) as err:
        wire.decode(payload)
    return str(err.value)


def kind(payload: bytes) -> str:
    try:
        wire.decode(payload)
    except wire.Malformed as reason:
        text = str(reason)
        for name, marker in [
            ("invalid_json", "not JSON"),
            ("missing_field", "is missing"),
            ("wrong_type", "must be"),
            ("channel_out_of_range", "out of range"),
        ]:
            if marker in text:
                return name
        return text
    return "good"


@pytest.mark.stack
def test_the_producer_sends_what_it_reports(stack_settings, topic):
    result = produce.produce(stack_settings, topic=topic, count=4000, malformed_ratio=0.1, seed=3)
    assert (result.sent, result.good + result.malformed) == (4000, 4000)
    assert 250 < result.malformed < 550  # 10 % of 4000, drawn at random
    messages = consume_all(stack_settings, topic, 4000)
    kinds = Counter(kind(m.value()) for m in messages)
    assert kinds["good"] == result.good
    assert set(kinds) == {"good", *produce.MALFORMED_KINDS}, kinds
    good = [json.loads(m.value()) for m in messages if kind(m.value()) == "good"]
    keys = {m.key().decode() for m in messages if kind(m.value()) == "good"}
    assert keys == {f"{g['session_id']}:{g['channel']}" for g in good}
    assert len({m.partition() for m in messages}) == 3


@pytest.mark.stack
def test_the_producer_splits_the_count_over_sessions(stack_settings, topic):
    produce.produce(stack_settings, topic=topic, count=1600, sessions=8, seed=5)
    per_session = Counter(
        json.loads(m.value())["session_id"] for m in consume_all(stack_settings, topic, 1600)
    )
    assert len(per_session) == 8 and set(per_session.values()) == {200}, per_session
    with pytest.raises(ConfigError, match="sessions=0 must be at least 1"):
        produce.produce(stack_settings, topic=topic, count=10, sessions=0)


@pytest.mark.stack
def test_the_same_seed_breaks_the_same_messages(stack_settings, topic):
    again = f"{topic}.again"
    try:
        for name in (topic, again):
            produce.produce(stack_settings, topic=name, count=1500, malformed_ratio=0.2, seed=9)
        patterns = [
            sorted((m.partition(), m.offset(), kind(m.value()) == "good")
                   for m in consume_all(stack_settings, name, 1500))
            for name in (topic, again)
        ]  # fmt: skip
        assert patterns[0] == patterns[1]
    finally:
        topics.delete_topic(stack_settings, again)


@pytest.mark.stack
def test_the_producer_paces_a_steady_rate(stack_settings, topic):
    result = produce.produce(stack_settings, topic=topic, count=3000, rate=2000)
    assert 1.4 < result.seconds < 5.0, result  # 3000 messages at 2000/s: 1.5 s, not less
    assert 600 < result.messages_per_s <= 2100  # never faster than asked


@pytest.mark.stack
def test_topic_helpers(stack_settings, topic):
    assert topics.ensure_topic(stack_settings, topic, partitions=3) is True
    assert topics.ensure_topic(stack_settings, topic, partitions=3) is False
    produce.produce(stack_settings, topic=topic, count=900)
    described = topics.describe(stack_settings, topic)
    assert described["partition"].to_list() == [0, 1, 2]
    assert described["messages"].sum() == 900 and described["low"].sum() == 0

    group = f"tests.group.{uuid.uuid4().hex[:6]}"
    lag = topics.group_lag(stack_settings, group, topic)
    assert lag["committed"].null_count() == 3 and lag["lag"].sum() == 900
    consumer = Consumer({**stack_settings.kafka_config, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    consumer.close()
    lag = topics.group_lag(stack_settings, group, topic)
    assert lag.filter(pl.col("partition") == 0)["committed"].item() == 10
    assert lag["lag"].sum() == 890

    assert topics.admin(stack_settings) is topics.admin(stack_settings), "one client per broker"
    topics.recreate_topic(stack_settings, topic, partitions=2)
    described = topics.describe(stack_settings, topic)  # usable at once: leaders answer
    assert described["partition"].to_list() == [0, 1] and described["messages"].sum() == 0


@pytest.mark.stack
def test_topic_errors_are_one_line(stack_settings, monkeypatch):
    missing = re.escape("topic 'no.such.topic' does not exist on 127.0.0.1:9092")
    with pytest.raises(ConfigError, match=missing):
        topics.describe(stack_settings, "no.such.topic")
    port = free_port()
    monkeypatch.setenv("NEURALAKE_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(StackError) as err:
        topics.describe(neuralake.settings("stack"), "anything")
    assert f"no Kafka broker answers at 127.0.0.1:{port}" in str(err.value)
    assert "make up" in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - started < 15


# -- the Python baseline --------------------------------------------------------------------


def read_tables(s: neuralake.Settings, table: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    uri = s.table_uri(table)
    rows = pl.read_delta(uri, storage_options=s.storage_options)
    dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options)
    return rows, dead


def assert_exactly_once(s, topic: str, table: str, good: int, malformed: int) -> None:
    rows, dead = read_tables(s, table)
    assert rows.height == good
    assert rows.select(pl.struct("kafka_partition", "kafka_offset").n_unique()).item() == good
    assert dead.height == malformed
    assert dead.select(pl.struct("kafka_partition", "kafka_offset").n_unique()).item() == malformed
    assert (
        dead["reason"].str.starts_with("field ").sum()
        + dead["reason"].str.starts_with("not JSON").sum()
        == malformed
    )
    assert rows["date"].equals(rows["timestamp"].dt.date(), check_names=False)


@pytest.mark.stack
def test_the_baseline_writes_each_message_exactly_once(stack_settings, topic, table):
    sent = produce.produce(stack_settings, topic=topic, count=12_000, malformed_ratio=0.02)
    writer = baseline.Baseline(
        stack_settings, topic=topic, table=table, flush=baseline.FlushRule(rows=5000)
    )
    summary = writer.run(stop_at_end=True)
    writer.close()
    assert (summary.messages, summary.rows) == (12_000, sent.good)
    assert summary.dead_letters == sent.malformed and summary.batches >= 3
    assert_exactly_once(stack_settings, topic, table, sent.good, sent.malformed)

    # The table, not the consumer group, says where to resume: a second run reads nothing.
    again = baseline.Baseline(stack_settings, topic=topic, table=table)
    assert again.run(stop_at_end=True).messages == 0
    again.close()
    uri = stack_settings.table_uri(table)
    table_now = neuralake.delta.open_table(uri, stack_settings.storage_options)
    ends = topics.describe(stack_settings, topic)["high"].to_list()
    for p, high in enumerate(ends):
        assert table_now.transaction_version(app_id(baseline.DEFAULT_APP, topic, p)) == high - 1


@pytest.mark.stack
def test_dead_letters_already_committed_are_not_written_again(stack_settings, topic, table):
    """A crash between the dead-letter commit and the bronze commit: replay skips them."""
    sent = produce.produce(stack_settings, topic=topic, count=3000, malformed_ratio=0.05)
    messages = consume_all(stack_settings, topic, 3000)
    crashed = [m for m in messages if kind(m.value()) != "good"]
    highs = topics.describe(stack_settings, topic)["high"].to_list()
    uri = dead_letter_uri(stack_settings.table_uri(table))
    letters = pl.DataFrame(
        [(topic, m.partition(), m.offset(), m.value(), reason(m.value()), None) for m in crashed],
        schema=DEAD_LETTERS,
        orient="row",
    )
    txns = [Transaction(app_id(baseline.DEFAULT_APP, topic, p), h - 1) for p, h in enumerate(highs)]
    write_deltalake(
        uri,
        letters.to_arrow(),
        storage_options=stack_settings.storage_options,
        commit_properties=CommitProperties(app_transactions=txns),
    )
    writer = baseline.Baseline(stack_settings, topic=topic, table=table)
    writer.run(stop_at_end=True)
    writer.close()
    assert_exactly_once(stack_settings, topic, table, sent.good, sent.malformed)


@pytest.mark.stack
def test_the_baseline_survives_kill_9(stack_settings, topic, table):
    sent = produce.produce(stack_settings, topic=topic, count=30_000, malformed_ratio=0.02)
    cmd = [
        sys.executable, "-m", "neuralake", "writer", "baseline", "--topic", topic,
        "--table", table, "--flush-rows", "2000", "--flush-ms", "200",
    ]  # fmt: skip
    env = {**os.environ, "NEURALAKE_PROFILE": "stack"}
    rng = random.Random(1)
    uri = stack_settings.table_uri(table)
    for _ in range(2):
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30  # kill once it has committed something new
        before = _version(uri, stack_settings)
        while _version(uri, stack_settings) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(rng.uniform(0, 0.5))
        psutil.Process(proc.pid).send_signal(signal.SIGKILL)
        proc.wait(10)
    partial = pl.read_delta(uri, storage_options=stack_settings.storage_options).height
    assert 0 < partial < sent.good, "the kills must land mid-stream"
    finished = subprocess.run([*cmd, "--stop-at-end"], env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-500:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["messages"] < 30_000  # it resumed, it did not start over
    assert_exactly_once(stack_settings, topic, table, sent.good, sent.malformed)


def _version(uri: str, s: neuralake.Settings) -> int:
    try:
        return neuralake.delta.open_table(uri, s.storage_options).version()
    except neuralake.errors.TableNotFoundError:
        return -1


@pytest.mark.stack
def test_a_table_with_another_schema_is_refused_at_start(stack_settings, topic, table):
    topics.ensure_topic(stack_settings, topic)
    uri = stack_settings.table_uri(table)
    write_deltalake(
        uri, pl.DataFrame({"x": [1]}).to_arrow(), storage_options=stack_settings.storage_options
    )
    with pytest.raises(TableSchemaError) as err:
        baseline.Baseline(stack_settings, topic=topic, table=table)
    assert f"the table at {uri} has columns (x long)" in str(err.value)
    assert "--table" in str(err.value)
    assert arrow_schema(BRONZE).names == BRONZE.names()


@pytest.mark.stack
def test_freshness_is_measured_on_newly_visible_rows(stack_settings, topic, table):
    topics.ensure_topic(stack_settings, topic)
    writer = baseline.Baseline(
        stack_settings, topic=topic, table=table, flush=baseline.FlushRule(ms=200)
    )
    stop = threading.Event()
    running = threading.Thread(target=writer.run, kwargs={"should_stop": stop.is_set})
    running.start()
    try:
        producer = threading.Thread(
            target=produce.produce,
            args=(stack_settings,),
            kwargs={"topic": topic, "count": 2000, "rate": 1000},
        )
        producer.start()
        seen = freshness.measure(
            stack_settings.table_uri(table),
            stack_settings.storage_options,
            seconds=30,  # an upper bound for a busy machine; it stops at the 2000th row
            until_rows=2000,
        )
        producer.join()
    finally:
        stop.set()
        running.join(30)
        writer.close()
    result = freshness.summary(seen)
    assert result["rows"] == 2000  # every row, seen once, in the version that added it
    assert seen["version"].n_unique() >= 2  # 2 s of a 200 ms flush: more than one commit
    assert 0 < result["p50_s"] <= result["p99_s"] < 15  # the target is the benchmark's job


def test_metrics_are_read_from_a_prometheus_endpoint():
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("demo_rows", "rows written", registry=registry).inc(42)
    lag = prometheus_client.Gauge("demo_lag", "lag", ["partition"], registry=registry)
    lag.labels(partition="0").set(7)
    lag.labels(partition="1").set(0)
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, "127.0.0.1", registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        values = metrics.values(url)
        assert values["demo_rows_total"] == 42
        assert values['demo_lag{partition="0"}'] == 7
        table = metrics.samples(url)
        assert table.filter(pl.col("metric") == "demo_lag").height == 2
    finally:
        server.shutdown()
        thread.join(5)
    with pytest.raises(StackError, match="no metrics at"):
        metrics.values(url)


@pytest.mark.stack
def test_rust_and_python_writers_make_the_same_tables(stack_settings, topic, table):
    """Same schemas, partitioning and protocol, and the same rows from the same messages."""
    try:
        exe = binary.find()
    except StackError as err:
        pytest.fail(str(err), pytrace=False)
    s = stack_settings
    produce.produce(s, topic=topic, count=3000, malformed_ratio=0.05, seed=4)
    rust_uri = s.table_uri(f"{table}_rust")
    env = {
        **control.process_env(s, topic=topic, table_uri=rust_uri),
        "NEURALAKE_WRITER_METRICS_ADDR": f"127.0.0.1:{free_port()}",
    }
    try:
        result = subprocess.run(
            [str(exe), "ingest", "--stop-at-end"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr[-500:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["messages"] == 3000
        writer = baseline.Baseline(s, topic=topic, table=table)
        writer.run(stop_at_end=True)
        writer.close()
        python_uri = s.table_uri(table)
        for rust, python in [
            (rust_uri, python_uri),
            (dead_letter_uri(rust_uri), dead_letter_uri(python_uri)),
        ]:
            a, b = (neuralake.delta.open_table(u, s.storage_options) for u in (rust, python))
            assert json.loads(a.schema().to_json()) == json.loads(b.schema().to_json())
            assert a.metadata().partition_columns == b.metadata().partition_columns
            protocols = [
                (t.protocol().min_reader_version, t.protocol().min_writer_version) for t in (a, b)
            ]
            assert protocols == [(1, 2), (1, 2)]
        assert neuralake.delta.open_table(
            rust_uri, s.storage_options
        ).metadata().partition_columns == ["date"]

        def rows(uri: str) -> pl.DataFrame:
            frame = pl.read_delta(uri, storage_options=s.storage_options)
            return frame.sort("kafka_partition", "kafka_offset")

        assert rows(rust_uri).equals(rows(python_uri))
        coordinates = ["kafka_partition", "kafka_offset", "payload"]
        assert (
            rows(dead_letter_uri(rust_uri))
            .select(coordinates)
            .equals(rows(dead_letter_uri(python_uri)).select(coordinates))
        )
    finally:
        for uri in (rust_uri, dead_letter_uri(rust_uri)):
            drop_table(uri, s.storage_options)
