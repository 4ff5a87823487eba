"""Signed download URLs: how many one server process issues, alone and on the hot path.

(a) In process, no server: `MediaUrls.links()` (services/media/delivery.py) for a media
    with three thumbnails (5 URLs: original inline, original as a download, small,
    medium, large) in a loop; `UrlSigner.sign()` alone; and a page of 50 messages made
    into protobuf (`message_proto`, as ListMessages does) and serialized, once with one
    such media attachment per message and once without attachments.
(b) End to end: a `caas serve` of its own (embedded store, one process,
    `CAAS_MEDIA_PUBLIC_URL` set so the URLs are as long as real ones), one user, two
    group conversations: one holding `--page` messages each carrying a READY picture
    (a 1600 x 1200 JPEG: 3 thumbnails, so 5 URLs per attachment) and one holding as
    many messages of the same text without attachments. For each `--concurrency`
    (each caller on a connection of its own, spread over `--processes` client
    processes), the callers call ListMessages (page_size `--page`) for `--seconds`,
    first on the media conversation, then on the plain one.

    .venv/bin/python bench/media_urls.py [--page 50] [--seconds 10] [--concurrency 1,16]
                                         [--processes 2] [--loops 20000]

Prints (a) calls/s and URLs/s of each in-process step; (b) per conversation and
concurrency: calls/s, URLs/s, latency p50/p99, the server's CPU (% of a core, and per
call); then the difference per call between the two pages — what signing and carrying
the URLs costs on the hot path, per call and per URL. A benchmark: it asserts nothing.
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
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.media.v1 import media_service_pb2 as media_pb
from caas.media.v1 import resources_pb2 as media_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res

from bench.media_upload import Ready
from bench.servers import bench_server, machine_pace, server_cpu
from services.core.clock import SystemClock
from services.media.delivery import MediaUrls
from services.messages.actions import Shown
from services.messages.models import AttachedRendition, Attachment, Message
from services.messages.servicer import message_proto
from tests.media import samples
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client, bearer

PUBLIC_URL = "https://chat.example.com"
SIZES = ("small", "medium", "large")
URLS_PER_MEDIA = 2 + len(SIZES)  # inline, download, thumbnails
SEPARATE = [("grpc.use_local_subchannel_pool", 1)]  # a connection per caller
APP_ID = "bench-0123abcd"  # as long as the apps' ids made below


# (a) In process.

def rate(step: object, loops: int) -> float:
    """Calls of `step()` per second over `loops` calls (best of three rounds)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(loops):
            step()  # type: ignore[operator]
        best = min(best, time.perf_counter() - began)
    return loops / best


def page(count: int, with_media: bool) -> list[Shown]:
    """`count` messages as the store gives them, each with one READY picture or none."""
    now = datetime.now(UTC)
    shown = []
    for n in range(count):
        attachments = (Attachment(
            "image", "", "IMG_20261203_101500.jpg", "image/jpeg", 812_345, 1200, 1600,
            media_id=f"{uuid.uuid4().hex[:16]}", blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
            renditions=(AttachedRendition("small", 120, 160, "image/webp"),
                        AttachedRendition("medium", 360, 480, "image/webp"),
                        AttachedRendition("large", 960, 1280, "image/webp"))),
        ) if with_media else ()
        shown.append(Shown(Message(APP_ID, "c0123456789abcdef", n + 1, "alice", "look at this",
                                   attachments, (), {}, 0, 0, None, {}, now),
                           frozenset(), False))
    return shown


