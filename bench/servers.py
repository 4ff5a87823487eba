"""The server a benchmark runs against: `caas serve` on embedded defaults in a
temporary directory, with `--workers N` (and the Redis N workers need) when asked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.unary_rpc import BENCH_CONFIG
from tests.support.servers import CaasServer, start_caas, start_redis


@contextlib.contextmanager
def bench_server(directory: Path, workers: int = 1) -> Iterator[CaasServer]:
    env = {"CAAS_ACCESS_LOG": "false", "CAAS_WORKERS": str(workers)}
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
