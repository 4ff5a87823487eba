"""The blob store port: where media bytes live (S3, or files in the data directory).

Clients upload straight to the store in parts through signed URLs (`part_url`), so
large files never pass through the gRPC server; CAAS itself writes the renditions it
makes (`put_file`), reads objects to process them (`get_file`) and to serve them
(`open`), and deletes them. Keys are `{app}/{media}/{name}`; every operation is
idempotent where the method says so, so a retried or crashed job can run it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

MAX_HOLDINGS = 1000  # the most prefixes one `holdings` call returns


@dataclass(frozen=True, slots=True)
class Part:
    """A part of a multipart upload that the store holds."""

    number: int  # from 1
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class Blob:
    """An object being read: its whole size, and the bytes of the range asked for."""

    size: int
    chunks: AsyncIterator[bytes]

    async def close(self) -> None:
        """Stop reading early (the chunks need not be consumed)."""
        await self.chunks.aclose()  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Holding:
    """A media prefix under which the store holds objects or multipart uploads."""

    prefix: str  # "{app}/{media}/"
    newest: datetime  # UTC: the latest modification under it (see BlobStore.holdings)


class BlobNotFound(Exception):
    """No object at that key (or no such multipart upload)."""


class BlobStore(Protocol):
    # Parts of a multipart upload are at least this big, except the last (S3: 5 MiB).
    min_part_size: int

    async def start(self) -> None:
        """Be ready to serve: create the bucket or directories if missing (idempotent)."""

    async def close(self) -> None: ...

    async def create_upload(self, key: str, content_type: str, part_size: int) -> str:
        """Start a multipart upload to `key`; its upload id. `part_size`: the size of
        every part but the last (which may be smaller); the local engine lays the parts
        out by it, S3 ignores it."""

    def part_url(self, key: str, upload_id: str, number: int, size: int,
                 expires: datetime) -> str:
        """A signed URL to PUT part `number` (`size` bytes) of the upload to, until
        `expires`. Computed locally (no round trip): it is on the upload path."""

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        """The parts the store holds, by number; BlobNotFound if the upload is gone
        (completed or aborted)."""

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[Part]) -> None:
        """Join `parts` (all of them, in order) into the object at `key`. Idempotent:
        completing a completed upload again succeeds if the object is there."""

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts (idempotent)."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` as `key` (replacing it), streamed."""

    async def get_file(self, key: str, path: Path) -> None:
        """Write the object at `key` to `path`, streamed; BlobNotFound if none. Read
        `path`, never write into it: it may be a hard link to the object (local)."""

    async def open(self, key: str, start: int = 0, end: int | None = None) -> Blob:
        """Read bytes `start` to `end` inclusive (None: to the last) of the object at
        `key`, streamed; BlobNotFound if none. `start` must be below the size (the
        caller checks ranges against `size` first, with `stat`)."""

    async def stat(self, key: str) -> int | None:
        """The object's size, None if there is none."""

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` (idempotent)."""

    async def holdings(self, after: str, limit: int) -> list[Holding]:
        """Up to `limit` media prefixes ("{app}/{media}/") under which the store holds
        objects or unfinished multipart uploads, in ascending (string) order, strictly
        after `after` ("" to start; else a media prefix, which need not be held); each
        with the newest modification time under it (the local engine: its files'; S3:
        objects' last-modified, uploads' initiation, to the second). Fewer than `limit`:
        there are no more. For an orphan sweep, which pages with the last prefix it got:
        what is written or deleted meanwhile may or may not be seen.

        Only prefixes of a valid app id and media id (services.core.names) are listed:
        other keys (which CAAS never writes) are never reported. ValueError if `after`
        is neither "" nor a media prefix, or `limit` is not within 1..MAX_HOLDINGS."""
