"""The chat widget (web_bridge/widget) in Chromium, on a host page of its own origin with
hostile CSS, signed in by the example backend endpoint (examples/widget_backend.py):
a visitor chats with a support agent who uses the React example app; the launcher's
badge counts what arrives while the panel is closed; the page's CSS cannot reach into
the widget nor the widget's out of it; on a phone the panel takes the screen; a guest
chats in a channel where the app admits guests. axe-core checks the widget;
screenshots go to test-artifacts/widget/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape

import grpc
import pytest
from aiohttp import web
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from examples.widget_backend import WidgetBackend, routes
from tests.browser.axe import ARTIFACTS, checked
from tests.browser.pages import tokens
from tests.browser.test_react_kit import message, open_app, write
from tests.conftest import AppHandle
from tests.e2e.test_guests import admit_guests
from tests.support.chat import CHANNEL, person
from tests.support.client import Client
from tests.support.servers import CaasServer

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SHOTS = ARTIFACTS / "widget"
WIDGET = "caas-chat-widget"  # the widget's element; its shadow root holds the rest

# A host page that does its worst: big red text on yellow everywhere, buttons stripped
# of their styles, divs made inline, everything transformed; and an element with the
# kit's own class names, which the widget's stylesheet must not touch.
HOSTILE_CSS = """
* { font-size: 40px !important; color: red !important; background: yellow !important;
    box-sizing: content-box !important; line-height: 3 !important;
    font-family: "Comic Sans MS", cursive !important; }
