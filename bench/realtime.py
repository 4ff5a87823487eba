"""Real-time delivery: send → receive latency over Subscribe streams, and throughput.

Starts its own `caas serve` (embedded defaults in a temporary directory; with
`--workers N` also a Redis, as N workers need), creates a group of MEMBERS users each
holding one stream, and has SENDERS of them send at a paced RATE (messages per second
in total). Every message carries its send time; every delivery of it to every member
is timed on arrival. Receivers and the sender run in processes of their own, on the
same machine as the server.

    bench/realtime.py fanout      [--members 50] [--senders 5] [--rate 200] [--seconds 20]
    bench/realtime.py throughput  [--members 10] [--senders 5] [--rates 400,800,1200,...]

`fanout` runs one rate; `throughput` runs rising rates until p99 passes 250 ms or a
delivery is lost, and prints each step. Both print: messages sent and their rate,
deliveries, lost deliveries, latency percentiles, and the server's CPU.

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer

SEPARATE = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own


@dataclass
class Setup:
    address: str
    conversation: str
    members: list[tuple[str, str]]  # (user name, access token)


async def prepare(address: str, operator: str, members: int) -> Setup:
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    people = [await person(client, app_id, app.api_key_secret, f"u{i}") for i in range(members)]
    group = await people[0].create(GROUP, tuple(p.user_id for p in people[1:]))
    await client.close()
    return Setup(address, group.name, [(p.name, p.token) for p in people])


def receive(setup: Setup, streams: list[tuple[str, str]], ready: Connection,
            results: Connection) -> None:
    """A receiver process: one stream per member; latencies of message deliveries."""

    async def run() -> None:
        latencies: list[float] = []
        seen: list[set[str]] = [set() for _ in streams]
        duplicates = 0
        channels = [grpc.aio.insecure_channel(setup.address, options=SEPARATE)
                    for _ in streams]
        calls = []
        for channel, (name, token) in zip(channels, streams, strict=True):
            call = channel.unary_stream(
                "/caas.realtime.v1.RealtimeService/Subscribe",
                request_serializer=rt_pb.SubscribeRequest.SerializeToString,
                response_deserializer=rt_pb.SubscribeResponse.FromString,
            )(rt_pb.SubscribeRequest(name=name), metadata=bearer(token))
            assert (await call.read()).WhichOneof("item") == "ready"
            calls.append(call)
        ready.send("ready")

        async def read(index: int, call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
            nonlocal duplicates
            while (item := await call.read()) is not grpc.aio.EOF:
                events = item.events.events if item.HasField("events") else [item.event]
                for event in events:
                    if event.type == "message.created":
                        sent_at, _, key = event.message_created.text.partition(" ")
                        latencies.append(time.time() - float(sent_at))
                        duplicates += key in seen[index]
                        seen[index].add(key)

        readers = [asyncio.create_task(read(i, call)) for i, call in enumerate(calls)]
        await asyncio.get_running_loop().run_in_executor(None, ready.recv)  # "stop"
        for reader in readers:
            if reader.done():
                print(f"a stream ended early: {reader.exception()!r}", file=sys.stderr)
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        results.send((latencies, [len(s) for s in seen], duplicates, time.process_time()))
        for channel in channels:
            await channel.close()

    asyncio.run(run())


def send(setup: Setup, senders: int, rate: float, seconds: float, results: Connection) -> None:
    """The sender process: `rate` messages per second from `senders` members, paced."""

    async def run() -> None:
        clients = [Client(setup.address, SEPARATE) for _ in range(senders)]
        stubs = [(c.messages, bearer(token))
                 for c, (_, token) in zip(clients, setup.members[:senders], strict=True)]
        ok = failed = 0
        pending: set[asyncio.Task[None]] = set()
        run_id = uuid.uuid4().hex  # request ids of an earlier step would be retries

        async def one(index: int) -> None:
            nonlocal ok, failed
            stub, metadata = stubs[index % senders]
            try:
                await stub.CreateMessage(msg_pb.CreateMessageRequest(
                    parent=setup.conversation,
                    message=msg_res.Message(text=f"{time.time()} {index}"),
                    request_id=f"{run_id}-{index}"), metadata=metadata)
                ok += 1
            except grpc.aio.AioRpcError:
                failed += 1

        total = int(rate * seconds)
        began = time.perf_counter()
        for index in range(total):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(index))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        results.send((ok, failed, time.perf_counter() - began))
        for client in clients:
            await client.close()

    asyncio.run(run())


def step(setup: Setup, pgid: int, senders: int, rate: float, seconds: float,
         receivers: int, streams: int | None = None) -> dict[str, float]:
    """One run at `rate`, the first `streams` members (all: None) holding a stream: its
    figures."""
    spawn = mp.get_context("spawn")
    held = setup.members[:streams]
    groups = [held[i::receivers] for i in range(receivers) if held[i::receivers]]
    links = []
    for streams in groups:
        ready_here, ready_there = spawn.Pipe()
        results_here, results_there = spawn.Pipe()
        process = spawn.Process(target=receive, args=(setup, streams, ready_there,
                                                      results_there))
        process.start()
        links.append((process, ready_here, results_here))
    for _, ready_link, _ in links:
        ready_link.recv()
    sent_here, sent_there = spawn.Pipe()
    cpu_before = server_cpu(pgid)
    sender = spawn.Process(target=send, args=(setup, senders, rate, seconds, sent_there))
    sender.start()
    ok, failed, elapsed = sent_here.recv()
    cpu = server_cpu(pgid) - cpu_before
    sender.join()
    time.sleep(1.0)  # let the last deliveries land before the receivers stop counting
    latencies: list[float] = []
    delivered = duplicated = 0
    receivers_cpu = 0.0
    for process, ready_link, results_link in links:
        ready_link.send("stop")
        got, per_stream, duplicates, client_cpu = results_link.recv()
        duplicated += duplicates
        receivers_cpu += client_cpu
        latencies += got
        delivered += sum(per_stream)
        process.join()
    q = statistics.quantiles(latencies, n=1000) if len(latencies) > 1 else [0.0] * 999
    return {"rate": rate, "sent": ok, "failed": failed, "elapsed": elapsed,
            "send_rate": ok / elapsed, "deliveries": delivered,
            "lost": ok * len(held) - delivered, "duplicated": duplicated,
            "delivery_rate": delivered / elapsed, "p50": q[499] * 1000, "p90": q[899] * 1000,
            "p99": q[989] * 1000, "max": max(latencies, default=0) * 1000,
            "server_cpu": cpu / elapsed * 100,
            "cpu_per_delivery": cpu / max(delivered, 1) * 1e6,
            "cpu_per_send": cpu / max(ok, 1) * 1e6,
            "receivers_cpu": receivers_cpu / elapsed * 100}


def report(figures: dict[str, float]) -> None:
    per_delivery = (f"{figures['cpu_per_delivery']:.1f} µs per delivery, "
                    if figures["deliveries"] else "")
    print(f"rate {figures['rate']:>6.0f}/s: sent {figures['sent']:.0f} "
          f"({figures['send_rate']:,.0f}/s, {figures['failed']:.0f} failed), "
          f"deliveries {figures['deliveries']:,.0f} ({figures['delivery_rate']:,.0f}/s), "
          f"lost {figures['lost']:.0f}, duplicated {figures['duplicated']:.0f}, "
          f"latency p50 {figures['p50']:.1f} ms "
          f"p90 {figures['p90']:.1f} ms p99 {figures['p99']:.1f} ms "
          f"max {figures['max']:.0f} ms, server cpu {figures['server_cpu']:.0f}% of a core "
          f"({per_delivery}{figures['cpu_per_send']:,.0f} µs per message sent; "
          f"receivers {figures['receivers_cpu']:.0f}%)",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["fanout", "throughput"])
    parser.add_argument("--members", type=int)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--rates", default="400,600,800,1000,1200,1400,1600,1800,2000")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--receivers", type=int, default=2, help="receiver processes")
    parser.add_argument("--streams", type=int,
                        help="members holding a stream (default: all; 0: the send side "
                             "alone, to tell its cost from the deliveries')")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    members = args.members or (50 if args.scenario == "fanout" else 10)
    seconds = args.seconds or (20 if args.scenario == "fanout" else 8)
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), args.workers) as server:
        setup = asyncio.run(prepare(server.address, server.operator_token, members))
        print(f"{args.scenario}: {members} members, {args.senders} senders, "
              f"{seconds:.0f} s per rate, workers={args.workers}, "
              f"{args.receivers} receiver processes", flush=True)
        rates = ([args.rate] if args.scenario == "fanout"
                 else [float(r) for r in args.rates.split(",")])
        for rate in rates:
            figures = step(setup, server.process.pid, args.senders, rate, seconds,
                           args.receivers, args.streams)
            report(figures)
            if args.scenario == "throughput" and (figures["p99"] > 250 or figures["lost"] > 0
                                                  or figures["duplicated"] > 0):
                break

if __name__ == "__main__":
    main()
