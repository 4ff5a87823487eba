"""Download URLs of media: short-lived signed URLs on the public HTTP endpoint, where
CAAS serves the bytes (from files or from S3) with the right headers and ranges.

URLs carry no user credential and are the same string for everyone within an expiry
window (see urls.py), so a CDN may cache them for their lifetime. Whoever holds one
may fetch the file until it expires: that is what short-lived means, and why only
members of the media's conversation are given them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from services.core.clock import Clock
from services.media.urls import UrlSigner

FILES_PATH = "/media/v1/files"
ORIGINAL = "original"
RENDITION_SIZES = ("small", "medium", "large")
VARIANTS = (ORIGINAL, *RENDITION_SIZES)
DOWNLOAD_PARAM = "d"


@dataclass(frozen=True, slots=True)
class Links:
    """The URLs of one media at one moment."""

    expires: datetime
    inline: str  # the original, shown inline where safe
    download: str  # the original as a download under its file name
    renditions: dict[str, str]  # size → URL


def file_path(app_id: str, media_id: str, variant: str) -> str:
    return f"{FILES_PATH}/{app_id}/{media_id}/{variant}"


EXPORTS_PATH = "/media/v1/exports"


def export_key(app_id: str, user_id: str, operation_id: str) -> str:
    """Where a user's data export is kept in the blob store."""
    return f"exports/{app_id}/{user_id}/{operation_id}.json"


def parse_export_path(path: str) -> tuple[str, str, str] | None:
    """(app, user, operation) of an export download path; None if it is not one."""
    prefix = EXPORTS_PATH + "/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) != 3 or not all(parts) or not parts[2].endswith(".json"):
        return None
    return parts[0], unquote(parts[1]), parts[2].removesuffix(".json")


def parse_file_path(path: str) -> tuple[str, str, str] | None:
    """(app, media, variant) of a download path; None if it is not one."""
    prefix = FILES_PATH + "/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) != 3 or parts[2] not in VARIANTS or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


class MediaUrls:
    """Signs download URLs, valid for `ttl` seconds (at least; rounded up to the
    signer's window). Usable once `start` has given it the deployment's secret."""

    def __init__(self, clock: Clock, ttl: float, quantum: int = 300) -> None:
        self._clock = clock
        self._ttl = ttl
        self._quantum = quantum
        self._signer: UrlSigner | None = None
        self._base_url = ""

    def start(self, secret: bytes) -> None:
        self._signer = UrlSigner(secret, self._base_url, self._quantum)

    @property
    def signer(self) -> UrlSigner:
        if self._signer is None:
            raise RuntimeError("MediaUrls used before start()")
        return self._signer

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        """The public HTTP endpoint (`https://chat.example.com`), once known."""
        self._base_url = value.rstrip("/")
        if self._signer is not None:
            self._signer.base_url = self._base_url

    def export_link(self, app_id: str, user_id: str, operation_id: str
                    ) -> tuple[str, datetime]:
        """A download URL of a user's data export, and until when it works."""
        signer = self.signer
        expires = signer.expiry(self._clock.now().timestamp(), self._ttl)
        path = f"{EXPORTS_PATH}/{app_id}/{quote(user_id, safe='')}/{operation_id}.json"
        return signer.sign(path, expires), datetime.fromtimestamp(expires, UTC)

    def links(self, app_id: str, media_id: str, sizes: tuple[str, ...]) -> Links:
        """URLs for the original and for the renditions of `sizes`."""
        signer = self.signer
        expires = signer.expiry(self._clock.now().timestamp(), self._ttl)

        def url(variant: str, download: bool = False) -> str:
            return signer.sign(file_path(app_id, media_id, variant), expires,
                               {DOWNLOAD_PARAM: "1"} if download else None)

        return Links(datetime.fromtimestamp(expires, UTC), url(ORIGINAL),
                     url(ORIGINAL, download=True), {size: url(size) for size in sizes})
