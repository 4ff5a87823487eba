"""Large uploads: the server's memory and the throughput of a multipart upload, against
`curl` uploading the same file to the same kind of store.

Starts its own `caas serve` with Envoy (embedded SQLite store, a plan that takes files
of up to 1 GiB) once per blob store, writes a file of random bytes (`--size` MiB), and
uploads it `--runs` times as a client does: CreateUpload, one `curl -T part` per part
to its signed URL (one after the other, or `--parallel` at a time), CompleteUpload,
then the media.ready event on the uploader's stream. Between CAAS runs, the baseline
runs: `curl -T file` of the whole file in one PUT.

- local (`CAAS_MEDIA_STORE=local`): parts go to Envoy, which relays them to caas
  serve's media HTTP server (services/media/http.py), which writes them to files under
  the data directory. Baseline: the same route with a trivial store behind it —
  `curl -T` to a second Envoy, started with caas serve's own edge configuration
  (services.server.edge) but whose media upstream is a plain HTTP sink: a Python
  process writing the body to a file on the same filesystem in 1 MiB reads, then
  fsync, as the store does. Also timed: `curl -T` straight to the sink (the floor, no
  Envoy), the baseline one curl per part, and the CAAS parts sent straight to caas
  serve's media port (no Envoy), which splits Envoy's share from the handler's.
- s3 (`CAAS_MEDIA_STORE=s3`, a SeaweedFS started here): parts go to SeaweedFS on S3
  presigned URLs (caas serve sees none of their bytes); caas serve reads the object
  back to process it. Baseline: `curl -T` to a presigned PUT URL (minio
  `presigned_put_object`) of one object in the same bucket; and one curl per part,
  each to an object of its own.

Every curl is `curl -sS -T FILE -X PUT -H 'Expect:' URL` (no 100-continue round trip,
the same for all). The server's resident memory (VmRSS of the `caas serve` process, and
apart that of its Envoy) is sampled every `--sample-ms` from a thread during each run;
the growth shown is the peak during the run less the value just before it, per phase.
A small upload first warms every code path up.

    .venv/bin/python bench/media_upload.py [--size 200] [--runs 5] [--stores local,s3]
                                           [--parallel 1] [--part-size MiB] [--sample-ms 20]

Prints, per store, a table of min / median seconds and MiB/s per phase, each ratio to
the baseline, the memory growth, and server CPU per phase. A benchmark: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.media.v1 import media_service_pb2 as media_pb
from caas.media.v1 import resources_pb2 as media_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from bench.servers import machine_pace
from services.core.settings import load_settings
from services.server import edge
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.servers import (
    SEAWEEDFS_ACCESS_KEY,
    SEAWEEDFS_REGION,
    SEAWEEDFS_SECRET_KEY,
    CaasServer,
    ExternalServer,
    start_caas,
    start_seaweedfs,
)

MIB = 1024 * 1024
BUCKET = "caas-media-bench"
# No rate limit binds; files of up to 1 GiB.
CONFIG = """
[plans.free.default]
per_app = 100000000
per_user = 100000000

[plans.free.media]
max_file_bytes = 1073741824
quota_bytes = 1099511627776
"""
CURL = ["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Expect:", "-X", "PUT"]


# The server's memory and CPU, from /proc.

def vm_rss(pid: int) -> int:
    """Resident bytes of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_named(pid: int, name: str) -> int:
    """The pid of a child process of `pid` called `name` (0 if none)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        if comm == name and int(text.rsplit(")", 1)[1].split()[1]) == pid:
            return int(stat.parent.name)
    return 0


class RssSampler:
    """VmRSS of some processes every `interval` seconds, from a thread, with times."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, int]:
        values = {name: vm_rss(pid) for name, pid in self.pids.items()}
        self.samples.append((time.perf_counter(), values))
        return values

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peak(self, name: str, start: float, end: float) -> int:
        """The highest sample of `name` taken from `start` to `end` (perf_counter)."""
        return max((s[name] for t, s in self.samples if start <= t <= end and name in s),
                   default=0)


# The baseline sink of the embedded store: a body to a file, fsynced.

