"""Kafka topics through the AdminClient: create one, see how full it is, see a group's lag.

Each helper asks the broker and returns a small Polars DataFrame; nothing is cached.
A broker that does not answer within a few seconds is a one-line ``StackError`` naming
the address and ``make up``; a missing topic names how to create it.
"""

from __future__ import annotations

import logging

import polars as pl
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from neuralake.errors import ConfigError, StackError
from neuralake.settings import ENV_VARS, Settings

TIMEOUT_S = 10.0

# librdkafka logs every refused connection; the helpers raise one clear error instead.
_quiet = logging.getLogger("neuralake.streaming.kafka-admin")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def admin(s: Settings) -> AdminClient:
    """An AdminClient for the settings' broker, checked to answer (else ``StackError``)."""
    client = AdminClient({**s.kafka_config, "socket.timeout.ms": 3000, "logger": _quiet})
    _topic_names(client, s)  # fail now, in one line, rather than on the first future
    return client


def ensure_topic(s: Settings, topic: str, partitions: int = 3) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists; True if created."""
    client = admin(s)
    if topic in _topic_names(client, s):
        return False
    future = client.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as err:
        if err.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False  # someone else created it meanwhile: fine
        raise StackError(f"creating topic {topic!r} failed: {err.args[0].str()}") from err
    return True


def delete_topic(s: Settings, topic: str, attempts: int = 3) -> None:
    """Delete ``topic`` and its messages (tests and lessons clean up with it).

    A delete whose client handle was torn down under it (``_DESTROY``, seen once while a
    Spark JVM shared the process) is tried again with a fresh client; any other error, or
    the same one ``attempts`` times, is raised.
    """
    for attempt in range(1, attempts + 1):
        client = admin(s)
        if topic not in _topic_names(client, s):
            return
        try:
            client.delete_topics([topic])[topic].result(timeout=TIMEOUT_S)
            return
        except KafkaException as err:
            if err.args[0].code() != KafkaError._DESTROY or attempt == attempts:
                raise


def partitions(s: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (``ConfigError`` naming the fix if it is missing)."""
    return _partitions(admin(s), s, topic)


def describe(s: Settings, topic: str) -> pl.DataFrame:
    """One row per partition: ``partition``, ``low`` and ``high`` watermarks, ``messages``."""
    client = admin(s)
    partitions = _partitions(client, s, topic)
    low = _offsets(client, topic, partitions, OffsetSpec.earliest())
    high = _offsets(client, topic, partitions, OffsetSpec.latest())
    return pl.DataFrame(
        {
            "partition": partitions,
            "low": [low[p] for p in partitions],
            "high": [high[p] for p in partitions],
        },
        schema={"partition": pl.Int32, "low": pl.Int64, "high": pl.Int64},
    ).with_columns(messages=pl.col("high") - pl.col("low"))


def group_lag(s: Settings, group: str, topic: str) -> pl.DataFrame:
    """Per partition: the group's ``committed`` offset (null if none), ``high``, ``lag``.

    Lag is ``high - committed``: messages written to Kafka that the group has not yet
    confirmed. (The writer confirms only after its Delta commit.)
    """
    client = admin(s)
    partitions = _partitions(client, s, topic)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    future = client.list_consumer_group_offsets([request])[group]
    answer = future.result(timeout=TIMEOUT_S)
    committed = {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}
    high = _offsets(client, topic, partitions, OffsetSpec.latest())
    return pl.DataFrame(
        {
            "partition": partitions,
            "committed": [committed.get(p) for p in partitions],
            "high": [high[p] for p in partitions],
        },
        schema={"partition": pl.Int32, "committed": pl.Int64, "high": pl.Int64},
    ).with_columns(lag=pl.col("high") - pl.col("committed").fill_null(0))


def _topic_names(client: AdminClient, s: Settings) -> set[str]:
    try:
        return set(client.list_topics(timeout=TIMEOUT_S / 2).topics)
    except KafkaException as err:
        raise StackError(
            f"no Kafka broker answers at {s.kafka_bootstrap}: start the stack (make up) "
            f"or fix {ENV_VARS['kafka_bootstrap']}"
        ) from err


def _partitions(client: AdminClient, s: Settings, topic: str) -> list[int]:
    metadata = client.list_topics(timeout=TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise ConfigError(
            f"topic {topic!r} does not exist on {s.kafka_bootstrap}: "
            "create it (neuralake produce creates it) or pass --topic"
        )
    return sorted(metadata.partitions)


def _offsets(client: AdminClient, topic: str, partitions: list[int], spec) -> dict[int, int]:
    futures = client.list_offsets({TopicPartition(topic, p): spec for p in partitions})
    return {tp.partition: f.result(timeout=TIMEOUT_S).offset for tp, f in futures.items()}
