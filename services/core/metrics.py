"""Prometheus metrics: what a server process counts, and the endpoint that serves them.

One `Metrics` per process, built by the composition root and handed to the parts that
count (the gateway, per RPC). Labels stay bounded: service, method and gRPC code name
parts of the contract; no user, conversation or app id is ever a label.

Served on `CAAS_METRICS_LISTEN` (`GET /metrics`), a port of its own, never the public
Envoy listener. With `caas serve --workers N`, the workers write their values to files
in a directory the supervisor names (prometheus_client's multiprocess mode, chosen by
`PROMETHEUS_MULTIPROC_DIR` in the workers' environment), and the supervisor serves
their sum: one scrape target whose counts add up across workers, instead of N ports a
scraper would have to find.
"""

from __future__ import annotations

import functools
import os
import shutil
import ssl
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from services.core.health_http import HealthRoutes
from services.core.http_site import start_site

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a point read (~1 ms) to a slow page; a stream's whole life lands in +Inf.
# From an event to a provider's acceptance: collapse windows and retries make it long.
PUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: an embedded point read takes microseconds, a MongoDB round trip a millisecond.
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 1.0)


def served(listen: str) -> bool:
    """Whether this process's metrics are served (on `listen`, CAAS_METRICS_LISTEN, or
    summed by a supervisor): else nothing records them, which costs nothing."""
    return bool(listen) or MULTIPROCESS_DIR in os.environ


def split_method(method: str) -> tuple[str, str]:
    """(`caas.apps.v1.AppsService`, `GetApp`) of `/caas.apps.v1.AppsService/GetApp`."""
    service, _, name = method.strip("/").rpartition("/")
    return service, name


@dataclass(frozen=True, slots=True)
class RelayMeter:
    relayed: Any  # a Counter's series
    lag: Any  # a Gauge's series


@dataclass(frozen=True, slots=True)
class WebhookMeter:
    """Webhook attempts by outcome (Counter series), and dead letters."""

    delivered: Any
    rejected: Any
    unreachable: Any
    dead_letters: Any

    def attempted(self, ok: bool, status_code: int, dead: bool) -> None:
        if ok:
            self.delivered.inc()
        else:
            (self.rejected if status_code else self.unreachable).inc()
        if dead:
            self.dead_letters.inc()


@dataclass(frozen=True, slots=True)
class PushMeter:
    """Pushes by provider and outcome, and the time from the event to the provider's
    acceptance."""

    pushes: Any  # Counter: provider, outcome (sent, failed, pruned, retried)
    latency: Any  # Histogram: provider

    def count(self, provider: str, outcome: str) -> None:
        self.pushes.labels(provider, outcome).inc()

    def accepted(self, provider: str, seconds: float) -> None:
        self.pushes.labels(provider, "sent").inc()
        self.latency.labels(provider).observe(seconds)


