"""BlobStore on S3 (AWS, or any S3-compatible store: MinIO, SeaweedFS, R2…), with the
minio client.

The minio client is synchronous: each call runs in a thread (`asyncio.to_thread`).
The region is always given to it, so presigning part URLs is a local computation (a
few HMACs, tens of microseconds), never a request asking where the bucket lives.

Keys, prefixes and part lists are checked as the local engine checks them, so both take
and refuse the same things. A presigned S3 PUT URL does not bind the body's size (minio
signs only the host header): `part_url`'s `size` is not enforced by the store, so the
caller checks the sizes `list_parts` reports before completing.

S3-compatible stores differ in how they order listings, which `holdings` works around:
AWS lists objects and multipart uploads by key (bytes: "ab-c/…" before "ab/…");
SeaweedFS lists objects as a tree, one directory after the other ("ab/…" before
"ab-c/…"), and multipart uploads in no key order at all (by upload id), taking a
key-marker as "this key only".
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import certifi
import urllib3
from minio import Minio
from minio.datatypes import ListMultipartUploadsResult, Upload
from minio.datatypes import Part as MinioPart
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3 import BaseHTTPResponse

from services.core.ids import new_id
from services.core.names import is_app_id
from services.media.blobs import Blob, BlobNotFound, Holding, Part
from services.media.local_blobs import (
    MIN_PART_SIZE,
    READ_CHUNK,
    WRITE_CHUNK,
    check_holdings,
    check_key,
    check_part_number,
    check_parts,
    check_prefix,
    media_prefix,
)

MAX_URL_TTL = timedelta(days=7)  # S3's limit for presigned URLs
PUT_PARALLEL_PARTS = 2  # put_file holds this many parts (5 MiB each) in memory, plus one
MAX_UPLOAD_PAGES = 10_000  # of 1000 uploads: a bound, in case a store's markers loop
# Starts a listing past every key under a media prefix: "~" sorts after the key alphabet.
PAST_PREFIX = "~"
_MISSING = frozenset({"NoSuchKey", "NoSuchUpload"})
_BAD_PARTS = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})


class S3BlobStore:
    """The blob store in `bucket` of the S3 API at `endpoint` (host[:port]), over https
    when `secure` (trusting `ca_file`, else the usual CAs). `region` is the bucket's
    (required: it keeps presigning local).
    `virtual_host`: address the bucket as `bucket.host` (virtual-host style) rather
    than `host/bucket` (path style, what most S3-compatible stores expect)."""

    min_part_size = MIN_PART_SIZE

    def __init__(self, endpoint: str, bucket: str, region: str, access_key: str,
                 secret_key: str, *, secure: bool = True, virtual_host: bool = False,
                 ca_file: Path | None = None) -> None:
        if not region:
            raise ValueError("the S3 region is required")
        self._bucket = bucket
        # Our own pool (minio's default has the same retries, but a 5-minute connect
        # timeout), and one we can close.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=300), maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(ca_file) if ca_file else (
                os.environ.get("SSL_CERT_FILE") or certifi.where()),
            retries=urllib3.Retry(total=5, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]))
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                             secure=secure, region=region, http_client=self._http)
        # (minio leaves these two unannotated)
        if virtual_host:
            self._client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
        else:
            self._client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]

    async def start(self) -> None:
        await asyncio.to_thread(self._make_bucket)

    async def close(self) -> None:
        self._http.clear()

    async def create_upload(self, key: str, content_type: str, part_size: int) -> str:
        """The object gets `content_type` when the upload completes. `part_size` is
        not needed here."""
        check_key(key)
        return await asyncio.to_thread(_mp_create, self._client, self._bucket, key,
                                       content_type)

    def part_url(self, key: str, upload_id: str, number: int, size: int,
                 expires: datetime) -> str:
        """A presigned S3 PUT URL (`expires`: an aware datetime, at most 7 days on;
        one already past gives a URL that S3 refuses). `size` is not part of it."""
        check_key(key)
        check_part_number(number)
        ttl = math.ceil((expires - datetime.now(UTC)).total_seconds())
        signed_at = None
        if ttl < 1:  # signed one second before `expires`, for one second
            signed_at, ttl = expires - timedelta(seconds=1), 1
        if ttl > MAX_URL_TTL.total_seconds():
            raise ValueError("S3 presigned URLs last 7 days at most")
        return self._client.get_presigned_url(
            "PUT", self._bucket, key, expires=timedelta(seconds=ttl), request_date=signed_at,
            extra_query_params={"partNumber": str(number), "uploadId": upload_id})

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        check_key(key)
        try:
            return await asyncio.to_thread(_mp_list_parts, self._client, self._bucket, key,
                                           upload_id)
        except S3Error as error:
            _raise_if_missing(error)
            raise

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[Part]) -> None:
        """Also ValueError when `parts` is empty, out of order, names a part not held
        with that ETag, or a part but the last is below `min_part_size`."""
        check_key(key)
        check_parts(parts)
        try:
            await asyncio.to_thread(_mp_complete, self._client, self._bucket, key,
                                    upload_id, parts)
        except S3Error as error:
            if error.code == "NoSuchUpload":
                if await self.stat(key) is not None:
                    return  # completed before (AWS forgets the upload; some stores don't)
                raise BlobNotFound(f"no upload {upload_id} of {key}") from error
            if error.code in _BAD_PARTS:
                raise ValueError(f"parts refused by the store: {error.code}") from error
            raise

    async def abort_upload(self, key: str, upload_id: str) -> None:
        check_key(key)
        try:
            await asyncio.to_thread(_mp_abort, self._client, self._bucket, key, upload_id)
        except S3Error as error:
            if error.code != "NoSuchUpload":
                raise

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Files of 5 MiB and more go up as a multipart upload of 5 MiB parts, two at a
        time (memory: about three parts)."""
        check_key(key)
        await asyncio.to_thread(
            self._client.fput_object, self._bucket, key, str(path),
            content_type=content_type, num_parallel_uploads=PUT_PARALLEL_PARTS)

    async def get_file(self, key: str, path: Path) -> None:
        """`path` appears whole (written beside it, then renamed)."""
        check_key(key)
        try:
            await asyncio.to_thread(self._get_file, key, path)
        except S3Error as error:
            _raise_if_missing(error)
            raise

    async def open(self, key: str, start: int = 0, end: int | None = None) -> Blob:
        """ValueError for a range that starts at or past the end (but the whole of an
        empty object, start 0 and end None, is no bytes) or ends before it starts; an
        end past the last byte reads to the last. Read the chunks from one task at a
        time; `Blob.close` releases the connection whether reading started or not."""
        check_key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range {start}-{end}")
        length = 0 if end is None else end - start + 1
        try:
            response = await asyncio.to_thread(self._client.get_object, self._bucket, key,
                                               offset=start, length=length)
        except S3Error as error:
            if error.code == "InvalidRange":
                raise ValueError(f"range start {start} is past the object's end") from error
            _raise_if_missing(error)
            raise
        try:
            size = _object_size(response)
        except BaseException:
            _release(response)
            raise
        return Blob(size, _ResponseChunks(response))

    async def stat(self, key: str) -> int | None:
        check_key(key)
        try:
            info = await asyncio.to_thread(self._client.stat_object, self._bucket, key)
        except S3Error as error:
            if error.code in _MISSING:
                return None
            raise
        return info.size

    async def delete_prefix(self, prefix: str) -> None:
        """Also aborts the multipart uploads in progress to keys under the prefix.
        ValueError for an invalid or empty prefix."""
        check_prefix(prefix)
        await asyncio.to_thread(self._delete_prefix, prefix)

    async def holdings(self, after: str, limit: int) -> list[Holding]:
        """Each call lists every multipart upload in the bucket (stores disagree on their
        order and markers: they are sorted here) and every app ("{app}/", a delimited
        listing); then the objects of the apps from `after` on, app by app (within an
        app, where media ids are all of one length, both orders agree), starting past
        `after` and merged with the uploads, until `limit` prefixes are complete (the
        listing has moved past them): about one request per app it goes through, plus
        one per 1000 objects, apps or uploads. A store that gives no time: now (nothing
        looks old)."""
        check_holdings(after, limit)
        return await asyncio.to_thread(self._holdings, after, limit)

    # In threads from here on.

    def _make_bucket(self) -> None:
        if self._client.bucket_exists(self._bucket):
            return
        try:
            self._client.make_bucket(self._bucket)
        except S3Error as error:  # made meanwhile by another process?
            if (error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
                    or not self._client.bucket_exists(self._bucket)):
                raise

    def _get_file(self, key: str, path: Path) -> None:
        response = self._client.get_object(self._bucket, key)
        temp = path.with_name(f".{path.name}.{new_id()}.tmp")
        try:
            with open(temp, "xb") as out:
                for chunk in response.stream(WRITE_CHUNK, decode_content=False):
                    out.write(chunk)
            os.replace(temp, path)
        finally:
            _release(response)
            temp.unlink(missing_ok=True)

    def _delete_prefix(self, prefix: str) -> None:
        _mp_abort_all(self._client, self._bucket, prefix)
        listed = self._client.list_objects(self._bucket, prefix=prefix, recursive=True)
        doomed = (DeleteObject(o.object_name) for o in listed
                  if o.object_name and not o.is_dir)
        errors = [e for e in self._client.remove_objects(self._bucket, doomed)
                  if e.code != "NoSuchKey"]
        if errors:
            raise RuntimeError(f"S3 refused to delete {len(errors)} objects under {prefix}: "
                               f"{errors[0].code} {errors[0].message}")

    def _holdings(self, after: str, limit: int) -> list[Holding]:
        after_app = after.partition("/")[0]
        uploads: dict[str, list[tuple[str, datetime]]] = {}
        for upload in _mp_uploads(self._client, self._bucket, ""):
            prefix = media_prefix(upload.object_name)
            if prefix is not None and prefix > after:
                uploads.setdefault(prefix.partition("/")[0], []).append(
                    (prefix, upload.initiated_time or datetime.now(UTC)))
        apps = {o.object_name.rstrip("/") for o in self._client.list_objects(self._bucket)
                if o.is_dir and o.object_name} | uploads.keys()
        found: list[Holding] = []
        # In the order of the prefixes, "{app}/": "ab-c/" comes before "ab/".
        for app in sorted(apps, key=lambda name: f"{name}/"):
            if not is_app_id(app) or (after and f"{app}/" < f"{after_app}/"):
                continue
            listed = self._client.list_objects(
                self._bucket, prefix=f"{app}/", recursive=True,
                start_after=after + PAST_PREFIX if app == after_app else None)
            objects = ((prefix, o.last_modified or datetime.now(UTC)) for o in listed
                       if o.object_name and not o.is_dir
                       and (prefix := media_prefix(o.object_name)) is not None
                       and prefix > after)
            merged = heapq.merge(objects, sorted(uploads.get(app, [])), key=itemgetter(0))
            for prefix, newest in _newest_by_prefix(merged):
                found.append(Holding(prefix, newest))
                if len(found) == limit:
                    return found
        return found


