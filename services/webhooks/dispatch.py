"""From durable events to webhook deliveries.

`Intake` is a consumer of the events (the log's or Kafka's): for each event it queues
one delivery per endpoint of the app that wants it, in the store, and returns — it
never waits for a receiver. `Dispatcher` (one per process; they share the work through
claims in the store) sends the deliveries that are due, each endpoint with at most
`PER_WEBHOOK` in flight, so a slow or dead endpoint holds back only its own deliveries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from caas.events.v1 import events_pb2
from google.protobuf import json_format

from services.core.aio import wait_set
from services.core.clock import Clock
from services.core.health import Health
from services.core.ids import new_id
from services.core.metrics import WebhookMeter
from services.events.log import LoggedEvent
from services.webhooks.delivery import Attempt, Deliverer, next_delay
from services.webhooks.models import Delivery, DeliveryAttempt, Webhook
from services.webhooks.store import WebhookStore

log = logging.getLogger("caas.webhooks")

CONCURRENCY = 64  # deliveries in flight per process
PER_WEBHOOK = 4  # deliveries in flight per endpoint, over all processes
POLL_SECONDS = 1.0  # how often to look for due deliveries without a wake
CLAIM_MARGIN = timedelta(seconds=5)  # a claim outlives its attempt's timeout by this
ALL_WEBHOOKS = 10_000  # more than an app may have
BREAK_AFTER = 5  # failed attempts in a row (seen by one process) that block an endpoint
BLOCK_SECONDS = (5.0, 300.0)  # the first block, doubling with each failure, up to this
# The error of an attempt that failed on our side (a bug): no detail reaches the app;
# the server log has the traceback under the attempt's id.
INTERNAL_ERROR = "internal error (the server log has it under this attempt's id)"


def event_body(event: events_pb2.Event) -> bytes:
    """The event as a delivery's JSON body (lowerCamelCase, as the JSON API)."""
    return json.dumps(json_format.MessageToDict(event), separators=(",", ":")).encode()


class Intake:
    """Queues deliveries for the endpoints that want each event. Fed by the event log
    (`send`: a relay sink, one app's events at a time, read together) or by Kafka
    (`__call__`: one event at a time)."""

    def __init__(self, store: WebhookStore, clock: Clock, wake: Callable[[], None]) -> None:
        self._store = store
        self._clock = clock
        self._wake = wake

    async def wants(self, app_id: str) -> bool:
        """Whether the app has endpoints (the relay skips the events of one that has
        none without reading them)."""
        return bool(await self._store.list_webhooks(app_id, 1, None))

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        if not events:
            return
        hooks = await self._store.list_webhooks(events[0].app_id, ALL_WEBHOOKS, None)
        if hooks:
            await self._enqueue(hooks, [events_pb2.Event.FromString(e.payload) for e in events])

    async def __call__(self, event: events_pb2.Event) -> None:
        app_id = event.name.split("/")[1]
        hooks = await self._store.list_webhooks(app_id, ALL_WEBHOOKS, None)
        if hooks:
            await self._enqueue(hooks, [event])

    async def _enqueue(self, hooks: Sequence[Webhook], events: Sequence[events_pb2.Event]
                       ) -> None:
        now = self._clock.now()
        deliveries = []
        for event in events:
            wanting = [h for h in hooks if h.wants(event.type)]
            if wanting:
                body = event_body(event)
                position = int(event.name.rsplit("/", 1)[1])
                deliveries += [Delivery(h.app_id, h.webhook_id, event.name, event.type,
                                        event.conversation, position, body, 0, now, now)
                               for h in wanting]
        if deliveries:
            await self._store.enqueue(deliveries)
            self._wake()


CLAIMS = "webhook-dispatcher"  # its component in the process's health

class DeliveryUsage(Protocol):
    """Told of every attempt's outcome (usage analytics: services/analytics)."""

    def delivered(self, app_id: str, outcome: str, dead: bool) -> None: ...


def outcome(result: Attempt) -> str:
    """`delivered`, `rejected` (the endpoint answered, not 2xx) or `unreachable`."""
    if result.ok:
        return "delivered"
    return "rejected" if result.status_code else "unreachable"


