"""Media bytes over HTTP: what Envoy forwards `/media/v1/` to, on every server process.

- `GET`/`HEAD /media/v1/files/{app}/{media}/{variant}?e=…&s=…[&d=1]`: a signed download
  URL (delivery.py). The bytes come from the blob store (files or S3), streamed, with
  single HTTP ranges (206; video seeking), `Content-Type` from the bytes,
  `Content-Disposition` (inline only for pictures, video and sound, else a download
  under a safe file name), `X-Content-Type-Options: nosniff`, a sandboxing CSP, and
  caching for the URL's remaining life (`Cache-Control: public`; a CDN may keep it).
- `PUT /media/v1/parts/{upload}/{number}/{key}?z=…&e=…&s=…` (embedded store only): one
  part of an upload, streamed to a file, refused before anything is stored when the
  declared length is not the signed one.

Refusals are JSON `google.rpc.Status` bodies like the API's: 403 for a URL that is not
signed here or has expired, 404 for media that is not (or no longer) there.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
import unicodedata
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote

from aiohttp import web
from google.protobuf import json_format

from services.core import health_http
from services.core.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from services.core.health_http import HealthRoutes
from services.core.http_site import start_site
from services.gateway.status import rpc_status
from services.media import models
from services.media.blobs import BlobNotFound, BlobStore
from services.media.delivery import (
    DOWNLOAD_PARAM,
    ORIGINAL,
    MediaUrls,
    export_key,
    parse_export_path,
    parse_file_path,
)
from services.media.local_blobs import LocalBlobStore, PartSizeMismatch, parse_part_path
from services.media.models import Media
from services.media.store import MediaStore
from services.media.urls import Verdict

access_log = logging.getLogger("caas.access")

SIZE_PARAM = "z"
CHUNK = 1024 * 1024
# Shown inline (in an <img>, <video>, <audio>): types browsers render without running
# anything. Everything else is a download, whatever it claims to be.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
INLINE_PREFIXES = ("video/", "audio/")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Refused(Exception):
    def __init__(self, status: int, error: DomainError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


def error_response(status: int, error: DomainError) -> web.Response:
    body = json_format.MessageToDict(rpc_status(error))
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={"content-type": "application/json",
                                 "cache-control": "no-store"})


def _signed(urls: MediaUrls, request: web.Request) -> None:
    """Refuse (403) a URL that was not signed here, or has expired."""
    query = request.query
    params: dict[str, str] = {}
    for name in query:
        values = query.getall(name)
        if len(values) != 1:
            raise _Refused(403, PermissionDenied("URL_SIGNATURE_INVALID",
                                                 "the URL is not one this server signed"))
        params[name] = values[0]
    verdict = urls.signer.verify(request.rel_url.raw_path, params, time.time())
    if verdict is Verdict.EXPIRED:
        raise _Refused(403, PermissionDenied("URL_EXPIRED", "the URL has expired: ask for "
                                             "the media or message again for a new one"))
    if verdict is not Verdict.VALID:
        raise _Refused(403, PermissionDenied("URL_SIGNATURE_INVALID",
                                             "the URL is not one this server signed"))


def safe_file_name(name: str) -> str:
    """A file name that is safe in a header and on any disk: no controls, separators
    or leading dots; at most 200 characters."""
    cleaned = "".join(c for c in unicodedata.normalize("NFC", name)
                      if unicodedata.category(c)[0] != "C" and c not in '/\\:*?"<>|')
    cleaned = cleaned.strip().lstrip(".").strip()
    return cleaned[:200] or "file"


def content_disposition(name: str, inline: bool) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name."""
    safe = safe_file_name(name)
    ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `Range: bytes=…` within `size`; None to send it all
    (no header, or one we do not honour: several ranges, another unit). Raises 416
    for a range that lies wholly outside."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"content-range": f"bytes */{size}"})


