"""What one server process tells the others about real time.

Three kinds of message: *events* (what a commit recorded in an app's log, as logged:
positions, metadata and the encoded bytes every stream sends), *wake* (an app has new
events in the log: read them — for commits too large to carry) and *signal* (an
ephemeral item — typing, presence — for the streams of some conversations). With one
process they go straight to this process's hub; with `CAAS_REDIS_URL` they also go
through one Redis pub/sub channel to every process, so that no process reads back the
events another has just written.

The log stays the record: a feed dispatches carried events only while they continue
its cursor, and reads the log after a gap, so a lost message costs at most the feeds'
poll interval, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from services.core.clock import from_ms, to_ms
from services.core.health import Background, Health
from services.core.ids import new_id
from services.core.tracing import TraceHeaders
from services.events.log import LoggedEvent
from services.realtime.hub import Hub

CHANNEL = "caas:realtime"
LISTENER = "realtime-fanout"  # the subscription's component in the process's health
PUBLISHER = "realtime-fanout-publish"
# Messages for other processes go at most once per this long, so that under load one
# message covers every commit of the moment; one after a quiet spell goes at once.
# This process's feeds always get a commit's events at once.
WAKE_DELAY = 0.002
# A commit's events travel to the other processes up to this many bytes in all; the
# events of a larger one (a bulk import) are read from the log there, after a wake.
MAX_CARRIED = 256 * 1024


class Fanout(Protocol):
    def deliver(self, events: Sequence[LoggedEvent]) -> None:
        """The events a commit recorded in one app's log (called after each commit)."""

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        """Deliver an ephemeral item to the streams of the conversations' members."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalFanout:
    """One process: straight to its hub."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def deliver(self, events: Sequence[LoggedEvent]) -> None:
        self._hub.deliver(events[0].app_id, events)

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        self._hub.signal(app_id, conversation_ids, item, sender)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def encode_events(events: Sequence[LoggedEvent]) -> bytes:
    """Logged events as bytes: a JSON list of their fields, then their payloads."""
    fields = [[e.position, e.conversation_id, e.type, e.user_id, e.private,
               to_ms(e.create_time), e.joiners, e.trace.traceparent, e.trace.tracestate,
               len(e.payload)] for e in events]
    head = json.dumps(fields, separators=(",", ":")).encode()
    return len(head).to_bytes(4, "big") + head + b"".join(e.payload for e in events)


def decode_events(app_id: str, data: bytes) -> list[LoggedEvent]:
    """The events of `encode_events`; ValueError (or one of its kind) if malformed."""
    size = int.from_bytes(data[:4], "big")
    offset = 4 + size
    events = []
    for (position, conversation_id, kind, user_id, private, at, joiners, traceparent,
         tracestate, length) in json.loads(data[4:offset]):
        payload = data[offset:offset + length]
        if len(payload) != length:
            raise ValueError("truncated events")
        offset += length
        events.append(LoggedEvent(app_id, position, conversation_id, kind, user_id, private,
                                  from_ms(at), payload, tuple(joiners),
                                  TraceHeaders.of(traceparent, tracestate)))
    return events


def _encode(origin: str, kind: str, app_ids: Sequence[str],
            conversation_ids: Sequence[str] = (),
            sender: str = "", item: bytes = b"") -> bytes:
    # Ids never contain "\n" or "," (the contract's patterns), so a header of lines works.
    header = "\n".join((origin, kind, ",".join(app_ids), ",".join(conversation_ids), sender))
    return header.encode() + b"\n" + item


class RedisFanout:
    """Many processes: this process's hub at once, the others through Redis.

    Commits are coalesced: at most one round of messages per `WAKE_DELAY`, one message
    per app with the events of its commits since the last round.
    """

    def __init__(self, hub: Hub, redis: Redis, listener: Redis, background: Background,
                 health: Health) -> None:
        """`redis` publishes (with a command timeout); `listener` holds the
        subscription (without one: it waits for messages)."""
        self._hub = hub
        self._redis = redis
        self._listener = listener
        self._background = background
        self._health = health
        health.register(PUBLISHER)
        self._origin = new_id()
        self._committed: dict[str, list[LoggedEvent]] = {}  # by app, since the last round
        self._last_wake = 0.0  # loop time of the last round sent
        self._sending: set[asyncio.Task[None]] = set()

    def deliver(self, events: Sequence[LoggedEvent]) -> None:
        app_id = events[0].app_id
        self._hub.deliver(app_id, events)
        if not self._committed:
            loop = asyncio.get_running_loop()
            # At once when quiet; under load, one round per WAKE_DELAY.
            wait = self._last_wake + WAKE_DELAY - loop.time()
            if wait > 0:
                loop.call_later(wait, self._flush)
            else:
                loop.call_soon(self._flush)
        self._committed.setdefault(app_id, []).extend(events)

    def _flush(self) -> None:
        committed, self._committed = self._committed, {}
        self._last_wake = asyncio.get_running_loop().time()
        woken = []
        for app_id, events in committed.items():
            if sum(len(e.payload) for e in events) > MAX_CARRIED:
                woken.append(app_id)
            else:
                self._publish(_encode(self._origin, "events", [app_id],
                                      item=encode_events(events)))
        if woken:
            self._publish(_encode(self._origin, "wake", woken))

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        self._hub.signal(app_id, conversation_ids, item, sender)
        self._publish(_encode(self._origin, "signal", [app_id], conversation_ids, sender, item))

    def _publish(self, message: bytes) -> None:
        task = asyncio.create_task(self._send(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, message: bytes) -> None:
        try:
            await self._redis.publish(CHANNEL, message)
        except Exception as error:  # other processes still read the log on their next poll
            self._health.down(PUBLISHER, f"{type(error).__name__}: {error}")
        else:
            self._health.up(PUBLISHER)

    def _receive(self, message: bytes) -> None:
        header = message.split(b"\n", 5)
        if len(header) != 6:
            return
        origin, kind, apps, conversations, sender = (part.decode() for part in header[:5])
        if origin == self._origin:
            return
        if kind == "events":
            try:
                events = decode_events(apps, header[5])
            except (ValueError, TypeError, KeyError):  # not ours to trust: read the log
                self._hub.wake(apps)
            else:
                if events:
                    self._hub.deliver(apps, events)
        elif kind == "wake":
            for app_id in apps.split(","):
                self._hub.wake(app_id)
        elif kind == "signal":
            self._hub.signal(apps, conversations.split(","), header[5], sender)

    async def start(self) -> None:
        self._background.start(LISTENER, self._listen)

    async def _listen(self, ok: Callable[[], None]) -> None:
        """Receive the other processes' messages until Redis fails (then the
        supervisor subscribes again, with growing delays, until it works)."""
        pubsub = self._listener.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            ok()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=None)
                if message is not None:
                    self._receive(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for task in list(self._sending):
            with contextlib.suppress(Exception):
                await task
        await self._listener.aclose()
