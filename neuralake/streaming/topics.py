"""Kafka topics through the AdminClient: create one, see how full it is, see a group's lag.

Each helper asks the broker and returns a small Polars DataFrame; no answer is cached.
The AdminClient itself is: one per broker configuration, kept for the life of the process.
A client built per call and dropped at the end of it was destroyed by the garbage
collector, sometimes with a request still in flight (librdkafka then warns about the
operations it never finished, and a future of that client fails with ``_DESTROY``).
A broker that does not answer within a few seconds is a one-line ``StackError`` naming
the address and ``make up``; a missing topic names how to create it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

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
from neuralake.waiting import NotYet, wait_until

TIMEOUT_S = 10.0

# librdkafka logs every refused connection; the helpers raise one clear error instead.
_quiet = logging.getLogger("neuralake.streaming.kafka-admin")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


_clients: dict[tuple[tuple[str, str], ...], AdminClient] = {}
_clients_lock = threading.Lock()


def admin(s: Settings) -> AdminClient:
    """The AdminClient for the settings' broker, checked to answer (else ``StackError``).

    The same client is returned for the same broker settings (see the module docstring);
    librdkafka reconnects it by itself after a broker restart.
    """
    key = tuple(sorted((k, str(v)) for k, v in s.kafka_config.items()))
    with _clients_lock:
        client = _clients.get(key)
    if client is None:  # a client is kept only once its broker has answered
        config: dict[str, Any] = {**s.kafka_config, "socket.timeout.ms": 3000, "logger": _quiet}
        client = AdminClient(config)
        _topic_names(client, s)  # fail now, in one line, rather than on the first future
        with _clients_lock:
            return _clients.setdefault(key, client)
    _topic_names(client, s)
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


def delete_topic(s: Settings, topic: str) -> None:
    """Delete ``topic`` and its messages (tests and lessons clean up with it).

    The broker finishes the delete in the background: use :func:`recreate_topic` to
    start again from an empty topic of the same name.
    """
    client = admin(s)
    if topic not in _topic_names(client, s):
        return
    try:
        client.delete_topics([topic])[topic].result(timeout=TIMEOUT_S)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # else: gone already
            raise StackError(f"deleting topic {topic!r} failed: {err.args[0].str()}") from err


def recreate_topic(s: Settings, topic: str, partitions: int = 3, timeout_s: float = 30.0) -> None:
    """Delete ``topic`` if it exists and create it again, empty, with ``partitions``.

    Kafka deletes a topic in the background: the delete request returns once the controller
    has accepted it, the topic stays in the metadata a little longer, and a create meanwhile
    fails with ``TOPIC_ALREADY_EXISTS`` (marked for deletion), or worse, looks like success
    to a helper that only checks whether the name exists. So this waits until the name is
    gone, creates the topic, and returns once every partition's leader answers for it (a
    client that asks earlier gets ``NOT_LEADER_FOR_PARTITION`` or ``UNKNOWN_TOPIC_OR_PART``).
    ``StackError`` after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    delete_topic(s, topic)
    client = admin(s)
    last_error: list[str] = []  # the broker's last refusal, for the error message

    def wait(condition: Callable[[], bool], what: str) -> None:
        def check() -> None:
            if not condition():
                raise NotYet

        try:  # each step gets what is left of the one deadline
            wait_until(check, timeout=deadline - time.monotonic(), interval=0.1, retry_on=NotYet)
        except NotYet:
            detail = f" (last answer: {last_error[0]})" if last_error else ""
            raise StackError(
                f"topic {topic!r} {what} within {timeout_s:.0f} s on {s.kafka_bootstrap}"
                f"{detail}: check the broker (neuralake stack status)"
            ) from None

    wait(lambda: topic not in _topic_names(client, s), "was not deleted")

    def created() -> bool:
        future = client.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as err:
            if err.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False  # the old one is still being deleted
            raise StackError(f"creating topic {topic!r} failed: {err.args[0].str()}") from err
        return True

    wait(created, "could not be created again")

    def served() -> bool:  # every partition's leader answers for it
        client.list_topics(topic, timeout=TIMEOUT_S)  # refresh the client's view of the leaders
        try:
            _offsets(client, topic, list(range(partitions)), OffsetSpec.latest())
        except KafkaException as err:
            last_error[:] = [err.args[0].str()]
            return False
        return True

    wait(served, "was not served by its partition leaders")


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


def _offsets(
    client: AdminClient, topic: str, partitions: list[int], spec: OffsetSpec
) -> dict[int, int]:
    futures = client.list_offsets({TopicPartition(topic, p): spec for p in partitions})
    return {tp.partition: f.result(timeout=TIMEOUT_S).offset for tp, f in futures.items()}
