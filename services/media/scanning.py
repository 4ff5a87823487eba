"""The scanner port: a last look at uploaded bytes before they are served.

`NoScanner` passes everything (the default). `ClamdScanner` asks a ClamAV daemon over
its socket protocol (INSTREAM), streaming the file in chunks; a finding quarantines
the media (QUARANTINED, `MALWARE_FOUND: <signature>`), and an unreachable daemon is an
error, so the media is processed again later rather than served unscanned.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    clean: bool
    finding: str = ""  # the signature found, when not clean


class Scanner(Protocol):
    async def scan(self, path: Path) -> Verdict:
        """Scan the file; raises when the scan could not be done."""


class NoScanner:
    async def scan(self, path: Path) -> Verdict:
        return Verdict(True)


class ScanFailed(Exception):
    """The daemon could not scan the file (it said so, or did not answer)."""


class ClamdScanner:
    """A ClamAV daemon at `address`: `host:port`, or a Unix socket path."""

    def __init__(self, address: str, timeout: float = 60.0) -> None:
        self._address = address
        self._timeout = timeout

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._address.startswith("/"):
            return await asyncio.open_unix_connection(self._address)
        host, _, port = self._address.rpartition(":")
        return await asyncio.open_connection(host, int(port))

    async def scan(self, path: Path) -> Verdict:
        async with asyncio.timeout(self._timeout):
            reader, writer = await self._connect()
            try:
                writer.write(b"zINSTREAM\0")
                with path.open("rb") as source:
                    while chunk := await asyncio.to_thread(source.read, CHUNK):
                        writer.write(struct.pack("!L", len(chunk)) + chunk)
                        await writer.drain()
                writer.write(struct.pack("!L", 0))
                await writer.drain()
                reply = (await reader.readuntil(b"\0")).rstrip(b"\0").decode(errors="replace")
            finally:
                writer.close()
        # "stream: OK", "stream: <signature> FOUND", "<message> ERROR"
        answer = reply.partition(": ")[2] or reply
        if answer == "OK":
            return Verdict(True)
        if answer.endswith(" FOUND"):
            return Verdict(False, answer.removesuffix(" FOUND"))
        raise ScanFailed(reply)