class _SinkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    directory = Path()

    def do_PUT(self) -> None:
        left = int(self.headers["content-length"])
        buffer = bytearray(MIB)
        view = memoryview(buffer)
        target = self.directory / f"{uuid.uuid4().hex}.tmp"
        with open(target, "wb") as out:
            while left > 0:
                got = self.rfile.readinto(view[:min(MIB, left)])
                if not got:
                    break
                out.write(view[:got])
                left -= got
            out.flush()
            os.fsync(out.fileno())
        target.unlink()
        self.send_response(200 if left == 0 else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def sink_server(directory: str, ready: Connection) -> None:
    """A plain HTTP PUT sink (see _SinkHandler) on a free port; sends the port."""
    os.setpgrp()  # a process group of its own: stopped by its pid alone
    _SinkHandler.directory = Path(directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
    ready.send(server.server_address[1])
    server.serve_forever()


# The client flow.

@dataclass
class Run:
    """One upload through CAAS: phase boundaries (perf_counter), memory, CPU."""

    began: float = 0.0
    created: float = 0.0
    put: float = 0.0
    completed: float = 0.0
    ready: float = 0.0
    state: str = ""
    rss_before: dict[str, int] = field(default_factory=dict)
    rss_after: dict[str, int] = field(default_factory=dict)  # once READY
    rss_peak: dict[str, dict[str, int]] = field(default_factory=dict)  # phase → name → bytes
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase → name → seconds

    @property
    def phases(self) -> dict[str, tuple[float, float]]:
        return {"create": (self.began, self.created), "put": (self.created, self.put),
                "complete": (self.put, self.completed),
                "process": (self.completed, self.ready)}


class Ready:
    """The uploader's stream, read in the background: when each media.ready (or
    media.failed) event arrived."""

    def __init__(self, who: Person) -> None:
        self.arrived: dict[str, tuple[float, str]] = {}
        self._changed = asyncio.Event()
        self._opened = asyncio.Event()
        self._call = who.client.realtime.Subscribe(
            rt_pb.SubscribeRequest(name=who.name), metadata=who.auth)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for item in self._call:
                kind = item.WhichOneof("item")
                if kind == "ready":
                    self._opened.set()
                events = item.events.events if kind == "events" else (
                    [item.event] if kind == "event" else [])
                for event in events:
                    if event.type in ("media.ready", "media.failed"):
                        media = getattr(event, event.type.replace(".", "_"))
                        self.arrived[media.name] = (time.perf_counter(), event.type)
                        self._changed.set()

    async def opened(self) -> None:
        await asyncio.wait_for(self._opened.wait(), 30)

    async def wait(self, media: str, within: float = 600) -> tuple[float, str]:
        deadline = time.perf_counter() + within
        while media not in self.arrived:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.perf_counter()))
        return self.arrived[media]

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def curl_put(path: Path, url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *CURL, "-T", str(path), url, stderr=asyncio.subprocess.PIPE)
    _, error = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"curl PUT {url[:80]}… failed ({process.returncode}): "
                           f"{error.decode().strip()}")


def split(source: Path, part_size: int, directory: Path) -> list[Path]:
    """`source` cut into files of `part_size` bytes (the last one shorter)."""
    directory.mkdir(exist_ok=True)
    parts = []
    size = source.stat().st_size
    with source.open("rb") as f:
        for number, start in enumerate(range(0, size, part_size), 1):
            path = directory / f"part-{number:05d}"
            with path.open("wb") as out:
                os.copy_file_range(f.fileno(), out.fileno(), min(part_size, size - start),
                                   start)
            parts.append(path)
    return parts