class Metrics:
    def __init__(self) -> None:
        """Metrics in a registry of their own; in a worker (multiprocess mode), their
        values go to the supervisor's directory as well."""
        self.registry = CollectorRegistry()
        if MULTIPROCESS_DIR not in os.environ:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.rpc_requests = Counter(
            "caas_rpc_requests", "RPCs handled, by service, method and gRPC status code",
            ["service", "method", "code"], registry=self.registry)
        self.rpc_seconds = Histogram(
            "caas_rpc_duration_seconds", "time from receiving an RPC to its status",
            ["service", "method"], buckets=RPC_BUCKETS, registry=self.registry)
        self.rpc_in_flight = Gauge(
            "caas_rpc_in_flight", "RPCs being handled now (streams included)",
            ["service", "method"], registry=self.registry, multiprocess_mode="livesum")

        self.events_relayed = Counter(
            "caas_events_relayed", "events of the log a consumer has taken (search "
            "indexer, webhook intake, Kafka relay)", ["consumer"], registry=self.registry)
        self.consumer_lag = Gauge(
            "caas_event_consumer_lag", "events of the log a consumer has yet to take, over "
            "every app, as of its last full round", ["consumer"], registry=self.registry,
            multiprocess_mode="livemostrecent")
        self.log_head = Gauge(
            "caas_event_log_head", "events appended to the event log, over every app (as "
            "last sampled)", registry=self.registry, multiprocess_mode="livemax")

        self.streams_open = Gauge(
            "caas_streams_open", "Subscribe streams open", registry=self.registry,
            multiprocess_mode="livesum")
        self.stream_queued = Gauge(
            "caas_stream_queued_events", "events waiting in the streams' queues, all "
            "together", registry=self.registry, multiprocess_mode="livesum")
        self.stream_queue_max = Gauge(
            "caas_stream_queue_max", "the longest stream queue", registry=self.registry,
            multiprocess_mode="livemax")
        self.events_delivered = Counter(
            "caas_events_delivered", "events and signals written to streams",
            registry=self.registry)
        self.streams_lagged = Counter(
            "caas_streams_lagged", "streams ended because they fell further behind than "
            "their queue holds (their clients resume)", registry=self.registry)

        self.webhook_queue = Gauge(
            "caas_webhook_queue", "webhook deliveries waiting (due or retrying), as last "
            "sampled", registry=self.registry, multiprocess_mode="livemax")
        self.webhook_attempts = Counter(
            "caas_webhook_attempts", "webhook delivery attempts, by outcome: delivered "
            "(2xx), rejected (another HTTP status), unreachable (no answer)", ["outcome"],
            registry=self.registry)
        self.webhook_dead_letters = Counter(
            "caas_webhook_dead_letters", "webhook deliveries given up after their last "
            "retry", registry=self.registry)

        self.push_notifications = Counter(
            "caas_push_notifications", "pushes handed to a provider, by provider (web_push, "
            "apns, fcm) and outcome: sent (accepted), retried (refused for now), failed "
            "(given up), pruned (the channel is gone)", ["provider", "outcome"],
            registry=self.registry)
        self.push_latency = Histogram(
            "caas_push_latency_seconds", "time from the event (a message sent) to its push's "
            "acceptance by the provider", ["provider"], buckets=PUSH_BUCKETS,
            registry=self.registry)

        self.send_hook_calls = Counter(
            "caas_send_hook_calls", "calls of apps' pre-send hooks, by outcome: allow, "
            "reject, modify, failed (no valid answer in time)", ["outcome"],
            registry=self.registry)
        self.send_hook_seconds = Histogram(
            "caas_send_hook_seconds", "time from calling an app's pre-send hook to its "
            "answer (or failure)", buckets=RPC_BUCKETS, registry=self.registry)

        self.rate_limited = Counter(
            "caas_rate_limited", "calls refused by a rate limit, by the app's plan",
            ["plan"], registry=self.registry)
        self.store_seconds = Histogram(
            "caas_store_operation_duration_seconds", "time a store operation takes, by "
            "engine and operation", ["engine", "operation"], buckets=STORE_BUCKETS,
            registry=self.registry)

        self.ready = Gauge(
            "caas_ready", "1 while the process is ready for calls (every dependency "
            "readiness needs answers, not draining), else 0", registry=self.registry,
            multiprocess_mode="livemin")
        self.component_up = Gauge(
            "caas_component_up", "1 while a component works, else 0", ["component"],
            registry=self.registry, multiprocess_mode="livemin")
        # What the hot paths tally until `flush` (a label lookup, and prometheus_client's
        # own checks and locks, cost more than the counting itself).
        self._methods: dict[str, MethodTally] = {}
        self._timers: list[StoreTimer] = []

    def _tally(self, method: str) -> MethodTally:
        tally = self._methods.get(method)
        if tally is None:
            service, name = split_method(method)
            tally = self._methods[method] = MethodTally(
                self.rpc_in_flight.labels(service, name),
                Tally(self.rpc_seconds.labels(service, name), RPC_BUCKETS),
                self.rpc_requests, service, name)
        return tally

    def flush(self) -> None:
        """Move what the hot paths tallied into the metrics (each second while served,
        and before each scrape)."""
        for tally in self._methods.values():
            tally.flush()
        for timer in self._timers:
            timer.flush()

    def relay(self, consumer: str) -> RelayMeter:
        """What the relay of `consumer` (a kind: search, webhooks, kafka) counts."""
        return RelayMeter(self.events_relayed.labels(consumer),
                          self.consumer_lag.labels(consumer))

    def push(self) -> PushMeter:
        for provider in ("web_push", "apns", "fcm"):  # every series served from the start
            self.push_latency.labels(provider)
            for outcome in ("sent", "retried", "failed", "pruned"):
                self.push_notifications.labels(provider, outcome)
        return PushMeter(self.push_notifications, self.push_latency)

    def webhooks(self) -> WebhookMeter:
        attempts = self.webhook_attempts
        return WebhookMeter(attempts.labels("delivered"), attempts.labels("rejected"),
                            attempts.labels("unreachable"), self.webhook_dead_letters)

    def store(self, engine: str) -> StoreTimer:
        """What the store engine `engine` (sqlite, mongodb) times its operations with."""
        timer = StoreTimer(self.store_seconds, engine)
        self._timers.append(timer)
        return timer

    def component(self, name: str, ok: bool, ready: bool) -> None:
        """A component's state changed (`ready`: the process's readiness now)."""
        self.component_up.labels(name).set(int(ok))
        self.ready.set(int(ready))

    def started(self, method: str) -> None:
        self._tally(method).in_flight += 1

    def finished(self, method: str, code: str, seconds: float) -> None:
        tally = self._tally(method)
        tally.in_flight -= 1
        tally.duration.observe(seconds)
        tally.codes[code] = tally.codes.get(code, 0) + 1


