"""Replay the neural-signal generator into Kafka: one JSON message per row, live timestamps.

The rows come from :class:`neuralake.datagen.Simulation` with ``start`` = now, are
serialized in bulk by Polars (:func:`neuralake.streaming.wire.encode`) and sent with the
key ``"<session_id>:<channel>"``. Options:

- ``sessions``: how many recording sessions the messages come from (ids 1..sessions,
  one patient and implant each, as ``Simulation(sessions=n, patients=n)`` declares
  them); the count is split evenly between them, the last session starting now.
- ``rate``: steady pacing in messages per second (sent in 10 ms slices, so a consumer
  sees a smooth stream, not bursts); ``None`` sends as fast as the broker takes them.
- ``malformed_ratio``: that share of the messages is broken on purpose, chosen by
  ``seed`` (the same seed breaks the same offsets of a fresh topic), in four kinds:
  invalid JSON, a missing field, a wrong type, an out-of-range channel.

The producer is idempotent (``enable.idempotence``): a retried send is never written
twice, so a consumer can count on ``good`` rows existing exactly once in the topic. Every
delivery report is checked: a failed delivery raises, it is never silently dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from confluent_kafka import KafkaError, Message, Producer

from neuralake.console import JsonLine
from neuralake.datagen import Simulation
from neuralake.errors import ConfigError, StackError
from neuralake.settings import Settings
from neuralake.streaming import topics, wire
from neuralake.streaming.schemas import DEFAULT_TOPIC

MALFORMED_KINDS = ("invalid_json", "missing_field", "wrong_type", "channel_out_of_range")
SLICE_S = 0.01  # pacing granularity for --rate

PRODUCER_CONFIG = {
    "enable.idempotence": True,  # retries never duplicate a message
    "linger.ms": 20,  # let batches fill: far fewer requests at high rates
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    # A broker that restarts may be away for a while: keep retrying for 2 minutes, then
    # report each undelivered message through its delivery report (never drop it quietly).
    "message.timeout.ms": 120_000,
}
FLUSH_TIMEOUT_S = 130  # a little longer than message.timeout.ms: every report arrives


@dataclass(frozen=True)
class Produced(JsonLine):
    sent: int
    good: int
    malformed: int
    seconds: float
    messages_per_s: float


def produce(
    s: Settings,
    *,
    topic: str = DEFAULT_TOPIC,
    count: int,
    rate: float | None = None,
    malformed_ratio: float = 0.0,
    seed: int = 0,
    partitions: int = 3,
    sessions: int = 1,
) -> Produced:
    """Send ``count`` messages to ``topic`` (created with ``partitions`` if missing)."""
    if count <= 0:
        raise ConfigError(f"count={count} must be positive (e.g. --count 10000)")
    if rate is not None and rate <= 0:
        raise ConfigError(f"rate={rate} must be positive messages per second (e.g. --rate 1000)")
    if not 0 <= malformed_ratio <= 1:
        raise ConfigError(f"malformed ratio {malformed_ratio} must be between 0 and 1 (e.g. 0.02)")
    if sessions < 1:
        raise ConfigError(f"sessions={sessions} must be at least 1 (e.g. sessions=8)")
    topics.ensure_topic(s, topic, partitions)

    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer({**s.kafka_config, **PRODUCER_CONFIG})
    rng = np.random.default_rng(seed)
    sent = malformed = 0
    started = time.perf_counter()
    for values, keys in _batches(count, seed, sessions):
        broken = rng.random(len(values)) < malformed_ratio
        kinds = rng.integers(0, len(MALFORMED_KINDS), len(values))
        for i in np.flatnonzero(broken):
            values[i] = break_message(values[i], MALFORMED_KINDS[kinds[i]])
        malformed += int(broken.sum())
        for value, key in zip(values, keys, strict=True):
            if rate is not None:
                _pace(producer, sent, rate, started)
            _send(producer, topic, value, key, delivered)
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)  # serve delivery reports as we go
            if failures:
                break
        if failures:
            break
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if failures or remaining:
        first = failures[0].str() if failures else f"{remaining} messages still queued"
        raise StackError(f"producing to {topic!r} on {s.kafka_bootstrap} failed: {first}")
    return Produced(sent, sent - malformed, malformed, round(seconds, 3), round(sent / seconds))


def break_message(value: bytes, kind: str) -> bytes:
    """A good message made malformed in one of the ``MALFORMED_KINDS`` ways."""
    if kind == "invalid_json":
        return value[: len(value) // 2]  # cut in the middle: unterminated
    message = json.loads(value)
    if kind == "missing_field":
        del message["quality"]
    elif kind == "wrong_type":
        message["spike"] = "yes"
    elif kind == "channel_out_of_range":
        message["channel"] = 70_000  # does not fit an Int16
    else:
        raise ConfigError(f"unknown malformed kind {kind!r}: choose from {MALFORMED_KINDS}")
    return json.dumps(message, separators=(",", ":")).encode()


def _batches(count: int, seed: int, sessions: int = 1) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """(values, keys) for ``count`` rows split evenly over ``sessions``, a block at a time."""
    start = _now() - timedelta(hours=sessions - 1)  # session i starts i hours after the first
    simulation = Simulation(
        rows=count, sessions=sessions, patients=sessions, seed=seed, start=start
    )
    left = {i + 1: count // sessions + (i < count % sessions) for i in range(sessions)}
    for chunk in simulation.signal_chunks():  # 262,144 rows, one session's, at a time
        session = chunk["session_id"][0]
        frame: pl.DataFrame = chunk.head(left[session])
        left[session] -= frame.height
        if frame.height:
            yield wire.encode(frame)
        if not any(left.values()):
            return


def _send(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: let librdkafka send, then retry
            producer.poll(0.05)


def _pace(producer: Producer, sent: int, rate: float, started: float) -> None:
    """Sleep until message ``sent`` is due, in slices of ``SLICE_S``."""
    due = started + sent / rate
    while (wait := due - time.perf_counter()) > 0:
        producer.poll(min(wait, SLICE_S))


def _now() -> datetime:
    return datetime.now(UTC)
