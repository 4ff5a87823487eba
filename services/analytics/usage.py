"""What each server process counts itself, because the event log does not hold it: API
calls (by method and gRPC code), the peak of open real-time streams, webhook delivery
attempts (by outcome), and users who sign in or open a stream (active users). Counted
in memory on the hot path (a dictionary update), then written every flush interval
and at shutdown.

A flush is idempotent: it carries this process's `source` id and a sequence number,
which the store records in the flush's own transaction; a flush whose write failed is
retried with the same number and the same counts, so a write that did commit before
its answer was lost is skipped, never counted twice. What was counted since the last
flush is lost if the process dies (at most one flush interval).

Peaks are per process: the store keeps each process's own peak per bucket and a query
sums them (exact with one process; with several, an upper bound).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.analytics.models import Buckets, Changes, Metric
from services.analytics.store import AnalyticsStore, LiveApps
from services.core.clock import Clock
from services.core.events import DomainEvent
from services.core.ids import new_id
from services.core.principal import AppBackend, Principal, User

log = logging.getLogger("caas.analytics")

CLOSE_SECONDS = 5.0  # the last flush's time at shutdown


class Usage:
    """This process's counts since the last `take`."""

    def __init__(self, clock: Clock, source: str = "") -> None:
        self.source = source or new_id()  # this process, in the store's flush records
        self._clock = clock
        self._buckets = Buckets()
        self._hour_end = 0.0
        self._hour = 0
        self._calls: dict[tuple[str, int, str], int] = {}  # (app, hour, dimension) → n
        self._open: dict[str, int] = {}  # app → streams open now
        self._peaks: dict[tuple[str, int], int] = {}  # (app, hour) → most open at once
        self._active: dict[tuple[str, str], int] = {}  # (app, user) → first seen (s)
        self._pending = Changes()

    def _now_hour(self) -> int:
        """The current hour's start (epoch seconds), computed once per hour."""
        now = self._clock.now().timestamp()
        if now >= self._hour_end or now < self._hour:
            self._hour = int(now) - int(now) % 3600
            self._hour_end = self._hour + 3600
        return self._hour

    def called(self, principal: Principal, method: str, code: str) -> None:
        """An RPC ended (`method`: `caas.apps.v1.AppsService/GetApp`, `code`: `OK`):
        counted for the app whose credentials made it, if any."""
        if isinstance(principal, AppBackend | User):
            key = (principal.app_id, self._now_hour(), f"{method} {code}")
            self._calls[key] = self._calls.get(key, 0) + 1

    def delivered(self, app_id: str, outcome: str, dead: bool) -> None:
        """A webhook delivery attempt ended: `delivered`, `rejected` or `unreachable`;
        `dead` when the delivery gave up with it."""
        at = self._buckets.of(self._now_hour())
        self._pending.count_in_buckets(app_id, Metric.WEBHOOK_DELIVERIES, at, outcome)
        if dead:
            self._pending.count_in_buckets(app_id, Metric.WEBHOOK_DEAD_LETTERS, at)

    def stream_opened(self, app_id: str, user_id: str) -> None:
        open_now = self._open[app_id] = self._open.get(app_id, 0) + 1
        key = (app_id, self._now_hour())
        if open_now > self._peaks.get(key, 0):
            self._peaks[key] = open_now
        self._seen(app_id, user_id)

    def open_streams(self, app_id: str) -> int:
        """The app's real-time streams open in this process now."""
        return self._open.get(app_id, 0)

    def stream_closed(self, app_id: str) -> None:
        left = self._open.get(app_id, 0) - 1
        if left > 0:
            self._open[app_id] = left
        else:
            self._open.pop(app_id, None)

    async def on_event(self, event: DomainEvent) -> None:
        """The bus's events: a session created makes its user active."""
        if event.type == "session.created" and (user_id := event.data.get("user")):
            self._seen(event.app_id, user_id)

    def _seen(self, app_id: str, user_id: str) -> None:
        self._active.setdefault((app_id, user_id), int(self._clock.now().timestamp()))

    def take(self) -> Changes:
        """What was counted since the last take (and forget it); the streams open now
        count in the current hour's peak."""
        hour = self._now_hour()
        for app_id, open_now in self._open.items():
            key = (app_id, hour)
            self._peaks[key] = max(self._peaks.get(key, 0), open_now)
        changes, self._pending = self._pending, Changes()
        for (app_id, at, dimension), count in self._calls.items():
            changes.count_in_buckets(app_id, Metric.API_CALLS, self._buckets.of(at),
                                     dimension, count)
        for (app_id, at), peak in self._peaks.items():
            changes.peak_in_buckets(app_id, Metric.PEAK_STREAMS, self._buckets.of(at),
                                    self.source, peak)
        for (app_id, user_id), seen in sorted(self._active.items(), key=lambda i: i[1]):
            changes.active_user(app_id, user_id, self._buckets.of(seen))
        self._calls, self._peaks, self._active = {}, {}, {}
        return changes


class UsageFlusher:
    """Writes a process's `Usage` to the store, a flush at a time (see the module)."""

    def __init__(self, usage: Usage, store: AnalyticsStore, interval: float,
                 live: LiveApps | None = None) -> None:
        """With `live`, the counts of apps that are gone or deleted are dropped."""
        self._usage = usage
        self._store = store
        self._live = live
        self._interval = interval
        self._sequence = 0
        self._unwritten: Changes | None = None  # a flush that failed, to retry as it was
        self._lock = asyncio.Lock()

    async def flush(self) -> bool:
        """Write what was counted since the last flush (first, as it was, a flush that
        failed); raises what the store raises. Whether anything was written."""
        async with self._lock:
            if self._unwritten is None:
                changes = self._usage.take()
                if self._live is not None and not changes.empty:
                    changes = changes.only(await self._live(changes.apps()))
                if changes.empty:
                    return False
                self._sequence += 1
                self._unwritten = changes
            await self._store.apply_flush(self._usage.source, self._sequence, self._unwritten)
            self._unwritten = None
            return True

    async def run(self, ok: Callable[[], None]) -> None:
        """Flush every interval until cancelled (a failure is retried at the next). A
        flush under way when cancelled goes on to its end (`close` waits for it)."""
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.shield(self.flush())
            ok()

    async def close(self) -> None:
        """The last flush, at shutdown, within CLOSE_SECONDS (a failure is logged: those
        counts are lost)."""
        try:
            await asyncio.wait_for(self.flush(), CLOSE_SECONDS)
        except Exception:  # TimeoutError included
            log.warning("the last analytics flush failed", exc_info=True)
