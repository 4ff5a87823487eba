"""Counting the event log: a consumer of its own (a relay named `analytics`, with a
cursor per app) whose sink writes each batch's counts in one transaction with the
position they reach. The relay hands a batch over at least once; the store skips what
its position says it has counted, so every event counts exactly once. Nothing is
written on the send path: the counts trail the log by a relay round (about a second).

Only the events' ids, types and times are read (and a media's size): payloads stay
sealed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC

from caas.events.v1 import events_pb2

from services.analytics.models import COUNTED, Fact
from services.analytics.store import AnalyticsStore, LiveApps
from services.core.clock import Clock
from services.core.health import Health
from services.core.metrics import RelayMeter
from services.events.log import EventLog, LoggedEvent
from services.events.relay import Relay, Wake

CONSUMER = "analytics"
# Rounds start at least this far apart: under load, one transaction counts a quarter of
# a second of an app's events (the counts trail the writes by about that much more).
SPACING_SECONDS = 0.25


def fact_of(event: LoggedEvent) -> Fact:
    size = 0
    if event.type == "media.ready":
        size = events_pb2.Event.FromString(event.payload).media_ready.size_bytes
    moment = event.create_time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Fact(event.position, event.type, int(moment.timestamp()), event.user_id,
                event.conversation_id, size)


def facts_of(events: Sequence[LoggedEvent]) -> list[Fact]:
    """What analytics counts of `events`."""
    return [fact_of(e) for e in events if e.type in COUNTED]


class AnalyticsSink:
    """The relay's sink: a batch of one app's events, counted in one transaction. With
    `live`, the events of an app that is gone or deleted are not counted."""

    def __init__(self, store: AnalyticsStore, live: LiveApps | None = None) -> None:
        self._store = store
        self._live = live

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        facts = facts_of(events)
        if not facts:  # a batch of nothing counted leaves the store as it is
            return
        app_id = events[0].app_id
        if self._live is not None and not await self._live([app_id]):
            return
        await self._store.apply_events(app_id, facts, events[-1].position)


class LogCounter:
    """The consumer (any number of processes may run it: one at a time holds its
    lease)."""

    def __init__(self, events: EventLog, store: AnalyticsStore, clock: Clock,
                 health: Health | None = None, meter: RelayMeter | None = None,
                 consumer: str = CONSUMER, live: LiveApps | None = None) -> None:
        self.relay = Relay(events, AnalyticsSink(store, live), consumer, now=clock.now,
                           health=health, meter=meter, spacing=SPACING_SECONDS)

    async def run(self, wake: Wake, ok: Callable[[], None]) -> None:
        """Count until cancelled (registering first: purges wait for the counts)."""
        await self.relay.start()
        ok()
        await self.relay.run(wake)
