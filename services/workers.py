"""`caas serve --workers N`: N server processes on one port.

Python runs one core per process, so a machine with N cores runs N workers. Each
worker is a whole `caas serve` bound to the same port with SO_REUSEPORT (the kernel
spreads connections over them); they share the store and exchange real-time events,
presence and rate-limit counters through Redis, which is why Redis is required. The
supervisor restarts a worker that dies and passes SIGTERM on for a graceful drain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from services.core.metrics import (
    MULTIPROCESS_DIR,
    MetricsEndpoint,
    fresh_directory,
    worker_exited,
    workers_registry,
)
from services.core.settings import Settings
from services.core.tls import ServerContext, served_files
from services.edge.envoy import Envoy
from services.server import edge, public_url

log = logging.getLogger("caas.workers")

RESTART_DELAY_SECONDS = 1.0


def _bind(listen: str) -> tuple[socket.socket, str]:
    """Hold `listen` with SO_REUSEPORT (choosing a port for :0) until workers bind it."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host.strip("[]"), int(port)))
    return holder, f"{host}:{holder.getsockname()[1]}"


async def _metrics(settings: Settings, directory: Path, running: dict[int, int],
                   env: dict[str, str]) -> tuple[MetricsEndpoint, ServerContext | None]:
    """The supervisor's metrics endpoint, summing the workers' (over TLS, reloading its
    files, when the server serves TLS)."""
    env[MULTIPROCESS_DIR] = str(fresh_directory(directory))
    metrics = MetricsEndpoint(workers_registry(directory, running.values))
    files = served_files(settings)
    tls = ServerContext(files) if files is not None else None
    if tls is not None:
        tls.watch()
    port = await metrics.start(settings.metrics_listen, tls.context if tls else None)
    log.info("metrics serving", extra={"metrics_port": port})
    return metrics, tls


async def supervise(settings: Settings) -> None:
    if not settings.redis_url:
        raise SystemExit("caas: --workers above 1 needs CAAS_REDIS_URL: workers share "
                         "real-time events, presence and rate limits through Redis")
    holder, listen = _bind(settings.listen)
    media_holder, media_listen = _bind(settings.media_listen)
    env = {**os.environ, "CAAS_LISTEN": listen, "CAAS_WORKERS": "1", "CAAS_REUSE_PORT": "true",
           "CAAS_MEDIA_LISTEN": media_listen,
           "CAAS_HTTP_LISTEN": "",  # one Envoy, the supervisor's, for all workers
           "CAAS_METRICS_LISTEN": ""}  # one endpoint, the supervisor's, summing them
    metrics = None
    tls: ServerContext | None = None
    directory = settings.data_dir / "metrics"
    running: dict[int, int] = {}  # worker number → its pid
    if settings.metrics_listen:
        metrics, tls = await _metrics(settings, directory, running, env)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("starting workers", extra={"workers": settings.workers, "listen": listen})

    async def worker(number: int) -> None:
        while not stopping.is_set():
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "serve", env=env)
            running[number] = process.pid
            waiting = asyncio.ensure_future(process.wait())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait((waiting, stop), return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                await waiting
                return
            stop.cancel()
            if metrics is not None:
                worker_exited(directory, process.pid)
            log.error("worker exited; restarting",
                      extra={"worker": number, "code": process.returncode})
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def tell_envoy(envoy: Envoy | None) -> None:
        await stopping.wait()
        if envoy is not None:
            await envoy.fail_health()  # load balancers stop sending new clients

    try:
        async with edge(settings, listen, media_listen) as envoy:
            if envoy is not None:  # download URLs point at this Envoy
                env["CAAS_MEDIA_PUBLIC_URL"] = public_url(settings, envoy)
            await asyncio.gather(tell_envoy(envoy),
                                 *(worker(n) for n in range(settings.workers)))
    finally:
        holder.close()
        media_holder.close()
        if metrics is not None:
            await metrics.close()
        if tls is not None:
            tls.close()
    log.info("stopped")
