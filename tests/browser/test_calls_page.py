"""A video call between two real browsers, on the demo page (web_bridge/demo) and the
SDK's `Calls`: alice and bob, two Chromium contexts with fake camera and microphone
(`--use-fake-device-for-media-stream`, `--use-fake-ui-for-media-stream`), both calling
CAAS over gRPC-Web through Envoy. Alice calls from their direct conversation; bob's page
rings; he accepts; his device offers, alice's answers, ICE candidates trickle both ways
over SendSignal and the realtime streams; both pages reach `connected` and play the
other's video. Bob's page restarts ICE (a network change): a new offer with new ICE
credentials goes through CAAS and both stay connected, video flowing. Alice hangs up:
both pages show the end, and the server holds a completed call, recorded in the
conversation. And a page that goes away mid-call without
hanging up is dropped after the server's reconnect grace: the other page sees the end.
Screenshot (checked by axe-core too): test-artifacts/calls/call-connected.png."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from caas.calls.v1 import calls_service_pb2 as calls_pb
from caas.calls.v1 import calls_service_pb2_grpc
from caas.calls.v1 import resources_pb2 as calls_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.browser.axe import ARTIFACTS, checked
from tests.browser.conftest import chromium
from tests.browser.pages import open_page, tokens
from tests.conftest import TEST_CONFIG, AppHandle, create_app
from tests.support.chat import DIRECT, person
from tests.support.client import Client
from tests.support.servers import CaasServer, start_caas
from tests.support.stream import subscribed

CONNECT = 30_000  # ms: ICE, DTLS and the first decoded frames
SHOTS = ARTIFACTS / "calls"

# The remote video plays: it has a size, and time goes by in it.
PLAYING = """() => {
  const video = document.querySelector('[data-testid=remote-video]');
  return !!video && video.videoWidth > 0 && video.readyState >= 2 && video.currentTime > 0.5;
}"""


@pytest.fixture(scope="module")
def calls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaasServer]:
    """This module's own server (SQLite, with its Envoy), configured as the shared one
    but ringing for 30 s: the shared one's 2 s (for missed-call tests) is too short for a
    page to ring and be answered on a busy machine. The reconnect grace stays 2 s."""
    config = TEST_CONFIG.replace("call_ring_timeout = 2 ", "call_ring_timeout = 30 ")
    assert config != TEST_CONFIG
    caas = start_caas(tmp_path_factory.mktemp("caas-calls"), config=config, http=True)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture(scope="module")
async def calls_client(calls_server: CaasServer) -> AsyncIterator[Client]:
    caas = Client(calls_server.address)
    yield caas
    await caas.close()


@pytest.fixture
async def calls_app(calls_client: Client, calls_server: CaasServer) -> AppHandle:
    """A fresh app of this module's server."""
    return await create_app(calls_client, calls_server.operator_token)


@pytest.fixture(scope="module")
async def media_browser() -> AsyncIterator[Browser]:
    """Chromium with a fake camera and microphone, and no permission prompt."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(),
            args=["--no-sandbox", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream"])
        yield browser
        await browser.close()


def ufrag(sdp: str) -> str:
    return next(line for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))


async def calls_seen(page: Page) -> dict[str, Any]:
    """What the page's `Calls` told it: phase, call name, outcome, events in order."""
    seen: dict[str, Any] = await page.evaluate("window.caasCalls")
    return seen


async def device_of(page: Page) -> str:
    device: str = await page.evaluate("sessionStorage.getItem('caas-demo-device')")
    return device


async def pages(browser: Browser, client: Client, server: CaasServer, app: AppHandle,
                origin: str) -> tuple[str, list[tuple[BrowserContext, Page]]]:
    """Alice and bob with a direct conversation, each on the demo page in a context of
    their own (through Envoy), the conversation open."""
    await person(client, app.app_id, app.api_key, "bob")
    alice = await person(client, app.app_id, app.api_key, "alice")
    conversation = (await alice.create(DIRECT, ("bob",))).name
    opened = []
    for user_id in ("alice", "bob"):
        context = await browser.new_context(viewport={"width": 1100, "height": 760})
        opened.append(await open_page(browser, origin, server.http_url,
                                      await tokens(client, app, user_id), context=context))
    for _, page in opened:
        await page.get_by_test_id("conversation").first.click()
        await expect(page.get_by_test_id("title")).to_have_text(conversation.split("/")[-1])
    return conversation, opened


