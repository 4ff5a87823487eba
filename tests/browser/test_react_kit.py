"""The React hooks and UI kit (@caas/react) in real browsers, through Envoy (gRPC-Web),
in the example app (web_bridge/react/example, in React's strict mode): two people chat,
react, reply in a thread, send a picture and see read ticks; one loses the network,
writes on, reloads the page while offline, and the saved messages go out in order when
the network is back. Arabic (right to left) in the dark theme on a phone-sized screen,
with one realtime stream for the page. axe-core checks each screen; screenshots go to
test-artifacts/react-kit/."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser.axe import ARTIFACTS, checked
from tests.browser.pages import Tokens, tokens
from tests.conftest import AppHandle
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SHOTS = ARTIFACTS / "react-kit"


async def open_app(browser: Browser, origin: str, api: str, signed_in: Tokens, *,
                   query: str = "stall=3000", viewport: tuple[int, int] = (1280, 860),
                   context: BrowserContext | None = None) -> tuple[BrowserContext, Page]:
    """The example app signed in (tokens in the URL's fragment), its inbox shown."""
    context = context or await browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]})
    page = await context.new_page()
    await page.goto(f"{origin}/index.html?{query}#" + urlencode(
        {"api": api, "user": signed_in.user, "token": signed_in.access,
         "refresh": signed_in.refresh}))
    await expect(page.locator(".caas-layout-list")).to_be_visible()
    return context, page


def log(page: Page) -> Locator:
    """The open conversation's messages (not a thread's)."""
    return page.locator(".caas-pane").get_by_role("log")


def message(scope: Page | Locator, text: str) -> Locator:
    return scope.locator(".caas-message").filter(has_text=text)


async def write(scope: Page | Locator, text: str, label: str = "Message") -> None:
    box = scope.get_by_role("textbox", name=label)
    await box.fill(text)
    await box.press("Enter")


async def texts(page: Page) -> list[str]:
    return await log(page).locator(".caas-message-text").all_inner_texts()


async def test_two_people_chat_with_the_kit(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        react_example_origin: str, tmp_path: Path) -> None:
    await person(client, app.app_id, app.api_key, "bob", "Bob Builder")
    alice = await person(client, app.app_id, app.api_key, "alice", "Alice Liddell")
    await alice.create(GROUP, ("bob",), title="Kit")
    # Alice's calls go through a network the test can cut.
    network = CuttableProxy("127.0.0.1", server.http_port)
    await network.start()
    alice_context, alice_page = await open_app(
        browser, react_example_origin, f"http://127.0.0.1:{network.port}",
        await tokens(client, app, "alice"))
    bob_context, bob_page = await open_app(browser, react_example_origin, server.http_url,
                                           await tokens(client, app, "bob"))
    try:
        for page in (alice_page, bob_page):
            await page.get_by_role("option", name=re.compile("Kit")).click()
        await write(alice_page, "hello bob")
        await expect(message(log(bob_page), "hello bob")).to_be_visible()
        await write(bob_page, "hi alice")
        await expect(log(alice_page).locator(".caas-message-text")).to_have_text(
            ["hello bob", "hi alice"])
        # Bob has the conversation open: alice's message shows as read.
        await expect(message(log(alice_page), "hello bob").get_by_role(
            "img", name="Read")).to_be_visible()
        await checked(alice_page, "conversation", SHOTS)

        # A reaction, from bob's picker to alice's count.
        hello = message(log(bob_page), "hello bob")
        await hello.hover()
        await hello.get_by_role("button", name="Add reaction").click()
        await bob_page.get_by_role("dialog", name="Emoji").get_by_role(
            "button", name="👍").first.click()
        await expect(message(log(alice_page), "hello bob").get_by_role(
            "button", name=re.compile("👍: 1 reaction"))).to_be_visible()

        # A thread: bob replies to alice's message; she sees the count and opens it.
        await hello.hover()
        await hello.get_by_role("button", name="Message actions").click()
        await bob_page.get_by_role("menuitem", name="Reply in thread").click()
        thread = bob_page.get_by_role("region", name="Thread")
        await write(thread, "in the thread")
        await expect(message(thread, "in the thread")).to_be_visible()
        replies = message(log(alice_page), "hello bob").get_by_role("button", name="1 reply")
        await replies.click()
        await expect(message(alice_page.get_by_role("region", name="Thread"),
                             "in the thread")).to_be_visible()
        await checked(alice_page, "thread", SHOTS)
        await alice_page.get_by_role("button", name="Close thread").click()

        # A picture: uploaded with progress, processed, sent, seen by bob.
        picture = tmp_path / "sunset.png"
        Image.new("RGB", (64, 48), (250, 120, 40)).save(picture)
        await alice_page.locator(".caas-pane input[type=file]").set_input_files(picture)
        await expect(alice_page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
        await write(alice_page, "a sunset")
        await expect(message(log(bob_page), "a sunset").locator("img")).to_be_visible(
            timeout=30_000)

        # Alice's network goes; she writes on: her messages wait, shown as pending.
        network.cut()
        await write(alice_page, "offline one")
        await write(alice_page, "offline two")
        pending = log(alice_page).locator(".caas-message--pending")
        await expect(pending).to_have_count(2)
        # She reloads the page while offline: the queue is in IndexedDB.
        await alice_page.reload()  # the app reopens the conversation it showed
        await expect(pending.locator(".caas-message-text")).to_have_text(
            ["offline one", "offline two"])
        assert "offline one" not in await texts(bob_page)
        # Back online: delivered, in order, once.
        network.restore()
        await expect(log(bob_page).locator(".caas-message-text")).to_have_text(
            ["hello bob", "hi alice", "a sunset", "offline one", "offline two"], timeout=30_000)
        await expect(pending).to_have_count(0)
        assert (await texts(alice_page))[-2:] == ["offline one", "offline two"]
        await checked(bob_page, "after-reconnect", SHOTS)
    finally:
        await alice_context.close()
        await bob_context.close()
        await network.close()


async def test_arabic_dark_on_a_phone(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        react_example_origin: str) -> None:
    await person(client, app.app_id, app.api_key, "bob")
    alice = await person(client, app.app_id, app.api_key, "alice")
    group = await alice.create(GROUP, ("bob",), title="هاتف")
    await alice.send(group.name, "مرحبا")
    context = await browser.new_context(viewport={"width": 375, "height": 740})
    streams: list[str] = []
    context.on("request", lambda request: streams.append(request.url)
               if request.url.endswith("RealtimeService/Subscribe") else None)
    context, page = await open_app(browser, react_example_origin, server.http_url,
                                   await tokens(client, app, "bob"),
                                   query="locale=ar&theme=dark", context=context)
    try:
        root = page.locator(".caas-root")
        await expect(root).to_have_attribute("dir", "rtl")
        await expect(root).to_have_attribute("data-caas-theme", "dark")
        await expect(page.get_by_role("listbox", name="المحادثات")).to_be_visible()
        await checked(page, "arabic-phone-inbox", SHOTS)
        await page.get_by_role("option", name=re.compile("هاتف")).click()
        # One panel at a time on a phone: the conversation, with a way back.
        await expect(message(log(page), "مرحبا")).to_be_visible()
        await expect(page.get_by_role("listbox")).to_be_hidden()
        await checked(page, "arabic-phone-conversation", SHOTS)
        # The app runs in React's strict mode (every effect mounted twice), with hooks
        # in the inbox and the conversation: one realtime stream all along.
        assert len(streams) == 1, streams
    finally:
        await context.close()
