"""Health checks: a service is healthy when it answers a real request, not when its
port is open. Each check raises on failure and makes the service ready to use
(the bucket exists, the health topic exists, the database exists).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from neuralake.settings import Settings

HEALTH_TOPIC = "neuralake.health"

# librdkafka logs every refused connection while Kafka boots; the check reports failures.
_quiet = logging.getLogger("neuralake.lab.stack.kafka-health")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def check_s3(s: Settings) -> None:
    """The bucket exists (created on first start) and can be listed."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    s3 = boto3.client("s3", config=quick, **s.boto3_kwargs)
    try:
        s3.head_bucket(Bucket=s.bucket)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=s.bucket)
    s3.list_objects_v2(Bucket=s.bucket, MaxKeys=1)


def check_kafka(s: Settings) -> None:
    """A topic can be created and described through the AdminClient."""
    from confluent_kafka import KafkaError, KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient, NewTopic

    config: dict[str, Any] = {**s.kafka_config, "socket.timeout.ms": 3000, "logger": _quiet}
    admin = AdminClient(config)
    futures = admin.create_topics(
        [NewTopic(HEALTH_TOPIC, num_partitions=1, replication_factor=1)], request_timeout=5
    )
    try:
        futures[HEALTH_TOPIC].result(timeout=10)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    description = admin.describe_topics(TopicCollection([HEALTH_TOPIC]))[HEALTH_TOPIC]
    partitions = description.result(timeout=10).partitions
    if not partitions or partitions[0].leader is None:
        raise RuntimeError(f"topic {HEALTH_TOPIC} has no leader yet")


def check_postgres(s: Settings) -> None:
    """The lab's database exists (created on first start) and answers a query."""
    import psycopg
    from psycopg import sql

    dsn = urlparse(s.postgres_dsn or "")  # the stack profile always sets it
    database = dsn.path.lstrip("/")
    maintenance = dsn._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, connect_timeout=2, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(s.postgres_dsn or "", connect_timeout=2) as conn:
        conn.execute("SELECT 1").fetchone()


def check_roapi(s: Settings) -> None:
    """ROAPI lists the schemas of the tables it serves."""
    import httpx

    response = httpx.get(f"http://{s.roapi_http}/api/schema", timeout=3)
    if response.status_code != 200:
        raise RuntimeError(f"ROAPI answered HTTP {response.status_code}")
