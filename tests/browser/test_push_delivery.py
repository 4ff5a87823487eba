"""Web Push from the server to the demo page's service worker, as far as a headless
Chromium lets it go.

Chromium here has no push service (tests/browser/test_push_page.py says why), so the
test stands in for the browser's half of the protocol: it registers bob's channel with
a subscription of its own (tests/support/web_push_client.py: a P-256 key pair and an
auth secret) whose endpoint is a local push service (an HTTPS stand-in), and when a push
arrives there it decrypts it (RFC 8291) and hands the plaintext to bob's real service
worker through the DevTools protocol (`ServiceWorker.deliverPushMessage`), as the
browser's push service would. Everything else is the real thing: bob's demo page, its
visibility telling the server it is away (SetPresence through Envoy), the server's
notifier and sender, the encryption and the service worker showing and clearing.

1. Bob's page is in view: alice's message is not pushed (his stream sees it live).
2. Bob's page goes hidden: the page says so, and alice's next message is pushed; in
   the worker it shows as the server worded it.
3. Bob reads the conversation on another device: the server's silent push closes it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from caas.push.v1 import push_service_pb2 as push_pb
from caas.push.v1 import resources_pb2 as push_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from playwright.async_api import Browser, Page

from tests.browser.pages import open_page, tokens
from tests.browser.push import devtools_push, notifications
from tests.conftest import TEST_CONFIG, AppHandle, create_app
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer, start_caas
from tests.support.waiting import eventually
from tests.support.web_push_client import Browser as Subscription
from tests.support.webhook_receiver import Receiver, running_receiver, self_signed

HIDE = """() => {
  Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
  Object.defineProperty(document, "hidden", {value: true, configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture(scope="module")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    context, certificate = self_signed(tmp_path_factory.mktemp("push-service"))
    with running_receiver(context) as receiver:
        yield receiver, certificate


@pytest.fixture(scope="module")
def pushing(tmp_path_factory: pytest.TempPathFactory,
            push_service: tuple[Receiver, Path]) -> Iterator[CaasServer]:
    server = start_caas(tmp_path_factory.mktemp("caas"), env={
        "CAAS_TLS_CA_FILE": str(push_service[1]), "CAAS_PUSH_COLLAPSE_WINDOW": "0"},
        config=TEST_CONFIG, http=True)
    yield server
    assert server.process.stop() == 0


@pytest.fixture
async def api(pushing: CaasServer) -> AsyncIterator[Client]:
    client = Client(pushing.address)
    yield client
    await client.close()


async def presence_of(client: Client, user: Person) -> int:
    got = await client.realtime.BatchGetPresences(rt_pb.BatchGetPresencesRequest(
        parent=f"apps/{user.app_id}", names=[f"{user.name}/presence"]), metadata=user.auth)
    return int(got.presences[0].status)


async def test_a_push_from_the_server_shows_and_clears_in_the_service_worker(
        browser: Browser, api: Client, pushing: CaasServer,
        push_service: tuple[Receiver, Path], demo_origin: str) -> None:
    receiver, _ = push_service
    app: AppHandle = await create_app(api, pushing.operator_token)
    alice = await person(api, app.app_id, app.api_key, "alice")
    bob = await person(api, app.app_id, app.api_key, "bob")
    lunch = (await alice.create(GROUP, ("bob",), title="Lunch")).name
    subscription = Subscription()
    endpoint = receiver.url("created")
    await api.push.CreatePushDevice(push_pb.CreatePushDeviceRequest(
        parent=bob.name, push_device=push_res.PushDevice(web_push=push_res.WebPushSubscription(
            endpoint=endpoint, p256dh=subscription.p256dh, auth=subscription.auth))),
        metadata=bob.auth)
    context = await browser.new_context()
    await context.grant_permissions(["notifications"], origin=demo_origin)
    try:
        _, page = await open_page(browser, demo_origin, pushing.http_url,
                                  await tokens(api, app, "bob"), context=context)
        await page.wait_for_function("navigator.serviceWorker.controller !== null")
        deliver = await devtools_push(page, demo_origin)

        # In view: bob is online, his stream shows the message; no push.
        await eventually(lambda: _is(presence_of(api, bob), rt_pb.Presence.STATUS_ONLINE))
        await alice.send(lunch, "are you there?")

        # Hidden: the page tells the server it is away; the next message is pushed.
        await page.evaluate(HIDE)
        await eventually(lambda: _is(presence_of(api, bob), rt_pb.Presence.STATUS_AWAY))
        await alice.send(lunch, "lunch at noon?")
        (arrived,) = await receiver.wait(endpoint, lambda got: len(got) >= 1)
        # The log is taken in order: the first message was seen, and not pushed.
        listed = (await bob.client.push.ListPushDeliveries(push_pb.ListPushDeliveriesRequest(
            parent=bob.name), metadata=bob.auth)).push_deliveries
        assert [d.count for d in listed] == [1]
        await deliver(json.dumps(subscription.open(arrived.body)).encode())
        assert await shown(page) == [{
            "title": "Lunch", "body": "Alice: lunch at noon?", "tag": lunch.rsplit("/", 1)[1],
            "data": {"type": "message", "kind": "message", "conversation": lunch,
                     "message": f"{lunch}/messages/2", "sequence": "2"}}]

        # Read on another device: the server's silent push closes it.
        await bob.mark_read(lunch, 2)
        cleared = (await receiver.wait(endpoint, lambda got: len(got) >= 2))[1]
        await deliver(json.dumps(subscription.open(cleared.body)).encode())
        assert await shown(page) == []
    finally:
        await context.close()


async def _is(value: Any, wanted: int) -> bool:
    return bool(await value == wanted)


async def shown(page: Page) -> list[dict[str, Any]]:
    return [{key: n[key] for key in ("title", "body", "tag", "data")}
            for n in await notifications(page)]
