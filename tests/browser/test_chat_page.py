"""Two people chat in real browsers through Envoy (gRPC-Web); one loses the network,
messages arrive meanwhile, and on reconnect it catches up without loss or duplicates."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.pages import open_page, tokens
from tests.conftest import AppHandle
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.tcp_proxy import CuttableProxy

# One engine is enough here: the browser exercises the web front, not the store.
pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


async def texts(page: Page) -> list[str]:
    return await page.get_by_test_id("message-text").all_inner_texts()


async def test_two_browsers_chat_and_one_catches_up_after_a_network_cut(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    await person(client, app.app_id, app.api_key, "bob")
    alice = await person(client, app.app_id, app.api_key, "alice")
    await alice.create(GROUP, ("bob",), title="Browsers")
    # Bob's calls go through a network we can cut.
    network = CuttableProxy("127.0.0.1", server.http_port)
    await network.start()
    alice_context, alice_page = await open_page(
        browser, demo_origin, server.http_url, await tokens(client, app, "alice"),
        stall_ms=3000)
    bob_context, bob_page = await open_page(
        browser, demo_origin, f"http://127.0.0.1:{network.port}",
        await tokens(client, app, "bob"), stall_ms=3000)
    try:
        for page in (alice_page, bob_page):
            await page.get_by_test_id("conversation").filter(has_text="Browsers").click()

        # Typing reaches the other browser.
        await alice_page.get_by_test_id("message-input").press_sequentially("hel")
        await expect(bob_page.get_by_test_id("typing")).to_contain_text("alice")

        await alice_page.get_by_test_id("message-input").fill("hello bob")
        await alice_page.get_by_test_id("send").click()
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(["hello bob"])
        await bob_page.get_by_test_id("message-input").fill("hi alice")
        await bob_page.get_by_test_id("send").click()
        await expect(alice_page.get_by_test_id("message-text")).to_have_text(
            ["hello bob", "hi alice"])

        # Bob's network goes away; alice goes on talking.
        network.cut()
        await expect(bob_page.get_by_test_id("connection-state")).to_have_text("reconnecting")
        missed = [f"while you were away {n}" for n in range(1, 6)]
        for text in missed:
            await alice_page.get_by_test_id("message-input").fill(text)
            await alice_page.get_by_test_id("send").click()
        await expect(alice_page.get_by_test_id("message-text")).to_have_text(
            ["hello bob", "hi alice", *missed])
        assert await texts(bob_page) == ["hello bob", "hi alice"]

        # Back online: the stream resumes from its token; nothing lost, nothing twice.
        network.restore()
        await expect(bob_page.get_by_test_id("connection-state")).to_have_text("live")
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(
            ["hello bob", "hi alice", *missed])
        # The page shows a message once even if told twice: the stream itself must not
        # have repeated an event.
        events = await bob_page.evaluate("window.caasEvents")
        assert len(events) == len(set(events)) >= 7
        # And live again afterwards.
        await alice_page.get_by_test_id("message-input").fill("welcome back")
        await alice_page.get_by_test_id("send").click()
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(
            ["hello bob", "hi alice", *missed, "welcome back"])
    finally:
        await alice_context.close()
        await bob_context.close()
        await network.close()
