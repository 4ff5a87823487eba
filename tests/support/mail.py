"""A real local SMTP server (aiosmtpd, in a thread) that keeps every email it gets, and
a local Have I Been Pwned range API that knows a few breached passwords: what the
portal's emails and its breach check are tested against."""

from __future__ import annotations

import email
import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.processes import free_port
from tests.support.waiting import eventually

BREACHED = ("correct horse battery staple", "Tr0ub4dor&3-Tr0ub4dor&3")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    attachments: tuple[tuple[str, bytes], ...] = ()  # (file name, bytes)

    def link_token(self) -> str:
        """The `token=` of the email's link."""
        found = re.search(r"token=([A-Za-z0-9_-]+)", self.text)
        assert found, self.text
        return found.group(1)


class Inbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message: Message = email.message_from_bytes(envelope.content)
        text, attachments = "", []
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if part.get_filename():
                attachments.append((str(part.get_filename()), data))
            elif not text:
                text = data.decode()
        with self._lock:
            for to in envelope.rcpt_tos:
                self._mails.append(Mail(to.lower(), str(message["Subject"]), text,
                                        tuple(attachments)))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self._mails if m.to == address.lower()]

    async def wait_for(self, address: str, subject: str, after: int = 0) -> Mail:
        """The first email to `address` whose subject holds `subject`, past the first
        `after` emails to that address."""
        found: list[Mail] = []

        async def arrived() -> bool:
            found[:] = [m for m in self.to(address)[after:] if subject in m.subject]
            return bool(found)
        await eventually(arrived)
        return found[0]


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


@contextmanager
def running_smtp() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


class _Range(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        prefix = self.path.rsplit("/", 1)[-1].upper()
        lines = ["0018A45C4D1DEF81644B54AB7F969B88D65:0"]  # padding, as the real API adds
        for password in BREACHED:
            digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
            if digest.startswith(prefix):
                lines.append(f"{digest[5:]}:42")
        body = "\r\n".join(lines).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def running_breach_api() -> Iterator[str]:
    """The range API's URL (ending with `/range/`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Range)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/range/"
    finally:
        server.shutdown()
        server.server_close()
