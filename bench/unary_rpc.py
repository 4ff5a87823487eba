"""Authenticated unary RPCs through the whole gateway: throughput and latency.

Starts its own `caas serve` (embedded defaults, in a temporary directory) unless
--address is given, creates an app (on a plan whose rate limits do not bind)
and a signed-in user, then drives CONCURRENCY callers for DURATION seconds.

    .venv/bin/python bench/unary_rpc.py [--rpc get-app|list-sessions] [--seconds 10]
                                        [--concurrency 32] [--address HOST:PORT]

Prints calls/s and latency percentiles. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb

from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.client import Client, bearer


async def run(address: str, operator: str, rpc: str, seconds: float, concurrency: int,
              pid: int | None = None) -> None:
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    key = bearer(app.api_key_secret)
    user = await client.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=f"apps/{app_id}/users/alice"), metadata=key)
    token = bearer(user.credentials.access_token)

    async def call() -> None:
        if rpc == "get-app":
            await client.apps.GetApp(apps_pb.GetAppRequest(name=f"apps/{app_id}"), metadata=key)
        else:
            await client.auth.ListSessions(
                auth_pb.ListSessionsRequest(parent=f"apps/{app_id}/users/alice"), metadata=token)

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    for _ in range(200):  # warm up caches and connections
        await call()
    usage_before = server_cpu(pid)
    began = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - began
    server_seconds = server_cpu(pid) - usage_before
    await client.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(f"rpc={rpc} concurrency={concurrency} seconds={elapsed:.1f}")
    print(f"calls={len(latencies)} rate={len(latencies) / elapsed:,.0f}/s "
          f"p50={q[49] * 1000:.2f}ms p90={q[89] * 1000:.2f}ms p99={q[98] * 1000:.2f}ms")
    if pid:
        print(f"server cpu={server_seconds / elapsed * 100:.0f}% of a core, "
              f"{server_seconds / len(latencies) * 1e6:.0f}us per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpc", choices=["get-app", "list-sessions"], default="list-sessions")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--address")
    parser.add_argument("--operator-token")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    if args.address:
        asyncio.run(run(args.address, args.operator_token, args.rpc, args.seconds,
                        args.concurrency))
        return
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp)) as server:
        asyncio.run(run(server.address, server.operator_token, args.rpc, args.seconds,
                        args.concurrency, server.process.pid))


if __name__ == "__main__":
    main()
