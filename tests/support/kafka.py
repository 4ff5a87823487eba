"""Reading what CAAS relayed to Kafka, as a customer's consumer would."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer

from services.events.kafka_sink import KafkaBroker


def reader(broker: KafkaBroker, topic: str) -> AIOKafkaConsumer:
    """A consumer of `topic` in a group of the test's own, from the beginning, committing
    only when told (start it, and stop it when done)."""
    return AIOKafkaConsumer(topic, **broker.options(),
                            group_id=f"test-{uuid.uuid4().hex[:8]}",
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=6000)
