"""The UI kit's gallery (web_bridge/react/gallery, its Storybook) in Chromium, under
React and under Preact's compat layer (as the widget runs it): the virtualized message
list keeps few nodes with 10,000 messages, holds the view still when older messages are
prepended and stays at the bottom when new ones come; every story passes axe-core in the
light theme, the layouts in dark and in Arabic too. Screenshots: test-artifacts/kit/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.axe import ARTIFACTS, checked
from tests.browser.conftest import serving
from tests.support.servers import REPO

GALLERY = REPO / "web_bridge/react/gallery/dist"
SHOTS = ARTIFACTS / "kit"
TEN_THOUSAND = "message-list--ten-thousand-messages"


@pytest.fixture(scope="module")
def gallery() -> Iterator[str]:
    assert (GALLERY / "index.html").exists(), (
        "the gallery is not built: `npm run check` in web_bridge (scripts/test.sh does)")
    with serving(GALLERY) as origin:
        yield origin


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    yield await context.new_page()
    await context.close()


async def story(page: Page, origin: str, story_id: str, *, html: str = "index.html",
                query: str = "") -> None:
    await page.goto(f"{origin}/{html}#/{story_id}{'?' + query if query else ''}")
    await expect(page.locator(".caas-root").first).to_be_visible()


async def story_ids(page: Page, origin: str) -> list[str]:
    await story(page, origin, "")
    hrefs = await page.locator("nav a[href^='#/']").evaluate_all(
        "(links) => links.map((a) => a.getAttribute('href'))")
    return [href.removeprefix("#/").split("?")[0] for href in hrefs]


async def anchor(page: Page) -> tuple[str, float]:
    """The first message row visible in the log, and its top relative to the log."""
    found = await page.evaluate("""() => {
        const log = document.querySelector('[role=log]');
        const top = log.getBoundingClientRect().top;
        const rows = [...log.querySelectorAll('.caas-message')]
            .filter((row) => row.getBoundingClientRect().bottom > top);
        return [rows[0].dataset.key, rows[0].getBoundingClientRect().top - top];
    }""")
    return str(found[0]), float(found[1])


@pytest.mark.parametrize("html", ["index.html", "preact.html"])
async def test_ten_thousand_messages_stay_virtual_and_still(page: Page, gallery: str,
                                                            html: str) -> None:
    await story(page, gallery, TEN_THOUSAND, html=html)
    log = page.get_by_role("log")
    await expect(log.locator(".caas-message").first).to_be_visible()
    assert await page.evaluate("document.querySelectorAll('.caas-message').length") < 200
    # Into the middle: still only the rows in view (and a margin) exist.
    await log.evaluate("(el) => { el.scrollTop = el.scrollHeight / 2; }")
    # The list has re-rendered for the new position: the rows shown are the middle's
    # (messages 10,001 to 20,000), not the bottom's.
    await page.wait_for_function("""() => {
        const rows = document.querySelectorAll('[role=log] .caas-message');
        const sequence = (row) => Number(row.dataset.key.split('/').at(-1));
        return rows.length > 0 && sequence(rows[rows.length - 1]) < 18000;
    }""")
    assert await page.evaluate("document.querySelectorAll('.caas-message').length") < 200
    assert await page.evaluate("document.querySelectorAll('*').length") < 1000

    # 500 older messages arrive above: the message in view does not move.
    key, top = await anchor(page)
    await page.evaluate("window.__gallery.prepend(500)")
    await expect(page.get_by_text("10,500 messages")).to_be_visible()
    after_key, after_top = await anchor(page)
    assert after_key == key
    assert abs(after_top - top) < 2

    # Back to the latest (the kit's button), a new message keeps the view at the bottom.
    await page.get_by_role("button", name="Jump to latest").click()
    await expect(page.get_by_role("button", name="Jump to latest")).to_be_hidden()
    await page.evaluate("window.__gallery.append()")
    last = log.locator(".caas-message").last
    await expect(last).to_contain_text("A new message")
    await expect(last).to_be_in_viewport()
    await checked(page, f"ten-thousand-{html.removesuffix('.html')}", SHOTS)


async def test_every_story_is_accessible(page: Page, gallery: str) -> None:
    ids = await story_ids(page, gallery)
    assert len(ids) >= 40, ids
    for story_id in ids:
        await story(page, gallery, story_id)
        await checked(page, story_id, SHOTS)


@pytest.mark.parametrize("query", ["theme=dark", "locale=ar", "theme=dark&locale=ar"])
async def test_layouts_are_accessible_in_dark_and_arabic(page: Page, gallery: str,
                                                         query: str) -> None:
    ids = [story_id for story_id in await story_ids(page, gallery)
           if story_id.startswith(("chat-layout--", "message-list--conversation",
                                   "composer--", "thread-view--"))]
    assert ids
    for story_id in ids:
        await story(page, gallery, story_id, query=query)
        if "locale=ar" in query:
            await expect(page.locator(".caas-root").first).to_have_attribute("dir", "rtl")
        await checked(page, f"{story_id}-{query.replace('&', '-').replace('=', '-')}", SHOTS)
