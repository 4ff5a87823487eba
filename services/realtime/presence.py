"""Who is connected, per device, and what that makes a user: online, away, offline.

A user is online if any connected device is online, away if every connected device
is away, offline (with the time the last one left) when none is connected. The
embedded `PresenceBoard` knows this process's streams; `RedisPresence` shares the
devices of every process through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core.clock import from_ms, to_ms
from services.core.health import Health
from services.core.ids import new_id

COMPONENT = "presence-redis"  # its component in the process's health


class Status(enum.IntEnum):
    """Values of caas.realtime.v1.Presence.Status."""

    OFFLINE = 1
    ONLINE = 2
    AWAY = 3


@dataclass(frozen=True, slots=True)
class Presence:
    user_id: str
    status: Status
    last_seen: datetime | None


def combine(user_id: str, statuses: Iterable[Status], last_seen: datetime | None
            ) -> Presence:
    present = set(statuses)
    if not present:
        return Presence(user_id, Status.OFFLINE, last_seen)
    return Presence(user_id, Status.ONLINE if Status.ONLINE in present else Status.AWAY, None)


class Presences(Protocol):
    async def get(self, app_id: str, user_id: str) -> Presence: ...

    async def get_many(self, app_id: str, user_ids: list[str]) -> list[Presence]: ...

    async def connect(self, app_id: str, user_id: str, device_id: str) -> bool:
        """A stream of the device opened; whether the user's presence changed."""

    async def disconnect(self, app_id: str, user_id: str, device_id: str, now: datetime
                         ) -> bool:
        """A stream of the device closed; whether the user's presence changed."""

    async def connected(self, app_id: str, user_id: str, device_id: str) -> bool:
        """Whether a stream of the device is open (on any process)."""

    async def set(self, app_id: str, user_id: str, device_id: str, status: Status) -> bool:
        """Set a connected device's status (every device of the user when `device_id` is
        empty); whether the user's presence changed."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _Devices:
    """This process's connected devices: streams open and status, per device."""

    def __init__(self) -> None:
        self.by_user: dict[tuple[str, str], dict[str, list[int]]] = {}

    def statuses(self, app_id: str, user_id: str) -> list[Status]:
        return [Status(status) for _, status in self.by_user.get((app_id, user_id), {}).values()]

    def open(self, app_id: str, user_id: str, device_id: str) -> None:
        device = self.by_user.setdefault((app_id, user_id), {}).setdefault(
            device_id, [0, Status.ONLINE])
        device[0] += 1

    def close(self, app_id: str, user_id: str, device_id: str) -> bool:
        """Uncount a stream; True if the device is now disconnected."""
        devices = self.by_user.get((app_id, user_id), {})
        device = devices.get(device_id)
        if device is None:
            return False
        device[0] -= 1
        if device[0] > 0:
            return False
        del devices[device_id]
        if not devices:
            del self.by_user[(app_id, user_id)]
        return True

    def set(self, app_id: str, user_id: str, device_id: str, status: Status) -> None:
        for name, device in self.by_user.get((app_id, user_id), {}).items():
            if not device_id or name == device_id:
                device[1] = status


class PresenceBoard:
    """Presence of the users connected to this process (the embedded default)."""

    def __init__(self) -> None:
        self._devices = _Devices()
        self._last_seen: dict[tuple[str, str], datetime] = {}

    async def get(self, app_id: str, user_id: str) -> Presence:
        return combine(user_id, self._devices.statuses(app_id, user_id),
                       self._last_seen.get((app_id, user_id)))

    async def get_many(self, app_id: str, user_ids: list[str]) -> list[Presence]:
        return [await self.get(app_id, user_id) for user_id in user_ids]

    async def connect(self, app_id: str, user_id: str, device_id: str) -> bool:
        before = await self.get(app_id, user_id)
        self._devices.open(app_id, user_id, device_id)
        return (await self.get(app_id, user_id)).status != before.status

    async def disconnect(self, app_id: str, user_id: str, device_id: str, now: datetime
                         ) -> bool:
        before = await self.get(app_id, user_id)
        if self._devices.close(app_id, user_id, device_id) and not self._devices.statuses(
                app_id, user_id):
            self._last_seen[(app_id, user_id)] = now
        return (await self.get(app_id, user_id)).status != before.status

    async def connected(self, app_id: str, user_id: str, device_id: str) -> bool:
        return device_id in self._devices.by_user.get((app_id, user_id), {})

    async def set(self, app_id: str, user_id: str, device_id: str, status: Status) -> bool:
        before = await self.get(app_id, user_id)
        self._devices.set(app_id, user_id, device_id, status)
        return (await self.get(app_id, user_id)).status != before.status

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


