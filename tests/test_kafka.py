"""A produce/consume round trip through a topic created with the AdminClient."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.stack


def test_round_trip_through_an_admin_created_topic(stack_settings):
    config = stack_settings.kafka_config
    topic = f"tests.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    try:
        metadata = admin.list_topics(topic, timeout=10).topics[topic]
        assert metadata.error is None
        assert len(metadata.partitions) == 3

        sent = {f"key-{i}": f"value-{i}" for i in range(300)}
        producer = Producer({**config, "enable.idempotence": True})
        for key, value in sent.items():
            producer.produce(topic, key=key, value=value)
        assert producer.flush(15) == 0

        consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        received: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                received[msg.key().decode()] = msg.value().decode()
        consumer.close()
        assert received == sent
    finally:
        admin.delete_topics([topic])[topic].result(10)
