"""Webhook delivery in the background of a server process: the intake, fed by the
event log (embedded) or by a Kafka consumer group (with `kafka_bootstrap`), and the
dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.core.clock import Clock
from services.core.events import EventBus
from services.core.health import Health
from services.core.metrics import Metrics
from services.core.settings import Settings
from services.core.tracing import Tracing
from services.events.consumers import KafkaConsumerGroup
from services.events.kafka_sink import Topics, ensure_topics, kafka_broker
from services.events.log import EventLog, Opener, same_payload
from services.events.relay import OpeningSink, Relay, Wake
from services.webhooks.delivery import Deliverer
from services.webhooks.dispatch import CONCURRENCY, DeliveryUsage, Dispatcher, Intake
from services.webhooks.store import WebhookStore

log = logging.getLogger("caas.webhooks")

CONSUMER = "webhooks"  # the log consumer's name
KAFKA_GROUP = "caas.webhooks"


class WebhookWorker:
    def __init__(self, settings: Settings, store: WebhookStore, events: EventLog,
                 bus: EventBus, clock: Clock, health: Health | None = None,
                 metrics: Metrics | None = None, tracing: Tracing | None = None,
                 open_payload: Opener = same_payload, usage: DeliveryUsage | None = None
                 ) -> None:
        """With `tracing` on, each attempt is a span of the trace its event was recorded
        in (read back from the log), and Kafka records are consumed in spans. Events
        from the log are taken with `open_payload` opening their sealed content (Kafka's
        records are in clear already)."""
        timeout = settings.webhook_timeout
        tracing = tracing or Tracing()
        tracer = tracing.tracer("caas.webhooks")
        self._deliverer = Deliverer(timeout.total_seconds(),
                                    public_only=not settings.webhook_allow_insecure,
                                    connections=CONCURRENCY, tracer=tracer,
                                    traces=events.trace if tracer is not None else None)
        self.dispatcher = Dispatcher(store, self._deliverer, clock, timeout=timeout,
                                     retry_delays=settings.webhook_retry_delays,
                                     health=health,
                                     meter=metrics.webhooks() if metrics else None,
                                     usage=usage)
        intake = Intake(store, clock, self.dispatcher.wake)
        self._tasks = [asyncio.create_task(self.dispatcher.run(), name="webhook dispatcher")]
        if settings.kafka_bootstrap:
            topics = Topics(settings.kafka_topic_prefix, settings.kafka_partitions,
                            settings.kafka_replication, settings.kafka_retention)
            broker = kafka_broker(settings)

            async def consume() -> None:
                await ensure_topics(broker, topics)
                await KafkaConsumerGroup(broker, KAFKA_GROUP, topics.all(), intake,
                                         tracer=tracing.tracer("caas.kafka")).run()

            self._tasks.append(asyncio.create_task(self._consume(consume),
                                                   name="webhook intake (kafka)"))
        else:
            relay = Relay(events, OpeningSink(intake, open_payload), CONSUMER, now=clock.now,
                          wants=intake.wants, health=health,
                          meter=metrics.relay("webhooks") if metrics else None)
            self._tasks.append(asyncio.create_task(relay.run(Wake.on_commits(bus)),
                                                   name="webhook intake"))

    @staticmethod
    async def _consume(consume: Callable[[], Awaitable[None]]) -> None:
        """Run the consumer group, joining again (with growing delays) when Kafka is
        not reachable yet or goes away."""
        delay = 0.5
        while True:
            try:
                await consume()
            except Exception as error:
                log.warning("webhook intake from kafka failed; retrying",
                            extra={"error": repr(error), "retry_seconds": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._deliverer.close()
