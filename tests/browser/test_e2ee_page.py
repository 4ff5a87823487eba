"""End-to-end encryption in a real browser: a page of bob's (tests/browser/e2ee_page,
bundled here with web_bridge's esbuild from the SDK as built) is an MLS device with its
secrets in IndexedDB, calling CAAS over gRPC-Web through Envoy; alice's device is a
Node process over native gRPC (its secrets in a file, one run per step). Alice creates
the encrypted group conversation; the page registers; alice's group adds it (a
Welcome); the page joins from its realtime stream and decrypts her message; it answers
and alice decrypts that. Then the page reloads while alice writes: the new page resumes
from IndexedDB, with the same key and no registration, catches up on what she wrote,
and answers again. The server's copy of it all is ciphertext. Screenshot:
test-artifacts/e2ee/e2ee-page.png (checked by axe-core too)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from caas.e2ee.v1 import e2ee_service_pb2 as e2ee_pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from playwright.async_api import Browser, Page, Request, Route, expect

from tests.browser.axe import ARTIFACTS, checked
from tests.browser.conftest import serving
from tests.browser.pages import tokens
from tests.conftest import AppHandle, sign_in
from tests.support.chat import person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.web_bridge.nodejs import WEB, built_sdk

# One engine is enough here: the browser exercises the web front, not the store.
pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SOURCE = Path(__file__).parent / "e2ee_page"
SLOW = 30_000  # ms: a step of MLS work (key generation, joining) in the browser


@dataclass(frozen=True)
class Built:
    origin: str  # where index.html and app.js are served
    alice: Path  # alice's Node client, bundled
    sizes: dict[str, Any]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The page and alice's client bundled (tests/browser/e2ee_page/build.mjs), the page
    served from an origin of its own (one the test server's CORS policy allows)."""
    out = tmp_path_factory.mktemp("e2ee_page")
    done = subprocess.run([built_sdk(), str(SOURCE / "build.mjs"), str(WEB), str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sizes = json.loads(done.stdout.strip().splitlines()[-1])
    with serving(out) as origin:
        yield Built(origin, out / "alice.mjs", sizes)


@dataclass
class Alice:
    """Alice's device: each step one run of the Node client, on the same key file."""

    script: Path
    env: dict[str, str]
    runs: list[str] = field(default_factory=list)

    async def run(self, step: str, **env: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            built_sdk(), str(self.script), step, env={**os.environ, **self.env, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        text = output.decode()
        self.runs.append(f"{step}: {text}")
        assert process.returncode == 0, f"alice's {step} failed:\n{text}"
        [line] = [line for line in text.splitlines() if line.startswith("{")]
        key = {"setup": "setup", "add": "added", "send": "sent", "read": "read"}[step]
        return json.loads(line)[key]


async def page_state(page: Page) -> dict[str, Any]:
    """What this load of the page decrypted, failed to, and the errors it met."""
    found: dict[str, Any] = await page.evaluate("window.e2eePage")
    return found


async def stored_identity(page: Page, database: str) -> str:
    """The signature public key in the device's IndexedDB database, in hex, read by
    hand (not through the SDK)."""
    key: str = await page.evaluate("""(name) => new Promise((resolve, reject) => {
        const open = indexedDB.open(name);
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('keys').objectStore('keys').get('identity');
          get.onerror = () => reject(get.error);
          get.onsuccess = () => {
            const record = JSON.parse(new TextDecoder().decode(get.result));
            resolve(Array.from(atob(record.publicKey),
                               (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
          };
        };
      })""", database)
    return key


async def test_a_browser_device_joins_an_encrypted_group_and_resumes_after_a_reload(
        browser: Browser, client: Client, server: CaasServer, app: AppHandle,
        built: Built, tmp_path: Path) -> None:
    # The page's bundle holds the SDK's browser half only: no node:fs (fileKeyStore).
    assert "node:fs" not in (built.alice.parent / "app.js").read_text()
    await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    signed = await sign_in(client, app, "alice")
    alice = Alice(built.alice, {
        "CAAS_ADDRESS": server.address, "USER_NAME": f"{app.name}/users/alice",
        "DEVICE_ID": "laptop", "KEY_FILE": str(tmp_path / "alice-laptop.json"),
        "ACCESS_TOKEN": signed.credentials.access_token,
        "REFRESH_TOKEN": signed.credentials.refresh_token, "MEMBER": "bob"})
    bob = await tokens(client, app, "bob")
    bob_device = f"{bob.user}/devices/browser"
    database = f"caas-e2ee:{bob_device}"

    # Alice's device registers and creates the encrypted conversation with bob.
    setup = await alice.run("setup")
    conversation = setup["conversation"]
    assert conversation.startswith(f"{app.name}/conversations/") and setup["endToEndEncrypted"]
    assert setup["device"] == f"{app.name}/users/alice/devices/laptop"
    talk = {"CONVERSATION": conversation}

    context = await browser.new_context(viewport={"width": 900, "height": 900})
    page = await context.new_page()
    calls: list[tuple[str, str]] = []  # (Service/Method, content type) of each CAAS call

    def called(request: Request) -> None:
        if request.url.startswith(server.http_url):
            path = urlsplit(request.url).path
            calls.append(("/".join(path.split("/")[-2:]),
                          request.headers.get("content-type", "")))

    page.on("request", called)
    try:
        # 1. Bob's page: a new device, keys made in IndexedDB, its stream live; it
        # registers when asked (its key and KeyPackages, through Envoy).
        await page.goto(f"{built.origin}/index.html#" + urlencode({
            "api": server.http_url, "user": bob.user, "device": "browser",
            "token": bob.access, "refresh": bob.refresh}))
        state = page.get_by_test_id("device-state")
        await expect(state).to_have_text("new device: keys made, not registered", timeout=SLOW)
        await expect(page.get_by_test_id("connection-state")).to_have_text("live")
        assert "token=" not in page.url  # read once, then kept in sessionStorage
        key = await page.get_by_test_id("signature-key").inner_text()
        assert re.fullmatch(r"[0-9a-f]{64}", key)  # Ed25519
        assert await stored_identity(page, database) == key
        assert not any(method.endswith("/CreateDevice") for method, _ in calls)
        await page.get_by_test_id("register").click()
        await expect(state).to_have_text("registered, 20 KeyPackages uploaded", timeout=SLOW)
        registered = (await client.e2ee.GetDevice(e2ee_pb.GetDeviceRequest(name=bob_device),
                                                  metadata=app.auth)).device
        assert registered.signature_key.hex() == key
        fingerprint = registered.fingerprint
        await expect(page.get_by_test_id("fingerprint")).to_have_text(fingerprint)
        assert registered.key_package_count == 20 and registered.has_last_resort
        assert {content for method, content in calls if method.startswith("caas.")} == {
            "application/grpc-web+proto"}

        # 2. Alice's group adds the page's device (the commit, and a Welcome for it).
        added = await alice.run("add", **talk)
        assert (added["added"], added["unavailable"], added["refused"]) == ([bob_device], [], [])
        assert (added["sequence"], added["kind"], added["epoch"]) == (1, "COMMIT", 1)
        assert {m["device"]: m["signatureKey"] for m in added["members"]}[bob_device] == key
        hello = "Bob, the plans are in the blue folder."
        assert (await alice.run("send", TEXT=hello, **talk))["sequence"] == 2

        # The page joins from its stream (the commit shows up: it looks for Welcomes)
        # and decrypts her message.
        texts = page.get_by_test_id("message-text")
        await expect(texts).to_have_text([hello], timeout=SLOW)
        await expect(page.get_by_test_id("conversation")).to_have_text(conversation)
        shown = await page_state(page)
        assert shown["decrypted"] == [{"conversation": conversation, "sequence": 2,
                                       "sender": "alice", "text": hello}]
        assert (shown["failed"], shown["errors"], shown["resumed"]) == ([], [], False)

        # 3. The page answers; alice's device decrypts it.
        reply = "Got them. Burn after reading."
        await page.get_by_test_id("message-input").fill(reply)
        await page.get_by_test_id("send").click()
        await expect(page.locator("li.mine[data-sequence='3']")).to_contain_text(reply)
        assert await alice.run("read", **talk) == [
            {"sequence": 3, "sender": "bob", "text": reply, "error": ""}]

        # 4. The page reloads; alice writes while it is away (the new document exists,
        # its script held back, the old one and its stream are gone).
        before_reload = len(calls)
        held, release = asyncio.Event(), asyncio.Event()

        async def hold(route: Route) -> None:
            held.set()
            await release.wait()
            await route.continue_()

        await page.route(f"{built.origin}/app.js", hold)
        reloading = asyncio.create_task(page.reload())
        try:
            await asyncio.wait_for(held.wait(), 30)
            away = "Change of plan: meet at noon."
            assert (await alice.run("send", TEXT=away, **talk))["sequence"] == 4
        finally:
            release.set()
            await reloading
        await page.unroute(f"{built.origin}/app.js")

        # It resumes from IndexedDB: the same key, no registration, and it catches up
        # from where it was (sequence 3): alice's message, and nothing twice.
        await expect(state).to_have_text("resumed from IndexedDB, caught up", timeout=SLOW)
        await expect(texts).to_have_text([hello, reply, away])
        await expect(page.locator("li[data-fresh]")).to_have_count(1)
        await expect(page.locator("li[data-fresh]")).to_have_attribute("data-sequence", "4")
        shown = await page_state(page)
        assert shown["resumed"] is True
        assert shown["decrypted"] == [{"conversation": conversation, "sequence": 4,
                                       "sender": "alice", "text": away}]
        assert (shown["failed"], shown["errors"]) == ([], [])
        assert await page.get_by_test_id("signature-key").inner_text() == key
        assert await stored_identity(page, database) == key
        await expect(page.get_by_test_id("fingerprint")).to_have_text(fingerprint)
        after = [method for method, _ in calls[before_reload:]]
        assert "caas.messages.v1.MessagesService/ListMessages" in after  # caught up
        assert not [m for m in after if m.endswith(("/CreateDevice", "/UploadKeyPackages"))]
        devices = (await client.e2ee.ListDevices(
            e2ee_pb.ListDevicesRequest(parent=bob.user), metadata=app.auth)).devices
        assert [(d.name, d.signature_key.hex(), d.create_time) for d in devices] == [
            (bob_device, key, registered.create_time)]

        # 5. And it goes on: its next message, from the group state it resumed, is one
        # alice's device decrypts.
        await expect(page.get_by_test_id("connection-state")).to_have_text("live")
        back = "Noon it is."
        await page.get_by_test_id("message-input").fill(back)
        await page.get_by_test_id("send").click()
        await expect(page.locator("li.mine[data-sequence='5']")).to_contain_text(back)
        assert await alice.run("read", **talk) == [
            {"sequence": 5, "sender": "bob", "text": back, "error": ""}]
        await expect(texts).to_have_text([hello, reply, away, back])
        assert (await page_state(page))["errors"] == []

        await checked(page, "e2ee-page", ARTIFACTS / "e2ee")
    finally:
        await context.close()

    # The server only ever held ciphertext.
    listed = (await client.messages.ListMessages(
        msg_pb.ListMessagesRequest(parent=conversation, page_size=50, after_sequence=0),
        metadata=app.auth)).messages
    assert [(m.sequence, m.mls.kind) for m in listed] == [
        (1, msg_res.MlsContent.KIND_COMMIT)] + [
        (n, msg_res.MlsContent.KIND_APPLICATION) for n in range(2, 6)]
    assert [m.sender_id for m in listed] == ["alice", "alice", "bob", "alice", "bob"]
    stored = b"".join(m.SerializeToString() for m in listed)
    for text in (hello, reply, away, back):
        assert text.encode() not in stored
