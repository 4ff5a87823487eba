"""The portal's static files (web_bridge/portal, built into its dist/), served on the
server's HTTP port under /portal/ — Envoy routes /portal there — so `caas serve` gives a
working portal on the same origin as the API it calls over gRPC-Web. The chat widget's
script (/widget/caas-widget.js) and the UI kit's gallery (/kit/) are served the same way.

Hashed assets are cached for a year; every other path below /portal/ answers the
portal's index.html (its router reads the path), never cached. Every answer carries a
Content-Security-Policy that allows only this origin's scripts and calls, and
`Referrer-Policy: no-referrer`, since the portal's links hold single-use tokens.

The one exception is Stripe.js, which the billing page loads to take a card (the number
goes to Stripe, never to CAAS), and which Stripe requires be loaded from its own origin.
The portal's policy allows what Stripe's security guide lists for it, no more: scripts
from `js.stripe.com` (and its subdomains), frames from those and `hooks.stripe.com` (the
card field lives in Stripe's frame; 3-D Secure checks open in one), and calls to
`api.stripe.com`. The UI kit's gallery keeps the strict policy.
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
# The portal's policy: the strict one, plus Stripe.js (see the module's docstring).
STRIPE_JS_ORIGINS = "https://js.stripe.com https://*.js.stripe.com"
PORTAL_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        f"default-src 'self'; script-src 'self' {STRIPE_JS_ORIGINS}; "
        "connect-src 'self' https://api.stripe.com; "
        f"frame-src {STRIPE_JS_ORIGINS} https://hooks.stripe.com; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"),
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


def web_bridge_dir() -> Path:
    """web_bridge/ of the checkout this server runs from."""
    return Path(__file__).resolve().parents[2] / "web_bridge"


def default_portal_dir() -> Path:
    """web_bridge/portal/dist of the checkout this server runs from."""
    return web_bridge_dir() / "portal" / "dist"


class StaticFiles:
    """Built files below `prefix`: `assets/` (hashed names) cached for a year, other
    files a few minutes; with `index`, any other path answers index.html (a single
    page app's router reads the path), never cached."""

    def __init__(self, prefix: str, root: Path, headers: dict[str, str], *,
                 index: bool, build_hint: str) -> None:
        self._prefix = prefix
        self._root = root.resolve()
        self._headers = headers
        self._index = index
        self._hint = build_hint

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(self._prefix, self._home)
        app.router.add_get(self._prefix + "/{tail:.*}", self._serve)

    async def _home(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(self._prefix + "/")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        index = self._root / "index.html"
        if not self._root.is_dir() or (self._index and not index.is_file()):
            return web.Response(status=503, text=self._hint, headers=self._headers)
        file = (self._root / tail).resolve()
        found = file.is_relative_to(self._root) and file.is_file()
        if found and tail.startswith("assets/"):
            return web.FileResponse(file, headers={**self._headers, "Cache-Control": IMMUTABLE})
        if found and tail and file != index:
            return web.FileResponse(file, headers={**self._headers,
                                                   "Cache-Control": "public, max-age=300"})
        if tail.startswith("assets/") or not self._index:
            return web.Response(status=404, text="no such file\n", headers=self._headers)
        return web.FileResponse(index, headers={**self._headers, "Cache-Control": "no-cache"})


class PortalFiles(StaticFiles):
    """The portal (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        super().__init__(PREFIX, root, PORTAL_HEADERS, index=True, build_hint=(
            "The portal is not built: run scripts/serve.sh, or `npm run build:portal` in "
            "web_bridge/.\n"))


WIDGET_PREFIX = "/widget"
# The widget's script runs on other sites' pages: any page may load it, also one that
# isolates itself (Cross-Origin-Embedder-Policy).
WIDGET_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
}
KIT_PREFIX = "/kit"


def widget_files(root: Path | None = None) -> StaticFiles:
    """The chat widget (web_bridge/widget/dist): `/widget/caas-widget.js`."""
    return StaticFiles(WIDGET_PREFIX, root or web_bridge_dir() / "widget" / "dist",
                       WIDGET_HEADERS, index=False, build_hint=(
                           "The widget is not built: run scripts/serve.sh, or `npm run "
                           "build` in web_bridge/.\n"))


def kit_gallery_files(root: Path | None = None) -> StaticFiles:
    """The UI kit's gallery of components and states (web_bridge/react/gallery/dist)."""
    return StaticFiles(KIT_PREFIX, root or web_bridge_dir() / "react" / "gallery" / "dist",
                       SECURITY_HEADERS, index=True, build_hint=(
                           "The UI kit gallery is not built: run scripts/serve.sh, or `npm "
                           "run build` in web_bridge/.\n"))
