"""Opening the demo page signed in, the two ways it offers: its sign-in form, or the
URL's fragment (`#api=…&token=…&refresh=…`, which browsers never send)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import AppHandle, sign_in
from tests.support.client import Client


@dataclass(frozen=True)
class Tokens:
    user: str  # apps/{app}/users/{user}
    access: str
    refresh: str


async def tokens(client: Client, app: AppHandle, user_id: str) -> Tokens:
    """A new session's tokens, as the app's backend would hand them to the page."""
    session = await sign_in(client, app, user_id)
    return Tokens(f"{app.name}/users/{user_id}", session.credentials.access_token,
                  session.credentials.refresh_token)


async def stored_tokens(page: Page) -> Tokens | None:
    """The tokens the page keeps in sessionStorage (renewed ones included)."""
    kept = await page.evaluate("JSON.parse(sessionStorage.getItem('caas-demo'))")
    if kept is None:
        return None
    return Tokens(kept["user"], kept["tokens"]["accessToken"], kept["tokens"]["refreshToken"])


async def open_page(browser: Browser, origin: str, api: str, signed_in: Tokens, *,
                    via: str = "fragment", stall_ms: int | None = None,
                    part_stall_ms: int | None = None,
                    context: BrowserContext | None = None) -> tuple[BrowserContext, Page]:
    """A new browser context (its own storage) on the demo page, signed in `via` the
    form or the fragment, and its realtime stream live. `part_stall_ms`: how long an
    upload part may go without progress."""
    context = context or await browser.new_context()
    page = await context.new_page()
    # The test server beats every second: a stream silent for 3 s is dead (a cut
    # network never says so). Not a secret: it may ride in the query string.
    settings = {"stall": stall_ms, "partStall": part_stall_ms}
    given = {key: value for key, value in settings.items() if value}
    query = f"?{urlencode(given)}" if given else ""
    if via == "fragment":
        await page.goto(f"{origin}/index.html{query}#" + urlencode(
            {"api": api, "token": signed_in.access, "refresh": signed_in.refresh}))
    else:
        assert via == "form", via
        await page.goto(f"{origin}/index.html{query}")
        await fill_sign_in(page, api, signed_in)
    await expect(page.get_by_test_id("connection-state")).to_have_text("live")
    return context, page


async def fill_sign_in(page: Page, api: str, signed_in: Tokens) -> None:
    form = page.get_by_test_id("sign-in")
    await expect(form).to_be_visible()
    await page.get_by_test_id("api").fill(api)
    await page.get_by_test_id("user").fill(signed_in.user)
    await page.get_by_test_id("access-token").fill(signed_in.access)
    await page.get_by_test_id("refresh-token").fill(signed_in.refresh)
    await page.get_by_test_id("sign-in-submit").click()


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send").click()
