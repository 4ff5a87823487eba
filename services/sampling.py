"""The metrics that are read rather than counted as things happen, brought up to date
now and then while metrics are served.

- Every second: the streams (open, queued events, the longest queue, walked in the
  hub) and what they counted on the hot path as plain ints (events delivered, streams
  that fell behind), added to the Prometheus counters as the difference since the last
  time. A delivery costs one integer addition this way, not a metric update. And what
  RPCs and store calls tallied (`Metrics.flush`), which a scrape of this process
  flushes too: with `--workers`, the supervisor's sum is at most a second behind.
- Every five seconds: the event log's head and the webhook queue, each one query to
  the store.

A sample that fails (the store is down) leaves the last values; the store's own probe
says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.core.metrics import Metrics
from services.events.log import EventLog
from services.realtime.hub import Hub
from services.webhooks.store import WebhookStore

log = logging.getLogger("caas.metrics")

STREAMS_EVERY = 1.0  # seconds
STORE_EVERY = 5  # rounds of STREAMS_EVERY


class Sampler:
    def __init__(self, metrics: Metrics, hub: Hub, events: EventLog,
                 webhooks: WebhookStore) -> None:
        self._metrics = metrics
        self._hub = hub
        self._events = events
        self._webhooks = webhooks
        self._delivered = 0
        self._lagged = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics sampler")

    async def _run(self) -> None:
        rounds = 0
        while True:
            self.sample_streams()
            if rounds % STORE_EVERY == 0:
                try:
                    await self.sample_store()
                except Exception as error:
                    log.debug("sampling the store failed: %s", error)
            rounds += 1
            await asyncio.sleep(STREAMS_EVERY)

    def sample_streams(self) -> None:
        metrics, counts = self._metrics, self._hub.counts
        metrics.flush()
        figures = self._hub.figures()
        metrics.streams_open.set(figures.open)
        metrics.stream_queued.set(figures.queued)
        metrics.stream_queue_max.set(figures.longest)
        metrics.events_delivered.inc(counts.delivered - self._delivered)
        metrics.streams_lagged.inc(counts.lagged - self._lagged)
        self._delivered, self._lagged = counts.delivered, counts.lagged

    async def sample_store(self) -> None:
        self._metrics.log_head.set(await self._events.appended())
        self._metrics.webhook_queue.set(await self._webhooks.queued())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.sample_streams()  # what the last second counted
