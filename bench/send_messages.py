"""Sending messages: throughput and latency of CreateMessage into one conversation.

Starts its own `caas serve` (embedded defaults, in a temporary directory), creates a
group of MEMBERS users, and has SENDERS of them send as fast as they can for SECONDS,
CONCURRENCY calls in flight each. Prints sends/s, latency percentiles and server CPU,
then checks the conversation's sequence numbers are 1..N with no gap.

    .venv/bin/python bench/send_messages.py [--members 10] [--senders 5] [--seconds 10]
                                            [--concurrency 8]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res

from bench.realtime import SEPARATE
from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer


@dataclasses.dataclass
class Sends:
    members: int
    senders: int
    in_flight: int
    elapsed: float  # seconds
    latencies: list[float]  # seconds, one per send
    cpu: float  # server CPU seconds over the run
    last: int  # the conversation's last sequence number
    expected: int

    @property
    def cpu_per_send(self) -> float:
        """Server CPU seconds per send."""
        return self.cpu / len(self.latencies)


# Prepares the bench's app before the sends (its id, its API key).
Setup = Callable[[Client, str, str], Awaitable[None]]


def timestamp_text(index: int) -> str:
    return f"{time.time()}"


async def measure(address: str, operator: str, pid: int, members: int, senders: int,
                  seconds: float, concurrency: int, setup: Setup | None = None,
                  text: Callable[[int], str] = timestamp_text, rate: float = 0,
                  metadata: Mapping[str, str] | None = None) -> Sends:
    """Sends as fast as they go, or, with `rate`, that many per second in all (each of
    the senders * concurrency loops starting one send per its share of the period);
    each message with `metadata`, if given."""
    fields = {"metadata": dict(metadata)} if metadata else {}
    client = Client(address)
    # A connection per sender, so that `--workers` spreads them.
    senders_clients = [Client(address, SEPARATE) for _ in range(senders)]
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    if setup is not None:
        await setup(client, app_id, app.api_key_secret)
    people = [await person(client, app_id, app.api_key_secret, f"u{i}") for i in range(members)]
    group = await people[0].create(GROUP, tuple(p.user_id for p in people[1:]))
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    loops = senders * concurrency

    async def worker(index: int) -> None:
        sender = dataclasses.replace(people[index % senders],
                                     client=senders_clients[index % senders])
        sent = 0
        period = loops / rate if rate else 0.0
        due = time.perf_counter() + period * index / loops
        while time.perf_counter() < deadline:
            if period:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                due += period
            started = time.perf_counter()
            await sender.send(group.name, text(index * 100_000 + sent), **fields)
            sent += 1
            latencies.append(time.perf_counter() - started)

    for p in people[:senders]:  # warm up
        await p.send(group.name, "warm up")
    cpu_before = server_cpu(pid)
    began = time.perf_counter()
    await asyncio.gather(*[worker(i) for i in range(loops)])
    elapsed = time.perf_counter() - began
    cpu = server_cpu(pid) - cpu_before
    listed = await people[1].messages(group.name, page_size=200)
    last = listed.messages[-1].sequence
    await client.close()
    for sender_client in senders_clients:
        await sender_client.close()
    return Sends(members, senders, senders * concurrency, elapsed, latencies, cpu, last,
                 len(latencies) + senders)


async def run(address: str, operator: str, pid: int, members: int, senders: int,
              seconds: float, concurrency: int) -> None:
    sends = await measure(address, operator, pid, members, senders, seconds, concurrency)
    latencies, elapsed = sends.latencies, sends.elapsed
    q = statistics.quantiles(latencies, n=100)
    print(f"members={members} senders={senders} in-flight={sends.in_flight} "
          f"seconds={elapsed:.1f}")
    print(f"sends={len(latencies)} rate={len(latencies) / elapsed:,.0f}/s "
          f"p50={q[49] * 1000:.2f}ms p90={q[89] * 1000:.2f}ms p99={q[98] * 1000:.2f}ms")
    print(f"server cpu={sends.cpu / elapsed * 100:.0f}% of a core, "
          f"{sends.cpu_per_send * 1e6:.0f}us per send")
    print(f"last sequence={sends.last} (expected {sends.expected})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), args.workers) as server:
        asyncio.run(run(server.address, server.operator_token, server.process.pid,
                        args.members, args.senders, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
