"""The event log: every durable event of an app, in commit order, for resuming streams.

Stores record the events of a write in the write's own transaction (`Recorder.emit`),
so an event exists exactly when its change does; the log numbers an app's events
1, 2, 3 … without gaps in commit order (its head counter is written by every
recording transaction, which serialises them). After the commit the events go to
the in-process bus. With tracing on, each event also keeps the W3C trace context of the
request that recorded it (empty when there was none), for the relays and webhook
deliveries that read it later to continue that trace.

The log also keeps who belonged to which conversation between which positions
(membership intervals), so a stream replaying from an old position shows a user the
events of the conversations they were in *at the time*, including their own removal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from services.core.events import DomainEvent
from services.core.tracing import NO_TRACE, TraceHeaders


class Encoder(Protocol):
    def __call__(self, event: DomainEvent, position: int) -> bytes:
        """The event as the stream sends it (a serialized caas.events.v1.Event)."""
        ...


# Records an event as part of the running transaction.
Emit = Callable[[DomainEvent], None]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    app_id: str
    position: int
    conversation_id: str
    type: str
    user_id: str
    private: bool  # for the streams of `user_id` only
    create_time: datetime
    payload: bytes
    joiners: tuple[str, ...] = ()  # the users it makes members
    trace: TraceHeaders = NO_TRACE  # of the request that recorded it (tracing on)


# What opens the sealed content of a payload (services/messages/sealing.py), where
# events leave the log for streams, webhooks, the index and Kafka.
Opener = Callable[[bytes], Awaitable[bytes]]


async def same_payload(payload: bytes) -> bytes:
    return payload


async def opened(events: Sequence[LoggedEvent], open_payload: Opener) -> list[LoggedEvent]:
    """The events with the sealed content of their payloads opened."""
    out = []
    for event in events:
        payload = await open_payload(event.payload)
        out.append(event if payload is event.payload else replace(event, payload=payload))
    return out


@dataclass(frozen=True, slots=True)
class Head:
    """An app's log: its id (new when the log is new), last position, and the last
    position purged (events up to it are gone)."""

    log_id: str
    position: int
    purged_through: int


Interval = tuple[int, int | None]  # membership from position, to position (None: still)


def joiners(event: DomainEvent) -> tuple[str, ...]:
    """The users an event makes members."""
    if event.type == "conversation.created":
        return tuple(u for u in event.data.get("members", "").split(",") if u)
    return (event.user_id,) if event.type == "member.added" else ()


# Event types that end memberships (besides those that start some: `joiners`).
LEAVING = frozenset({"member.removed", "conversation.deleted"})


def leaves(event: LoggedEvent | DomainEvent, user_id: str) -> bool:
    """Whether the event ends `user_id`'s membership (they still see the event)."""
    return event.type == "conversation.deleted" or (
        event.type == "member.removed" and event.user_id == user_id)


# Told the events of each commit, in position order, as soon as it is known committed.
CommitListener = Callable[[Sequence["LoggedEvent"]], None]


class EventLog(Protocol):
    async def migrate(self) -> None: ...

    def watch_commits(self, listener: CommitListener) -> None:
        """Tell `listener` the events of every commit of this process (so that the
        streams get them without reading them back)."""

    async def head(self, app_id: str) -> Head:
        """The app's head, creating the log if the app has none yet."""

    async def appended(self) -> int:
        """Events ever appended, over every app (the sum of the heads): for metrics."""

    async def read(self, app_id: str, after: int, limit: int,
                   conversations: Sequence[str] | None = None) -> list[LoggedEvent]:
        """Events after `after` in position order: all of the app's, or only those of
        `conversations`."""

    async def memberships(self, app_id: str, user_id: str, after: int
                          ) -> Mapping[str, list[Interval]]:
        """The user's membership intervals that reach past `after`, by conversation."""

    async def redact(self, app_id: str, types: Collection[str],
                     redact: Callable[[bytes], bytes | None]) -> list[int]:
        """Replace the payload of each of the app's events of `types` by
        `redact(payload)`, unless that is None (erasure); the positions changed."""

    async def purge(self, before: datetime) -> int:
        """Drop the events recorded before `before` (and intervals closed by then), in
        every app, but none that a registered consumer has yet to take; how many events
        went. A consumer that has not held its lease since `before` (switched off: Kafka
        no longer configured, say) holds nothing back any more."""

    async def purge_types(self, types: Collection[str], before: datetime) -> int:
        """Drop the events of `types` recorded before `before` (ephemeral ones: WebRTC
        signals), in every app, whatever the consumers (who never take them); how many
        went. A stream resuming from before them skips them."""

    async def register(self, consumer: str) -> None:
        """Make `consumer` (a relay to a bus, say) one whose cursor holds back purges,
        from the beginning of every app's log."""

    async def behind(self, consumer: str, apps: Collection[str] | None = None
                     ) -> list[tuple[str, int, int]]:
        """(app id, the consumer's position, the head's position) of every app (of `apps`
        only, unless None) whose log goes past the consumer's position."""

    async def advance(self, consumer: str, app_id: str, position: int) -> None:
        """Record that `consumer` has taken the app's events up to `position` (a cursor
        never moves back)."""

    async def trace(self, app_id: str, position: int) -> TraceHeaders:
        """The trace context recorded with the app's event at `position` (NO_TRACE if
        none was, or the event is gone)."""

    async def lease(self, consumer: str, holder: str, now: datetime, until: datetime
                    ) -> bool:
        """Take or renew the right to run `consumer` until `until`: True if `holder` has
        it (it had it, or nobody did, or the last holder's lease ran out by `now`)."""


def visible(intervals: Mapping[str, list[Interval]], event: LoggedEvent, user_id: str) -> bool:
    """Whether `user_id` sees `event`, given their membership intervals."""
    if event.private and event.user_id != user_id:
        return False
    if event.private and not event.conversation_id:
        return True  # the user's own event of the whole app (an app-wide restriction)
    for start, end in intervals.get(event.conversation_id, ()):
        if start <= event.position and (end is None or event.position <= end):
            return True
    return False


def follow(intervals: dict[str, list[Interval]], event: LoggedEvent, user_id: str) -> None:
    """Update `user_id`'s intervals with a membership event (idempotent: the intervals
    may already include it)."""
    spans = intervals.get(event.conversation_id, [])
    if user_id in event.joiners:
        if not any(s <= event.position and (e is None or event.position <= e)
                   for s, e in spans):
            intervals[event.conversation_id] = [*spans, (event.position, None)]
    elif spans and leaves(event, user_id):
        intervals[event.conversation_id] = [
            (s, event.position if e is None and s <= event.position else e) for s, e in spans]
