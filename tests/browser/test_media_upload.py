"""Pictures in real browsers, on the demo page: Alice picks one, the SDK's `uploadMedia`
sends it (XMLHttpRequest, straight to its signed part URLs through Envoy's CORS, no
token), waits on her stream until it is processed, and sends it; Bob's page shows its
small thumbnail, which loads. A part the network drops is sent again, and so is one
that never gets an answer; an upload in flight can be cancelled."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from playwright.async_api import Browser, Locator, Page, Request, Response, Route, expect

from tests.browser.pages import open_page, tokens
from tests.conftest import AppHandle
from tests.media import samples
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

PART = 5 * 1024 * 1024  # media_part_size of the shared test server (tests/conftest.py)
PARTS_PATH = "/media/v1/parts/"


def part_number(url: str) -> int:
    """The part of an embedded-store part URL: /media/v1/parts/{upload}/{number}/{key}."""
    path = urlsplit(url).path.removeprefix(PARTS_PATH)
    return int(path.split("/")[1])


async def loaded_image(image: Locator) -> dict[str, object]:
    """Once the <img> has loaded and decoded (img.decode() fails if it cannot), what the
    browser made of it."""
    return dict(await image.evaluate(
        "async (img) => { await img.decode(); return {complete: img.complete, "
        "width: img.naturalWidth, height: img.naturalHeight, src: img.currentSrc}; }"))


def nearest(colour: object) -> tuple[int, int, int]:
    """The sample colour closest to `colour` (thumbnails are lossy)."""
    assert isinstance(colour, tuple)
    palette = (samples.RED, samples.GREEN, samples.BLUE, samples.WHITE)
    return min(palette, key=lambda known: sum((a - b) ** 2 for a, b in zip(known, colour,
                                                                          strict=False)))


async def progress(page: Page) -> list[dict[str, int]]:
    reports: list[dict[str, int]] = await page.evaluate("window.caasUploadProgress")
    return reports


async def test_alice_sends_a_picture_and_bob_sees_its_thumbnail(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",), title="Holiday")
    photo = samples.jpeg(tmp_path / "beach.jpg", (1200, 900))
    size = photo.stat().st_size
    alice_context, alice_page = await open_page(browser, demo_origin, server.http_url,
                                                await tokens(client, app, "alice"))
    bob_context, bob_page = await open_page(browser, demo_origin, server.http_url,
                                            await tokens(client, app, "bob"))
    puts: list[Request] = []
    alice_page.on("request", lambda request: puts.append(request)
                  if request.method == "PUT" else None)
    files: list[Response] = []
    bob_page.on("response", lambda response: files.append(response)
                if "/media/v1/files/" in response.url else None)
    try:
        for page in (alice_page, bob_page):
            await page.get_by_test_id("conversation").filter(has_text="Holiday").click()
        await alice_page.get_by_test_id("attach-input").set_input_files(photo)

        # Uploaded, processed and sent: both see it, Bob from his stream.
        await expect(alice_page.get_by_test_id("attachment-image")).to_have_count(1)
        bob_image = bob_page.get_by_test_id("attachment-image")
        await expect(bob_image).to_have_count(1)
        await expect(alice_page.get_by_test_id("upload")).to_be_hidden()
        await expect(alice_page.get_by_test_id("notice")).to_have_text("")

        # Progress from nothing to every byte, never backwards.
        reports = await progress(alice_page)
        assert reports[0] == {"loadedBytes": 0, "totalBytes": size}
        assert reports[-1] == {"loadedBytes": size, "totalBytes": size}
        loaded = [report["loadedBytes"] for report in reports]
        assert loaded == sorted(loaded)
        # One part, PUT to its signed URL through Envoy, with no token; stored.
        assert [urlsplit(put.url).path.startswith(PARTS_PATH) for put in puts] == [True]
        assert puts[0].url.startswith(server.http_url)
        assert "authorization" not in await puts[0].all_headers()
        stored = await puts[0].response()
        assert stored is not None and stored.status == 200

        # Bob's thumbnail loads: the small one, signed for him.
        shown = await loaded_image(bob_image)
        listed = await bob.messages(group.name)
        (message,) = listed.messages
        (attachment,) = message.attachments
        assert attachment.media and attachment.title == "beach.jpg"
        small = attachment.thumbnails[0]
        assert (small.size, small.width, small.height) == ("small", 160, 120)
        assert shown["complete"] is True
        assert (shown["width"], shown["height"]) == (small.width, small.height)
        src = str(shown["src"])
        assert urlsplit(src).path == urlsplit(small.uri).path
        assert urlsplit(src).path.endswith("/small")
        assert {"e", "s"} <= parse_qs(urlsplit(src).query).keys()  # signed
        fetched = [response for response in files if response.url == src]
        assert fetched and fetched[0].status == 200
        assert await fetched[0].header_value("content-type") == small.content_type == "image/webp"
        await expect(bob_image).to_have_attribute("alt", "beach.jpg")
        await expect(bob_page.get_by_test_id("message").locator(".sender")).to_have_text("alice")

        # On screen, the picture the right way up: red, green / blue, white.
        with Image.open(io.BytesIO(await bob_image.screenshot())) as seen:
            rgb = seen.convert("RGB")
            width, height = rgb.size
            corners = [rgb.getpixel((x * width // 4, y * height // 4))
                       for y, x in ((1, 1), (1, 3), (3, 1), (3, 3))]
        assert [nearest(colour) for colour in corners] == [
            samples.RED, samples.GREEN, samples.BLUE, samples.WHITE]
        await bob_page.screenshot(path=tmp_path / "bob.png")
    finally:
        await alice_context.close()
        await bob_context.close()


def noisy_jpeg(path: Path, side: int = 1200) -> Path:
    """A picture of noise, which JPEG cannot shrink: over one part at this size."""
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=100, subsampling=0)
    path.write_bytes(buffer.getvalue())
    return path


async def test_a_dropped_part_is_sent_again_and_an_upload_can_be_cancelled(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await alice.create(GROUP, title="Big pictures")
    picture = noisy_jpeg(tmp_path / "noise.jpg")
    size = picture.stat().st_size
    assert PART < size < 2 * PART  # two parts
    context, page = await open_page(browser, demo_origin, server.http_url,
                                    await tokens(client, app, "alice"))
    attempts: list[int] = []  # part numbers, one per PUT the page started
    held = asyncio.Event()
    mode = "hold"
    dropped: list[int] = []

    async def network(route: Route) -> None:
        number = part_number(route.request.url)
        attempts.append(number)
        if mode == "hold":  # a network that never answers
            held.set()
        elif number == 2 and not dropped:
            dropped.append(number)
            await route.abort("connectionreset")  # dropped on the way
        else:
            await route.continue_()

    failed: list[Request] = []
    page.on("requestfailed", lambda request: failed.append(request)
            if PARTS_PATH in request.url else None)
    await page.route(lambda url: PARTS_PATH in url, network)
    try:
        await page.get_by_test_id("conversation").filter(has_text="Big pictures").click()

        # Cancelled while its parts hang: the requests are aborted, nothing is sent.
        await page.get_by_test_id("attach-input").set_input_files(picture)
        await asyncio.wait_for(held.wait(), 30)
        await expect(page.get_by_test_id("upload-text")).to_contain_text("Uploading noise.jpg")
        async with page.expect_event("requestfailed",
                                     lambda request: PARTS_PATH in request.url):
            await page.get_by_test_id("upload-cancel").click()
        await expect(page.get_by_test_id("notice")).to_have_text(
            "Cancelled: noise.jpg was not sent.")
        await expect(page.get_by_test_id("upload")).to_be_hidden()
        assert failed and all(request.failure == "net::ERR_ABORTED" for request in failed)
        await expect(page.get_by_test_id("message")).to_have_count(0)

        # Again, on a network that drops part 2 once: the SDK sends it again and the
        # picture goes out.
        mode = "drop"
        before_attempts, before_reports = len(attempts), len(await progress(page))
        await page.get_by_test_id("attach-input").set_input_files(picture)
        image = page.get_by_test_id("attachment-image")
        await expect(image).to_have_count(1)
        assert dropped == [2] and sorted(attempts[before_attempts:]) == [1, 2, 2]
        reports = (await progress(page))[before_reports:]
        assert reports[-1] == {"loadedBytes": size, "totalBytes": size}
        assert any(0 < report["loadedBytes"] < size for report in reports)
        assert {report["totalBytes"] for report in reports} == {size}
        shown = await loaded_image(image)
        assert (shown["width"], shown["height"]) == (160, 160)
        await expect(page.get_by_test_id("notice")).to_have_text("")
    finally:
        await context.close()


async def test_a_part_that_never_answers_is_given_up_and_sent_again(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await alice.create(GROUP, title="Slow network")
    photo = samples.jpeg(tmp_path / "slow.jpg", (640, 480))
    size = photo.stat().st_size
    # A part silent for 1.5 s is taken for lost (the SDK's default is a minute).
    context, page = await open_page(browser, demo_origin, server.http_url,
                                    await tokens(client, app, "alice"), part_stall_ms=1500)
    attempts: list[str] = []

    async def network(route: Route) -> None:
        if not attempts:
            attempts.append("hung")  # swallowed: no answer, ever
            return
        attempts.append("sent")
        await route.continue_()

    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.failure or "")
            if PARTS_PATH in request.url else None)
    await page.route(lambda url: PARTS_PATH in url, network)
    try:
        await page.get_by_test_id("conversation").filter(has_text="Slow network").click()
        await page.get_by_test_id("attach-input").set_input_files(photo)
        image = page.get_by_test_id("attachment-image")
        await expect(image).to_have_count(1)
        # The hung request was aborted by the page, and the part sent again.
        assert attempts == ["hung", "sent"] and failed == ["net::ERR_ABORTED"]
        assert (await progress(page))[-1] == {"loadedBytes": size, "totalBytes": size}
        shown = await loaded_image(image)
        assert (shown["width"], shown["height"]) == (160, 120)
        await expect(page.get_by_test_id("notice")).to_have_text("")
    finally:
        await context.close()
