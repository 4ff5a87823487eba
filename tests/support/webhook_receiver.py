"""A real local HTTP endpoint for webhook tests: a server thread that records every
request and answers by the first segment of its path:

- `/ok/…` 200; `/fail/…` 500 (with a long body); `/move/…` 302; `/created/…` 201 (a
  push service's answer); `/gone/…` 410; `/busy/…` 429 with `retry-after: 7`;
- `/hang/…` holds the request until `release()` (or 30 s), then 200;
- `/flakyN/…` 500 to the first N requests of that path, then 200;
- `/hook/…` answers as a pre-send hook, by the message's text: one holding "reject"
  is rejected (reason "not here"), "modify" is replaced by "changed", "garbage" gets an
  answer that is not JSON, anything else is allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered (200 for a released hang)
    time: float  # of arrival (time.time())


class Receiver:
    def __init__(self, base: str) -> None:
        self.base = base
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._release = threading.Event()

    def url(self, mode: str = "ok") -> str:
        """A fresh endpoint URL answering as `mode` (ok, fail, move, hang, flakyN)."""
        return f"{self.base}/{mode}/{uuid.uuid4().hex[:8]}"

    def release(self) -> None:
        self._release.set()

    def to(self, url: str) -> list[Received]:
        """The requests made to `url`, in arrival order."""
        path = url.removeprefix(self.base)
        with self._changed:
            return [r for r in self.received if r.path == path]

    def _record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    async def wait(self, url: str, done: Callable[[list[Received]], bool],
                   within: float = 30) -> list[Received]:
        """The requests to `url` once `done` holds for them; AssertionError after
        `within` seconds."""
        path = url.removeprefix(self.base)

        def until() -> list[Received]:
            with self._changed:
                ok = self._changed.wait_for(
                    lambda: done([r for r in self.received if r.path == path]), within)
                got = [r for r in self.received if r.path == path]
            assert ok, f"{url}: {len(got)} requests, not what was awaited"
            return got

        return await asyncio.to_thread(until)


def hook_answer(text: str) -> bytes:
    if "garbage" in text:
        return b"{not json"
    if "reject" in text:
        return json.dumps({"action": "reject", "reason": "not here"}).encode()
    if "modify" in text:
        return json.dumps({"action": "modify", "text": text.replace("modify", "changed")}
                          ).encode()
    return json.dumps({"action": "allow"}).encode()


@contextmanager
def running_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1: plain http, or https with `tls` (a server
    context holding its certificate)."""
    receiver = Receiver("")
    counts: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
        disable_nagle_algorithm = True  # headers and body go in two writes

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            mode = self.path.split("/")[1]
            status = {"ok": 200, "fail": 500, "move": 302, "hang": 200, "created": 201,
                      "gone": 410, "busy": 429}.get(mode, 200)
            if mode.startswith("flaky"):
                counts[self.path] = counts.get(self.path, 0) + 1
                status = 500 if counts[self.path] <= int(mode.removeprefix("flaky")) else 200
            receiver._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                      body, status, time.time()))  # a hang is seen at once
            if mode == "hang":
                receiver._release.wait(30)
            self.send_response(status)
            if status == 302:
                self.send_header("location", receiver.base + "/ok/elsewhere")
            if status == 429:
                self.send_header("retry-after", "7")
            answer = b"thanks" if status in (200, 201) else b"upstream exploded " * 500
            if mode == "hook":
                answer = hook_answer(json.loads(body)["text"])
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "http" if tls is None else "https"
    receiver.base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, and the
    certificate's file (to trust it, or not)."""
    key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own: two of them trusted together must not be taken for each other.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"caas test receiver {uuid.uuid4().hex[:8]}")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "receiver.crt", directory / "receiver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