def _newest_by_prefix(items: Iterable[tuple[str, datetime]]) -> Iterator[tuple[str, datetime]]:
    """(prefix, latest time) of each run of `items` with one prefix, once the run is
    over: read up to the first item of the next run, no further."""
    for prefix, run in itertools.groupby(items, key=itemgetter(0)):
        yield prefix, max(time for _, time in run)


# Multipart uploads through minio's internal API. Its public API has no presigned
# multipart upload (put_object runs a whole multipart upload itself, from a stream in
# this process), so these call the methods that put_object uses, each a single S3 request.
# They are not a stable API: checked against minio 7.2.20 (api.py); after a minio
# upgrade, the contract tests (tests/media/test_blobs.py) tell whether they still hold.

def _mp_create(client: Minio, bucket: str, key: str, content_type: str) -> str:
    return client._create_multipart_upload(bucket, key, {"Content-Type": content_type})


def _mp_list_parts(client: Minio, bucket: str, key: str, upload_id: str) -> list[Part]:
    """One part per number. SeaweedFS keeps every upload of a part number and lists
    them all (with times to the second, in no order): the latest listed one is taken,
    which is right for a retry (same bytes, same ETag) but undefined when a part was
    sent twice with other bytes within one second. AWS and MinIO replace the part."""
    latest: dict[int, MinioPart] = {}
    marker: str | None = None
    while True:
        result = client._list_parts(bucket, key, upload_id, max_parts=1000,
                                    part_number_marker=marker)
        for part in result.parts:
            seen = latest.get(part.part_number)
            if seen is None or _modified(part) >= _modified(seen):
                latest[part.part_number] = part
        if not result.is_truncated or not result.next_part_number_marker:
            return [Part(n, latest[n].size or 0, latest[n].etag) for n in sorted(latest)]
        marker = result.next_part_number_marker


