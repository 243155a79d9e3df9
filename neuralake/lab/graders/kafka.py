"""The graders' ground truth on the Kafka side: every message of a topic, read back.

A grader never takes a count from the student or from the writer's metrics: it reads
the topic itself, up to the high watermark each partition had when it asked.
"""

from __future__ import annotations

import time

import polars as pl
from confluent_kafka import Consumer, TopicPartition

from neuralake.settings import Settings
from neuralake.streaming import topics


def read_topic(s: Settings, topic: str, timeout: float = 60) -> pl.DataFrame:
    """Every message of ``topic`` up to its high watermarks: partition, offset, payload."""
    consumer = Consumer({**s.kafka_config, "group.id": f"{topic}.reader"})
    rows: list[tuple[int, int, bytes | None]] = []
    try:
        ends = {}
        for partition in topics.partitions(s, topic):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = (low, high)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        left = {p: high - low for p, (low, high) in ends.items()}
        deadline = time.monotonic() + timeout
        while any(left.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka did not serve {topic} to its end in {timeout:.0f} s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                p, o = msg.partition(), msg.offset()
                if msg.error() is None and p is not None and o is not None and o < ends[p][1]:
                    rows.append((p, o, msg.value()))
                    left[p] -= 1
    finally:
        consumer.close()
    return pl.DataFrame(
        rows,
        schema={"kafka_partition": pl.Int32, "kafka_offset": pl.Int64, "payload": pl.Binary},
        orient="row",
    ).sort("kafka_partition", "kafka_offset")
