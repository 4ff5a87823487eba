"""Whether the store takes writes: the health component "store-writes".

The engines report their writes (`WatchedEngine.watch_writes`): one that the disk
refused for want of space, and, after that, each one that committed. `WriteWatch`
turns those reports into the component's state: down (and with it the process's
readiness) on the first write refused, up again on the next that commits. While it
is down, it writes a probe every `PROBE_SECONDS`, so that the process finds out by
itself, even with no client writing (load balancers send none to a process that is
not ready), that space is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from opentelemetry.trace import Tracer

from services.core.db.timing import Timer
from services.core.health import Health

log = logging.getLogger("caas.store")

COMPONENT = "store-writes"
PROBE_SECONDS = 1.0

WriteListener = Callable[[BaseException | None], None]


class WatchedEngine(Protocol):
    def watch_writes(self, listener: WriteListener) -> None:
        """Call `listener`, on the event loop, with the error of every write the disk
        refused for want of space, and with None for every write that committed."""

    async def probe(self) -> None:
        """Commit one tiny write (raises what the engine raises when it cannot)."""

    async def ping(self) -> None:
        """Read from the store (raises what the engine raises when it cannot)."""

    def time_operations(self, timer: Timer) -> None:
        """Tell `timer` how long each operation takes."""

    def trace_operations(self, tracer: Tracer) -> None:
        """Make a span of each operation."""


class WriteWatch:
    def __init__(self, health: Health, engine: WatchedEngine,
                 probe_seconds: float = PROBE_SECONDS) -> None:
        self._health = health
        self._engine = engine
        self._probe_seconds = probe_seconds
        self._down = False
        self._closed = False
        self._probing: asyncio.Task[None] | None = None
        health.register(COMPONENT, readiness=True)
        engine.watch_writes(self._report)

    def _report(self, error: BaseException | None) -> None:
        if error is None:
            if self._down:
                self._down = False
                self._health.up(COMPONENT)
            return
        if not self._down:
            self._down = True
            self._health.down(COMPONENT, f"the disk is full ({error})")
        if not self._closed and (self._probing is None or self._probing.done()):
            self._probing = asyncio.create_task(self._probe(), name="store-writes probe")

    async def _probe(self) -> None:
        while self._down:
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._engine.probe()  # its outcome reaches _report
            except Exception as error:  # still full (reported), or another failure
                log.debug("store write probe failed: %s", error)

    async def close(self) -> None:
        self._closed = True
        if self._probing is not None:
            self._probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probing
