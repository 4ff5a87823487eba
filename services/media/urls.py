"""Signed URLs: what lets a browser or a CDN fetch (or upload) media bytes over plain
HTTP with no credentials of the user in the URL.

A URL is `{base}{path}?{params}&e={expires}&s={signature}`: the signature is an
HMAC-SHA256 of the path and every parameter under the deployment's secret, so no part
of it can be changed, and it stops working at `expires` (Unix seconds). Expiry times
are rounded up to a window (`quantum`), so that the URLs handed out for one file within
a window are the same string and a CDN in front caches them as one object.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Mapping
from enum import Enum
from urllib.parse import quote, urlencode

SIGNATURE_PARAM = "s"
EXPIRES_PARAM = "e"


class Verdict(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # missing, malformed or tampered with


class UrlSigner:
    """Signs and verifies URLs of this deployment. `base_url` (scheme, host and port
    of the public HTTP endpoint, no trailing slash) may be set after construction,
    once the HTTP listener's port is known."""

    def __init__(self, secret: bytes, base_url: str = "", quantum: int = 300) -> None:
        if len(secret) < 32:
            raise ValueError("a URL signing secret needs at least 32 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self._quantum = max(1, quantum)

    def expiry(self, now: float, ttl: float) -> int:
        """When a URL issued at `now` for `ttl` seconds expires: at least `ttl` later,
        rounded up to the window."""
        return math.ceil((now + ttl) / self._quantum) * self._quantum

    def sign(self, path: str, expires: int, params: Mapping[str, str] | None = None) -> str:
        """The absolute URL of `path` (already percent-encoded) with `params`, valid
        until `expires`."""
        fields = {**(params or {}), EXPIRES_PARAM: str(expires)}
        query = urlencode(sorted(fields.items()), quote_via=quote)
        return f"{self.base_url}{path}?{query}&{SIGNATURE_PARAM}={self._mac(path, query)}"

    def verify(self, path: str, params: Mapping[str, str], now: float) -> Verdict:
        """Whether the URL of `path` with its query `params` (decoded) is one this
        deployment signed and still valid at `now`."""
        signature = params.get(SIGNATURE_PARAM, "")
        expires = params.get(EXPIRES_PARAM, "")
        if not signature or not expires.isdigit() or len(expires) > 12:
            return Verdict.INVALID
        fields = {k: v for k, v in params.items() if k != SIGNATURE_PARAM}
        query = urlencode(sorted(fields.items()), quote_via=quote)
        if not hmac.compare_digest(signature, self._mac(path, query)):
            return Verdict.INVALID
        return Verdict.EXPIRED if int(expires) <= now else Verdict.VALID

    def _mac(self, path: str, query: str) -> str:
        digest = hmac.new(self._secret, f"v1\n{path}\n{query}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:24]).decode()
