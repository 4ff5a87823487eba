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

import os
import shutil
import socket
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
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a point read (~1 ms) to a slow page; a stream's whole life lands in +Inf.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def split_method(method: str) -> tuple[str, str]:
    """(`caas.apps.v1.AppsService`, `GetApp`) of `/caas.apps.v1.AppsService/GetApp`."""
    service, _, name = method.strip("/").rpartition("/")
    return service, name


@dataclass(frozen=True, slots=True)
class RelayMeter:
    relayed: Any  # a Counter's series
    lag: Any  # a Gauge's series


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
        # Each method's series, looked up once (a label lookup costs more than the count).
        self._methods: dict[str, tuple[Any, Any, dict[str, Any]]] = {}

    def _series(self, method: str) -> tuple[Any, Any, dict[str, Any]]:
        series = self._methods.get(method)
        if series is None:
            service, name = split_method(method)
            series = (self.rpc_in_flight.labels(service, name),
                      self.rpc_seconds.labels(service, name), {})
            self._methods[method] = series
        return series

    def relay(self, consumer: str) -> RelayMeter:
        """What the relay of `consumer` (a kind: search, webhooks, kafka) counts."""
        return RelayMeter(self.events_relayed.labels(consumer),
                          self.consumer_lag.labels(consumer))

    def started(self, method: str) -> None:
        self._series(method)[0].inc()

    def finished(self, method: str, code: str, seconds: float) -> None:
        in_flight, duration, by_code = self._series(method)
        in_flight.dec()
        duration.observe(seconds)
        counter = by_code.get(code)
        if counter is None:
            counter = by_code[code] = self.rpc_requests.labels(*split_method(method), code)
        counter.inc()


def workers_registry(directory: Path) -> CollectorRegistry:
    """What the supervisor serves: the sum of its workers' files in `directory`."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
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

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, listen: str) -> int:
        """Serve on `listen` (host:port, port 0: any); the port bound. Raises OSError."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, _, port = listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]"), int(port))
        await site.start()
        server = site._server
        assert server is not None
        sockets: list[socket.socket] = list(server.sockets)  # type: ignore[attr-defined]
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
