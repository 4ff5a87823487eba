"""An aiohttp application served on a `host:port` of its own (the media HTTP server,
the metrics endpoint)."""

from __future__ import annotations

import socket
import ssl

from aiohttp import web


async def start_site(app: web.Application, listen: str, *, reuse_port: bool = False,
                     tls: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Serve `app` on `listen` (host:port, port 0: any), over TLS with `tls`: its runner
    (clean it up to stop) and the port bound. Raises OSError when it cannot listen
    there."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_port=reuse_port or None,
                       ssl_context=tls)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = site._server
    assert server is not None
    sockets: list[socket.socket] = list(server.sockets)  # type: ignore[attr-defined]
    return runner, int(sockets[0].getsockname()[1])