def _modified(part: MinioPart) -> datetime:
    return part.last_modified or datetime.min.replace(tzinfo=UTC)


def _mp_complete(client: Minio, bucket: str, key: str, upload_id: str,
                 parts: Sequence[Part]) -> None:
    client._complete_multipart_upload(
        bucket, key, upload_id, [MinioPart(p.number, p.etag.strip('"')) for p in parts])


def _mp_abort(client: Minio, bucket: str, key: str, upload_id: str) -> None:
    client._abort_multipart_upload(bucket, key, upload_id)


def _mp_abort_all(client: Minio, bucket: str, prefix: str) -> None:
    """Abort every multipart upload to a key under `prefix`."""
    for upload in _mp_uploads(client, bucket, prefix):
        if upload.upload_id:
            try:
                _mp_abort(client, bucket, upload.object_name, upload.upload_id)
            except S3Error as error:
                if error.code != "NoSuchUpload":
                    raise


def _mp_uploads(client: Minio, bucket: str, prefix: str) -> Iterator[Upload]:
    """The multipart uploads to keys under `prefix` ("": all), in the store's order
    (see the module's docstring), a page of 1000 at a time, as they are consumed (an
    upload aborted between pages does not disturb the paging)."""
    key_marker: str | None = None
    upload_id_marker: str | None = None
    for _ in range(MAX_UPLOAD_PAGES):
        result = client._list_multipart_uploads(
            bucket, prefix=prefix, max_uploads=1000, key_marker=key_marker,
            upload_id_marker=upload_id_marker)
        yield from result.uploads
        if not result.is_truncated or not result.uploads:
            return
        # The markers the store gives: AWS gives both, SeaweedFS only the upload id (a
        # key-marker filters its listing to that key). Else the last upload listed.
        key_marker, upload_id_marker = result.next_key_marker, _next_upload_id(result)
        if not (key_marker or upload_id_marker):
            key_marker = result.uploads[-1].object_name
            upload_id_marker = result.uploads[-1].upload_id