def in_process(count: int, loops: int) -> None:
    urls = MediaUrls(SystemClock(), 3600.0)
    urls.base_url = PUBLIC_URL
    urls.start(b"s" * 32)
    signer = urls.signer
    expires = signer.expiry(time.time(), 3600)
    path = f"/media/v1/files/{APP_ID}/abcdefghijklmnop/original"
    with_media, plain = page(count, True), page(count, False)

    def encode(messages: list[Shown]) -> bytes:
        return msg_pb.ListMessagesResponse(
            messages=[message_proto(s, urls) for s in messages]).SerializeToString()

    print("(a) in process, one core, no server")
    print(f"  {'step':<58} {'calls/s':>10} {'URLs/s':>10} {'µs/call':>9}")
    rows = [
        ("UrlSigner.sign (one URL)", lambda: signer.sign(path, expires), loops * 5, 1),
        ("MediaUrls.links (original, download, 3 thumbnails)",
         lambda: urls.links(APP_ID, "abcdefghijklmnop", SIZES), loops, URLS_PER_MEDIA),
        (f"a page of {count} messages with a picture each → proto → bytes",
         lambda: encode(with_media), max(1, loops // count), URLS_PER_MEDIA * count),
        (f"a page of {count} messages without attachments → proto → bytes",
         lambda: encode(plain), max(1, loops // count), 0),
    ]
    for label, step, n, per_call in rows:
        calls = rate(step, n)
        shown = f"{calls * per_call:>10,.0f}" if per_call else f"{'-':>10}"
        print(f"  {label:<58} {calls:>10,.0f} {shown} {1e6 / calls:>9.1f}")
    size_with, size_plain = len(encode(with_media)), len(encode(plain))
    print(f"  response size: {size_with:,} bytes with media, {size_plain:,} without "
          f"({(size_with - size_plain) / count:,.0f} bytes more per attachment)")


# (b) End to end.

async def prepare(address: str, operator: str, count: int, workdir: Path, media_base: str
                  ) -> tuple[str, str, str]:
    """(access token, media conversation, plain conversation) of a new app whose user
    has sent `count` messages with a READY picture each, and `count` without, in two
    group conversations. `media_base`: where the server's media port is."""
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="URLs")), metadata=bearer(operator))
    alice = await person(client, app_id, app.api_key_secret, "alice")
    await person(client, app_id, app.api_key_secret, "bob")
    pictures = (await alice.create(GROUP, ("bob",))).name
    plain = (await alice.create(GROUP, ("bob",))).name
    data = samples.jpeg(workdir / "photo.jpg", (1600, 1200), orientation=1).read_bytes()
    ready = Ready(alice)
    await ready.opened()
    names = await upload_all(alice, pictures, data, count, media_base)
    for name in names:
        _, state = await ready.wait(name, 300)
        if state != "media.ready":
            raise RuntimeError(f"{name}: {state}")
    await ready.close()
    for name in names:
        await alice.send(pictures, "look at this", attachments=[msg_res.Attachment(media=name)])
        await alice.send(plain, "look at this")
    await client.close()
    return alice.token, pictures, plain


async def upload_all(who: Person, conversation: str, data: bytes, count: int,
                     media_base: str) -> list[str]:
    """Upload `data` `count` times (parts straight to the media port at `media_base`:
    the URLs name the public address, which serves nothing here); the media names."""
    import httpx  # noqa: PLC0415 - only the preparation needs it

    names = []
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(count):
            created = await who.client.media.CreateUpload(media_pb.CreateUploadRequest(
                parent=f"apps/{who.app_id}", request_id=uuid.uuid4().hex,
                media=media_res.Media(conversation=conversation, file_name="photo.jpg",
                                      size_bytes=len(data), declared_content_type="image/jpeg")),
                metadata=who.auth)
            url = created.upload.parts[0].url.replace(PUBLIC_URL, media_base)
            response = await http.put(url, content=data)
            response.raise_for_status()
            await who.client.media.CompleteUpload(
                media_pb.CompleteUploadRequest(name=created.media.name), metadata=who.auth)
            names.append(created.media.name)
    return names


def callers(address: str, token: str, conversation: str, page_size: int, count: int,
            seconds: float, start_at: float, link: Connection) -> None:
    """A client process: `count` callers, each on a connection of its own, calling
    ListMessages from `start_at` (time.time) for `seconds`; sends (latencies, URLs)."""

    async def run() -> tuple[list[float], int]:
        channels = [grpc.aio.insecure_channel(address, options=SEPARATE) for _ in range(count)]
        calls = [channel.unary_unary(
            "/caas.messages.v1.MessagesService/ListMessages",
            request_serializer=msg_pb.ListMessagesRequest.SerializeToString,
            response_deserializer=msg_pb.ListMessagesResponse.FromString)
            for channel in channels]
        request = msg_pb.ListMessagesRequest(parent=conversation, page_size=page_size)
        metadata = bearer(token)
        for call in calls:  # connect and warm up
            await call(request, metadata=metadata)
        latencies: list[float] = []
        urls = 0

        async def caller(call: grpc.aio.UnaryUnaryMultiCallable, stop: float) -> None:
            nonlocal urls
            while time.perf_counter() < stop:
                began = time.perf_counter()
                response = await call(request, metadata=metadata)
                latencies.append(time.perf_counter() - began)
                urls += sum(bool(a.uri) + bool(a.download_uri) + sum(bool(t.uri)
                                                                     for t in a.thumbnails)
                            for m in response.messages for a in m.attachments)

        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(caller(call, stop) for call in calls))
        for channel in channels:
            await channel.close()
        return latencies, urls

    link.send(asyncio.run(run()))