async def connect(alice_page: Page, bob_page: Page, *, shots: bool = False) -> None:
    """Alice calls bob with video; he accepts; both connect and play the other's video
    (`shots`: bob's ringing page checked and saved on the way)."""
    await alice_page.get_by_role("button", name="Video call").click()
    await expect(alice_page.get_by_test_id("call-state")).to_have_attribute(
        "data-phase", "calling")
    await expect(alice_page.get_by_test_id("local-video")).to_be_visible()
    incoming = bob_page.get_by_role("alertdialog")
    await expect(incoming).to_contain_text("Incoming video call from alice")
    await expect(incoming.get_by_role("button", name="Accept")).to_be_focused()
    if shots:
        await checked(bob_page, "call-ringing", SHOTS)
    await incoming.get_by_role("button", name="Accept").click()
    await expect(incoming).to_be_hidden()
    for page in (alice_page, bob_page):
        state = page.get_by_test_id("call-state")
        await expect(state).to_have_attribute("data-phase", "connected", timeout=CONNECT)
        await expect(state).to_have_text("Connected (video call)")
        await page.wait_for_function(PLAYING, timeout=CONNECT)


async def test_a_video_call_between_two_browsers_connects_and_ends_completed(
        media_browser: Browser, calls_client: Client, calls_server: CaasServer,
        calls_app: AppHandle, demo_origin: str) -> None:
    client, server, app = calls_client, calls_server, calls_app
    calls = calls_service_pb2_grpc.CallsServiceStub(client.channel)
    conversation, opened = await pages(media_browser, client, server, app, demo_origin)
    [(alice_context, alice_page), (bob_context, bob_page)] = opened
    alice = await person(client, app.app_id, app.api_key, "alice")
    watcher = await subscribed(alice, device_id=await device_of(alice_page))
    try:
        # Alice calls; bob's page rings, he accepts; both play the other's video.
        await connect(alice_page, bob_page, shots=True)
        alice_state = alice_page.get_by_test_id("call-state")
        bob_state = bob_page.get_by_test_id("call-state")
        await expect(alice_page.get_by_role("button", name="Hang up")).to_be_visible()
        await expect(bob_page.get_by_label("Video of alice")).to_be_visible()
        await expect(alice_page.get_by_label("Video of bob")).to_be_visible()

        alice_seen, bob_seen = await calls_seen(alice_page), await calls_seen(bob_page)
        name = alice_seen["call"]
        assert name.startswith(f"{conversation}/calls/") and bob_seen["call"] == name
        assert bob_seen["events"][0] == "ringing:alice"
        for seen, other in ((alice_seen, "bob"), (bob_seen, "alice")):
            assert f"connected:{other}" in seen["events"], seen
            assert f"track:{other}" in seen["events"], seen
            assert not [e for e in seen["events"] if e.startswith("error:")], seen

        # The server: active, both in it on the pages' devices.
        active = (await calls.GetCall(calls_pb.GetCallRequest(name=name),
                                      metadata=app.auth)).call
        assert active.state == calls_res.Call.STATE_ACTIVE
        assert active.media == calls_res.Call.MEDIA_VIDEO and active.caller_id == "alice"
        assert [(p.user_id, p.state, p.device_id) for p in active.participants] == [
            ("alice", calls_res.Participant.STATE_JOINED, await device_of(alice_page)),
            ("bob", calls_res.Participant.STATE_JOINED, await device_of(bob_page))]

        await checked(bob_page, "call-connected", SHOTS)

        # An ICE restart (a network change, say): bob's page joined, so it offers anew on
        # the same connection with new ICE credentials, through CAAS (seen here by a
        # stream of alice's page's device); both stay connected, video flowing.
        await bob_page.evaluate("window.caasCalls.restartIce()")
        offers = []
        while len(offers) < 2:  # the first offer, replayed, then the restart's
            event = await watcher.event()
            if event.type == "call.signal" and event.call_signal.HasField("description"):
                offers.append(event.call_signal.description)
        assert [o.type for o in offers] == [calls_res.SessionDescription.TYPE_OFFER] * 2
        assert ufrag(offers[0].sdp) != ufrag(offers[1].sdp)
        for page in (alice_page, bob_page):
            await expect(page.get_by_test_id("call-state")).to_have_attribute(
                "data-phase", "connected")
            await page.evaluate("window.played = document.querySelector("
                                "'[data-testid=remote-video]').currentTime")
            await page.wait_for_function(
                "document.querySelector('[data-testid=remote-video]').currentTime"
                " > window.played + 0.5", timeout=CONNECT)
        seen = await calls_seen(bob_page)
        assert not [e for e in seen["events"] if e.startswith("error:")], seen

        # Alice hangs up: it ends on both pages, completed.
        for page in (alice_page, bob_page):  # the camera's stream, to look at afterwards
            await page.evaluate("window.camera = document.getElementById('local-video').srcObject")
        await alice_page.get_by_role("button", name="Hang up").click()
        for page, state in ((alice_page, alice_state), (bob_page, bob_state)):
            await expect(state).to_have_attribute("data-phase", "ended")
            await expect(state).to_contain_text("Call ended: completed")
            await expect(page.get_by_test_id("remote-video")).to_have_count(0)
            await expect(page.get_by_role("button", name="Hang up")).to_be_hidden()
            await expect(page.get_by_role("button", name="Video call")).to_be_enabled()
            # The record message comes on the page's stream, shown in words.
            await expect(page.get_by_test_id("message-text").last).to_have_text(
                re.compile(r"^📞 Video call, 0:\d\d$"))
            seen = await calls_seen(page)
            assert seen["outcome"] == "completed" and seen["events"][-1] == "ended:completed"
            assert not [e for e in seen["events"] if e.startswith("error:")], seen
        # The camera and microphone are off again on both: every local track stopped.
        for page in (alice_page, bob_page):
            assert await page.evaluate("""() => window.camera.getTracks().length === 2
                && window.camera.getTracks().every((track) => track.readyState === 'ended')
                && document.getElementById('local-video').srcObject === null""")
    finally:
        await watcher.close()
        await alice_context.close()
        await bob_context.close()

    ended = (await calls.GetCall(calls_pb.GetCallRequest(name=name), metadata=app.auth)).call
    assert ended.state == calls_res.Call.STATE_ENDED
    assert ended.outcome == calls_res.Call.OUTCOME_COMPLETED
    assert [(p.user_id, p.state) for p in ended.participants] == [
        ("alice", calls_res.Participant.STATE_LEFT), ("bob", calls_res.Participant.STATE_LEFT)]
    assert ended.participants[0].leave_reason == calls_res.Participant.LEAVE_REASON_HUNG_UP
    assert ended.duration.ToMilliseconds() > 0
    # And the conversation records it.
    listed = (await client.messages.ListMessages(
        msg_pb.ListMessagesRequest(parent=conversation, page_size=10),
        metadata=app.auth)).messages
    assert [m.call.name for m in listed if m.HasField("call")] == [name]


