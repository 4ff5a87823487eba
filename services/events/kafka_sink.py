"""The Kafka sink of the relay (aiokafka): each durable event, as its serialized
`caas.events.v1.Event`, on the topic of its family (`<prefix>.message`,
`<prefix>.reaction`, …), keyed by app and conversation so that one conversation's
events stay in order on one partition. A batch counts as taken once every record of it
is acknowledged by all in-sync replicas.

With tracing on, each event recorded in a trace goes in a PRODUCER span of that trace
(the request that recorded it is its parent), from the hand-over to the broker's
acknowledgement, and its record carries that span's `traceparent` (and `tracestate`)
header, for consumers to continue the trace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from services.core.settings import Settings
from services.core.tls import client_context
from services.core.tracing import current_headers
from services.events.log import LoggedEvent
from services.events.types import FAMILIES, family

log = logging.getLogger("caas.kafka")


@dataclass(frozen=True)
class KafkaBroker:
    """Where the Kafka brokers are, and how to reach them: in the clear, or over TLS
    with `tls` (a client context trusting the brokers' CA)."""

    bootstrap: str
    tls: ssl.SSLContext | None = None

    def options(self) -> dict[str, Any]:
        """The connection arguments of an aiokafka client."""
        if self.tls is None:
            return {"bootstrap_servers": self.bootstrap}
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SSL",
                "ssl_context": self.tls}


def kafka_broker(settings: Settings) -> KafkaBroker:
    assert settings.kafka_bootstrap
    return KafkaBroker(settings.kafka_bootstrap,
                       client_context(settings) if settings.kafka_tls else None)


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


async def ensure_topics(broker: KafkaBroker, topics: Topics) -> None:
    """Create the topics that are missing, with the configured partitions and retention
    (producers and consumer groups both call it: a group subscribed to a topic that does
    not exist yet would see it only at its next metadata refresh)."""
    admin = AIOKafkaAdminClient(**broker.options())
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


def record_headers(event: LoggedEvent) -> list[tuple[str, bytes]]:
    return [("caas-app", event.app_id.encode()),
            ("caas-position", str(event.position).encode())]


class KafkaSink:
    def __init__(self, producer: AIOKafkaProducer, topics: Topics,
                 tracer: Tracer | None = None) -> None:
        """With `tracer` (tracing on), records go out in spans (see the module)."""
        self._producer = producer
        self._topics = topics
        self._tracer = tracer

    @classmethod
    async def open(cls, broker: KafkaBroker, topics: Topics, tracer: Tracer | None = None
                   ) -> KafkaSink:
        """Create the topics that are missing, then start the producer."""
        await ensure_topics(broker, topics)
        producer = AIOKafkaProducer(**broker.options(), acks="all",
                                    linger_ms=5, request_timeout_ms=15_000)
        await producer.start()
        return cls(producer, topics, tracer)

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        if self._tracer is not None:
            await self._send_traced(events, self._tracer)
            return
        pending = [await self._producer.send(
            self._topics.of(event.type), event.payload, key=record_key(event),
            headers=record_headers(event))
            for event in events]
        await asyncio.gather(*pending)

    async def _send_traced(self, events: Sequence[LoggedEvent], tracer: Tracer) -> None:
        pending = []
        for event in events:
            topic = self._topics.of(event.type)
            key = record_key(event)
            headers = record_headers(event)
            parent = event.trace.context()
            if parent is None:  # recorded outside any trace
                pending.append(await self._producer.send(topic, event.payload, key=key,
                                                         headers=headers))
                continue
            span = tracer.start_span(f"send {topic}", parent, SpanKind.PRODUCER, attributes={
                "messaging.system": "kafka", "messaging.operation.type": "send",
                "messaging.operation.name": "send", "messaging.destination.name": topic,
                "messaging.kafka.message.key": key.decode(),
                "caas.event.type": event.type, "caas.event.position": event.position})
            headers += [(k, v.encode()) for k, v in current_headers(span).items()]
            try:
                sent = await self._producer.send(topic, event.payload, key=key,
                                                 headers=headers)
            except BaseException as error:
                _failed(span, error)
                raise
            sent.add_done_callback(lambda done, span=span: _acknowledged(span, done))
            pending.append(sent)
        await asyncio.gather(*pending)

    async def ping(self) -> None:
        """Ask the cluster for its metadata (raises KafkaError when no broker answers)."""
        await self._producer.client.fetch_all_metadata()

    async def close(self) -> None:
        await self._producer.stop()


def _failed(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _acknowledged(span: Span, sent: asyncio.Future[Any]) -> None:
    """End a record's span with the broker's answer."""
    if sent.cancelled():
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
        span.end()
        return
    error = sent.exception()
    if error is not None:
        _failed(span, error)
    else:
        metadata = sent.result()
        span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
        span.set_attribute("messaging.kafka.offset", metadata.offset)
        span.end()
