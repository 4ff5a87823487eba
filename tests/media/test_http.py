"""The media HTTP server on a real socket, in this process: what only the test can sign
(expired URLs) and the HTTP details a browser or CDN relies on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from services.media.delivery import file_path
from services.media.http import MediaHttp, byte_range, content_disposition, safe_file_name
from services.media.models import Media
from services.runtime import Runtime
from tests.media.inprocess import Clock, group, ready_media


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    served = MediaHttp(runtime.stores.media, runtime.blobs, runtime.media_urls)
    port = await served.start("127.0.0.1:0", reuse_port=False)
    runtime.media_urls.base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=runtime.media_urls.base_url, timeout=10) as client:
        yield client
    await served.close()


@pytest.fixture
async def media(runtime: Runtime, clock: Clock) -> Media:
    return await ready_media(runtime, clock, await group(runtime), b"some plain")


def url(runtime: Runtime, media: Media, expires: int, **params: str) -> str:
    return runtime.media_urls.signer.sign(file_path("alpha", media.media_id, "original"),
                                          expires, params)


async def test_an_expired_url_says_so(http: httpx.AsyncClient, runtime: Runtime,
                                      media: Media) -> None:
    good = await http.get(url(runtime, media, int(time.time()) + 60))
    assert good.status_code == 200 and good.content == b"some plain"
    late = await http.get(url(runtime, media, int(time.time()) - 1))
    assert late.status_code == 403
    assert late.json()["details"][0]["reason"] == "URL_EXPIRED"
    assert late.headers["cache-control"] == "no-store"


async def test_head_etag_and_ranges(http: httpx.AsyncClient, runtime: Runtime,
                                    media: Media) -> None:
    target = url(runtime, media, int(time.time()) + 600)
    head = await http.head(target)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "10"
    assert head.headers["content-type"] == "text/plain"
    assert head.headers["content-disposition"].startswith("attachment;")  # not a picture
    assert head.headers["content-security-policy"] == "default-src 'none'; sandbox"
    again = await http.get(target, headers={"if-none-match": head.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    several = await http.get(target, headers={"range": "bytes=0-1,4-5"})
    assert several.status_code == 200 and several.content == b"some plain"  # whole
    nonsense = await http.get(target, headers={"range": "lines=1-2"})
    assert nonsense.status_code == 200


async def test_paths_that_are_not_media_are_refused(http: httpx.AsyncClient, runtime: Runtime,
                                                    media: Media) -> None:
    expires = int(time.time()) + 60
    for path in (f"/media/v1/files/alpha/{media.media_id}/../../etc/passwd",
                 f"/media/v1/files/alpha/{media.media_id}/huge",
                 "/media/v1/elsewhere"):
        signed = runtime.media_urls.signer.sign(path, expires)
        response = await http.get(signed)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
    wrong_method = await http.post(url(runtime, media, expires))
    assert wrong_method.status_code == 405
    missing = runtime.media_urls.signer.sign(file_path("alpha", "a" * 16, "original"),
                                             expires)
    assert (await http.get(missing)).status_code == 404


def test_byte_ranges() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("bytes=2-", 10) == (2, 9)
    assert byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=-30", 10) == (0, 9)
    assert byte_range("bytes=5-100", 10) == (5, 9)
    for unsatisfiable in ("bytes=10-", "bytes=4-2", "bytes=-0"):
        with pytest.raises(Exception) as caught:
            byte_range(unsatisfiable, 10)
        assert getattr(caught.value, "status", None) == 416


def test_file_names_are_safe_in_headers_and_on_disk() -> None:
    assert safe_file_name("../../etc/passwd") == "etcpasswd"
    assert safe_file_name('a"b\r\nc.txt') == "abc.txt"
    assert safe_file_name("...") == "file"
    assert safe_file_name("x" * 300) == "x" * 200
    header = content_disposition('Résumé "final".pdf', inline=False)
    assert header == ("attachment; filename=\"R_sum_ final.pdf\"; "
                      "filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf")
    assert "\n" not in content_disposition("a\nb", inline=True)