@dataclass
class Session:
    """A signed-in uploader, their conversation and stream, on one server."""

    server: CaasServer
    who: Person
    conversation: str
    ready: Ready
    workdir: Path
    parallel: int
    parts: dict[tuple[Path, int], list[Path]] = field(default_factory=dict)

    async def upload(self, source: Path, size: int, sampler: RssSampler | None = None,
                     rewrite_host: str = "") -> Run:
        """The whole flow for `source` (`size` bytes); then the media is deleted (which
        frees the disk)."""
        pids = sampler.pids if sampler else {}
        run = Run()
        cpu_marks = []

        def mark() -> float:
            cpu_marks.append({name: cpu_seconds(pid) for name, pid in pids.items()})
            if sampler:  # a sample at each boundary: every phase has one at least
                sampler.sample()
            return time.perf_counter()

        if sampler:
            run.rss_before = sampler.sample()
        run.began = mark()
        created = await self.who.client.media.CreateUpload(media_pb.CreateUploadRequest(
            parent=f"apps/{self.who.app_id}", request_id=uuid.uuid4().hex,
            media=media_res.Media(conversation=self.conversation, file_name=source.name,
                                  size_bytes=size,
                                  declared_content_type="application/octet-stream")),
            metadata=self.who.auth)
        run.created = mark()
        upload = created.upload
        if len(upload.parts) != upload.part_count:
            raise RuntimeError("more than 100 parts: not handled by this benchmark")
        files = self.parts.get((source, upload.part_size))
        if files is None or len(files) != upload.part_count:
            raise RuntimeError(f"the parts of {upload.part_size} bytes were not prepared")
        gate = asyncio.Semaphore(self.parallel)

        async def put(part: media_res.UploadPart) -> None:
            url = part.url
            if rewrite_host:  # the signature covers the path and query, not the host
                url = urlsplit(url)._replace(netloc=rewrite_host).geturl()
            async with gate:
                await curl_put(files[part.part_number - 1], url)

        await asyncio.gather(*(put(p) for p in upload.parts))
        run.put = mark()
        await self.who.client.media.CompleteUpload(
            media_pb.CompleteUploadRequest(name=created.media.name), metadata=self.who.auth)
        run.completed = mark()
        run.ready, run.state = await self.ready.wait(created.media.name)
        mark()
        if sampler:
            run.rss_after = sampler.sample()
            for phase, (start, end) in run.phases.items():
                run.rss_peak[phase] = {name: sampler.peak(name, start - 0.01, end + 0.01)
                                       for name in pids}
        for index, phase in enumerate(run.phases):
            run.cpu[phase] = {name: cpu_marks[index + 1][name] - cpu_marks[index][name]
                              for name in pids}
        await self.who.client.media.DeleteMedia(
            media_pb.DeleteMediaRequest(name=created.media.name), metadata=self.who.auth)
        return run

    def prepare_parts(self, source: Path, part_size: int) -> None:
        if (source, part_size) not in self.parts:
            self.parts[source, part_size] = split(
                source, part_size, self.workdir / f"{source.name}-parts-{part_size}")


async def sign_in(server: CaasServer) -> tuple[Person, str]:
    client = Client(server.address)
    app_id = f"up-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Uploads")),
        metadata=bearer(server.operator_token))
    who = await person(client, app_id, app.api_key_secret, "uploader")
    conversation = await who.create(GROUP)
    return who, conversation.name


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            out.write(chunk)
            left -= len(chunk)
    return path


@contextlib.contextmanager
def caas_server(directory: Path, env: dict[str, str]) -> Iterator[CaasServer]:
    server = start_caas(directory, env={"CAAS_ACCESS_LOG": "false", **env}, config=CONFIG,
                        http=True)
    try:
        yield server
    finally:
        server.process.stop()


@contextlib.contextmanager
def sink(directory: Path) -> Iterator[int]:
    directory.mkdir(parents=True, exist_ok=True)
    spawn = mp.get_context("spawn")
    here, there = spawn.Pipe()
    process = spawn.Process(target=sink_server, args=(str(directory), there), daemon=True)
    process.start()
    try:
        yield here.recv()
    finally:
        process.kill()
        process.join()


# Figures.

def media_port(server: CaasServer) -> int:
    for entry in server.logs():
        if entry.get("message") == "serving" and "media_port" in entry:
            return int(entry["media_port"])  # type: ignore[call-overload]
    raise RuntimeError("caas serve did not log its media port")


def seconds_row(label: str, times: list[float], size: int, baseline: float | None) -> str:
    low, mid = min(times), statistics.median(times)
    rate = f"{size / MIB / mid:8.1f}" if size and mid > 0 else f"{'-':>8}"
    ratio = f"{mid / baseline:6.2f}x" if baseline else "      "
    return f"  {label:<46} {low:8.3f} {mid:8.3f} {rate}  {ratio}"


