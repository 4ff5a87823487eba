"""A real TURN/STUN server for the call tests: Debian's coturn (`turnserver`), checking
TURN REST API credentials (`use-auth-secret`) signed with its `static-auth-secret`, as
services/calls/turn.py issues them. It listens and relays on 127.0.0.1 only, with plain
UDP/TCP (no TLS or DTLS), and relays between loopback peers (the test's own devices).

Its log goes to its stdout (`TurnServer.process.lines`): one line per allocation,
permission and channel binding, and at the end of each allocation the bytes it relayed
(`peer usage: … rb=…, sb=…`) — evidence that media went through it."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import Process, free_port, wait_until

REALM = "caas.test"
SECRET = "caas-test-turn-secret-0123456789"
RELAY_PORTS = 200  # the relay range each coturn gets (2 ports per device at most)

_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101
_MAGIC_COOKIE = 0x2112A442


@dataclass
class TurnServer:
    """A running coturn; `url` and `stun_url` as CAAS_TURN_URLS and CAAS_STUN_URLS
    hold them."""

    process: Process
    host: str
    port: int
    secret: str
    realm: str
    min_port: int
    max_port: int

    @property
    def url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"

    @property
    def stun_url(self) -> str:
        return f"stun:{self.host}:{self.port}"

    def log(self, start: int = 0) -> list[str]:
        """Its log lines from index `start`."""
        return self.process.lines[start:]

    def usage(self, username: str, start: int = 0) -> list[dict[str, int]]:
        """The `peer usage` of each ended allocation of `username` (rp/rb: packets and
        bytes received from peers, sp/sb: sent to peers), from log index `start`."""
        found = []
        for line in self.process.lines[start:]:
            if "peer usage:" in line and f"username=<{username}>" in line:
                found.append({key: int(value) for key, value
                              in re.findall(r"\b(rp|rb|sp|sb)=(\d+)", line)})
        return found


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    while True:
        port = free_port()
        if _udp_free(port):
            return port


def relay_range() -> tuple[int, int]:
    """RELAY_PORTS consecutive UDP ports free right now, below the kernel's ephemeral
    range (32768-60999 by default), so that client sockets do not take them later."""
    rng = random.SystemRandom()
    for _ in range(100):
        low = rng.randrange(10000, 32000 - RELAY_PORTS)
        if all(_udp_free(port) for port in range(low, low + RELAY_PORTS)):
            return low, low + RELAY_PORTS - 1
    raise RuntimeError("no free UDP range for coturn's relays")


def stun_binding(host: str, port: int, timeout: float = 0.2) -> tuple[str, int] | None:
    """Ask a STUN server where it sees us from (RFC 5389 Binding); None if it does not
    answer within `timeout` seconds."""
    transaction = os.urandom(12)
    request = struct.pack("!HHI", _BINDING_REQUEST, 0, _MAGIC_COOKIE) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, (host, port))
        try:
            answer, _ = sock.recvfrom(2048)
        except (TimeoutError, ConnectionRefusedError):
            return None
    kind, length, cookie = struct.unpack("!HHI", answer[:8])
    if kind != _BINDING_SUCCESS or cookie != _MAGIC_COOKIE or answer[8:20] != transaction:
        return None
    offset = 20
    while offset < 20 + length:
        attribute, size = struct.unpack("!HH", answer[offset:offset + 4])
        value = answer[offset + 4:offset + 4 + size]
        if attribute == 0x0020:  # XOR-MAPPED-ADDRESS, IPv4
            mapped_port = struct.unpack("!H", value[2:4])[0] ^ (_MAGIC_COOKIE >> 16)
            address = struct.unpack("!I", value[4:8])[0] ^ _MAGIC_COOKIE
            return socket.inet_ntoa(struct.pack("!I", address)), mapped_port
        offset += 4 + size + (-size % 4)
    return None


def start_coturn(workdir: Path, secret: str = SECRET, realm: str = REALM) -> TurnServer:
    """Start coturn on a free port of 127.0.0.1, relaying on a free range of it, and
    wait until it answers a STUN Binding request."""
    executable = shutil.which("turnserver")
    if executable is None:
        raise RuntimeError("turnserver is not installed: run scripts/test.sh, which "
                           "installs coturn")
    workdir.mkdir(parents=True, exist_ok=True)
    port = listening_port()
    low, high = relay_range()
    process = Process([
        executable, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--listening-port={port}", f"--min-port={low}", f"--max-port={high}",
        "--lt-cred-mech", "--use-auth-secret", f"--static-auth-secret={secret}",
        f"--realm={realm}", "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
        "--log-file=stdout", "--simple-log", "--verbose",
        # Its own files, not the system's (/var/run/turnserver.pid, /var/lib/turn).
        f"--pidfile={workdir / 'turnserver.pid'}", f"--userdb={workdir / 'turndb'}",
    ], cwd=workdir, name="turnserver")

    def answers() -> bool:
        if not process.alive():
            raise RuntimeError("turnserver exited:\n" + "\n".join(process.lines[-30:]))
        return stun_binding("127.0.0.1", port) is not None

    try:
        wait_until(answers, 30, "turnserver")
    except BaseException:
        process.stop()
        raise
    return TurnServer(process, "127.0.0.1", port, secret, realm, low, high)


@contextlib.contextmanager
def running_coturn(workdir: Path) -> Iterator[TurnServer]:
    server = start_coturn(workdir)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def turn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """coturn, started once per session (per xdist worker). A test module uses it by
    importing it: `from tests.support.turn import turn_server`."""
    with running_coturn(tmp_path_factory.mktemp("coturn")) as server:
        yield server