class RedisPresence:
    """Presence shared by every process through Redis.

    Per user, hash `…:status` maps `process/device` to a status and hash `…:expiry`
    maps it to when it lapses unless renewed: each process renews its own devices
    every `RENEW_SECONDS`, so the devices of a process that died lapse by themselves.
    """

    RENEW_SECONDS = 20
    LAPSE_SECONDS = 60

    def __init__(self, redis: Redis, health: Health, prefix: str = "caas:presence") -> None:
        self._redis = redis
        self._health = health
        health.register(COMPONENT)
        self._prefix = prefix
        self._process = new_id()
        self._devices = _Devices()
        self._renewing: asyncio.Task[None] | None = None

    def _key(self, app_id: str, user_id: str, part: str) -> str:
        return f"{self._prefix}:{{{app_id}/{user_id}}}:{part}"

    def _lapse(self) -> int:
        return int((time.time() + self.LAPSE_SECONDS) * 1000)

    async def get(self, app_id: str, user_id: str) -> Presence:
        return (await self.get_many(app_id, [user_id]))[0]

    async def get_many(self, app_id: str, user_ids: list[str]) -> list[Presence]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(self._key(app_id, user_id, "status"))
                pipe.hgetall(self._key(app_id, user_id, "expiry"))
                pipe.get(self._key(app_id, user_id, "last_seen"))
            replies = await pipe.execute()
        now_ms = int(time.time() * 1000)
        found = []
        for index, user_id in enumerate(user_ids):
            statuses, expiries, last_seen = replies[3 * index:3 * index + 3]
            live = [Status(int(status)) for field, status in statuses.items()
                    if int(expiries.get(field, 0)) > now_ms]
            found.append(combine(user_id, live,
                                 None if last_seen is None else from_ms(int(last_seen))))
        return found

    async def _put(self, app_id: str, user_id: str, device_id: str, status: Status | None
                   ) -> None:
        """Record this process's device as connected with `status`, or as gone (None)."""
        field = f"{self._process}/{device_id}"
        status_key = self._key(app_id, user_id, "status")
        expiry_key = self._key(app_id, user_id, "expiry")
        async with self._redis.pipeline(transaction=True) as pipe:
            if status is None:
                pipe.hdel(status_key, field)
                pipe.hdel(expiry_key, field)
            else:
                pipe.hset(status_key, field, int(status))
                pipe.hset(expiry_key, field, self._lapse())
            for key in (status_key, expiry_key):
                pipe.expire(key, self.LAPSE_SECONDS * 2)
            await pipe.execute()

    async def connect(self, app_id: str, user_id: str, device_id: str) -> bool:
        """Like `Presences.connect`; while Redis fails (or does not answer in time) the
        device counts as offline and nothing changes: a stream goes on without its
        presence rather than fail."""
        self._devices.open(app_id, user_id, device_id)
        return await self._degrading(self._connect(app_id, user_id, device_id))

    async def _connect(self, app_id: str, user_id: str, device_id: str) -> bool:
        before = await self.get(app_id, user_id)
        await self._put(app_id, user_id, device_id, Status.ONLINE)
        return (await self.get(app_id, user_id)).status != before.status

    async def _degrading(self, change: Awaitable[bool]) -> bool:
        try:
            changed = await change
        except (RedisError, OSError) as error:
            self._health.down(COMPONENT, f"{type(error).__name__}: {error}; streams go "
                                         "on without presence")
            return False
        self._health.up(COMPONENT)
        return changed

    async def disconnect(self, app_id: str, user_id: str, device_id: str, now: datetime
                         ) -> bool:
        """Like `Presences.disconnect`, degrading as `connect` does."""
        closed = self._devices.close(app_id, user_id, device_id)  # renewed no more
        return await self._degrading(self._disconnect(app_id, user_id, device_id, closed,
                                                      now))

    async def _disconnect(self, app_id: str, user_id: str, device_id: str, closed: bool,
                          now: datetime) -> bool:
        before = await self.get(app_id, user_id)
        if closed:
            await self._put(app_id, user_id, device_id, None)
        after = await self.get(app_id, user_id)
        if after.status is Status.OFFLINE and before.status is not Status.OFFLINE:
            await self._redis.set(self._key(app_id, user_id, "last_seen"), to_ms(now))
            return True
        return after.status != before.status

    async def connected(self, app_id: str, user_id: str, device_id: str) -> bool:
        """Whether a live process holds a stream of the device; True while Redis fails
        (no call is dropped for want of an answer)."""
        try:
            expiries = await self._redis.hgetall(self._key(app_id, user_id, "expiry"))
        except (RedisError, OSError):
            return True
        now_ms = int(time.time() * 1000)
        return any((field if isinstance(field, str) else field.decode()).split("/", 1)[-1]
                   == device_id and int(until) > now_ms for field, until in expiries.items())

    async def set(self, app_id: str, user_id: str, device_id: str, status: Status) -> bool:
        """Set the device's status wherever it is connected (the call may reach another
        process than the device's stream)."""
        before = await self.get(app_id, user_id)
        self._devices.set(app_id, user_id, device_id, status)
        status_key = self._key(app_id, user_id, "status")
        fields = [field if isinstance(field, str) else field.decode()
                  for field in await self._redis.hkeys(status_key)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for field in fields:
                if not device_id or field.split("/", 1)[-1] == device_id:
                    pipe.hset(status_key, field, int(status))
            await pipe.execute()
        return (await self.get(app_id, user_id)).status != before.status

    async def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew(), name="renew presence")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.RENEW_SECONDS)
            lapse = self._lapse()
            with contextlib.suppress(Exception):  # retried on the next round
                async with self._redis.pipeline(transaction=False) as pipe:
                    for (app_id, user_id), devices in list(self._devices.by_user.items()):
                        for device_id in devices:
                            pipe.hset(self._key(app_id, user_id, "expiry"),
                                      f"{self._process}/{device_id}", lapse)
                    await pipe.execute()

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        for (app_id, user_id), devices in list(self._devices.by_user.items()):
            for device_id in list(devices):
                with contextlib.suppress(Exception):
                    await self._put(app_id, user_id, device_id, None)
        self._devices.by_user.clear()
