"""The Kafka sink of the relay (aiokafka): each durable event, as its serialized
`caas.events.v1.Event`, on the topic of its family (`<prefix>.message`,
`<prefix>.reaction`, …), keyed by app and conversation so that one conversation's
events stay in order on one partition. A batch counts as taken once every record of it
is acknowledged by all in-sync replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.events.log import LoggedEvent
from services.events.types import FAMILIES, family

log = logging.getLogger("caas.kafka")


@dataclass(frozen=True)
class Topics:
    """The event topics: one per family of the chat core's events."""

    prefix: str
    partitions: int
    replication: int
    retention: timedelta

    def of(self, event_type: str) -> str:
        return f"{self.prefix}.{family(event_type)}"

    def all(self) -> list[str]:
        return [f"{self.prefix}.{name}" for name in FAMILIES]


def record_key(event: LoggedEvent) -> bytes:
    return f"{event.app_id}/{event.conversation_id}".encode()


async def ensure_topics(bootstrap: str, topics: Topics) -> None:
    """Create the topics that are missing, with the configured partitions and retention
    (producers and consumer groups both call it: a group subscribed to a topic that does
    not exist yet would see it only at its next metadata refresh)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, num_partitions=topics.partitions,
                            replication_factor=topics.replication,
                            topic_configs={"retention.ms": str(int(
                                topics.retention.total_seconds() * 1000))})
                   for name in topics.all() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process's
                await admin.create_topics(missing)
            log.info("kafka topics created", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


class KafkaSink:
    def __init__(self, producer: AIOKafkaProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    @classmethod
    async def open(cls, bootstrap: str, topics: Topics) -> KafkaSink:
        """Create the topics that are missing, then start the producer."""
        await ensure_topics(bootstrap, topics)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    linger_ms=5, request_timeout_ms=15_000)
        await producer.start()
        return cls(producer, topics)

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        pending = [await self._producer.send(
            self._topics.of(event.type), event.payload, key=record_key(event),
            headers=[("caas-app", event.app_id.encode()),
                     ("caas-position", str(event.position).encode())])
            for event in events]
        await asyncio.gather(*pending)

    async def close(self) -> None:
        await self._producer.stop()
