"""Webhook delivery: latency from send to the receiver, and whether bad endpoints slow
anything else.

Starts its own `caas serve` (embedded defaults, local http receivers allowed, 2 s
attempt timeout) and a local HTTP receiver, creates an app with one healthy endpoint
(and, with `--bad`, a hanging one and a failing one in the same app), then has 5
senders send RATE messages/s in total for SECONDS into one conversation. Prints the
send latency, the send → receiver latency of every delivery to the healthy endpoint,
deliveries lost (after waiting for the tail) and server CPU.

    .venv/bin/python bench/webhooks.py [--rate 200] [--seconds 10] [--bad | --bare]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.webhooks.v1 import resources_pb2 as hook_res
from caas.webhooks.v1 import webhooks_service_pb2 as hook_pb

from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.webhook_receiver import Receiver, running_receiver

SENDERS = 5


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


async def run(address: str, operator: str, pid: int, receiver: Receiver, rate: float,
              seconds: float, bad: bool, bare: bool) -> None:
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    key = bearer(app.api_key_secret)
    healthy = receiver.url("ok")
    urls = [healthy, *([receiver.url("hang"), receiver.url("fail")] if bad else [])]
    for url in urls if not bare else []:
        await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
            parent=f"apps/{app_id}", webhook=hook_res.Webhook(
                url=url, event_types=["message.created"])), metadata=key)
    people = [await person(client, app_id, app.api_key_secret, f"u{i}")
              for i in range(SENDERS)]
    group = await people[0].create(GROUP, tuple(p.user_id for p in people[1:]))
    send_latencies: list[float] = []
    interval = SENDERS / rate
    count = int(rate * seconds / SENDERS)

    async def sender(index: int) -> None:
        start = time.perf_counter() + index * interval / SENDERS
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
            started = time.perf_counter()
            await people[index].send(group.name, f"{time.time()}")
            send_latencies.append(time.perf_counter() - started)

    cpu_before = server_cpu(pid)
    began = time.perf_counter()
    await asyncio.gather(*(sender(i) for i in range(SENDERS)))
    sent = SENDERS * count
    try:
        got = await receiver.wait(healthy, lambda got: len(got) >= sent,
                                  within=0 if bare else 60)
    except AssertionError:
        got = receiver.to(healthy)
    elapsed = time.perf_counter() - began
    cpu = server_cpu(pid) - cpu_before
    delays = [r.time - float(json.loads(r.body)["messageCreated"]["text"]) for r in got]
    unique = {json.loads(r.body)["name"] for r in got}
    shape = "none" if bare else "+ hanging + failing" if bad else "healthy only"
    print(f"endpoints: {0 if bare else len(urls)} ({shape})")
    print(f"sent {sent} messages at {rate:.0f}/s; sends p50 {pct(send_latencies, 50):.1f} ms, "
          f"p99 {pct(send_latencies, 99):.1f} ms")
    print(f"healthy endpoint: {len(unique)} events delivered, {sent - len(unique)} lost, "
          f"{len(got) - len(unique)} duplicates; send → receiver p50 {pct(delays, 50):.1f} ms,"
          f" p90 {pct(delays, 90):.1f} ms, p99 {pct(delays, 99):.1f} ms")
    if bad:
        print(f"hanging endpoint: {len(receiver.to(urls[1]))} requests held; failing "
              f"endpoint: {len(receiver.to(urls[2]))} requests answered 500")
    print(f"server CPU: {cpu:.1f} s over {elapsed:.1f} s ({100 * cpu / elapsed:.0f} % of a core)")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bad", action="store_true")
    parser.add_argument("--bare", action="store_true", help="no endpoints: the baseline")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    env = {"CAAS_WEBHOOK_ALLOW_INSECURE": "true", "CAAS_WEBHOOK_TIMEOUT": "2"}
    with tempfile.TemporaryDirectory() as directory, running_receiver() as receiver, \
            bench_server(Path(directory), env=env) as server:
        asyncio.run(run(server.address, server.operator_token, server.process.pid, receiver,
                        args.rate, args.seconds, args.bad, args.bare))


if __name__ == "__main__":
    main()
