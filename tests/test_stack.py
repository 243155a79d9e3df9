"""The native stack's promises, on a throwaway stack with its own state folder and ports:
health-gated start, clear errors, stop only what we started, data kept across restarts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import boto3
import httpx
import psutil
import pyarrow as pa
import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import write_deltalake

import neuralake
from neuralake.errors import StackError
from neuralake.lab.stack import control
from neuralake.lab.stack.services import roapi_config_path


def quiet(_: str) -> None:
    pass


def test_port_held_by_a_foreign_process_is_a_clear_error(isolated_env):
    s = neuralake.settings("stack")
    port = int(s.s3_endpoint.rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(StackError) as err:
            control.up(s, only=["minio"], echo=quiet)
    assert time.monotonic() - started < 10, "a taken port must fail fast, not hang"
    message = str(err.value)
    assert f"port {port} needed by minio is held by pid {psutil.Process().pid}" in message
    assert "NEURALAKE_S3_ENDPOINT" in message
    assert control.status(s)[0].pid is None  # nothing was started


def test_a_service_that_dies_at_start_names_itself_and_its_log(isolated_env, monkeypatch):
    monkeypatch.setenv("NEURALAKE_S3_SECRET_ACCESS_KEY", "short")  # MinIO needs >= 8 chars
    s = neuralake.settings("stack")
    with pytest.raises(StackError) as err:
        control.up(s, only=["minio"], echo=quiet)
    message = str(err.value)
    assert message.startswith("minio exited during start")
    assert str(s.state_dir / "logs" / "minio.log") in message
    assert "\n" not in message


def test_a_killed_service_shows_as_down_and_up_restarts_it(isolated_env):
    s = neuralake.settings("stack")
    control.up(s, only=["minio"], echo=quiet)
    try:
        pid = control.status(s)[0].pid
        psutil.Process(pid).kill()
        psutil.Process(pid).wait(5)
        row = control.status(s)[0]
        assert (row.service, row.healthy, row.error) == ("minio", False, "not running")
        control.up(s, only=["minio"], echo=quiet)
        assert control.status(s)[0].healthy
    finally:
        control.down(s, echo=quiet)


def test_down_stops_only_our_processes(isolated_env):
    s = neuralake.settings("stack")
    # A stranger that looks like MinIO: `down` must not touch it (it goes by pid files).
    stranger = subprocess.Popen(["bash", "-c", "exec -a minio sleep 60"])
    try:
        control.up(s, only=["minio"], echo=quiet)
        pid = control.status(s)[0].pid
        assert control.down(s, echo=quiet) == ["minio"]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert stranger.poll() is None, "down stopped a process it did not start"
        assert control.down(s, echo=quiet) == []  # idempotent
    finally:
        stranger.kill()


def test_up_after_down_keeps_every_object_and_message(isolated_env):
    s = neuralake.settings("stack")
    topic = "persistence-check"
    control.up(s, only=["minio", "kafka"], echo=quiet)
    try:
        s3 = boto3.client("s3", **s.boto3_kwargs)
        s3.put_object(Bucket=s.bucket, Key="keep/me.txt", Body=b"still here")
        admin = AdminClient(s.kafka_config)
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
        producer = Producer(s.kafka_config)
        for i in range(100):
            producer.produce(topic, value=str(i).encode())
        assert producer.flush(10) == 0
        pids = [row.pid for row in control.status(s) if row.pid]

        control.down(s, echo=quiet)
        assert not any(psutil.pid_exists(pid) for pid in pids), "down left a process running"
        control.up(s, only=["minio", "kafka"], echo=quiet)

        body = s3.get_object(Bucket=s.bucket, Key="keep/me.txt")["Body"].read()
        assert body == b"still here"
        assert consume_all(s, topic, expected=100) == [str(i) for i in range(100)]
    finally:
        control.down(s, echo=quiet)


def test_status_json_lists_every_service(isolated_env):
    result = subprocess.run(
        [sys.executable, "-m", "neuralake", "stack", "status", "--json"],
        capture_output=True,
        text=True,
    )
    rows = json.loads(result.stdout)
    assert [row["service"] for row in rows] == ["minio", "kafka", "postgres"]
    assert set(rows[0]) == {"service", "mode", "address", "pid", "healthy", "data", "error"}
    assert result.returncode == 1  # nothing is running in this isolated stack


def test_unknown_service_is_a_clear_error(isolated_env):
    with pytest.raises(StackError, match="unknown service 'mysql': choose from minio"):
        control.up(neuralake.settings("stack"), only=["mysql"], echo=quiet)


def consume_all(s: neuralake.Settings, topic: str, expected: int) -> list[str]:
    consumer = Consumer(
        {**s.kafka_config, "group.id": f"check-{time.time()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + 30
    while len(values) < expected and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            values.append(msg.value().decode())
    consumer.close()
    return values


def test_the_stack_serves_a_table_through_roapi_once_a_config_exists(isolated_env):
    s = neuralake.settings("stack")
    assert "roapi" not in [row.service for row in control.status(s)]  # no config, no ROAPI
    control.up(s, only=["minio"], echo=quiet)
    try:
        uri = s.table_uri("roapi_check")
        write_deltalake(uri, pa.table({"n": list(range(42))}), storage_options=s.storage_options)
        config = roapi_config_path(s)
        config.parent.mkdir(parents=True)
        config.write_text(
            yaml.safe_dump(
                {
                    "addr": {
                        "http": s.roapi_http,
                        "postgres": s.roapi_postgres,
                        "flight_sql": s.roapi_flight_sql,
                    },
                    "tables": [
                        {
                            "name": "roapi_check",
                            "uri": uri,
                            "option": {"format": "delta", "use_memory_table": False},
                        }
                    ],
                }
            )
        )
        control.up(s, only=["roapi"], echo=quiet)
        answer = httpx.post(
            f"http://{s.roapi_http}/api/sql",
            content="SELECT count(*) AS rows FROM roapi_check",
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == [{"rows": 42}]
    finally:
        control.down(s, echo=quiet)


def test_kafka_storage_formats_with_a_cluster_id_that_starts_with_a_dash(isolated_env, monkeypatch):
    """A random cluster id starts with "-" about one time in 64; the format must not
    read it as an option (it did, and a fresh stack failed to start)."""
    from neuralake.lab.stack import services

    monkeypatch.setattr(services.base64, "urlsafe_b64encode", lambda _: b"-0YQiDH9QxK9fQ==")
    kafka = next(
        svc for svc in services.native_services(neuralake.settings("stack")) if svc.name == "kafka"
    )
    kafka.prepare()
    meta = next((isolated_env / "state").rglob("meta.properties")).read_text()
    assert "cluster.id=-0YQiDH9QxK9fQ" in meta


def test_a_failed_up_stops_what_it_started(isolated_env, monkeypatch):
    """Kafka failing to prepare must not leave the MinIO that the same `up` started."""
    from dataclasses import replace

    from neuralake.lab.stack import services

    def failing_format() -> None:
        raise subprocess.CalledProcessError(1, "kafka-storage", stderr="format failed")

    real_kafka = services.kafka
    monkeypatch.setattr(services, "kafka", lambda s: replace(real_kafka(s), prepare=failing_format))
    s = neuralake.settings("stack")
    with pytest.raises(StackError, match="preparing kafka failed: format failed"):
        control.up(s, only=["minio", "kafka"], echo=quiet)
    left = [row.service for row in control.status(s) if row.pid]
    assert not left, f"a half-started stack was left running: {left}"
