"""The developer portal in a real browser (Chromium), through Envoy, against a running
server: a new developer signs up, verifies the emailed link, enrolls TOTP, creates an
organization and an app, makes an API key, sends messages with it and sees them on the
dashboard; a wrong TOTP code is refused; an invited viewer cannot create keys.
axe-core checks every page; a screenshot of each is saved in test-artifacts/portal/."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from caas.analytics.v1 import analytics_service_pb2 as an_pb
from caas.analytics.v1 import resources_pb2 as an_res
from caas.apps.v1 import apps_service_pb2 as apps_pb
from google.protobuf import timestamp_pb2
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.axe import ARTIFACTS
from tests.browser.axe import checked as axe_checked
from tests.conftest import unique_id
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.mail import SmtpServer
from tests.support.portal import PASSWORD, code, sign_up
from tests.support.servers import REPO, CaasServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

SHOTS = ARTIFACTS / "portal"


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


def portal(server: CaasServer, path: str = "") -> str:
    return f"{server.http_url}/portal{path}"


async def log_in(page: Page, server: CaasServer, email: str, totp: str = "") -> None:
    await page.goto(portal(server, "/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    if totp:
        await page.get_by_label("Authentication code").fill(totp)
        await page.get_by_role("button", name="Verify and log in").click()
    await expect(page.get_by_role("heading", name="Organizations")).to_be_visible()


async def counted(client: Client, app: str, key: str, metric: an_res.Metric.ValueType,
                  expected: int) -> bool:
    """Whether analytics has `expected` of `metric` today (the counts trail the calls)."""
    now = datetime.now(UTC)
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(now - timedelta(days=2))
    end.FromDatetime(now + timedelta(hours=1))
    got = await client.analytics.QueryTimeSeries(an_pb.QueryTimeSeriesRequest(
        parent=app, metrics=[metric], interval=an_res.Interval(start_time=start, end_time=end),
        granularity=an_res.GRANULARITY_DAY), metadata=bearer(key))
    return max(p.value for s in got.time_series for p in s.points) == expected


async def test_a_new_developer_goes_from_sign_up_to_a_dashboard(
        context: BrowserContext, browser: Browser, client: Client, server: CaasServer,
        smtp: SmtpServer) -> None:
    page = await context.new_page()
    email = f"{unique_id('web')}@example.com"
    await page.goto(portal(server, "/signup"))
    await checked(page, "01-sign-up")
    await page.get_by_label("Your name").fill("Grace Hopper")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    mail = await smtp.inbox.wait_for(email, "Verify your email")
    await page.goto(portal(server, f"/verify-email?token={mail.link_token()}"))
    await expect(page.get_by_text("Your email address is verified.")).to_be_visible()
    await checked(page, "02-email-verified")

    # Wrong password first: the server's reason, in words.
    await page.goto(portal(server, "/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("not-my-password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    await checked(page, "03-login-refused")
    await log_in(page, server, email)
    await checked(page, "04-organizations-empty")

    # Two-factor authentication.
    await page.get_by_role("link", name="Security").click()
    await page.get_by_role("button", name="Set up an authenticator").click()
    qr = page.get_by_role("img", name="QR code of the authenticator key")
    await expect(qr).to_be_visible()
    assert await qr.evaluate("image => image.complete && image.naturalWidth > 100")
    secret = await page.locator("code.secret").inner_text()
    await checked(page, "05-totp-enrollment")
    await page.get_by_label("Authentication code").fill(code(secret))
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator(".codes li")).to_have_count(10)
    recovery = await page.locator(".codes li").all_inner_texts()
    await checked(page, "06-recovery-codes")

    # Log out; a wrong code is refused, the next one works.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    wrong = "000000" if code(secret, 1) != "000000" else "111111"
    await page.get_by_label("Authentication code").fill(wrong)
    await page.get_by_role("button", name="Verify and log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("That code is wrong")
    await checked(page, "07-totp-refused")
    await page.get_by_label("Authentication code").fill(code(secret, 1))
    await page.get_by_role("button", name="Verify and log in").click()
    await expect(page.get_by_role("heading", name="Organizations")).to_be_visible()

    # An organization and an app.
    await page.get_by_label("Name", exact=True).fill("Analytical Engines")
    org_id = unique_id("org-")
    await page.get_by_label("Id").fill(org_id)
    await page.get_by_role("button", name="Create organization").click()
    await expect(page.get_by_role("heading", name="Analytical Engines")).to_be_visible()
    app_id = unique_id("app-")
    await page.get_by_label("App name").fill("Difference")
    await page.get_by_label("App id").fill(app_id)
    await page.get_by_role("button", name="Create app").click()
    await expect(page.get_by_role("link", name="Difference")).to_be_visible()
    await checked(page, "08-organization")

    # An API key, shown once; the backend sends messages with it.
    await page.get_by_role("link", name="Difference").click()
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Key name").fill("backend")
    await page.get_by_role("button", name="Create key").click()
    key = await page.get_by_test_id("new-secret").inner_text()
    assert key.startswith(f"caask_{app_id}_")
    await checked(page, "09-api-keys")
    ada = await person(client, app_id, key, "ada", "Ada")
    await person(client, app_id, key, "charles", "Charles")
    conversation = (await ada.create(GROUP, ("charles",), title="Engines")).name
    for number in range(7):
        await ada.send(conversation, f"note {number}")
    for metric, expected in ((an_res.METRIC_MESSAGES, 7), (an_res.METRIC_ACTIVE_USERS, 2)):
        await eventually(functools.partial(counted, client, f"apps/{app_id}", key, metric,
                                           expected), within=30)

    await page.get_by_role("link", name="Overview").click()
    await expect(page.get_by_test_id("total-messages")).to_have_text("7", timeout=15_000)
    # Ada sent; Charles signed in (sign-ins count as activity): two active users today.
    await expect(page.get_by_test_id("peak-active-users")).to_have_text("2")
    await expect(page.get_by_text("ada — 7 messages")).to_be_visible()
    await checked(page, "10-dashboard")

    # The other app pages render, with their data.
    await page.get_by_role("link", name="Users").click()
    await expect(page.get_by_role("link", name="ada")).to_be_visible()
    await checked(page, "11-users")
    await page.get_by_role("link", name="ada").click()
    await expect(page.get_by_role("link", name="Engines", exact=True)).to_be_visible()
    await checked(page, "12-user")
    await page.get_by_role("link", name="Engines", exact=True).click()
    await expect(page.get_by_role("cell", name="note 6")).to_be_visible()
    await checked(page, "13-conversation")
    await page.get_by_role("link", name="Webhooks").click()
    await expect(page.get_by_text("No webhooks.")).to_be_visible()
    await checked(page, "14-webhooks")
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_text(f"apps/{app_id}", exact=True)).to_be_visible()
    # Guests on, for two hours: the app says so, and the widget's tag offers guest mode.
    await page.get_by_label("Let visitors chat as guests").check()
    await page.get_by_label("Guest session lifetime (hours)").fill("2")
    await page.get_by_role("form", name="Guest access").get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Guest access saved.")).to_be_visible()
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=f"apps/{app_id}"),
                                   metadata=bearer(key))
    assert got.app.guest_access.enabled
    assert got.app.guest_access.session_lifetime.ToSeconds() == 7200
    await expect(page.get_by_test_id("widget-snippet")).to_contain_text(
        f'data-app="apps/{app_id}"')
    await expect(page.get_by_test_id("widget-snippet")).to_contain_text('data-guest="true"')
    await checked(page, "15-settings")
    # On a phone's width: the sections above the page, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.get_by_role("link", name="Overview").click()
    await expect(page.get_by_test_id("total-messages")).to_have_text("7")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await checked(page, "15-phone-dashboard")
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_role("link", name="Security").click()
    await expect(page.get_by_role("heading", name="Login history")).to_be_visible()
    await checked(page, "16-security")

    # A viewer, invited by email, cannot create keys.
    viewer = await sign_up(client, smtp.inbox, f"{unique_id('viewer')}@example.com")
    await page.goto(portal(server, f"/organizations/{org_id}"))
    await page.get_by_label("Email").fill(viewer.email)
    await page.get_by_label("Role", exact=True).select_option(label="Viewer")
    await page.get_by_role("button", name="Send invitation").click()
    await expect(page.get_by_role("cell", name=viewer.email)).to_be_visible()
    invitation = await smtp.inbox.wait_for(viewer.email, "Join Analytical Engines")
    viewing = await browser.new_context(bypass_csp=True)
    try:
        other = await viewing.new_page()
        await log_in(other, server, viewer.email)
        await other.goto(portal(server, f"/accept-invitation?token={invitation.link_token()}"))
        await checked(other, "17-accept-invitation")
        await other.get_by_role("button", name="Accept the invitation").click()
        await expect(other.get_by_role("heading", name="Analytical Engines")).to_be_visible()
        # It reads the app (its users), but keys are not for viewers: not even their list.
        await other.goto(portal(server, f"/apps/{app_id}/users"))
        await expect(other.get_by_role("link", name="ada")).to_be_visible()
        await other.goto(portal(server, f"/apps/{app_id}/keys"))
        refused = "Your role in this organization does not allow this."
        await expect(other.get_by_role("alert")).to_have_text(refused)
        await other.get_by_role("button", name="Create key").click()
        await expect(other.get_by_role("alert")).to_have_text([refused, refused])
        await checked(other, "18-viewer-refused")
        # Nor app settings: a viewer cannot turn guests off.
        await other.goto(portal(server, f"/apps/{app_id}/settings"))
        await other.get_by_label("Let visitors chat as guests").uncheck()
        await other.get_by_role("form", name="Guest access").get_by_role(
            "button", name="Save").click()
        await expect(other.get_by_role("form", name="Guest access").get_by_role(
            "alert")).to_have_text(refused)
        got = await client.apps.GetApp(apps_pb.GetAppRequest(name=f"apps/{app_id}"),
                                       metadata=bearer(key))
        assert got.app.guest_access.enabled
    finally:
        await viewing.close()

    # A forgotten password: the emailed link, a new password, a recovery code.
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send the link").click()
    await expect(page.get_by_role("status")).to_contain_text("we sent it a link")
    await checked(page, "19-forgot-password")
    reset = await smtp.inbox.wait_for(email, "Reset your CAAS password")
    await page.goto(portal(server, f"/reset-password?token={reset.link_token()}"))
    await page.get_by_label("New password", exact=True).fill("copper-meadow-lantern-88")
    await page.get_by_role("button", name="Set the password").click()
    await expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    await checked(page, "20-password-reset")
    await page.get_by_role("link", name="Log in").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("copper-meadow-lantern-88")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("button", name="Use a recovery code").click()
    await page.get_by_label("Recovery code").fill(recovery[0])
    await page.get_by_role("button", name="Verify and log in").click()
    await expect(page.get_by_role("heading", name="Organizations")).to_be_visible()
    await page.goto(portal(server, "/no/such/page"))
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await checked(page, "21-not-found")


async def test_the_first_page_is_small_and_served_with_a_strict_policy(
        server: CaasServer, context: BrowserContext) -> None:
    page = await context.new_page()
    response = await page.goto(portal(server, "/login"))
    assert response is not None and response.status == 200
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    built = json.loads((REPO / "web_bridge/portal/dist/build.json").read_text())
    assert built["initialJsGzipBytes"] < 250 * 1024
    scripts = re.findall(r'src="(/portal/assets/[^"]+)"', await page.content())
    assert scripts, "index.html loads its entry from /portal/assets/"
    asset = await page.request.get(f"{server.http_url}{scripts[0]}")
    assert "immutable" in asset.headers["cache-control"]
    missing = await page.request.get(f"{server.http_url}/portal/assets/nothing.js")
    assert missing.status == 404
    escape = await page.request.get(f"{server.http_url}/portal/assets/../../../pyproject.toml")
    assert "[project]" not in await escape.text()
    await checked(page, "00-login")