def _next_upload_id(result: ListMultipartUploadsResult) -> str | None:
    """NextUploadIdMarker, which minio 7.2.20 keeps under a misspelt attribute."""
    value = (getattr(result, "next_upload_id_marker", None)
             or getattr(result, "self._next_upload_id_marker", None))
    return value if isinstance(value, str) and value else None


class _ResponseChunks:
    """The body of a GET, read in threads; its connection is released at the end or by
    `aclose` (which a never-started async generator could not do)."""

    def __init__(self, response: BaseHTTPResponse) -> None:
        self._response = response
        self._done = False

    def __aiter__(self) -> _ResponseChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._response.read, READ_CHUNK,
                                            decode_content=False)
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            _release(self._response)


def _release(response: BaseHTTPResponse) -> None:
    """Close the response (dropping its connection if the body was not all read) and
    give its connection back to the pool."""
    response.close()
    response.release_conn()


def _object_size(response: BaseHTTPResponse) -> int:
    """The whole object's size: from Content-Range for a range, else Content-Length."""
    content_range = response.headers.get("content-range", "")
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = response.headers.get("content-length", "")
    if response.status == 200 and length.isdigit():
        return int(length)
    raise RuntimeError(f"S3 GET answered {response.status} without the object's size")


def _raise_if_missing(error: S3Error) -> None:
    """BlobNotFound for S3's "no such key" or "no such upload"."""
    if error.code in _MISSING:
        raise BlobNotFound(f"{error.code}: {error.object_name}") from error
