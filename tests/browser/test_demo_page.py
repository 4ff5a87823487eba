"""The demo page as a person uses it: signing in (form or URL fragment) without a
token ever travelling in a URL, staying signed in across a reload, signing out,
creating a group, adding a member who then sees it, and chatting there."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from caas.auth.v1 import auth_service_pb2 as auth_pb
from playwright.async_api import Browser, Page, Request, expect

from tests.browser.pages import Tokens, fill_sign_in, open_page, send, stored_tokens, tokens
from tests.conftest import AppHandle
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


async def test_no_token_is_ever_in_a_request_url(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    await alice.create(GROUP, ("bob",), title="Tokens")
    urls: list[str] = []

    def record(request: Request) -> None:
        # What goes on the wire: a fragment never does (and Playwright may show it).
        urls.append(request.url.split("#")[0])

    alice_tokens = await tokens(client, app, "alice")
    bob_tokens = await tokens(client, app, "bob")
    alice_context = await browser.new_context()
    bob_context = await browser.new_context()
    for context in (alice_context, bob_context):
        context.on("request", record)
    try:
        # Alice through the form, bob through the fragment.
        _, alice_page = await open_page(browser, demo_origin, server.http_url, alice_tokens,
                                        via="form", context=alice_context)
        _, bob_page = await open_page(browser, demo_origin, server.http_url, bob_tokens,
                                      context=bob_context)
        # The fragment is gone from the address bar (and so from what a reload sends).
        assert "#" not in bob_page.url and bob_tokens.access not in bob_page.url
        for page in (alice_page, bob_page):
            await page.get_by_test_id("conversation").filter(has_text="Tokens").click()
        await send(alice_page, "no secrets in URLs")
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(
            ["no secrets in URLs"])
        # A reload comes back signed in, from the tab's storage, without the form.
        await bob_page.reload()
        await expect(bob_page.get_by_test_id("connection-state")).to_have_text("live")
        await expect(bob_page.get_by_test_id("sign-in")).to_be_hidden()
        await expect(bob_page.get_by_test_id("me")).to_have_text("bob")
        await bob_page.get_by_test_id("conversation").filter(has_text="Tokens").click()
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(
            ["no secrets in URLs"])

        secrets = {alice_tokens.access, alice_tokens.refresh, bob_tokens.access,
                   bob_tokens.refresh}
        for page in (alice_page, bob_page):
            kept = await stored_tokens(page)
            assert kept is not None
            secrets |= {kept.access, kept.refresh}
        assert len(urls) > 10  # the page, its script, and the calls through Envoy
        assert any(url.startswith(server.http_url) for url in urls)
        leaked = [url for url in urls if any(secret in url for secret in secrets)
                  or {"token", "refresh"} & parse_qs(urlsplit(url).query).keys()]
        assert leaked == []
    finally:
        await alice_context.close()
        await bob_context.close()


async def test_a_user_creates_a_group_adds_a_member_and_they_chat(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    alice_context, alice_page = await open_page(browser, demo_origin, server.http_url,
                                                await tokens(client, app, "alice"), via="form")
    bob_context, bob_page = await open_page(browser, demo_origin, server.http_url,
                                            await tokens(client, app, "bob"))
    try:
        await expect(bob_page.get_by_test_id("conversation")).to_have_count(0)

        await alice_page.get_by_test_id("new-conversation-title").fill("Planning")
        await alice_page.get_by_test_id("create-conversation").click()
        # Created and opened, alice its only member.
        await expect(alice_page.get_by_test_id("title")).to_have_text("Planning")
        await expect(alice_page.get_by_test_id("conversation")).to_have_text(["Planning"])
        await expect(alice_page.get_by_test_id("members")).to_have_text("Members: alice")

        # Someone who does not exist: said so, nothing added.
        await alice_page.get_by_test_id("member-id").fill("nobody")
        await alice_page.get_by_test_id("add-member").click()
        await expect(alice_page.get_by_test_id("notice")).to_contain_text("Could not add nobody")
        await alice_page.get_by_test_id("member-id").fill("bob")
        await alice_page.get_by_test_id("add-member").click()
        await expect(alice_page.get_by_test_id("notice")).to_have_text("Added bob.")
        await expect(alice_page.get_by_test_id("members")).to_have_text("Members: alice, bob")

        # Bob's open page learns of it from his stream, without a reload.
        await expect(bob_page.get_by_test_id("conversation")).to_have_text(["Planning"])
        await bob_page.get_by_test_id("conversation").filter(has_text="Planning").click()
        await expect(bob_page.get_by_test_id("members")).to_have_text("Members: alice, bob")
        await send(alice_page, "welcome, bob")
        await expect(bob_page.get_by_test_id("message-text")).to_have_text(["welcome, bob"])
        await send(bob_page, "thanks!")
        await expect(alice_page.get_by_test_id("message-text")).to_have_text(
            ["welcome, bob", "thanks!"])
    finally:
        await alice_context.close()
        await bob_context.close()


async def refresh_refused(client: Client, refresh_token: str) -> bool:
    try:
        await client.auth.RefreshSession(auth_pb.RefreshSessionRequest(
            refresh_token=refresh_token))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        return True
    return False


async def test_sign_out_revokes_the_session_and_forgets_the_tokens(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    await person(client, app.app_id, app.api_key, "alice")
    context, page = await open_page(browser, demo_origin, server.http_url,
                                    await tokens(client, app, "alice"))
    try:
        kept = await stored_tokens(page)
        assert kept is not None
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert await stored_tokens(page) is None
        await page.reload()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await expect(page.get_by_test_id("access-token")).to_have_value("")
        assert await refresh_refused(client, kept.refresh)
    finally:
        await context.close()


async def test_refused_tokens_bring_back_the_form(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    context = await browser.new_context()
    page: Page = await context.new_page()
    try:
        await page.goto(f"{demo_origin}/index.html")
        await fill_sign_in(page, server.http_url,
                           Tokens(f"{app.name}/users/alice", "not-a-token", "caasr_nope"))
        await expect(page.get_by_test_id("sign-in-notice")).to_contain_text("Not signed in")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert await stored_tokens(page) is None
    finally:
        await context.close()