class Tally:
    """A histogram series' observations since the last flush, in plain numbers: an
    observation costs a bisection and two additions instead of prometheus_client's
    checks and locks (about a fifth of the time), which counts on hot paths."""

    __slots__ = ("_bounds", "_counts", "_series", "_total")

    def __init__(self, series: Any, buckets: Sequence[float]) -> None:
        self._series = series  # the Histogram's child
        self._bounds = list(buckets)  # +Inf is past the end
        self._counts = [0] * (len(buckets) + 1)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._total += value

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        # prometheus_client keeps a count per bucket (made cumulative when collected),
        # in the values a multiprocess worker writes to its file: added to directly.
        buckets = self._series._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        self._series._sum.inc(self._total)
        self._total = 0.0


class MethodTally:
    """One RPC method's calls since the last flush: in flight, durations, by code."""

    __slots__ = ("_counter", "_counts", "_gauge", "_labels", "codes", "duration",
                 "in_flight")

    def __init__(self, in_flight: Any, duration: Tally, requests: Counter, service: str,
                 name: str) -> None:
        self.in_flight = 0
        self.duration = duration
        self.codes: dict[str, int] = {}
        self._gauge = in_flight
        self._counter = requests
        self._labels = (service, name)
        self._counts: dict[str, Any] = {}  # code → its Counter child

    def flush(self) -> None:
        self._gauge.set(self.in_flight)
        self.duration.flush()
        for code, count in self.codes.items():
            child = self._counts.get(code)
            if child is None:
                child = self._counts[code] = self._counter.labels(*self._labels, code)
            child.inc(count)
        self.codes.clear()


class StoreTimer:
    """Store operations' durations, tallied per operation until flushed."""

    def __init__(self, histogram: Histogram, engine: str) -> None:
        self._histogram = histogram
        self._engine = engine
        self._tallies: dict[str, Tally] = {}

    def observe(self, operation: str, seconds: float) -> None:
        self.series(operation)(seconds)

    def series(self, operation: str) -> Callable[[float], None]:
        tally = self._tallies.get(operation)
        if tally is None:
            tally = self._tallies[operation] = Tally(
                self._histogram.labels(self._engine, operation), STORE_BUCKETS)
        return tally.observe

    def flush(self) -> None:
        for tally in self._tallies.values():
            tally.flush()


# How the supervisor merges one process_* family over its processes.
_MERGE: dict[str, Callable[[Iterable[float]], float]] = {
    "process_cpu_seconds": sum, "process_resident_memory_bytes": sum,
    "process_virtual_memory_bytes": sum, "process_open_fds": max, "process_max_fds": min,
    "process_start_time_seconds": min}


class ProcessGroupCollector(Collector):
    """The `process_*` metrics of the supervisor and its workers as one: CPU and memory
    summed, open file descriptors the most any one process holds, against the lowest
    limit (prometheus_client's multiprocess mode has no process metrics of its own). A
    worker that exits takes its CPU seconds out of the sum: a counter reset, which
    Prometheus's rate() handles."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids

    def collect(self) -> Iterable[Metric]:
        values: dict[str, list[float]] = {}
        kinds: dict[str, tuple[type[Metric], str]] = {}
        for pid in (os.getpid(), *self._pids()):
            collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in collector.collect():
                if family.name in _MERGE and family.samples:
                    values.setdefault(family.name, []).append(family.samples[0].value)
                    kinds[family.name] = (type(family), family.documentation)
        for name, found in values.items():
            kind, documentation = kinds[name]
            yield kind(name, documentation, value=_MERGE[name](found))  # type: ignore[call-arg]


def workers_registry(directory: Path, pids: Callable[[], Iterable[int]]) -> CollectorRegistry:
    """What the supervisor serves: the sum of its workers' files in `directory`, and
    the process metrics of itself and its workers (`pids`)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(ProcessGroupCollector(pids))
    return registry


def fresh_directory(directory: Path) -> Path:
    """`directory`, emptied: a new supervisor starts its workers' counts from zero."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def worker_exited(directory: Path, pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sum)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class MetricsEndpoint:
    """`GET /metrics` on a port of its own."""

    def __init__(self, registry: CollectorRegistry, health: HealthRoutes | None = None,
                 flush: Callable[[], None] = lambda: None) -> None:
        """With `health`, /healthz and /readyz too (for probes that reach the process
        directly, as Kubernetes' do); `flush` runs before each scrape."""
        self._registry = registry
        self._flush = flush
        self._health = health
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, listen: str, tls: ssl.SSLContext | None = None) -> int:
        """Serve on `listen` (host:port, port 0: any), over TLS with `tls`; the port
        bound. Raises OSError."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        if self._health is not None:
            self._health.add_to(app)
        self._runner, self.port = await start_site(app, listen, tls=tls)
        return self.port

    async def _metrics(self, _: web.Request) -> web.Response:
        self._flush()
        return web.Response(body=generate_latest(self._registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