class Site(Protocol):
    """Routes served on this port beside media (built browser files, billing's)."""

    def add_to(self, app: web.Application) -> None: ...


class MediaHttp:
    """The aiohttp application serving media bytes (see the module's docstring)."""

    def __init__(self, store: MediaStore, blobs: BlobStore, urls: MediaUrls,
                 health: HealthRoutes | None = None, sites: Sequence[Site] = ()
                 ) -> None:
        """With `health`, the server's HTTP port (this one) also answers /healthz and
        /readyz (services/core/health_http.py), unlogged; with `sites`, built browser
        files: the portal below /portal/, the widget, the kit's gallery
        (services/edge/portal.py)."""
        self._store = store
        self._blobs = blobs
        self._urls = urls
        self._health = health
        self._sites = tuple(sites)
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/media/v1/files/{tail:.*}", self._download)  # and HEAD
        app.router.add_get("/media/v1/exports/{tail:.*}", self._export)
        app.router.add_route("PUT", "/media/v1/parts/{tail:.*}", self._upload_part)
        if self._health is not None:
            self._health.add_to(app)
        for site in self._sites:
            site.add_to(app)
        return app

    async def start(self, listen: str, reuse_port: bool, tls: ssl.SSLContext | None = None
                    ) -> int:
        """Serve on `listen` (host:port, port 0 for any), over TLS with `tls`; the bound
        port."""
        self._runner, bound = await start_site(self.application(), listen,
                                               reuse_port=reuse_port, tls=tls)
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: object) -> web.StreamResponse:
        if request.path in health_http.PATHS:  # probes every few seconds: not logged
            return await handler(request)  # type: ignore[operator, no-any-return]
        started = time.perf_counter()
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)  # type: ignore[operator]
        except _Refused as refused:
            response = error_response(refused.status, refused.error)
        except web.HTTPException as exc:
            if exc.status == 404:
                response = error_response(404, NotFound("METHOD_NOT_FOUND",
                                                         "no such media path"))
            elif exc.status == 405:
                response = error_response(405, NotFound(
                    "METHOD_NOT_FOUND", f"{request.method} is not served here"))
            else:
                response = exc  # 416 and the like: aiohttp answers them
                raise
        finally:
            if access_log.isEnabledFor(logging.INFO):
                # The path only: the query holds the signature.
                access_log.info("media", extra={
                    "http_method": request.method, "path": request.path,
                    "status": response.status if response is not None else 499,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3)})
        assert response is not None
        return response

    async def _media(self, app_id: str, media_id: str) -> Media:
        media = await self._store.get(app_id, media_id)
        if media is None or media.state != models.READY or media.processed is None:
            raise _Refused(404, NotFound("RESOURCE_NOT_FOUND", "the media is not there"))
        return media

    async def _download(self, request: web.Request) -> web.StreamResponse:
        where = parse_file_path(request.rel_url.raw_path)
        if where is None:
            raise web.HTTPNotFound()
        _signed(self._urls, request)
        app_id, media_id, variant = where
        media = await self._media(app_id, media_id)
        processed = media.processed
        assert processed is not None
        if variant == ORIGINAL:
            key, content_type, name = processed.original_key, processed.content_type, \
                media.file_name
        else:
            rendition = next((r for r in processed.renditions if r.size == variant), None)
            if rendition is None:
                raise _Refused(404, NotFound("RESOURCE_NOT_FOUND", "no such thumbnail"))
            stem = media.file_name.rsplit(".", 1)[0]
            key, content_type, name = rendition.key, rendition.content_type, \
                f"{stem}-{variant}.webp"
        inline = (request.query.get(DOWNLOAD_PARAM) != "1"
                  and (content_type in INLINE_TYPES or content_type.startswith(INLINE_PREFIXES)))
        etag = f'"{media_id}-{variant}"'
        expires = int(request.query["e"])
        headers = {
            "content-type": content_type if inline else _download_type(content_type),
            "content-disposition": content_disposition(name, inline),
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": f"public, max-age={max(0, expires - int(time.time()))}, immutable",
            "etag": etag, "accept-ranges": "bytes"}
        if request.headers.get("if-none-match") == etag:
            return web.Response(status=304, headers=headers)
        size = await self._blobs.stat(key)
        if size is None:
            raise _Refused(404, NotFound("RESOURCE_NOT_FOUND", "the media is not there"))
        span = byte_range(request.headers.get("range"), size) if size else None
        first, last = span if span is not None else (0, size - 1)
        response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
        response.content_length = last - first + 1 if size else 0
        if span is not None:
            response.headers["content-range"] = f"bytes {first}-{last}/{size}"
        await response.prepare(request)
        if request.method == "HEAD" or not size:
            return response
        return await self._send_blob(response, key, first, last)

    async def _send_blob(self, response: web.StreamResponse, key: str, first: int = 0,
                         last: int | None = None) -> web.StreamResponse:
        """Stream the bytes `first`..`last` of blob `key` as the (prepared) response."""
        blob = await self._blobs.open(key, first, last)
        try:
            async for chunk in blob.chunks:
                await response.write(chunk)
        finally:
            await blob.close()
        await response.write_eof()
        return response

    async def _export(self, request: web.Request) -> web.StreamResponse:
        """A user's data export (services/compliance/exports.py), by its signed link."""
        where = parse_export_path(request.rel_url.raw_path)
        if where is None:
            raise web.HTTPNotFound()
        _signed(self._urls, request)
        app_id, user_id, operation_id = where
        key = export_key(app_id, user_id, operation_id)
        size = await self._blobs.stat(key)
        if size is None:
            raise _Refused(404, NotFound("RESOURCE_NOT_FOUND", "the export is not there"))
        response = web.StreamResponse(headers={
            "content-type": "application/json",
            "content-disposition": content_disposition(f"caas-export-{user_id}.json", False),
            "x-content-type-options": "nosniff", "cache-control": "private, no-store"})
        response.content_length = size
        await response.prepare(request)
        if request.method == "HEAD" or not size:
            return response
        return await self._send_blob(response, key)

    async def _upload_part(self, request: web.Request) -> web.StreamResponse:
        if not isinstance(self._blobs, LocalBlobStore):
            raise web.HTTPNotFound()
        where = parse_part_path(request.rel_url.raw_path)
        if where is None:
            raise web.HTTPNotFound()
        _signed(self._urls, request)
        key, upload_id, number = where
        size = int(request.query[SIZE_PARAM])
        length = request.content_length
        if length is None:
            raise _Refused(411, InvalidArgument(
                "REQUEST_MALFORMED", "send the part with a Content-Length"))
        if length > size:
            raise _Refused(413, ResourceExhausted("REQUEST_TOO_LARGE", f"part {number} is "
                                                  f"{size} bytes, not {length}"))
        if length != size:
            raise _Refused(400, _bad_part(number, size, length))
        try:
            part = await self._blobs.write_part(key, upload_id, number, size,
                                                request.content.iter_chunked(CHUNK))
        except BlobNotFound:
            raise _Refused(404, NotFound("RESOURCE_NOT_FOUND", "the upload is over (completed, "
                                         "aborted or expired)")) from None
        except PartSizeMismatch:
            raise _Refused(400, _bad_part(number, size, -1)) from None
        return web.Response(status=200, headers={"etag": f'"{part.etag}"'})


def _bad_part(number: int, size: int, length: int) -> DomainError:
    got = "another number of" if length < 0 else str(length)
    return InvalidArgument("REQUEST_MALFORMED", f"part {number} is {size} bytes, not {got}")


def _download_type(content_type: str) -> str:
    """What a download is labelled: its type, unless browsers could run it."""
    risky = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml",
             "application/xml", "text/javascript", "application/javascript")
    return "application/octet-stream" if content_type in risky else content_type

