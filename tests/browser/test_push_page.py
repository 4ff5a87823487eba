"""Web Push in a real browser, on the demo page (web_bridge/demo) through Envoy.

The page registers its service worker (demo/sw.js at the demo's root, scope the whole
demo, the SDK's caas-push-sw.js inside), which takes control of it. The "Notifications"
switch asks the browser to subscribe with the app's VAPID key, which this Chromium
refuses: Playwright's browser contexts are off the record, where Chromium has no push
service and, so that sites cannot tell a private window, answers as if the user had
said no — `AbortError: Registration failed - permission denied` (and logs that push is
unsupported in incognito) — even with notifications allowed. The page says so, and no
channel reaches CAAS. (In a persistent profile, headless Chromium does not answer at
all: nothing after 110 s.)

Reading `getNotifications()` while a notification is still on its way to the screen
makes Chromium forget it (it keeps what the platform reports displayed, and what is
newer than the call), so the test reads only once the worker is done with each push:
DevTools' log of background services says when ("Push event completed").

So the push messages go to the real service worker through the DevTools protocol
(`ServiceWorker.deliverPushMessage`), as the payloads the server makes
(services/push/webpush.py's `web_push_payload` of a `Notification`): a message shows with
its title, body, tag and data; the next one for the same conversation replaces it (one
notification, the new body, alerting again); a call ring for another conversation stays
until acted on; a payload that is not JSON is ignored; a `clear` for the first
conversation closes its notification and leaves the call's. Then a click, as the
worker's `notificationclick` handler runs it (no protocol command clicks a notification):
the notification closes and the page gets the conversation, which it opens.
Screenshot (checked by axe-core too): test-artifacts/push/push-toggle.png."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from caas.push.v1 import push_service_pb2 as push_pb
from playwright.async_api import Browser, expect

from services.push.providers import Notification
from services.push.webpush import web_push_payload
from tests.browser.axe import ARTIFACTS, checked
from tests.browser.pages import fill_sign_in, open_page, tokens
from tests.browser.push import devtools_push, notifications
from tests.conftest import AppHandle
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SHOTS = ARTIFACTS / "push"
REFUSAL = {"name": "AbortError", "message": "Registration failed - permission denied"}

# A click on the first notification, as the worker's notificationclick listener runs it.
CLICK = """async () => {
  const [notification] = await self.registration.getNotifications();
  return self.caasPush.handleNotificationClick(notification, self.clients,
                                               self.registration.scope, self.caasPush.options);
}"""


def message(conversation: str, body: str, sequence: int) -> Notification:
    return Notification(title="alice", body=body, collapse_key=conversation,
                        data={"type": "message", "conversation": conversation,
                              "sequence": str(sequence), "kind": "text"})


async def test_push_messages_show_replace_and_clear_in_the_service_worker(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    lunch = (await alice.create(GROUP, ("bob",), title="Lunch")).name
    standup = (await alice.create(GROUP, ("bob",), title="Standup")).name
    context = await browser.new_context()
    await context.grant_permissions(["notifications"], origin=demo_origin)
    try:
        _, page = await open_page(browser, demo_origin, server.http_url,
                                  await tokens(client, app, "bob"), context=context)
        # The service worker: at the demo's root, its scope the demo, controlling the page.
        await page.wait_for_function("navigator.serviceWorker.controller !== null")
        assert await page.evaluate("navigator.serviceWorker.controller.scriptURL") == (
            f"{demo_origin}/sw.js")
        assert await page.evaluate("window.caasPush.scope") == f"{demo_origin}/"
        assert await page.evaluate("Notification.permission") == "granted"

        # The switch, by keyboard: the browser refuses to subscribe, and the page says why.
        toggle = page.get_by_role("switch", name="Notifications")
        await expect(toggle).to_be_enabled()
        await expect(toggle).to_have_attribute("aria-checked", "false")
        await toggle.focus()
        await page.keyboard.press("Space")
        state = page.get_by_test_id("push-state")
        await expect(state).to_contain_text(f"“{REFUSAL['message']}” ({REFUSAL['name']})")
        await expect(state).to_have_class("notice error")
        await expect(toggle).to_have_attribute("aria-checked", "false")
        await expect(toggle).to_have_attribute("aria-busy", "false")
        await expect(toggle).to_be_focused()
        assert await page.evaluate("window.caasPush.errors") == [REFUSAL]
        listed = await client.push.ListPushDevices(push_pb.ListPushDevicesRequest(
            parent=bob.name), metadata=bob.auth)
        assert list(listed.push_devices) == []
        await checked(page, "push-toggle", SHOTS)

        # Push messages to the real worker, through the DevTools protocol.
        deliver = await devtools_push(page, demo_origin)

        first = message(lunch, "Déjeuner à midi ? ☕", 1)
        await deliver(web_push_payload(first))
        assert await notifications(page) == [{
            "title": "alice", "body": "Déjeuner à midi ? ☕", "tag": lunch,
            "data": dict(first.data), "renotify": False, "requireInteraction": False,
            "silent": False}]

        # The same conversation again: replaced, one notification, alerting again.
        second = message(lunch, "or at one?", 2)
        await deliver(web_push_payload(second))
        [shown] = await notifications(page)
        assert (shown["tag"], shown["body"], shown["data"], shown["renotify"]) == (
            lunch, "or at one?", dict(second.data), True)

        # A call ring in another conversation: shown beside it, until acted on.
        ring = Notification(title="alice", body="Incoming video call", collapse_key=standup,
                            urgent=True, data={"type": "call", "conversation": standup,
                                               "call": f"{standup}/calls/k1"})
        await deliver(web_push_payload(ring))
        shown = {n["tag"]: n for n in await notifications(page)}
        assert sorted(shown) == sorted([lunch, standup])
        assert shown[lunch]["body"] == "or at one?"
        call = shown[standup]
        assert (call["body"], call["requireInteraction"], call["data"]) == (
            "Incoming video call", True, dict(ring.data))

        # Not a CAAS payload: ignored. Then lunch read elsewhere: its notification closes,
        # the call's stays, nothing new shows.
        await deliver(b"not json")
        read = Notification(title="", body="", collapse_key=lunch, silent=True,
                            data={"type": "clear", "conversation": lunch, "sequence": "2"})
        await deliver(web_push_payload(read))
        [shown] = await notifications(page)
        assert (shown["tag"], shown["body"]) == (standup, "Incoming video call")

        # A click: the notification closes, the page gets its conversation and opens it.
        worker = next(w for w in context.service_workers if w.url == f"{demo_origin}/sw.js")
        outcome = await worker.evaluate(CLICK)
        # The page's URL when it was made (a client's `url`), its fragment included.
        assert outcome["kind"] == "focused"
        assert outcome["url"].startswith(f"{demo_origin}/index.html")
        await expect(page.get_by_test_id("title")).to_have_text("Standup")
        assert await page.evaluate("window.caasPush.clicks") == [dict(ring.data)]

        async def closed() -> bool:
            return await notifications(page) == []

        await eventually(closed)
    finally:
        await context.close()


async def test_a_notification_click_opens_the_page_at_its_conversation(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        demo_origin: str) -> None:
    """What a click opens when no demo tab is: a new window at
    index.html#conversation=… (the worker's `notificationUrl`). A new window has no
    session of the tab's (sessionStorage), so the form asks; once signed in, the page
    opens that conversation. The fragment leaves the address bar at once."""
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    await alice.create(GROUP, ("bob",), title="Lunch")
    standup = (await alice.create(GROUP, ("bob",), title="Standup")).name
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{demo_origin}/index.html#{urlencode({'conversation': standup})}")
        assert page.url == f"{demo_origin}/index.html"
        await fill_sign_in(page, server.http_url, await tokens(client, app, "bob"))
        await expect(page.get_by_test_id("title")).to_have_text("Standup")
        await expect(page.get_by_test_id("conversation")).to_have_count(2)
        await expect(page.get_by_test_id("conversation").filter(has_text="Standup")).to_have_class(
            "selected")
    finally:
        await context.close()
