"""What one server process tells the others about real time.

Two kinds of message: *wake* (an app has new events in the log: read them) and
*signal* (an ephemeral item — typing, presence — for the streams of some
conversations). With one process they go straight to this process's hub; with
`CAAS_REDIS_URL` they also go through one Redis pub/sub channel to every process.
Durable events never travel this way: each process reads them from the event log, so
a lost wake costs at most the feeds' poll interval, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from services.core.health import Background, Health
from services.core.ids import new_id
from services.realtime.hub import Hub

CHANNEL = "caas:realtime"
LISTENER = "realtime-fanout"  # the subscription's component in the process's health
PUBLISHER = "realtime-fanout-publish"
# Wakes for other processes go at most once per this long, so that under load one
# message (and one log read in each process) covers every commit of the moment; a
# wake after a quiet spell goes at once. This process's feeds always wake at once.
WAKE_DELAY = 0.002


class Fanout(Protocol):
    def wake(self, app_id: str) -> None:
        """The app's log has new events (called after each commit)."""

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        """Deliver an ephemeral item to the streams of the conversations' members."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalFanout:
    """One process: straight to its hub."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def wake(self, app_id: str) -> None:
        self._hub.wake(app_id)

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        self._hub.signal(app_id, conversation_ids, item, sender)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _encode(origin: str, kind: str, app_ids: Sequence[str],
            conversation_ids: Sequence[str] = (),
            sender: str = "", item: bytes = b"") -> bytes:
    # Ids never contain "\n" or "," (the contract's patterns), so a header of lines works.
    header = "\n".join((origin, kind, ",".join(app_ids), ",".join(conversation_ids), sender))
    return header.encode() + b"\n" + item


class RedisFanout:
    """Many processes: this process's hub at once, the others through Redis.

    Wakes are coalesced: at most one message per `WAKE_DELAY`, naming every app that
    changed.
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
        self._woken: set[str] = set()
        self._last_wake = 0.0  # loop time of the last wake sent
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self, app_id: str) -> None:
        self._hub.wake(app_id)
        if not self._woken:
            loop = asyncio.get_running_loop()
            # At once when quiet; under load, one message per WAKE_DELAY.
            wait = self._last_wake + WAKE_DELAY - loop.time()
            if wait > 0:
                loop.call_later(wait, self._flush_wakes)
            else:
                loop.call_soon(self._flush_wakes)
        self._woken.add(app_id)

    def _flush_wakes(self) -> None:
        apps, self._woken = sorted(self._woken), set()
        self._last_wake = asyncio.get_running_loop().time()
        self._publish(_encode(self._origin, "wake", apps))

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
        if kind == "wake":
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
