"""The portal's push notification pages in a real browser (Chromium), through Envoy,
against the shared server: a developer sets the Web Push contact, is told why an invalid
APNs key is refused (and nothing is stored), uploads a valid `.p8` key and a Firebase
service account (neither ever shown again), adds a French template, rotates the Web Push
key; on a user's page, the user's push channel and a delivery that failed (its try's
answer) show. axe-core checks the pages; screenshots go to test-artifacts/portal/."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator

import pytest
from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Browser, BrowserContext, FilePayload, Page, expect

from tests.browser.axe import ARTIFACTS
from tests.browser.axe import checked as axe_checked
from tests.browser.test_portal import log_in, portal
from tests.conftest import unique_id
from tests.e2e.test_organizations import app_of, organization
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.mail import SmtpServer
from tests.support.portal import sign_up
from tests.support.push_providers import service_account_json
from tests.support.servers import CaasServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SHOTS = ARTIFACTS / "portal"
KEY_ID, TEAM_ID, TOPIC = "ABCDE12345", "TEAM123456", "com.example.chat"
# Nothing listens there: the FCM token request of a delivery fails at once, offline.
TOKEN_URI = "https://127.0.0.1:9/token"


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # bypass_csp: so that axe-core can be injected (the policy allows no inline script).
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
    yield context
    await context.close()


async def checked(page: Page, name: str) -> None:
    """A screenshot in test-artifacts/portal/, and no serious accessibility violation."""
    await axe_checked(page, name, SHOTS)


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def p8_key() -> bytes:
    """A new APNs signing key as Apple hands it out: P-256, PKCS#8 PEM."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def upload(name: str, content: bytes, mime: str = "application/octet-stream") -> FilePayload:
    return {"name": name, "mimeType": mime, "buffer": content}


