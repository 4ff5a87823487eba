"""Consumers of durable events inside CAAS (webhooks now; search, analytics and
metering later): a handler called with each `caas.events.v1.Event`, at least once, in
order per conversation, that raises to have the event again.

Two adapters behind one shape:
- `log_consumer`: embedded default. The consumer reads the event log itself with a
  cursor of its own (a `Relay` whose sink is the handler); the cursor moves only after
  the handler returned.
- `KafkaConsumerGroup`: with Kafka, a consumer group on the event topics; offsets are
  committed only after the handler returned for every record before them. With tracing
  on, a record that carries a `traceparent` header is handled in a CONSUMER span of
  that trace (the record's producer span is its parent).

(The webhook intake reads the log in batches instead — a `Relay` with itself as the
sink — so that an app without endpoints costs one read per batch, not per event.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from caas.events.v1 import events_pb2
from opentelemetry.trace import SpanKind, Tracer

from services.core.tracing import TraceHeaders
from services.events.kafka_sink import KafkaBroker
from services.events.log import EventLog, LoggedEvent
from services.events.relay import Relay

log = logging.getLogger("caas.consumers")

Handler = Callable[[events_pb2.Event], Awaitable[None]]
RETRY_SECONDS = (0.5, 30.0)  # after a handler failure: first delay, longest


class HandlerSink:
    """The relay sink of a log consumer: the handler, event by event."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        for event in events:
            await self._handler(events_pb2.Event.FromString(event.payload))


def log_consumer(events: EventLog, name: str, handler: Handler) -> Relay:
    """A consumer that reads the event log with its own cursor (run with `.run(wake)`).
    A failing handler stops the batch; it starts again from the failed event."""
    return Relay(events, HandlerSink(handler), name)


class KafkaConsumerGroup:
    def __init__(self, broker: KafkaBroker, group: str, topics: Sequence[str],
                 handler: Handler, session_timeout_ms: int = 10_000,
                 tracer: Tracer | None = None) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics, **broker.options(), group_id=group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms)
        self._group = group
        self._handler = handler
        self._tracer = tracer

    async def run(self) -> None:
        """Consume until cancelled."""
        await self._consumer.start()
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=1000)
                for partition, records in batches.items():
                    for record in records:
                        if self._tracer is not None:
                            await self._handle_traced(record, self._tracer)
                        else:
                            await self._handle(events_pb2.Event.FromString(record.value))
                    await self._consumer.commit({partition: records[-1].offset + 1})
        finally:
            await self._consumer.stop()

    async def _handle_traced(self, record: ConsumerRecord[bytes, bytes], tracer: Tracer
                             ) -> None:
        """`_handle` in a span, child of the record's `traceparent`, if it has one."""
        event = events_pb2.Event.FromString(record.value)
        parent = TraceHeaders.found_in(record.headers).context()
        if parent is None:
            await self._handle(event)
            return
        with tracer.start_as_current_span(
                f"process {record.topic}", parent, SpanKind.CONSUMER, attributes={
                    "messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.consumer.group.name": self._group,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "caas.event.type": event.type}):
            await self._handle(event)

    async def _handle(self, event: events_pb2.Event) -> None:
        """The handler until it succeeds: later events of the partition wait (their
        order matters more than their speed)."""
        delay = RETRY_SECONDS[0]
        while True:
            try:
                await self._handler(event)
                return
            except Exception:
                log.exception("event handler failed; retrying",
                              extra={"group": self._group, "event": event.name,
                                     "retry_seconds": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_SECONDS[1])
