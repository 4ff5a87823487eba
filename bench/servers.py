"""The server a benchmark runs against: `caas serve` on embedded defaults in a
temporary directory, with `--workers N` (and the Redis N workers need) when asked;
and the CPU it uses."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import CaasServer, start_caas, start_redis

# Limits far above what one machine can send, so the benchmark measures the server.
BENCH_CONFIG = """
[plans.free]
sends_per_conversation = 100000000  # benchmarks flood on purpose

[plans.free.default]
per_app = 100000000
per_user = 100000000
"""


def machine_pace() -> str:
    """How fast this machine runs Python now, before the benchmark loads it. Machines
    differ, and a VM's speed varies through the day (one commit's send cost measured
    590 µs one day and 1,600 µs on another machine): figures compare only between
    runs of about the same pace."""
    steps = 2_000_000
    began = time.perf_counter()
    total = 0
    for step in range(steps):
        total += step
    pace = (time.perf_counter() - began) / steps * 1e9
    return f"machine pace: {pace:.0f} ns per Python loop step (lower is faster)"


def _group(pgid: int) -> Iterator[list[str]]:
    """The /proc/PID/stat fields (after the command) of every process in group `pgid`."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            yield fields


def server_rss(pgid: int) -> int:
    """Resident bytes of every process of process group `pgid` (Linux)."""
    return sum(int(fields[21]) for fields in _group(pgid)) * os.sysconf("SC_PAGE_SIZE")


def server_cpu(pgid: int | None) -> float:
    """CPU seconds (user + system) used so far by every process of process group `pgid`
    — the server and its workers (Linux); 0 without one."""
    if not pgid:
        return 0.0
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in _group(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def bench_server(directory: Path, workers: int = 1, env: dict[str, str] | None = None
                 ) -> Iterator[CaasServer]:
    env = {"CAAS_ACCESS_LOG": "false", "CAAS_WORKERS": str(workers), **(env or {})}
    redis = None
    if workers > 1:
        (directory / "redis").mkdir()
        redis = start_redis(directory / "redis")
        env["CAAS_REDIS_URL"] = redis.url
    server = start_caas(directory / "caas", env=env, config=BENCH_CONFIG)
    try:
        yield server
    finally:
        server.process.stop()
        if redis is not None:
            redis.process.stop()
