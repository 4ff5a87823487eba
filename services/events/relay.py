"""The relay: from the event log (the transactional outbox every chat write records its
events in) to a sink such as an event bus, at least once.

A relay is a named consumer of the log with a cursor per app. It reads the events past
its cursor, hands them to its sink in position order, and moves the cursor only once the
sink has taken them. A crash between the two sends those events again on restart:
consumers may see an event twice (each has a stable name to de-duplicate by) but never
miss one. While the relay is registered, purging keeps what it has yet to take.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.core.aio import wait_set
from services.core.events import DomainEvent, EventBus
from services.core.health import Health
from services.core.ids import new_id
from services.core.metrics import RelayMeter
from services.events.log import EventLog, LoggedEvent, Opener, opened
from services.events.types import STREAM_ONLY

log = logging.getLogger("caas.relay")

BATCH = 500  # events per hand-over
POLL_SECONDS = 1.0  # how often to look without a wake
LEASE = timedelta(seconds=10)  # one process relays; another takes over this long after
RETRY_SECONDS = (0.5, 30.0)  # backoff after a failed hand-over: first, longest
GATHER_SECONDS = 0.005  # after a wake, let the writes committing with it join the round
# Woken rounds start at least this far apart: under load a round takes the events of
# many commits at once (one read, one hand-over, one cursor write for all of them).
SPACING_SECONDS = 0.02


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventSink(Protocol):
    async def send(self, events: Sequence[LoggedEvent]) -> None:
        """Take `events` (one app's, in position order) durably, or raise."""


class OpeningSink:
    """A sink that takes events with the sealed content of their payloads opened."""

    def __init__(self, sink: EventSink, open_payload: Opener) -> None:
        self._sink = sink
        self._open = open_payload

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        await self._sink.send(await opened(events, self._open))


class Relay:
    """One consumer of the log. Any number of processes may run it: a lease in the
    store lets one of them relay at a time, and another takes over when it stops
    renewing (a slow holder may overlap its successor: events may go twice, never
    missing)."""

    def __init__(self, events: EventLog, sink: EventSink, consumer: str,
                 batch: int = BATCH, now: Callable[[], datetime] = utc_now,
                 wants: Callable[[str], Awaitable[bool]] | None = None,
                 health: Health | None = None,
                 retry_seconds: tuple[float, float] = RETRY_SECONDS,
                 meter: RelayMeter | None = None,
                 spacing: float = SPACING_SECONDS) -> None:
        """`wants(app_id)`, if given, says whether the sink cares for an app's events at
        all: when not, the cursor jumps to the head without reading them (in the rounds
        over every app: one cursor write a poll, not one per wake). With
        `health`, failed rounds make the component `relay-<consumer>` down (logged once
        per change) instead of a logged stack each."""
        self._events = events
        self._sink = sink
        self._wants = wants
        self._consumer = consumer
        self._batch = batch
        self._now = now
        self._holder = new_id()
        self._held_until: datetime | None = None
        self._health = health
        self._retry = retry_seconds
        self._meter = meter
        self._spacing = spacing
        self._component = f"relay-{consumer}"
        if health is not None:
            health.register(self._component)

    async def start(self) -> None:
        """Register as a consumer: from now on purges wait for this relay."""
        await self._events.register(self._consumer)

    async def run_once(self, apps: Collection[str] | None = None) -> int:
        """Hand over everything the log holds past the cursors (of `apps` only, unless
        None); how many events."""
        sent = 0
        behind = await self._events.behind(self._consumer, apps)
        meter = self._meter
        if meter is not None and apps is None:  # a full round sees every app's lag
            meter.lag.set(sum(head - taken for _, taken, head in behind))
        for app_id, taken, head in behind:
            if self._wants is not None and not await self._wants(app_id):
                if apps is None:
                    await self._events.advance(self._consumer, app_id, head)
                    if meter is not None:
                        meter.lag.dec(head - taken)
                continue
            position = taken
            while position < head:
                events = await self._events.read(app_id, position, self._batch)
                if not events:
                    break
                kept = [e for e in events if e.type not in STREAM_ONLY]
                if kept:
                    await self._sink.send(kept)
                position = events[-1].position
                await self._events.advance(self._consumer, app_id, position)
                sent += len(events)
                if meter is not None:
                    meter.relayed.inc(len(events))
                    if apps is None:
                        meter.lag.dec(len(events))
        return sent

    async def step(self, apps: Collection[str] | None = None) -> int | None:
        """A round (over `apps`, or every app) if this relay holds (or takes) the lease:
        how many events went; None while another process runs the consumer."""
        now = self._now()
        # The lease is renewed once half of it has passed, not at every round (a write).
        if self._held_until is None or self._held_until - now < LEASE / 2:
            until = now + LEASE
            if not await self._events.lease(self._consumer, self._holder, now, until):
                if self._held_until is not None and self._meter is not None:
                    self._meter.lag.set(0)  # the holder reports it now, not this process
                self._held_until = None
                return None
            self._held_until = until
        return await self.run_once(apps)

    async def run(self, wake: Wake) -> None:
        """Relay until cancelled: the apps named by each `wake` (a write committed), every
        app at each poll and after a failure (with growing delays)."""
        await self.start()
        loop = asyncio.get_running_loop()
        delay = self._retry[0]
        apps: set[str] | None = None  # None: every app
        while True:
            began = loop.time()
            try:
                await self.step(apps)
                delay = self._retry[0]
                timeout = POLL_SECONDS
                failed = False
                if self._health is not None:
                    self._health.up(self._component)
            except Exception as error:
                if self._health is not None:
                    self._health.failed(self._component, error)
                else:
                    log.exception("relay failed; retrying",
                                  extra={"consumer": self._consumer, "retry_seconds": delay})
                timeout, delay = delay, min(delay * 2, self._retry[1])
                failed = True
            woken = await wait_set(wake.event, timeout)
            if woken:
                await asyncio.sleep(max(GATHER_SECONDS, began + self._spacing - loop.time()))
            named = wake.take()
            apps = named if woken and not failed else None


class Wake:
    """What wakes a relay: the apps whose logs grew since it last looked."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._apps: set[str] = set()

    @classmethod
    def on_commits(cls, bus: EventBus) -> Wake:
        """A wake named by every committed write to the log (events of a conversation)."""
        wake = cls()

        async def woken(event: DomainEvent) -> None:
            if event.conversation_id:
                wake.app(event.app_id)

        bus.subscribe(woken)
        return wake

    def app(self, app_id: str) -> None:
        self._apps.add(app_id)
        self.event.set()

    def take(self) -> set[str]:
        """The apps named since the last take (and clear)."""
        apps, self._apps = self._apps, set()
        self.event.clear()
        return apps