def load(address: str, pid: int, token: str, conversation: str, page_size: int,
         concurrency: int, processes: int, seconds: float) -> dict[str, float]:
    spawn = mp.get_context("spawn")
    start_at = time.time() + 2.0  # after every process has connected
    links = []
    for index in range(processes):
        count = concurrency // processes + (index < concurrency % processes)
        if not count:
            continue
        here, there = spawn.Pipe()
        process = spawn.Process(target=callers, args=(
            address, token, conversation, page_size, count, seconds, start_at, there))
        process.start()
        links.append((process, here))
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = server_cpu(pid)
    began = time.perf_counter()
    latencies: list[float] = []
    urls = 0
    for process, here in links:
        got, got_urls = here.recv()
        latencies += got
        urls += got_urls
        process.join()
    elapsed = max(seconds, time.perf_counter() - began)
    cpu = server_cpu(pid) - cpu_before
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {"calls": len(latencies) / seconds, "urls": urls / seconds, "p50": q[49] * 1000,
            "p99": q[98] * 1000, "cpu": cpu / elapsed * 100, "cpu_call": cpu / len(latencies)
            * 1e6, "per_call_urls": urls / len(latencies)}


def end_to_end(args: argparse.Namespace) -> None:
    env = {"CAAS_MEDIA_PUBLIC_URL": PUBLIC_URL}
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), 1, env) as server:
        port = next(int(e["media_port"]) for e in server.logs()  # type: ignore[call-overload]
                    if e.get("message") == "serving")
        began = time.perf_counter()
        token, pictures, plain = asyncio.run(prepare(
            server.address, server.operator_token, args.page, Path(tmp),
            f"http://127.0.0.1:{port}"))
        print(f"\n(b) end to end: ListMessages over native gRPC, page_size={args.page}, "
              f"one server process, {args.seconds:.0f} s per step, {args.processes} client "
              f"process(es) (prepared in {time.perf_counter() - began:.0f} s)")
        print(f"  {'page':<24} {'callers':>7} {'calls/s':>9} {'URLs/s':>9} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'server CPU':>10} {'µs CPU/call':>11}")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            figures = {}
            for label, conversation in (("with a picture each", pictures),
                                        ("without attachments", plain)):
                f = load(server.address, server.process.pid, token, conversation, args.page,
                         concurrency, min(args.processes, concurrency), args.seconds)
                figures[label] = f
                print(f"  {label:<24} {concurrency:>7} {f['calls']:>9,.0f} {f['urls']:>9,.0f} "
                      f"{f['p50']:>8.2f} {f['p99']:>8.2f} {f['cpu']:>9.0f}% "
                      f"{f['cpu_call']:>11,.0f}", flush=True)
            media, bare = figures["with a picture each"], figures["without attachments"]
            extra = media["cpu_call"] - bare["cpu_call"]
            per_url = extra / media["per_call_urls"] if media["per_call_urls"] else 0.0
            print(f"  {'':<24} {'':>7} the attachments cost {extra:,.0f} µs of server CPU per "
                  f"call ({media['per_call_urls']:.0f} URLs: {per_url:.1f} µs per URL, "
                  "signing and carrying it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", type=int, default=50, help="messages per page")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--loops", type=int, default=20_000,
                        help="in-process calls of links() per round")
    parser.add_argument("--no-server", action="store_true", help="only (a)")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    in_process(args.page, args.loops)
    if not args.no_server:
        end_to_end(args)


if __name__ == "__main__":
    main()