def report(store: str, size: int, part_size: int, parallel: int, baseline: list[float],
           by_part: list[float], runs: list[Run], direct: list[float], extra: str,
           floors: list[float], floor: str) -> None:
    base = statistics.median(baseline)
    parts = -(-size // part_size)
    print(f"\n== {store}: {size / MIB:.0f} MiB ({size / 1e6:.1f} MB) of random bytes, "
          f"{parts} parts of {part_size / MIB:.0f} MiB, {parallel} at a time, "
          f"{len(runs)} runs; states: {', '.join(sorted({r.state for r in runs}))}")
    print(f"  {'':<46} {'min s':>8} {'median':>8} {'MiB/s':>8}  {'÷ base':>7}")
    print(seconds_row(f"baseline: {extra}", baseline, size, None))
    print(seconds_row("  the same, one curl per part", by_part, size, base))
    if floors:
        print(seconds_row(f"  floor: {floor}", floors, size, base))
    print(seconds_row("CAAS PUT phase (curl per part)", [r.put - r.created for r in runs],
                      size, base))
    if direct:
        print(seconds_row("  same, straight to the media port (no Envoy)", direct, size,
                          base))
    whole = [r.ready - r.began for r in runs]
    print(seconds_row("CAAS whole flow: CreateUpload → READY", whole, size, base))
    print(seconds_row("  CreateUpload", [r.created - r.began for r in runs], 0, None))
    print(seconds_row("  CompleteUpload (the RPC)", [r.completed - r.put for r in runs], 0,
                      None))
    print(seconds_row("  processing: CompleteUpload returned → READY",
                      [r.ready - r.completed for r in runs], 0, None))
    print(seconds_row("  complete → READY (the two above)",
                      [r.ready - r.put for r in runs], 0, None))
    for name in ("caas", "envoy"):
        if not runs[0].rss_before.get(name):
            continue
        growth = [max(p[name] for p in r.rss_peak.values()) - r.rss_before[name] for r in runs]
        by_phase = ", ".join(
            f"{phase} {max(r.rss_peak[phase][name] - r.rss_before[name] for r in runs) / MIB:+.1f}"
            for phase in runs[0].phases)
        print(f"  {name} RSS: before {runs[0].rss_before[name] / MIB:.1f} MiB; growth (peak - "
              f"before) per run {', '.join(f'{g / MIB:+.1f}' for g in growth)} MiB, max "
              f"{max(growth) / MIB:+.1f} MiB; worst run by phase: {by_phase} MiB; once the "
              f"last one was READY {runs[-1].rss_after[name] / MIB:.1f} MiB")
        cpu = ", ".join(f"{phase} {statistics.median(r.cpu[phase][name] for r in runs):.2f}"
                        for phase in runs[0].phases)
        print(f"  {name} CPU seconds (median): {cpu}")


async def measure(store: str, server: CaasServer, source: Path, size: int, workdir: Path,
                  args: argparse.Namespace, baseline_put: Callable[[Path], None], extra: str,
                  floor_put: Callable[[Path], None] | None = None, floor: str = "") -> None:
    """Warm up, then `args.runs` times: the baseline (`baseline_put` of the whole file,
    then of each part; `floor_put` of the whole file), a CAAS upload with the memory
    sampled, and (local store) a CAAS upload straight to the media port."""
    who, conversation = await sign_in(server)
    ready = Ready(who)
    await ready.opened()
    session = Session(server, who, conversation, ready, workdir, args.parallel)
    # Warm up every code path with a small upload (its own part size is the server's).
    probe = await who.client.media.CreateUpload(media_pb.CreateUploadRequest(
        parent=f"apps/{who.app_id}", request_id=uuid.uuid4().hex,
        media=media_res.Media(conversation=conversation, file_name="probe", size_bytes=size,
                              declared_content_type="application/octet-stream")),
        metadata=who.auth)
    part_size = probe.upload.part_size
    await who.client.media.DeleteMedia(media_pb.DeleteMediaRequest(name=probe.media.name),
                                       metadata=who.auth)
    session.prepare_parts(source, part_size)
    small = random_file(workdir / "warm", 1 * MIB)
    session.prepare_parts(small, part_size)
    await session.upload(small, MIB)
    await asyncio.to_thread(baseline_put, source)
    part_files = session.parts[source, part_size]

    def baseline_parts() -> None:
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(baseline_put, part_files))

    pids = {"caas": server.process.pid, "envoy": child_named(server.process.pid, "envoy")}
    baseline: list[float] = []
    runs: list[Run] = []
    direct: list[float] = []
    by_part: list[float] = []
    floors: list[float] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        await asyncio.to_thread(baseline_put, source)
        baseline.append(time.perf_counter() - started)
        if floor_put is not None:
            started = time.perf_counter()
            await asyncio.to_thread(floor_put, source)
            floors.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.to_thread(baseline_parts)
        by_part.append(time.perf_counter() - started)
        with RssSampler(pids, args.sample_ms / 1000) as sampler:
            runs.append(await session.upload(source, size, sampler))
        if store == "local" and not args.no_direct:
            run = await session.upload(source, size,
                                       rewrite_host=f"127.0.0.1:{media_port(server)}")
            direct.append(run.put - run.created)
    report(store, size, part_size, args.parallel, baseline, by_part, runs, direct, extra,
           floors, floor)
    await ready.close()
    await who.client.close()


