"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most `seconds` for `event`; whether it was set.

    (Not `asyncio.wait_for(event.wait(), …)`: on Python 3.11 a cancellation arriving
    just as the event is set is swallowed there, and a loop around it never ends.)
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class KeyedLocks:
    """One lock per key, made when first wanted and dropped when nobody holds or waits
    for it: `async with locks.hold(key): ...` runs one body per key at a time."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