async def test_a_page_that_goes_away_mid_call_is_dropped_and_the_call_ends(
        media_browser: Browser, calls_client: Client, calls_server: CaasServer,
        calls_app: AppHandle, demo_origin: str) -> None:
    client, server, app = calls_client, calls_server, calls_app
    calls = calls_service_pb2_grpc.CallsServiceStub(client.channel)
    _, opened = await pages(media_browser, client, server, app, demo_origin)
    [(alice_context, alice_page), (bob_context, bob_page)] = opened
    try:
        await connect(alice_page, bob_page)
        name = (await calls_seen(alice_page))["call"]
        # Bob's tab is closed without hanging up: no LeaveCall, his stream just ends.
        await bob_context.close()
        # After the reconnect grace (2 s here) the server drops his device and the call
        # ends; alice's page follows (whatever her ICE made of the silence meanwhile).
        state = alice_page.get_by_test_id("call-state")
        await expect(state).to_have_attribute("data-phase", "ended", timeout=CONNECT)
        await expect(state).to_contain_text("Call ended: completed")
        await expect(alice_page.get_by_test_id("remote-video")).to_have_count(0)
        seen = await calls_seen(alice_page)
        assert seen["events"][-1] == "ended:completed", seen
        assert not [e for e in seen["events"] if e.startswith("error:")], seen
    finally:
        await alice_context.close()
        await bob_context.close()
    ended = (await calls.GetCall(calls_pb.GetCallRequest(name=name), metadata=app.auth)).call
    assert ended.state == calls_res.Call.STATE_ENDED
    assert ended.outcome == calls_res.Call.OUTCOME_COMPLETED
    bob = ended.participants[1]
    assert (bob.user_id, bob.state, bob.leave_reason) == (
        "bob", calls_res.Participant.STATE_LEFT,
        calls_res.Participant.LEAVE_REASON_CONNECTION_LOST)