class Dispatcher:
    def __init__(self, store: WebhookStore, deliverer: Deliverer, clock: Clock, *,
                 timeout: timedelta, retry_delays: Sequence[timedelta],
                 rng: random.Random | None = None, health: Health | None = None,
                 meter: WebhookMeter | None = None, usage: DeliveryUsage | None = None
                 ) -> None:
        """With `health`, failed claims make the component `webhook-dispatcher` down
        (logged once per change) instead of a logged stack each; with `meter` (and
        `usage`), attempts are counted by outcome."""
        self._store = store
        self._meter = meter
        self._usage = usage
        self._health = health
        if health is not None:
            health.register(CLAIMS)
        self._deliverer = deliverer
        self._clock = clock
        self._claim_for = timeout + CLAIM_MARGIN
        self._delays = [d.total_seconds() for d in retry_delays]
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failing: dict[tuple[str, str], int] = {}  # endpoint → failures in a row

    def wake(self) -> None:
        """Look for due deliveries now (new ones were queued, or one finished)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        try:
            while True:
                self._wake.clear()
                free = CONCURRENCY - len(self._in_flight)
                claimed: list[tuple[Delivery, Webhook]] = []
                if free > 0:
                    try:
                        now = self._clock.now()
                        claimed = await self._store.claim(now, now + self._claim_for, free,
                                                          PER_WEBHOOK)
                    except Exception as error:
                        if self._health is None:
                            log.exception("claiming webhook deliveries failed")
                        else:
                            self._health.failed(CLAIMS, error)
                    else:
                        if self._health is not None:
                            self._health.up(CLAIMS)
                for delivery, webhook in claimed:
                    task = asyncio.create_task(self.deliver(delivery, webhook))
                    self._in_flight.add(task)
                    task.add_done_callback(self._done)
                if claimed and len(claimed) == free:
                    continue  # maybe more are due
                await wait_set(self._wake, POLL_SECONDS)
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def deliver(self, delivery: Delivery, webhook: Webhook) -> None:
        """One attempt (to `webhook` as claimed with the delivery) and its outcome. Any
        failure of the attempt is a failed attempt on the retry schedule, even one of
        ours (a bug); only a failure to record it (the store) leaves the delivery
        claimed: it is tried again when the claim runs out."""
        try:
            now = self._clock.now()
            attempt_id = new_id()
            result = await self._attempt(delivery, webhook, now, attempt_id)
            await self._finish(delivery, attempt_id, result, now)
            await self._track(delivery, result.ok)
        except Exception:
            log.exception("webhook delivery failed", extra={"event": delivery.event})

    async def _attempt(self, delivery: Delivery, webhook: Webhook, now: datetime,
                       attempt_id: str) -> Attempt:
        """The deliverer's attempt; an unexpected exception (not a receiver's doing,
        which the deliverer reports as an outcome) becomes a failed attempt whose error
        says only where to look: the traceback goes to the server log, once, under the
        attempt's id."""
        started = time.perf_counter()
        try:
            return await self._deliverer.attempt(
                webhook.url, webhook.secrets(now), delivery.event, delivery.body,
                int(now.timestamp()))
        except Exception:
            log.exception("webhook delivery attempt failed unexpectedly", extra={
                "event": delivery.event, "webhook": webhook.webhook_id,
                "app": delivery.app_id, "attempt": attempt_id})
            return Attempt(False, 0, time.perf_counter() - started, INTERNAL_ERROR, "")

    async def _finish(self, delivery: Delivery, attempt_id: str, result: Attempt,
                      started: datetime) -> None:
        now = self._clock.now()
        number = delivery.failures + 1
        attempt = DeliveryAttempt(
            delivery.app_id, delivery.webhook_id, attempt_id, delivery.event,
            delivery.event_type, number, result.ok, result.status_code, result.error,
            round(result.latency_seconds * 1000), result.response_excerpt, started)
        retry_at, dead = None, None
        if not result.ok:
            delay = next_delay(number, self._delays, self._rng)
            if delay is None:
                dead = delivery.buried(number, result.error, now)
            else:
                retry_at = now + timedelta(seconds=delay)
        await self._store.finish(delivery, attempt, retry_at, dead)
        if self._meter is not None:
            self._meter.attempted(result.ok, result.status_code, dead is not None)
        if self._usage is not None:
            self._usage.delivered(delivery.app_id, outcome(result), dead is not None)

    async def _track(self, delivery: Delivery, ok: bool) -> None:
        """Block an endpoint that keeps failing, for longer and longer: its deliveries
        wait (their own retry schedules pause) instead of costing an attempt each, so a
        dead endpoint takes little from the others. A success ends it."""
        endpoint = (delivery.app_id, delivery.webhook_id)
        if ok:
            self._failing.pop(endpoint, None)
            return
        failures = self._failing[endpoint] = self._failing.get(endpoint, 0) + 1
        if failures >= BREAK_AFTER:
            doublings = min(failures - BREAK_AFTER, 16)
            seconds = min(BLOCK_SECONDS[0] * 2 ** doublings, BLOCK_SECONDS[1])
            await self._store.block_webhook(*endpoint,
                                            self._clock.now() + timedelta(seconds=seconds))
