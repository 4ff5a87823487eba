"""What the gRPC runtime itself costs per stream, without CAAS: grpcio's asyncio server
(the runtime of the design card) against grpclib (pure Python, on h2).

Each runtime serves only a Subscribe that sends `ready`, then whatever a broadcaster
hands every stream. The clients are grpc.aio in both cases.

    pip install grpclib        # not a CAAS dependency: only this comparison uses it
    bench/runtimes.py [--streams 10000] [--rate 200] [--seconds 10]

Two shapes per runtime, each against a fresh server process:
- idle: STREAMS streams over 100 connections from 4 client processes (the clients of
  bench/idle_streams.py), held 5 s: server resident memory per stream;
- fan-out: 50 streams, each on a connection of its own, and a message to all of them
  RATE times a second: server CPU per delivery, send → receive p50 and p99.

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from bench.idle_streams import step as hold_idle
from bench.servers import machine_pace, server_cpu

METHOD = "/caas.realtime.v1.RealtimeService/Subscribe"
READY = bytes([5 << 3 | 2, 0])  # a SubscribeResponse with `ready` set
FAN_STREAMS = 50


class Broadcaster:
    """Once `streams` streams joined: a message to each of them `rate` times a second
    for `seconds` (8 bytes of send time, then padding), then the end of the streams.
    With `streams` 0, every stream waits on one queue that stays empty (idle streams
    then hold nothing of their own but their wait)."""

    def __init__(self, streams: int, rate: float, seconds: float) -> None:
        self._streams, self._rate, self._seconds = streams, rate, seconds
        self._queues: list[asyncio.Queue[bytes | None]] = []
        self._full = asyncio.Event()
        self._idle: asyncio.Queue[bytes | None] = asyncio.Queue()

    def join(self) -> asyncio.Queue[bytes | None]:
        if not self._streams:
            return self._idle
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queues.append(queue)
        if len(self._queues) == self._streams:
            self._full.set()
        return queue

    async def run(self) -> None:
        if not self._streams:
            return
        await self._full.wait()
        began = time.perf_counter()
        for index in range(int(self._rate * self._seconds)):
            delay = began + index / self._rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            message = struct.pack("<d", time.time()) + bytes(150)
            for queue in self._queues:
                queue.put_nowait(message)
        for queue in self._queues:
            queue.put_nowait(None)


async def serve_grpcio(broadcaster: Broadcaster, listening: Callable[[int], None]) -> None:
    async def subscribe(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
                        ) -> None:
        await context.write(READY)
        queue = broadcaster.join()
        while (message := await queue.get()) is not None:
            await context.write(message)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "caas.realtime.v1.RealtimeService",
        {"Subscribe": grpc.unary_stream_rpc_method_handler(subscribe)}),))
    listening(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    await broadcaster.run()
    await server.wait_for_termination()


async def serve_grpclib(broadcaster: Broadcaster, listening: Callable[[int], None]) -> None:
    # Imported here: grpclib is not a dependency of CAAS, and grpcio's half runs without it.
    from grpclib.const import Cardinality, Handler  # noqa: PLC0415
    from grpclib.encoding.base import CodecBase  # noqa: PLC0415
    from grpclib.server import Server, Stream  # noqa: PLC0415

    class Raw(CodecBase):
        __content_subtype__ = "proto"

        def encode(self, message: bytes, message_type: object) -> bytes:
            return message

        def decode(self, data: bytes, message_type: object) -> bytes:
            return data

    async def subscribe(stream: Stream[bytes, bytes]) -> None:
        await stream.recv_message()
        await stream.send_message(READY)
        queue = broadcaster.join()
        while (message := await queue.get()) is not None:
            await stream.send_message(message)

    class Realtime:
        def __mapping__(self) -> dict[str, Handler]:
            return {METHOD: Handler(subscribe, Cardinality.UNARY_STREAM, bytes, bytes)}

    server = Server([Realtime()], codec=Raw())
    await server.start("127.0.0.1", 0)
    listening(server._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    await broadcaster.run()
    await server.wait_closed()


SERVERS: dict[str, Callable[[Broadcaster, Callable[[int], None]], Awaitable[None]]] = {
    "grpcio": serve_grpcio, "grpclib": serve_grpclib}


def start(runtime: str, fan: int, rate: float, seconds: float) -> tuple[subprocess.Popen[str], str]:
    """A server process (a process group of its own): it and its address."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", runtime, "--fan", str(fan), "--rate", str(rate),
         "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None
    return process, f"127.0.0.1:{process.stdout.readline().strip()}"


async def fan_out(address: str, pid: int) -> None:
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(FAN_STREAMS)]
    latencies: list[float] = []

    async def follow(channel: grpc.aio.Channel) -> None:
        async for message in channel.unary_stream(METHOD)(b""):
            if message != READY:
                latencies.append(time.time() - struct.unpack("<d", message[:8])[0])

    cpu, began = server_cpu(pid), time.perf_counter()
    await asyncio.gather(*(follow(channel) for channel in channels))
    cpu, elapsed = server_cpu(pid) - cpu, time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    print(f"  fan-out: {len(latencies):,} deliveries, server {cpu / elapsed * 100:.0f}% of a "
          f"core, {cpu / len(latencies) * 1e6:.1f} µs per delivery; p50 {q[49] * 1e3:.1f} ms, "
          f"p99 {q[98] * 1e3:.1f} ms", flush=True)
    for channel in channels:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000, help="idle streams")
    parser.add_argument("--rate", type=float, default=200, help="fan-out messages per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--serve", choices=list(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--fan", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # the server process
        asyncio.run(SERVERS[args.serve](Broadcaster(args.fan, args.rate, args.seconds),
                                        lambda port: print(port, flush=True)))
        return
    print(machine_pace(), flush=True)
    for runtime in SERVERS:
        print(runtime, flush=True)
        server, address = start(runtime, 0, args.rate, args.seconds)
        print("  idle: ", end="", flush=True)
        hold_idle(address, server.pid, [(f"s{i}", "x" * 360) for i in range(args.streams)],
                  100, 4, 5.0)
        server.kill()
        server.wait()
        server, address = start(runtime, FAN_STREAMS, args.rate, args.seconds)
        asyncio.run(fan_out(address, server.pid))
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
