"""Idle subscribers: server memory per open `Subscribe` stream, and that all stay up.

Starts its own `caas serve` (embedded defaults in a temporary directory; with
`--workers N` also a Redis), creates one user per stream in groups of `--group`
members, then opens the streams — one per user, as a device would — spread over
`--connections` client connections in `--clients` processes. It measures the server's
resident memory before the first stream and with all of them open, then holds them
for `--hold` seconds (longer than the heartbeat interval) and checks that every stream
is still open and has had a heartbeat.

    bench/idle_streams.py [--streams 1000,10000] [--connections 100 | 0] [--hold 20] [--workers 1]
    bench/idle_streams.py --bare     # the same streams against a bare grpc.aio server

`--bare` measures the floor under our server: a grpc.aio server whose Subscribe only
sends `ready` and waits, no authentication, no state of ours.

Prints per step: streams held, streams that failed or ended, heartbeats per stream,
and the server's resident memory in all and per stream. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from bench.servers import bench_server, machine_pace, server_rss
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer

SEPARATE = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own


async def prepare(address: str, operator: str, users: int, group: int,
                  ) -> list[tuple[str, str]]:
    """`users` signed-in users of a new app, in group conversations of `group` members:
    (user name, access token) each."""
    client = Client(address)
    app_id = f"idle-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Idle")), metadata=bearer(operator))
    gate = asyncio.Semaphore(32)

    async def one(index: int):  # type: ignore[no-untyped-def]
        async with gate:
            return await person(client, app_id, app.api_key_secret, f"u{index}")

    people = await asyncio.gather(*(one(i) for i in range(users)))
    for start in range(0, users, group):
        members = people[start:start + group]
        await members[0].create(GROUP, tuple(p.user_id for p in members[1:]))
    await client.close()
    return [(p.name, p.token) for p in people]


def bare_server(ready: Connection) -> None:
    """A grpc.aio server whose Subscribe sends `ready` and then waits forever."""
    os.setpgrp()  # a process group of its own, as `caas serve` has: its memory alone

    async def run() -> None:
        ready_item = rt_pb.SubscribeResponse(ready=rt_pb.Ready()).SerializeToString()

        async def subscribe(request: bytes, context: object) -> AsyncIterator[bytes]:
            yield ready_item
            await asyncio.Event().wait()

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "caas.realtime.v1.RealtimeService",
            {"Subscribe": grpc.unary_stream_rpc_method_handler(subscribe)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready.send(port)
        await server.wait_for_termination()

    asyncio.run(run())


def hold(address: str, streams: list[tuple[str, str]], connections: int,
         link: Connection) -> None:
    """A client process: `streams` over `connections` connections, held until told."""

    async def run() -> None:
        channels = [grpc.aio.insecure_channel(address, options=SEPARATE)
                    for _ in range(connections)]
        subscribe = [channel.unary_stream(
            "/caas.realtime.v1.RealtimeService/Subscribe",
            request_serializer=rt_pb.SubscribeRequest.SerializeToString,
            response_deserializer=rt_pb.SubscribeResponse.FromString) for channel in channels]
        beats = [0] * len(streams)
        gate = asyncio.Semaphore(64)

        async def follow(index: int, name: str, token: str) -> None:
            try:
                async with gate:
                    call = subscribe[index % connections](
                        rt_pb.SubscribeRequest(name=name), metadata=bearer(token))
                    first = await call.read()
                if first is grpc.aio.EOF or first.WhichOneof("item") != "ready":
                    link.send(("failed", f"began with {first!r}"))
                    return
                link.send(("opened", 1))
                while (item := await call.read()) is not grpc.aio.EOF:
                    if item.WhichOneof("item") == "heartbeat":
                        beats[index] += 1
                link.send(("failed", "the server ended an idle stream"))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.CANCELLED:
                    link.send(("failed", f"{error.code().name}: {error.details()}"))

        tasks = [asyncio.create_task(follow(i, name, token))
                 for i, (name, token) in enumerate(streams)]
        await asyncio.get_running_loop().run_in_executor(None, link.recv)  # "count"
        link.send(("counted", list(beats)))
        await asyncio.get_running_loop().run_in_executor(None, link.recv)  # "stop"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()

    asyncio.run(run())


def step(address: str, pgid: int, people: list[tuple[str, str]], connections: int,
         clients: int, hold_seconds: float) -> None:
    spawn = mp.get_context("spawn")
    before = server_rss(pgid)
    links = []
    for index in range(clients):
        here, there = spawn.Pipe()
        process = spawn.Process(target=hold, args=(
            address, people[index::clients], connections // clients, there))
        process.start()
        links.append((process, here))
    began = time.perf_counter()
    opened = 0
    errors: list[str] = []
    while opened + len(errors) < len(people):
        for _, link in links:
            while link.poll():
                kind, value = link.recv()
                if kind == "opened":
                    opened += 1
                else:
                    errors.append(value)
        time.sleep(0.05)
    opening = time.perf_counter() - began
    time.sleep(hold_seconds)  # the streams idle; heartbeats flow
    after = server_rss(pgid)
    beats: list[int] = []
    for _, link in links:
        link.send("count")
        while (message := link.recv())[0] != "counted":
            errors.append(message[1])
        beats += message[1]
    for process, link in links:
        link.send("stop")
        process.join()
    grown = after - before
    print(f"{len(people):>6,} streams over {connections} connections: opened {opened:,} in "
          f"{opening:.1f} s, failed or ended {len(errors):,}"
          f"{' (' + errors[0] + ')' if errors else ''}, after {hold_seconds:.0f} s idle "
          f"heartbeats per stream min {min(beats, default=0)} max {max(beats, default=0)}; "
          f"server memory {before / 2**20:.0f} → {after / 2**20:.0f} MiB, "
          f"{grown / max(opened, 1) / 1024:.1f} KiB per stream", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1000,10000")
    parser.add_argument("--connections", type=int, default=100,
                        help="client connections in all; 0: one per stream, as devices")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--group", type=int, default=50, help="members per conversation")
    parser.add_argument("--hold", type=float, default=20.0,
                        help="seconds idle (the heartbeat interval is 15 s)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bare", action="store_true", help="a bare grpc.aio server")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    counts = [int(n) for n in args.streams.split(",")]
    print(f"idle streams: {args.connections or 'one per stream:'} connections from "
          f"{args.clients} client "
          f"processes, {'a bare grpc.aio server' if args.bare else 'caas serve'}, "
          f"workers={args.workers}", flush=True)
    for count in counts:
        connections = args.connections or count
        if args.bare:
            spawn = mp.get_context("spawn")
            here, there = spawn.Pipe()
            server = spawn.Process(target=bare_server, args=(there,))
            server.start()
            address = f"127.0.0.1:{here.recv()}"
            step(address, server.pid, [(f"s{i}", "") for i in range(count)],
                 connections, args.clients, args.hold)
            server.kill()
            server.join()
            continue  # a fresh server per step, so each step's memory is its own
        with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), args.workers) \
                as server:
            people = asyncio.run(prepare(server.address, server.operator_token, count,
                                         args.group))
            step(server.address, server.process.pid, people, connections,
                 args.clients, args.hold)


if __name__ == "__main__":
    main()