button { all: unset !important; }
div { display: inline !important; }
.caas-root, .caas-message, .caas-widget-launcher { border: 7px dotted blue; padding: 3px; }
"""


@dataclass(frozen=True)
class Host:
    origin: str


@pytest.fixture
async def host(server: CaasServer, app: AppHandle) -> AsyncIterator[Host]:
    """The host site: its page (with the widget's script tag, `data-*` from the query
    string) and its backend's token endpoint, on an origin of its own."""
    channel = grpc.aio.insecure_channel(server.address)
    backend = WidgetBackend(channel, app.name, app.api_key, "agent")

    async def page(request: web.Request) -> web.Response:
        attributes = " ".join(f'data-{escape(key)}="{escape(value)}"'
                              for key, value in request.query.items())
        return web.Response(content_type="text/html", text=f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme shop</title><style>{HOSTILE_CSS}</style></head>
<body><main><h1>Acme shop</h1>
<div class="caas-root" id="decoy"><p class="caas-message">Not the widget's</p></div></main>
<script async src="{server.http_url}/widget/caas-widget.js" data-app="{app.name}"
        data-api="{server.http_url}" {attributes}></script>
</body></html>""")

    site = web.Application()
    site.add_routes([web.get("/", page), *routes(backend)])
    runner = web.AppRunner(site)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Host(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
        await channel.close()


async def visit(browser: Browser, host: Host, visitor: str | None, query: str, *,
                viewport: tuple[int, int] = (1280, 860)) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    if visitor:  # signed in to the host site (its own login, here a cookie)
        await context.add_cookies([{"name": "demo_user", "value": visitor,
                                    "url": host.origin}])
    page = await context.new_page()
    await page.goto(f"{host.origin}/?{query}")
    return context, page


def panel(page: Page) -> Locator:
    return page.get_by_test_id("caas-widget-panel")


def launcher(page: Page) -> Locator:
    return page.get_by_test_id("caas-widget-launcher")


async def style_of(locator: Locator, prop: str) -> str:
    return str(await locator.evaluate(f"(el) => getComputedStyle(el)['{prop}']"))


async def test_a_visitor_chats_with_support_through_the_widget(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle, host: Host,
        react_example_origin: str) -> None:
    await person(client, app.app_id, app.api_key, "agent", "Ada Agent")
    agent_context, agent_page = await open_app(browser, react_example_origin,
                                               server.http_url,
                                               await tokens(client, app, "agent"))
    visitor_context, page = await visit(
        browser, host, "visitor", "token-url=/caas/session&title=Support"
        "&greeting=We+reply+within+minutes&color=%230a6b45")
    try:
        await launcher(page).click()
        await expect(panel(page)).to_be_visible()
        await expect(panel(page).get_by_role("heading", name="Support", exact=True)).to_be_visible()
        await write(panel(page), "hi support")
        await expect(message(panel(page), "hi support")).to_be_visible()

        # The agent's inbox gets the visitor's conversation, live.
        await agent_page.get_by_role("option", name=re.compile("Support")).click()
        await expect(message(agent_page, "hi support")).to_be_visible()
        await write(agent_page, "hello visitor")
        await expect(message(panel(page), "hello visitor")).to_be_visible()
        await checked(page, "panel", SHOTS, WIDGET)

        # The host page's CSS stops at the widget: sizes, fonts and colours hold.
        assert await style_of(launcher(page), "width") == "60px"
        heading = panel(page).get_by_role("heading", name="Support", exact=True)
        assert await style_of(heading, "fontSize") == "16px"
        assert "Comic" not in await style_of(heading, "fontFamily")
        text = message(panel(page), "hello visitor").locator(".caas-message-text")
        assert await style_of(text, "color") != "rgb(255, 0, 0)"
        # And the widget's stays in: the page's own .caas-root is the page's.
        decoy = page.locator("#decoy")
        assert await style_of(decoy, "backgroundColor") == "rgb(255, 255, 0)"
        assert "Comic" in await style_of(decoy, "fontFamily")
        assert await style_of(decoy, "borderTopStyle") == "dotted"

        # Closed, the launcher counts what arrives.
        await panel(page).get_by_role("button", name="Close chat").click()
        await expect(panel(page)).to_be_hidden()
        await write(agent_page, "are you there?")
        await expect(page.get_by_test_id("caas-widget-badge")).to_have_text("1")
        await expect(launcher(page)).to_have_accessible_name(re.compile("1 unread"))
        await checked(page, "launcher-unread", SHOTS, WIDGET)
        # Opening it shows the message; read, it no longer counts once closed again.
        await launcher(page).click()
        await expect(message(panel(page), "are you there?")).to_be_visible()
        await panel(page).get_by_role("button", name="Close chat").click()
        await expect(launcher(page)).to_have_accessible_name("Open chat")
        await expect(page.get_by_test_id("caas-widget-badge")).to_be_hidden()
    finally:
        await visitor_context.close()
        await agent_context.close()


async def test_the_widget_takes_a_phone_screen(
        browser: Browser, client: Client, app: AppHandle, host: Host) -> None:
    await person(client, app.app_id, app.api_key, "agent")
    context, page = await visit(browser, host, "phone-visitor",
                                "token-url=/caas/session&locale=ar", viewport=(375, 667))

    try:
        await launcher(page).click()
        await expect(panel(page)).to_be_visible()
        box = await panel(page).bounding_box()
        assert box is not None
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 667)
        root = page.locator(".caas-widget")
        await expect(root).to_have_attribute("dir", "rtl")
        await write(panel(page), "مرحبا", label="الرسالة")
        await expect(message(panel(page), "مرحبا")).to_be_visible()
        await checked(page, "phone-arabic", SHOTS, WIDGET)
    finally:
        await context.close()


async def test_a_guest_chats_in_a_channel_when_the_app_admits_guests(
        browser: Browser, client: Client, app: AppHandle, host: Host) -> None:
    staff = await person(client, app.app_id, app.api_key, "staff")
    created = await client.conversations.CreateConversation(
        conv_pb.CreateConversationRequest(
            parent=app.name, conversation_id="lobby", member_ids=["staff"],
            conversation=conv_res.Conversation(kind=CHANNEL, title="Lobby")),
        metadata=app.auth)
    lobby = created.conversation
    # Guests are refused until the app admits them: the widget says it cannot chat.
    context, page = await visit(browser, host, None,
                                f"guest=true&guest-name=Wanda&conversation={lobby.name}")
    try:
        await launcher(page).click()
        await expect(panel(page).get_by_role("status")).to_contain_text("unavailable")
        await admit_guests(client, app)
        await panel(page).get_by_role("button", name="Try again").click()
        await write(panel(page), "hello from a guest")
        # Stored: the server answered the send (the tick), not only shown as pending.
        await expect(message(panel(page), "hello from a guest").get_by_role(
            "img", name="Sent")).to_be_visible()
        listed = await staff.messages(lobby.name)
        assert [m.text for m in listed.messages] == ["hello from a guest"]
        assert listed.messages[0].sender_id.startswith("guest-")
        # The guest keeps their identity across a reload.
        await page.reload()
        await launcher(page).click()
        await expect(message(panel(page), "hello from a guest")).to_be_visible()
        await expect(message(panel(page), "hello from a guest")).to_have_class(
            re.compile("caas-message--own"))
    finally:
        await context.close()

