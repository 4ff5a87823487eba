"""The BlobStore contract, on both engines: multipart uploads through signed part URLs,
resumes, completion, aborts, range reads, files, prefix deletion, streaming, holdings."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import random
import re
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from services.core.ids import new_id
from services.media.blobs import MAX_HOLDINGS, Blob, BlobNotFound, BlobStore, Holding, Part
from services.media.local_blobs import (
    LocalBlobStore,
    PartSizeMismatch,
    parse_part_path,
)
from services.media.urls import UrlSigner, Verdict

MIB = 1024 * 1024


def generated(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sizes(parts: list[Part]) -> list[tuple[int, int]]:
    """(number, size) of each part; and every ETag is one. ETags are opaque: S3's are
    MD5s, the local engine's are not."""
    assert all(p.etag and p.etag.strip('"') for p in parts), parts
    return [(p.number, p.size) for p in parts]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def soon(seconds: float = 600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


async def put_part(blobs: BlobStore, signer: UrlSigner, url: str, body: bytes) -> int:
    """PUT `body` to a part URL as a client does; the HTTP status. S3: a real PUT to the
    store. Local (its HTTP handler is not in this suite): what the handler does, check
    the signature, then stream the body to write_part."""
    if not isinstance(blobs, LocalBlobStore):
        async with httpx.AsyncClient() as http:
            return (await http.put(url, content=body)).status_code
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if signer.verify(parts.path, params, time.time()) is not Verdict.VALID:
        return 403
    parsed = parse_part_path(parts.path)
    assert parsed is not None, url
    key, upload_id, number = parsed
    try:
        await blobs.write_part(key, upload_id, number, int(params["z"]), pieces(body))
    except BlobNotFound:
        return 404
    except PartSizeMismatch:
        return 400
    return 200


async def upload(blobs: BlobStore, signer: UrlSigner, key: str, bodies: list[bytes],
                 upload_id: str | None = None) -> str:
    """Upload `bodies` as parts 1…n (of a new upload unless `upload_id`); its id."""
    upload_id = upload_id or await blobs.create_upload(key, "application/octet-stream",
                                                       blobs.min_part_size)
    for number, body in enumerate(bodies, 1):
        url = blobs.part_url(key, upload_id, number, len(body), soon())
        assert await put_part(blobs, signer, url, body) == 200
    return upload_id


async def read(blob: Blob) -> bytes:
    return b"".join([chunk async for chunk in blob.chunks])


async def content(blobs: BlobStore, key: str) -> bytes:
    return await read(await blobs.open(key))


async def put(blobs: BlobStore, tmp_path: Path, key: str, data: bytes) -> None:
    source = tmp_path / f"put-{new_id()}"
    source.write_bytes(data)
    await blobs.put_file(key, source, "application/octet-stream")


async def test_a_multipart_upload_joins_its_parts_exactly(
        blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    key = "app1/media1/original"
    bodies = [generated(blobs.min_part_size, 1), generated(blobs.min_part_size, 2),
              generated(1234, 3)]
    upload_id = await upload(blobs, signer, key, bodies)

    parts = await blobs.list_parts(key, upload_id)
    assert sizes(parts) == [(n, len(b)) for n, b in enumerate(bodies, 1)]
    assert await blobs.stat(key) is None  # nothing until completed
    await blobs.complete_upload(key, upload_id, parts)

    whole = b"".join(bodies)
    assert await blobs.stat(key) == len(whole)
    blob = await blobs.open(key)
    assert blob.size == len(whole)
    assert sha256(await read(blob)) == sha256(whole)
    await blobs.get_file(key, tmp_path / "copy")
    assert sha256((tmp_path / "copy").read_bytes()) == sha256(whole)
    with pytest.raises(BlobNotFound):
        await blobs.list_parts(key, upload_id)  # the upload is gone once completed


async def test_a_resumed_upload_lists_the_parts_held_once_each(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media2/original"
    first, last = generated(blobs.min_part_size, 4), generated(10, 6)
    upload_id = await upload(blobs, signer, key, [first])
    assert sizes(await blobs.list_parts(key, upload_id)) == [(1, len(first))]

    # The client comes back: it sends part 1 again (its answer was lost), then the rest.
    await upload(blobs, signer, key, [first, last], upload_id)
    parts = await blobs.list_parts(key, upload_id)
    assert sizes(parts) == [(1, len(first)), (2, len(last))]

    await blobs.complete_upload(key, upload_id, parts)
    assert sha256(await content(blobs, key)) == sha256(first + last)


async def test_parts_of_one_upload_may_be_sent_at_once(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media14/original"
    bodies = [generated(blobs.min_part_size, 40 + n) for n in range(3)] + [generated(77, 43)]
    upload_id = await blobs.create_upload(key, "video/mp4", blobs.min_part_size)
    urls = [blobs.part_url(key, upload_id, n, len(b), soon()) for n, b in enumerate(bodies, 1)]

    sends = [put_part(blobs, signer, url, body) for url, body in zip(urls, bodies, strict=True)]
    statuses = await asyncio.gather(*reversed(sends))  # the last part first

    assert statuses == [200] * len(bodies)
    parts = await blobs.list_parts(key, upload_id)
    assert sizes(parts) == [(n, len(b)) for n, b in enumerate(bodies, 1)]
    await blobs.complete_upload(key, upload_id, parts)
    assert sha256(await content(blobs, key)) == sha256(b"".join(bodies))


async def test_completing_a_completed_upload_again_succeeds(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media3/original"
    bodies = [generated(blobs.min_part_size, 7), generated(99, 8)]
    upload_id = await upload(blobs, signer, key, bodies)
    parts = await blobs.list_parts(key, upload_id)
    await blobs.complete_upload(key, upload_id, parts)

    await blobs.complete_upload(key, upload_id, parts)

    assert sha256(await content(blobs, key)) == sha256(b"".join(bodies))


async def test_completing_an_upload_that_is_gone_and_left_no_object_is_not_found(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media4/original"
    upload_id = await upload(blobs, signer, key, [generated(10, 9)])
    parts = await blobs.list_parts(key, upload_id)
    await blobs.abort_upload(key, upload_id)

    with pytest.raises(BlobNotFound):
        await blobs.complete_upload(key, upload_id, parts)
    assert await blobs.stat(key) is None


async def test_completion_refuses_parts_the_store_does_not_hold_as_listed(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media5/original"
    big, small, last = generated(blobs.min_part_size, 10), generated(100, 11), b"last"
    upload_id = await upload(blobs, signer, key, [big, small, last])
    held = await blobs.list_parts(key, upload_id)

    for parts in ([],
                  list(reversed(held)),
                  [held[0], Part(2, len(small), md5(b"other bytes"))],
                  [held[0], Part(4, 10, md5(b"never sent"))],
                  held):  # part 2 is below min_part_size and not the last
        with pytest.raises(ValueError):
            await blobs.complete_upload(key, upload_id, parts)
    assert await blobs.stat(key) is None

    # Still open: it completes with the parts that make a valid object (not all sent).
    await blobs.complete_upload(key, upload_id, held[:2])
    assert sha256(await content(blobs, key)) == sha256(big + small)


async def test_an_aborted_upload_is_gone_with_its_parts(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media6/original"
    upload_id = await upload(blobs, signer, key, [generated(1000, 13)])
    url = blobs.part_url(key, upload_id, 2, 10, soon())

    await blobs.abort_upload(key, upload_id)

    with pytest.raises(BlobNotFound):
        await blobs.list_parts(key, upload_id)
    assert await put_part(blobs, signer, url, generated(10, 14)) == 404
    await blobs.abort_upload(key, upload_id)  # idempotent
    assert await blobs.stat(key) is None


async def test_a_tampered_or_expired_part_url_is_refused(
        blobs: BlobStore, signer: UrlSigner) -> None:
    key = "app1/media7/original"
    upload_id = await blobs.create_upload(key, "image/png", blobs.min_part_size)
    body = generated(100, 15)
    url = blobs.part_url(key, upload_id, 1, len(body), soon())

    other_key = url.replace("/media7/", "/media8/")
    assert other_key != url
    bad_signature = url[:-1] + ("A" if url[-1] != "A" else "B")
    expired = blobs.part_url(key, upload_id, 1, len(body), soon(-60))
    for refused in (other_key, bad_signature, expired):
        assert await put_part(blobs, signer, refused, body) == 403, refused

    assert await blobs.list_parts(key, upload_id) == []
    assert await put_part(blobs, signer, url, body) == 200
    assert sizes(await blobs.list_parts(key, upload_id)) == [(1, len(body))]


async def test_range_reads(blobs: BlobStore, tmp_path: Path) -> None:
    key = "app1/media9/original"
    data = generated(MIB + 17, 16)
    await put(blobs, tmp_path, key, data)
    size = len(data)

    for start, end, expected in ((0, 0, data[:1]),
                                 (1000, 300_000, data[1000:300_001]),
                                 (500_000, None, data[500_000:]),
                                 (size - 1, None, data[-1:]),
                                 (size - 10, size + 100, data[-10:]),  # clipped at the end
                                 (0, None, data)):
        blob = await blobs.open(key, start, end)
        assert blob.size == size
        assert await read(blob) == expected, (start, end)

    for start, end in ((size, None), (size + 5, size + 9), (10, 5), (-1, None)):
        with pytest.raises(ValueError):
            await blobs.open(key, start, end)


async def test_an_empty_object_reads_as_no_bytes(blobs: BlobStore, tmp_path: Path) -> None:
    await put(blobs, tmp_path, "app1/media10/empty", b"")

    assert await blobs.stat("app1/media10/empty") == 0
    blob = await blobs.open("app1/media10/empty")
    assert (blob.size, await read(blob)) == (0, b"")


async def test_what_is_missing_is_not_found(blobs: BlobStore, tmp_path: Path) -> None:
    key = "app1/nothing/original"
    await put(blobs, tmp_path, "app1/something/original", b"x")

    assert await blobs.stat(key) is None
    assert await blobs.stat("app1/something") is None  # a prefix is no object
    with pytest.raises(BlobNotFound):
        await blobs.open(key)
    with pytest.raises(BlobNotFound):
        await blobs.get_file(key, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(BlobNotFound):
        await blobs.list_parts(key, new_id())
    await blobs.abort_upload(key, new_id())  # idempotent: nothing to drop


async def test_put_file_and_get_file_round_trip_and_replace(
        blobs: BlobStore, tmp_path: Path) -> None:
    key = "app1/media11/small.webp"
    first, second = generated(3 * MIB + 5, 17), generated(200, 18)
    target = tmp_path / "got"

    await put(blobs, tmp_path, key, first)
    await blobs.get_file(key, target)
    assert sha256(target.read_bytes()) == sha256(first)

    await put(blobs, tmp_path, key, second)  # replaces the object
    await blobs.get_file(key, target)  # and the file
    assert target.read_bytes() == second
    assert await blobs.stat(key) == len(second)
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no temp


async def test_delete_prefix_deletes_objects_and_uploads_under_it_only(
        blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    for key in ("app1/m1/original", "app1/m1/small.webp", "app1/m10/original",
                "app2/m1/original"):
        await put(blobs, tmp_path, key, key.encode())
    upload_id = await upload(blobs, signer, "app1/m1/video", [generated(10, 19)])
    other_upload = await upload(blobs, signer, "app1/m10/video", [generated(10, 20)])

    await blobs.delete_prefix("app1/m1/")

    assert await blobs.stat("app1/m1/original") is None
    assert await blobs.stat("app1/m1/small.webp") is None
    with pytest.raises(BlobNotFound):
        await blobs.list_parts("app1/m1/video", upload_id)
    assert await content(blobs, "app1/m10/original") == b"app1/m10/original"
    assert await content(blobs, "app2/m1/original") == b"app2/m1/original"
    assert len(await blobs.list_parts("app1/m10/video", other_upload)) == 1

    await blobs.delete_prefix("app1/m1/")  # idempotent
    await blobs.delete_prefix("app1/m")  # a prefix need not end at a "/"
    assert await blobs.stat("app1/m10/original") is None
    with pytest.raises(BlobNotFound):
        await blobs.list_parts("app1/m10/video", other_upload)
    assert await blobs.stat("app2/m1/original") == len(b"app2/m1/original")
    with pytest.raises(ValueError, match="prefix"):
        await blobs.delete_prefix("")  # never the whole store


@pytest.mark.parametrize("key", ["", "App/m/x", "/app/m/x", "app//x", "app/m/", "app/../x",
                                 "app/./x", "app/m/x y", "app/m/%2e%2e", "app\\m"])
async def test_keys_outside_the_alphabet_are_refused(
        blobs: BlobStore, tmp_path: Path, key: str) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="key"):
        await blobs.put_file(key, source, "text/plain")
    with pytest.raises(ValueError, match="key"):
        await blobs.create_upload(key, "text/plain", blobs.min_part_size)
    with pytest.raises(ValueError, match="key"):
        await blobs.open(key)


async def test_reading_streams_a_large_object_in_bounded_chunks(
        blobs: BlobStore, tmp_path: Path) -> None:
    key = "app1/media12/original"
    size = 64 * MIB
    source, digest = tmp_path / "big", hashlib.sha256()
    with source.open("wb") as file:
        for n in range(size // MIB):
            chunk = generated(MIB, 100 + n)
            digest.update(chunk)
            file.write(chunk)
    await blobs.put_file(key, source, "video/mp4")
    source.unlink()

    tracemalloc.start()
    try:
        blob = await blobs.open(key)
        assert blob.size == size
        read_digest, total, largest, count = hashlib.sha256(), 0, 0, 0
        async for chunk in blob.chunks:
            read_digest.update(chunk)
            total, largest, count = total + len(chunk), max(largest, len(chunk)), count + 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (total, read_digest.hexdigest()) == (size, digest.hexdigest())
    assert largest <= MIB and count >= 64
    assert peak < 8 * MIB, f"reading held {peak} bytes at once"


async def test_a_blob_closed_early_stops_reading(blobs: BlobStore, tmp_path: Path) -> None:
    key = "app1/media13/original"
    await put(blobs, tmp_path, key, generated(4 * MIB, 21))

    blob = await blobs.open(key)
    first = await anext(blob.chunks)
    await blob.close()
    assert 0 < len(first) < 4 * MIB
    assert [chunk async for chunk in blob.chunks] == []

    for _ in range(40):  # never started, then closed: nothing is held open
        await (await blobs.open(key, 5, 10)).close()
    assert await read(await blobs.open(key, 5, 10)) == (await content(blobs, key))[5:11]


# "abc-d/" < "abc/" < "abcd/" as strings (the order of holdings); SeaweedFS lists these
# apps as a tree, "abc" first.
HOLDING_APPS = ("abc", "abc-d", "abcd")


async def hold_media(blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> dict[str, str]:
    """Media held in every way, in each of HOLDING_APPS, and keys that are no media's
    (never reported); the media prefixes held, and how."""
    held: dict[str, str] = {}
    for app in HOLDING_APPS:
        objects, completed, parts, bare, both = (f"{app}/{new_id()}/" for _ in range(5))
        await put(blobs, tmp_path, f"{objects}original", b"o")
        await put(blobs, tmp_path, f"{objects}small.webp", b"s")
        upload_id = await upload(blobs, signer, f"{completed}original", [b"c"])
        await blobs.complete_upload(f"{completed}original", upload_id,
                                    await blobs.list_parts(f"{completed}original", upload_id))
        await upload(blobs, signer, f"{parts}original", [b"p"])  # parts, no object
        await blobs.create_upload(f"{bare}original", "image/png",
                                  blobs.min_part_size)  # not even a part
        await put(blobs, tmp_path, f"{both}original", b"b")
        await upload(blobs, signer, f"{both}video", [b"v"])
        held |= {objects: "objects", completed: "completed", parts: "parts", bare: "bare",
                 both: "both"}
    for key in (f"abc/{new_id()}",  # no name under the media
                "abc/not-a-media-id/original", f"abc/{new_id()}x/original",
                f"ab/{new_id()}/original"):  # "ab" is too short for an app id
        await put(blobs, tmp_path, key, b"-")
    await blobs.create_upload(f"abcd/{new_id()}", "image/png", blobs.min_part_size)
    return dict(sorted(held.items()))


async def all_holdings(blobs: BlobStore, limit: int, after: str = "") -> list[Holding]:
    """Every holding after `after`, paging by `limit`; each page checked."""
    found: list[Holding] = []
    while True:
        page = await blobs.holdings(after, limit)
        assert len(page) <= limit
        assert all(h.prefix > after for h in page)
        found += page
        if len(page) < limit:
            return found
        after = page[-1].prefix


async def test_holdings_are_the_media_prefixes_with_objects_or_uploads(
        blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    assert await blobs.holdings("", 10) == []
    start = datetime.now(UTC)
    held = await hold_media(blobs, signer, tmp_path)
    end = datetime.now(UTC)

    holdings = await blobs.holdings("", MAX_HOLDINGS)

    assert [h.prefix for h in holdings] == list(held)  # in order, each once
    for holding in holdings:
        assert holding.newest.utcoffset() == timedelta(0)
        # S3 keeps times to the second (cut, not rounded).
        assert start - timedelta(seconds=1) < holding.newest <= end, holding


async def test_holdings_page_through_every_prefix_once(
        blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    held = await hold_media(blobs, signer, tmp_path)
    whole = await blobs.holdings("", MAX_HOLDINGS)

    for limit in (1, 2, 4, len(held)):  # page ends inside apps and at their ends
        assert await all_holdings(blobs, limit) == whole, limit

    prefixes = list(held)
    middle = prefixes[len(prefixes) // 2]
    assert [h.prefix for h in await blobs.holdings(middle, MAX_HOLDINGS)] == [
        p for p in prefixes if p > middle]
    between = f"{HOLDING_APPS[1]}/{'z' * 16}/"  # held by no one: the next app's come
    assert [h.prefix for h in await all_holdings(blobs, 3, between)] == [
        p for p in prefixes if p > between]


async def test_a_deleted_prefix_is_no_longer_held(
        blobs: BlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    held = await hold_media(blobs, signer, tmp_path)
    gone = [p for p, how in held.items()
            if how in ("parts", "bare", "both") or p.startswith(f"{HOLDING_APPS[0]}/")]

    for prefix in gone:
        await blobs.delete_prefix(prefix)

    kept = [p for p in held if p not in gone]
    assert [h.prefix for h in await blobs.holdings("", MAX_HOLDINGS)] == kept
    assert [h.prefix for h in await all_holdings(blobs, 2, gone[0])] == [
        p for p in kept if p > gone[0]]  # paging on from a prefix that is gone


async def test_holdings_refuse_what_is_no_media_prefix_or_limit(blobs: BlobStore) -> None:
    media = new_id()
    for after in ("abc", "abc/", f"abc/{media}", f"abc/{media}/original", f"/abc/{media}/",
                  f"ab/{media}/", f"abc/{media}x/", f"Abc/{media}/"):
        with pytest.raises(ValueError, match="prefix"):
            await blobs.holdings(after, 10)
    for limit in (0, -1, MAX_HOLDINGS + 1):
        with pytest.raises(ValueError, match="limit"):
            await blobs.holdings("", limit)


# The local engine's own surface: what its HTTP handler for part URLs uses.

async def test_a_local_part_url_carries_its_signed_size(
        local_blobs: LocalBlobStore, signer: UrlSigner) -> None:
    upload_id = await local_blobs.create_upload("app1/m/original", "image/jpeg",
                                                local_blobs.min_part_size)
    url = local_blobs.part_url("app1/m/original", upload_id, 7, 1234, soon())

    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    assert parts.path == f"/media/v1/parts/{upload_id}/7/app1/m/original"
    assert url.startswith("http://127.0.0.1:9/media/v1/parts/")
    assert params["z"] == "1234"
    assert signer.verify(parts.path, params, time.time()) is Verdict.VALID
    assert signer.verify(parts.path, {**params, "z": "99999"}, time.time()) is Verdict.INVALID
    assert parse_part_path(parts.path) == ("app1/m/original", upload_id, 7)


@pytest.mark.parametrize("path", [
    "/media/v1/parts/abcdefghijklmnop/0/app/m/x",  # part numbers start at 1
    "/media/v1/parts/abcdefghijklmnop/10001/app/m/x",
    "/media/v1/parts/abcdefghijklmnop/01/app/m/x",
    "/media/v1/parts/ABCDEFGHIJKLMNOP/1/app/m/x",
    "/media/v1/parts/abcdefghijklmnop/1/app/../x",
    "/media/v1/parts/abcdefghijklmnop/1/app/m/%2e",
    "/media/v1/parts/abcdefghijklmnop/1/",
    "/media/v1/parts/abcdefghijklmnop/app/m/x",
    "/media/v1/objects/abcdefghijklmnop/1/app/m/x",
])
def test_paths_that_are_no_part_url_do_not_parse(path: str) -> None:
    assert parse_part_path(path) is None


async def test_write_part_refuses_a_body_of_another_size_and_keeps_nothing(
        local_blobs: LocalBlobStore, tmp_path: Path) -> None:
    key = "app1/m/original"
    upload_id = await local_blobs.create_upload(key, "image/png", local_blobs.min_part_size)
    pulled = 0

    async def too_long() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(50):
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(PartSizeMismatch):
        await local_blobs.write_part(key, upload_id, 1, 4500, too_long())
    assert pulled == 5  # refused as soon as the 5001st byte came
    with pytest.raises(PartSizeMismatch):
        await local_blobs.write_part(key, upload_id, 1, 4500, pieces(b"x" * 4499))

    assert await local_blobs.list_parts(key, upload_id) == []
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    part = await local_blobs.write_part(key, upload_id, 1, 4500, pieces(b"y" * 4500))
    assert (part.number, part.size) == (1, 4500) and re.fullmatch("[0-9a-f]{32}", part.etag)
    await local_blobs.complete_upload(key, upload_id, [part])
    assert await content(local_blobs, key) == b"y" * 4500


async def test_a_part_written_again_replaces_the_one_held(
        local_blobs: LocalBlobStore, signer: UrlSigner) -> None:
    # (SeaweedFS keeps both and lists both, a second apart at best: see s3_blobs.py.)
    key = "app1/m/original"
    size = local_blobs.min_part_size
    before, after = generated(size, 22), generated(size, 23)
    upload_id = await upload(local_blobs, signer, key, [before])
    first = await local_blobs.list_parts(key, upload_id)

    await upload(local_blobs, signer, key, [after, b"end"], upload_id)

    parts = await local_blobs.list_parts(key, upload_id)
    assert sizes(parts) == [(1, len(after)), (2, 3)]
    assert parts[0].etag != first[0].etag  # a new ETag for new bytes
    with pytest.raises(ValueError, match="ETag"):
        await local_blobs.complete_upload(key, upload_id, [first[0], parts[1]])
    await local_blobs.complete_upload(key, upload_id, parts)
    assert sha256(await content(local_blobs, key)) == sha256(after + b"end")


async def test_write_part_streams_without_holding_the_part(
        local_blobs: LocalBlobStore) -> None:
    key = "app1/m/original"
    size, digest = 48 * MIB, hashlib.sha256()
    upload_id = await local_blobs.create_upload(key, "video/mp4", size)

    async def body() -> AsyncIterator[bytes]:
        for n in range(size // (64 * 1024)):
            chunk = n.to_bytes(4, "big") * (16 * 1024)
            digest.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        part = await local_blobs.write_part(key, upload_id, 1, size, body())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (part.number, part.size) == (1, size)
    assert peak < 8 * MIB, f"writing held {peak} bytes at once"
    await local_blobs.complete_upload(key, upload_id, [part])
    blob, read_digest = await local_blobs.open(key), hashlib.sha256()
    async for chunk in blob.chunks:
        read_digest.update(chunk)
    assert read_digest.hexdigest() == digest.hexdigest()


class Paused:
    """A part's body that stops after `head` bytes until `go` is set (or raises
    `error` there)."""

    def __init__(self, data: bytes, head: int, error: Exception | None = None) -> None:
        self.data, self.head, self.error = data, head, error
        self.waiting, self.go = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> AsyncIterator[bytes]:
        async for chunk in pieces(self.data[:self.head]):
            yield chunk
        self.waiting.set()
        await self.go.wait()
        if self.error is not None:
            raise self.error
        async for chunk in pieces(self.data[self.head:]):
            yield chunk


def open_files_under(directory: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(str(directory)):
                found.append(os.readlink(fd))
    return found


async def test_a_part_cut_short_is_not_held_even_if_it_was(
        local_blobs: LocalBlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    key = "app1/m/original"
    size = local_blobs.min_part_size
    data = generated(size, 24)
    upload_id = await upload(local_blobs, signer, key, [data])
    paused = Paused(generated(size, 25), 3 * MIB, ConnectionResetError("gone"))

    writing = asyncio.ensure_future(local_blobs.write_part(key, upload_id, 1, size, paused()))
    await paused.waiting.wait()
    assert await local_blobs.list_parts(key, upload_id) == []  # overwritten in place
    paused.go.set()
    with pytest.raises(ConnectionResetError):
        await writing

    assert await local_blobs.list_parts(key, upload_id) == []
    await upload(local_blobs, signer, key, [data], upload_id)  # the client sends it again
    await local_blobs.complete_upload(key, upload_id,
                                      await local_blobs.list_parts(key, upload_id))
    assert sha256(await content(local_blobs, key)) == sha256(data)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
async def test_a_cancelled_part_write_leaves_no_part_and_no_file_open(
        local_blobs: LocalBlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    key = "app1/m/original"
    size = local_blobs.min_part_size
    upload_id = await local_blobs.create_upload(key, "video/mp4", size)
    paused = Paused(generated(size, 26), 2 * MIB + 5)

    writing = asyncio.ensure_future(local_blobs.write_part(key, upload_id, 1, size, paused()))
    await paused.waiting.wait()
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing

    assert await local_blobs.list_parts(key, upload_id) == []
    assert open_files_under(tmp_path / "media") == []
    await upload(local_blobs, signer, key, [paused.data], upload_id)
    await local_blobs.complete_upload(key, upload_id,
                                      await local_blobs.list_parts(key, upload_id))
    assert sha256(await content(local_blobs, key)) == sha256(paused.data)


async def test_two_puts_of_one_part_take_turns_and_the_last_wins(
        local_blobs: LocalBlobStore) -> None:
    key = "app1/m/original"
    size = local_blobs.min_part_size
    upload_id = await local_blobs.create_upload(key, "video/mp4", size)
    first, second = Paused(generated(size, 27), MIB + 1), generated(size, 28)

    one = asyncio.ensure_future(local_blobs.write_part(key, upload_id, 1, size, first()))
    await first.waiting.wait()
    two = asyncio.ensure_future(local_blobs.write_part(key, upload_id, 1, size,
                                                       pieces(second)))
    await asyncio.sleep(0.2)
    assert not two.done()  # it waits for the first one
    first.go.set()
    await one
    part = await two

    assert await local_blobs.list_parts(key, upload_id) == [part]
    await local_blobs.complete_upload(key, upload_id, [part])
    assert sha256(await content(local_blobs, key)) == sha256(second)


async def test_parts_written_while_the_upload_completes_never_touch_the_object(
        local_blobs: LocalBlobStore, signer: UrlSigner) -> None:
    key = "app1/m/original"
    size = local_blobs.min_part_size
    data = [generated(size, 29), generated(100, 30)]
    upload_id = await upload(local_blobs, signer, key, data)
    parts = await local_blobs.list_parts(key, upload_id)
    late = Paused(generated(size, 31), MIB + 1)

    writing = asyncio.ensure_future(local_blobs.write_part(key, upload_id, 3, size, late()))
    await late.waiting.wait()
    await local_blobs.complete_upload(key, upload_id, parts)
    late.go.set()
    with pytest.raises(BlobNotFound):
        await writing

    assert sha256(await content(local_blobs, key)) == sha256(b"".join(data))
    with pytest.raises(BlobNotFound):
        await local_blobs.write_part(key, upload_id, 2, 100, pieces(data[1]))


async def test_local_parts_are_laid_out_by_the_upload_part_size(
        local_blobs: LocalBlobStore, signer: UrlSigner) -> None:
    key = "app1/m/original"
    size = local_blobs.min_part_size
    with pytest.raises(ValueError, match="part size"):
        await local_blobs.create_upload(key, "video/mp4", size - 1)
    upload_id = await local_blobs.create_upload(key, "video/mp4", size + 10)
    with pytest.raises(ValueError, match="part size"):
        await local_blobs.write_part(key, upload_id, 1, size + 11, pieces(b"x" * (size + 11)))

    await upload(local_blobs, signer, key, [generated(size, 32), generated(size + 10, 33),
                                            b"end"], upload_id)
    parts = await local_blobs.list_parts(key, upload_id)
    for wrong in ([parts[0], parts[2]],  # part 1 is not of the part size
                  [parts[1], parts[2]]):  # no part 1
        with pytest.raises(ValueError, match="joins parts"):
            await local_blobs.complete_upload(key, upload_id, wrong)
    await upload(local_blobs, signer, key, [generated(size + 10, 34)], upload_id)
    parts = await local_blobs.list_parts(key, upload_id)
    await local_blobs.complete_upload(key, upload_id, parts)
    assert sha256(await content(local_blobs, key)) == sha256(
        generated(size + 10, 34) + generated(size + 10, 33) + b"end")


async def test_local_get_file_links_the_object_or_copies_it(
        local_blobs: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "app1/m/original"
    await put(local_blobs, tmp_path, key, b"first")
    linked, copied = tmp_path / "linked", tmp_path / "copied"

    await local_blobs.get_file(key, linked)
    assert linked.stat().st_ino == (tmp_path / "media" / "objects" / key).stat().st_ino

    def cross_device(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with monkeypatch.context() as patched:
        patched.setattr(os, "link", cross_device)
        await local_blobs.get_file(key, copied)
        with pytest.raises(BlobNotFound):
            await local_blobs.get_file("app1/m/nothing", copied)
    assert copied.read_bytes() == b"first"
    assert copied.stat().st_ino != linked.stat().st_ino

    await put(local_blobs, tmp_path, key, b"second")  # replaced by rename
    assert (linked.read_bytes(), copied.read_bytes()) == (b"first", b"first")
    await local_blobs.delete_prefix("app1/m/")
    assert linked.read_bytes() == b"first"


async def test_local_holdings_take_the_latest_file_under_a_prefix(
        local_blobs: LocalBlobStore, signer: UrlSigner, tmp_path: Path) -> None:
    prefix = f"abc/{new_id()}/"
    await put(local_blobs, tmp_path, f"{prefix}original", b"o")
    await put(local_blobs, tmp_path, f"{prefix}small.webp", b"s")
    upload_id = await upload(local_blobs, signer, f"{prefix}video", [b"v"])
    root = tmp_path / "media"
    upload_dir = root / "uploads" / prefix / "video" / f"@{upload_id}"
    now = int(time.time())
    times = {root / "objects" / prefix / "original": now - 3000,
             root / "objects" / prefix / "small.webp": now - 1000,  # the latest
             upload_dir / "upload.json": now - 4000}
    for path in upload_dir.iterdir():  # the data, the part's marker and lock
        times.setdefault(path, now - 2000)
    for path, mtime in times.items():
        os.utime(path, (mtime, mtime))

    assert await local_blobs.holdings("", 10) == [
        Holding(prefix, datetime.fromtimestamp(now - 1000, UTC))]
