"""Replaying dead letters: once per dead letter, across repeated calls and a crashed run.

The dead-letter table is written here directly (as the writer would), so these tests
need Kafka and S3 but no writer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import write_deltalake

from neuralake import delta
from neuralake.streaming import replay, topics
from neuralake.streaming.schemas import DEAD_LETTERS, EXAMPLE_MESSAGE, arrow_schema


def test_header_round_trip_and_key() -> None:
    value = replay.header_value("neural.signals-x", 2, 17)
    assert replay.parse_header(value) == ("neural.signals-x", 2, 17)
    assert replay.parse_header(value.decode()) == ("neural.signals-x", 2, 17)
    assert replay._key(json.dumps(EXAMPLE_MESSAGE).encode()) == "1:3"
    assert replay._key(b"not json") is None


@pytest.fixture
def dead_letters(stack_settings) -> Iterator[tuple[str, str]]:
    """A 2-partition topic and a dead-letter table holding 4 of its 'malformed' messages."""
    s = stack_settings
    name = f"test_replay_{uuid.uuid4().hex[:8]}"
    # Not a bare create_topics: a replay right after it could find no metadata for the topic
    # yet ("Unknown topic or partition"); recreate_topic returns once its leaders serve it.
    topics.recreate_topic(s, name, partitions=2)
    uri = s.table_uri(f"{name}_dead_letters")
    broken = {**EXAMPLE_MESSAGE, "channel": 70000}
    rows = pl.DataFrame(
        {
            "kafka_topic": [name] * 4,
            "kafka_partition": [0, 0, 1, 1],
            "kafka_offset": [3, 8, 1, 5],
            "payload": [json.dumps({**broken, "session_id": i}).encode() for i in range(4)],
            "reason": ["channel: 70000 is out of range for Int16"] * 4,
            "received_at": [datetime.now(UTC)] * 4,
        },
        schema=DEAD_LETTERS,
    )
    write_deltalake(
        uri, rows.to_arrow().cast(arrow_schema(DEAD_LETTERS)), storage_options=s.storage_options
    )
    yield name, uri
    topics.delete_topic(s, name)
    for table in (uri, replay.ledger_uri(uri)):
        delta.drop_table(table, s.storage_options)


def fix(frame: pl.DataFrame) -> pl.DataFrame:
    def one(payload: bytes) -> bytes:
        return json.dumps({**json.loads(payload), "channel": 7}).encode()

    return frame.with_columns(pl.col("payload").map_elements(one, return_dtype=pl.Binary))


def topic_messages(config: dict, topic: str) -> list[tuple[int, int, dict]]:
    """(partition, offset, headers) of every message in the topic's 2 partitions."""
    consumer = Consumer({**config, "group.id": f"t-{uuid.uuid4().hex}"})
    out = []
    for partition in (0, 1):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high == low:
            continue
        consumer.assign([TopicPartition(topic, partition, low)])
        while not out or out[-1][:2] != (partition, high - 1):
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            out.append((partition, message.offset(), dict(message.headers() or [])))
    consumer.close()
    return out


@pytest.mark.stack
def test_replay_lands_each_dead_letter_once(stack_settings, dead_letters) -> None:
    s = stack_settings
    topic, uri = dead_letters
    options = {"kafka_config": s.kafka_config, "storage_options": s.storage_options}
    todo = replay.pending(uri, s.storage_options)
    assert todo.height == 4

    first = replay.replay(fix(todo), dead_letter_uri=uri, **options)
    assert (first.replayed, first.already_replayed, first.recovered) == (4, 0, 0)
    assert replay.pending(uri, s.storage_options).height == 0

    again = replay.replay(fix(todo), dead_letter_uri=uri, **options)
    assert (again.replayed, again.already_replayed) == (0, 4)

    messages = topic_messages(s.kafka_config, topic)
    headers = sorted(replay.parse_header(h[replay.REPLAY_HEADER]) for _, _, h in messages)
    assert headers == sorted(todo.select(replay.COORDINATES).iter_rows())
    ledger = replay.replayed(uri, s.storage_options)
    assert sorted(ledger.select("replay_partition", "replay_offset").iter_rows()) == sorted(
        (p, o) for p, o, _ in messages
    )


@pytest.mark.stack
def test_a_crashed_run_is_recovered_from_headers_not_produced_again(
    stack_settings, dead_letters
) -> None:
    s = stack_settings
    topic, uri = dead_letters
    options = {"kafka_config": s.kafka_config, "storage_options": s.storage_options}
    todo = fix(replay.pending(uri, s.storage_options))
    # A first replay that records nothing: creates the ledger's marks only.
    replay.replay(todo.head(0), dead_letter_uri=uri, **options)
    # A "crashed" run: it produced dead letter (1, 5) and died before its ledger commit.
    crashed = todo.filter(pl.col("kafka_partition") == 1, pl.col("kafka_offset") == 5).row(
        0, named=True
    )
    producer = Producer(s.kafka_config)
    producer.produce(
        topic,
        value=crashed["payload"],
        headers=[(replay.REPLAY_HEADER, replay.header_value(topic, 1, 5))],
    )
    assert producer.flush(10) == 0

    result = replay.replay(todo, dead_letter_uri=uri, **options)
    assert (result.replayed, result.recovered, result.already_replayed) == (3, 1, 1)
    assert len(topic_messages(s.kafka_config, topic)) == 4  # not 5
    ledger = replay.replayed(uri, s.storage_options)
    assert ledger.height == 4 and not ledger.select(replay.COORDINATES).is_duplicated().any()
    assert ledger.filter("recovered")["kafka_offset"].to_list() == [5]


@pytest.mark.stack
def test_replay_refuses_rows_that_are_not_dead_letters(stack_settings, dead_letters) -> None:
    s = stack_settings
    _, uri = dead_letters
    options = {"kafka_config": s.kafka_config, "storage_options": s.storage_options}
    todo = fix(replay.pending(uri, s.storage_options))
    with pytest.raises(replay.ReplayError, match="are not dead letters"):
        replay.replay(
            todo.with_columns(kafka_offset=pl.col("kafka_offset") + 100),
            dead_letter_uri=uri,
            **options,
        )
    with pytest.raises(replay.ReplayError, match=r"no column\(s\) \['payload'\]"):
        replay.replay(todo.drop("payload"), dead_letter_uri=uri, **options)
    assert replay.replayed(uri, s.storage_options).height == 0