async def test_a_developer_sets_up_push_and_sees_a_users_channels(
        context: BrowserContext, client: Client, server: CaasServer, smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, f"{unique_id('push')}@example.com")
    app = await app_of(client, owner, await organization(client, owner))
    config_name, key_name = f"{app.name}/pushConfig", f"{app.name}/webPushKey"

    async def config() -> res.PushConfig:
        got = await client.push.GetPushConfig(pb.GetPushConfigRequest(name=config_name),
                                              metadata=app.auth)
        return got.push_config

    page = await context.new_page()
    await log_in(page, server, owner.email)
    await page.goto(portal(server, f"/{app.name}"))
    await page.get_by_role("link", name="Push notifications").click()
    await expect(page.get_by_role("heading", name="Push notifications", level=1)).to_be_visible()
    assert page.url.endswith(f"/portal/{app.name}/push")

    # The Web Push key, as the API has it (base64url of the 65-byte point).
    shown_key = page.get_by_test_id("web-push-public-key")
    await expect(shown_key).to_have_text(re.compile(r"^B[A-Za-z0-9_-]{86}$"))
    first_key = await shown_key.inner_text()
    got_key = await client.push.GetWebPushKey(pb.GetWebPushKeyRequest(name=key_name),
                                              metadata=app.auth)
    assert base64url(got_key.web_push_key.public_key) == first_key
    await expect(page.get_by_text("None: the key was never rotated.")).to_be_visible()
    await expect(page.get_by_test_id("apns-key")).to_contain_text("Not configured")

    # The contact.
    await page.get_by_label("Contact address").fill("mailto:push@example.com")
    await page.get_by_role("button", name="Save contact").click()
    await expect(page.get_by_text("Contact saved.")).to_be_visible()
    await expect(page.get_by_test_id("push-contact")).to_have_text("mailto:push@example.com")
    assert (await config()).web_push_contact == "mailto:push@example.com"

    # APNs: a file that is no key is refused, in words, next to the form; nothing is kept.
    apns = page.get_by_role("form", name="APNs credentials")
    await apns.get_by_label("Key id").fill(KEY_ID)
    await apns.get_by_label("Team id").fill(TEAM_ID)
    await apns.get_by_label("Topic (the app's bundle id)").fill(TOPIC)
    await apns.get_by_label("Signing key (.p8 file)").set_input_files(upload(
        f"AuthKey_{KEY_ID}.p8", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"))
    await apns.get_by_role("button", name="Save APNs credentials").click()
    await expect(apns.get_by_role("alert")).to_have_text(
        "Not saved: the .p8 key was refused — not an unencrypted PEM private key (the .p8 "
        "file). Nothing was changed.")
    stored = await config()
    assert not stored.HasField("apns") and not stored.apns.private_key_set
    await expect(page.get_by_test_id("apns-key")).to_contain_text("Not configured")
    await checked(page, "push-01-apns-refused")

    # A valid key: stored, never shown; the API agrees.
    pem = p8_key()
    await apns.get_by_label("Signing key (.p8 file)").set_input_files(
        upload(f"AuthKey_{KEY_ID}.p8", pem))
    await apns.get_by_role("button", name="Save APNs credentials").click()
    await expect(page.get_by_text("APNs credentials saved with the new key.")).to_be_visible()
    await expect(page.get_by_test_id("apns-key")).to_have_text("Key stored (it is never shown)")
    stored = await config()
    assert (stored.apns.key_id, stored.apns.team_id, stored.apns.topic) == (KEY_ID, TEAM_ID, TOPIC)
    assert stored.apns.private_key_set and stored.apns.private_key == ""
    # The file chooser is empty again: saving the ids alone keeps the key.
    await expect(apns.get_by_label("Signing key (.p8 file)")).to_have_value("")
    await apns.get_by_role("button", name="Save APNs credentials").click()
    await expect(page.get_by_text("APNs credentials saved; the stored key stays.")).to_be_visible()
    assert (await config()).apns.private_key_set

    # FCM: a service account's key file; its project and account show.
    account = service_account_json(TOKEN_URI, "chat-portal")
    fcm = page.get_by_role("form", name="FCM service account")
    await fcm.get_by_label("Service account key (JSON file)").set_input_files(
        upload("chat-portal-firebase-adminsdk.json", account.encode(), "application/json"))
    await fcm.get_by_role("button", name="Save service account").click()
    await expect(page.get_by_test_id("fcm-project")).to_have_text("chat-portal")
    await expect(page.get_by_text(json.loads(account)["client_email"])).to_be_visible()
    stored = await config()
    assert stored.fcm.project_id == "chat-portal" and stored.fcm.service_account_json == ""

    # A French template, saved with the list; the default language.
    wording = page.get_by_role("form", name="Add a template")
    await wording.get_by_label("Kind").select_option(label="Message")
    await wording.get_by_label("Language").fill("fr")
    await wording.get_by_label("Title").fill("{conversation}")
    await wording.get_by_label("Body").fill("{sender} a écrit : {text}")
    await wording.get_by_role("button", name="Add template").click()
    templates = page.get_by_role("table", name="The app's notification templates")
    await expect(templates.get_by_role("cell", name="{sender} a écrit : {text}")).to_be_visible()
    await expect(page.get_by_text("The templates above are not saved yet.")).to_be_visible()
    assert list((await config()).templates) == []  # not before it is saved
    await page.get_by_role("button", name="Save templates").click()
    await expect(page.get_by_text("Templates saved.")).to_be_visible()
    assert [(t.kind, t.locale, t.title, t.body) for t in (await config()).templates] == [
        (res.NOTIFICATION_KIND_MESSAGE, "fr", "{conversation}", "{sender} a écrit : {text}")]
    await page.get_by_role("textbox", name="Default language").fill("de")
    await page.get_by_role("button", name="Save default language").click()
    await expect(page.get_by_text("Default language saved.")).to_be_visible()
    assert (await config()).default_locale == "de"

    # Rotating the Web Push key: the consequence first, then a new key; the old one is
    # the previous.
    await page.get_by_role("button", name="Rotate the key").click()
    confirm = page.get_by_role("group", name="Rotate the key")
    await expect(confirm).to_contain_text("it becomes the previous key")
    await checked(page, "push-02-rotate-confirmation")
    await confirm.get_by_role("button", name="Rotate now").click()
    await expect(page.get_by_text("The key was rotated")).to_be_visible()
    await expect(shown_key).not_to_have_text(first_key)
    await expect(page.get_by_test_id("web-push-previous-key")).to_have_text(first_key)
    rotated = await client.push.GetWebPushKey(pb.GetWebPushKeyRequest(name=key_name),
                                              metadata=app.auth)
    assert base64url(rotated.web_push_key.previous_public_key) == first_key
    assert base64url(rotated.web_push_key.public_key) == await shown_key.inner_text()
    # No private key anywhere on the page.
    assert "PRIVATE KEY" not in await page.content()
    assert pem.decode() not in await page.content()
    await checked(page, "push-03-settings")
    # On a phone's width: nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await checked(page, "push-04-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})
    # Removing APNs, after saying what it does.
    await page.get_by_role("button", name="Remove APNs").click()
    await expect(page.get_by_role("group", name="Remove APNs")).to_contain_text(
        "Pushes to Apple devices then fail")
    await page.get_by_role("button", name="Remove the APNs credentials").click()
    await expect(page.get_by_test_id("apns-key")).to_contain_text("Not configured")
    stored = await config()
    assert not stored.HasField("apns") and stored.fcm.project_id == "chat-portal"

    # A user with an Android channel, registered by the backend: listed, no delivery yet.
    ada = await person(client, app.app_id, app.api_key, "ada", "Ada")
    bob = await person(client, app.app_id, app.api_key, "bob", "Bob")
    token = f"fcm-{unique_id('token')}"
    device = (await client.push.CreatePushDevice(pb.CreatePushDeviceRequest(
        parent=f"{app.name}/users/ada", push_device=res.PushDevice(
            fcm=res.FcmToken(token=token), device_id="pixel-8", locale="fr")),
        metadata=app.auth)).push_device
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Users").click()
    await page.get_by_role("link", name="ada").click()
    push = page.get_by_role("region", name="Push", exact=True)
    channels = push.get_by_role("table", name="The user's push channels, oldest first")
    row = channels.get_by_role("row").filter(has_text="pixel-8")
    await expect(row).to_contain_text("FCM")
    await expect(row).to_contain_text(device.name.rsplit("/", 1)[1])
    await expect(row.get_by_role("cell", name="fr", exact=True)).to_be_visible()
    await expect(push.get_by_text("No deliveries")).to_be_visible()
    await expect(push.get_by_text("All", exact=True)).to_be_visible()  # the level
    await checked(page, "push-05-user-no-deliveries")

    # A message to her: its push fails (nothing answers at the token endpoint); the
    # try and its error show.
    group = await bob.create(GROUP, (ada.user_id,), title="Launch")
    await bob.send(group.name, "liftoff")

    async def tried() -> bool:
        listed = await client.push.ListPushDeliveries(pb.ListPushDeliveriesRequest(
            parent=f"{app.name}/users/ada"), metadata=app.auth)
        return any(d.attempts for d in listed.push_deliveries)

    await eventually(tried, within=30)
    await push.get_by_role("button", name="Refresh").click()
    deliveries = push.get_by_role("table", name=re.compile("The user's notifications"))
    first = deliveries.get_by_role("row").nth(1)
    await expect(first).to_contain_text("Message")
    await expect(first.get_by_role("link", name=group.name.rsplit("/", 1)[1])).to_be_visible()
    await expect(first.get_by_role("listitem").first).to_contain_text("no answer")
    await checked(page, "push-06-user-delivery")