def run_local(root: Path, source: Path, size: int, args: argparse.Namespace) -> None:
    with caas_server(root / "caas", part_size_env(args)) as server, \
            sink(root / "caas" / "sink") as port:
        asyncio.run(local_with_edge(server, port, root, source, size, args))


async def local_with_edge(server: CaasServer, sink_port: int, root: Path, source: Path,
                          size: int, args: argparse.Namespace) -> None:
    """The local store's runs, with the baseline sent through an Envoy of caas serve's
    own configuration whose media upstream is the sink."""
    settings = load_settings(http_listen="127.0.0.1:0")
    async with edge(settings, server.address, f"127.0.0.1:{sink_port}") as envoy:
        if envoy is None:
            raise SystemExit("envoy is not installed")
        # A part URL's path, so that the route and the edge guard are those of a part.
        path = "/media/v1/parts/aaaaaaaaaaaaaaaa/1/baseline"
        via_envoy = f"http://127.0.0.1:{envoy.port}{path}"
        straight = f"http://127.0.0.1:{sink_port}{path}"

        def baseline_put(path: Path) -> None:
            asyncio.run(curl_put(path, via_envoy))

        def floor_put(path: Path) -> None:
            asyncio.run(curl_put(path, straight))

        await measure("local", server, source, size, root, args, baseline_put,
                      "curl -T → Envoy → HTTP sink", floor_put, "curl -T → HTTP sink")


def run_s3(root: Path, source: Path, size: int, args: argparse.Namespace) -> None:
    import urllib3  # noqa: PLC0415 - only this store needs them
    from minio import Minio  # noqa: PLC0415

    seaweed: ExternalServer = start_seaweedfs(root / "seaweedfs")
    try:
        env = {"CAAS_MEDIA_STORE": "s3", "CAAS_MEDIA_S3_ENDPOINT": seaweed.url,
               "CAAS_MEDIA_S3_BUCKET": BUCKET, "CAAS_MEDIA_S3_REGION": SEAWEEDFS_REGION,
               "CAAS_MEDIA_S3_ACCESS_KEY": SEAWEEDFS_ACCESS_KEY,
               "CAAS_MEDIA_S3_SECRET_KEY": SEAWEEDFS_SECRET_KEY, "CAAS_MEDIA_S3_SECURE": "false"}
        with caas_server(root / "caas-s3", {**env, **part_size_env(args)}) as server:
            s3 = Minio(seaweed.url, SEAWEEDFS_ACCESS_KEY, SEAWEEDFS_SECRET_KEY, secure=False,
                       region=SEAWEEDFS_REGION, http_client=urllib3.PoolManager(retries=False))

            def baseline_put(path: Path) -> None:
                key = f"baseline/{uuid.uuid4().hex}"
                url = s3.presigned_put_object(BUCKET, key, expires=timedelta(hours=1))
                asyncio.run(curl_put(path, url))
                s3.remove_object(BUCKET, key)

            asyncio.run(measure("s3", server, source, size, root, args, baseline_put,
                                "curl -T → SeaweedFS presigned PUT"))
    finally:
        seaweed.process.stop(signum=9)  # it takes 25 s to exit after SIGTERM


def part_size_env(args: argparse.Namespace) -> dict[str, str]:
    return {"CAAS_MEDIA_PART_SIZE": str(args.part_size * MIB)} if args.part_size else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200, help="MiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--part-size", type=int, default=0,
                        help="MiB per part (CAAS_MEDIA_PART_SIZE; 0: the server's default)")
    parser.add_argument("--stores", default="local,s3")
    parser.add_argument("--parallel", type=int, default=1, help="parts PUT at a time")
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--no-direct", action="store_true",
                        help="local: skip the runs straight to the media port")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    with tempfile.TemporaryDirectory(prefix="media-upload-") as tmp:
        root = Path(tmp)
        source = random_file(root / "file.bin", args.size * MIB)
        for store in args.stores.split(","):
            workdir = root / store
            workdir.mkdir()
            if store == "local":
                run_local(workdir, source, args.size * MIB, args)
            elif store == "s3":
                run_s3(workdir, source, args.size * MIB, args)
            else:
                raise SystemExit(f"unknown store {store!r}: local or s3")
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
