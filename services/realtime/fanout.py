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
import logging
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.core.ids import new_id
from services.realtime.hub import Hub

log = logging.getLogger("caas.realtime")

CHANNEL = "caas:realtime"
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

    def __init__(self, hub: Hub, redis: Redis) -> None:
        self._hub = hub
        self._redis = redis
        self._origin = new_id()
        self._woken: set[str] = set()
        self._last_wake = 0.0  # loop time of the last wake sent
        self._sending: set[asyncio.Task[None]] = set()
        self._listening: asyncio.Task[None] | None = None

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
        except Exception:  # other processes still read the log on their next poll
            log.warning("publishing to Redis failed", exc_info=True)

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
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        self._listening = asyncio.create_task(self._listen(pubsub), name="realtime fanout")

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=None)
                    if message is not None:
                        self._receive(message["data"])
                except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                    log.warning("Redis fan-out interrupted: %s; reconnecting", error)
                    await asyncio.sleep(1)
                    await pubsub.subscribe(CHANNEL)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        for task in list(self._sending):
            with contextlib.suppress(Exception):
                await task
