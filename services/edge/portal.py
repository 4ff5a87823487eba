"""The portal's static files (web_bridge/portal, built into its dist/), served on the
server's HTTP port under /portal/ — Envoy routes /portal there — so `caas serve` gives a
working portal on the same origin as the API it calls over gRPC-Web.

Hashed assets are cached for a year; every other path below /portal/ answers the
portal's index.html (its router reads the path), never cached. Every answer carries a
Content-Security-Policy that allows only this origin's scripts and calls, and
`Referrer-Policy: no-referrer`, since the portal's links hold single-use tokens.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PREFIX = "/portal"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"


class PortalAddress:
    """Where developers reach the portal, for the links of its emails: the configured
    `portal_url`, else /portal/ where clients reach Envoy (known once it listens)."""

    def __init__(self, configured: str) -> None:
        self._configured = configured.rstrip("/") + "/" if configured else ""
        self._served = "http://127.0.0.1:8080/portal/"

    def serving(self, public_url: str) -> None:
        """Envoy is reachable at `public_url`."""
        self._served = public_url.rstrip("/") + PREFIX + "/"

    @property
    def url(self) -> str:
        """The portal's URL, ending with a slash."""
        return self._configured or self._served


def default_portal_dir() -> Path:
    """web_bridge/portal/dist of the checkout this server runs from."""
    return Path(__file__).resolve().parents[2] / "web_bridge" / "portal" / "dist"


class PortalFiles:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(PREFIX, self._home)
        app.router.add_get(PREFIX + "/{tail:.*}", self._serve)

    async def _home(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(PREFIX + "/")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        index = self._root / "index.html"
        if not index.is_file():
            return web.Response(
                status=503, text="The portal is not built: run scripts/serve.sh, or "
                                 "`npm run build:portal` in web_bridge/.\n",
                headers=SECURITY_HEADERS)
        tail = request.match_info["tail"]
        file = (self._root / tail).resolve()
        if tail.startswith("assets/") and file.is_relative_to(self._root) and file.is_file():
            return web.FileResponse(file, headers={**SECURITY_HEADERS, "Cache-Control": IMMUTABLE})
        if tail.startswith("assets/"):
            return web.Response(status=404, text="no such file\n", headers=SECURITY_HEADERS)
        return web.FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
