"""A header-rewriting proxy in front of osmem-server, for the Elasticsearch tests.

The tests run the Elasticsearch adapter against osmem-server, an in-memory server of
the OpenSearch/Elasticsearch REST API (INFRA.md). The official `elasticsearch` client 9
sends `application/vnd.elasticsearch+json; compatible-with=9` as its media type, which
Elasticsearch itself accepts and osmem-server refuses (406). This proxy rewrites those
two headers to `application/json` and passes everything else through unchanged; the
client's product check is satisfied by osmem-server's own `X-Elastic-Product` header.
It exists for the tests only: production talks to Elasticsearch directly.

Run: `python -m tests.support.es_proxy <listen port> <upstream url> [<cert> <key>]`;
prints `ready`. With a certificate and key it takes HTTPS only (Elasticsearch over TLS).
"""

from __future__ import annotations

import asyncio
import ssl
import sys

from aiohttp import ClientSession, web

HOP = {"host", "content-length", "transfer-encoding", "connection"}


def rewrite(value: str) -> str:
    return "application/json" if "compatible-with" in value else value


async def main(port: int, upstream: str, tls: tuple[str, str] | None = None) -> None:
    session = ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        headers = {k: rewrite(v) if k.lower() in ("content-type", "accept") else v
                   for k, v in request.headers.items() if k.lower() not in HOP}
        async with session.request(request.method, upstream + request.path_qs,
                                   headers=headers, data=await request.read()) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP}
            return web.Response(status=answer.status, body=body, headers=out)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2].rstrip("/"),
                     (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None))
