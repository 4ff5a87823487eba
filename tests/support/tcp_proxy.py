"""A TCP proxy whose network can be cut: while cut, bytes go nowhere in either
direction and connections hang, as on a lost network (nobody says goodbye)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


class CuttableProxy:
    """With `tls`, it takes TLS connections (and passes on their plaintext)."""

    def __init__(self, target_host: str, target_port: int,
                 tls: ssl.SSLContext | None = None) -> None:
        self._target = (target_host, target_port)
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()
        self._connected.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._connected.clear()

    def restore(self) -> None:
        """Reconnect the network; connections that hung through the cut are closed (their
        peers gave up on them long ago)."""
        for writer in list(self._writers):
            writer.close()
        self._connected.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._connected.wait()
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        for end in (writer, up_writer):
            self._writers.discard(end)
            end.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self._connected.is_set():
                    return  # the cut swallows this and everything after it
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()
