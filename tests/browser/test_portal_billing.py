"""The portal's billing page in a real browser (Chromium), through Envoy, against a
server of its own whose payment provider is the Stripe emulator (localstripe): an owner
saves the billing email, adds a card through Stripe.js (localstripe's stand-in, served
as https://js.stripe.com/v3/ by the browser's router, calling https://api.stripe.com,
which is routed to the emulator) under the portal's real Content-Security-Policy, sees
each app's usage meters (a warning from 80 %, and at the cap), previews and makes a
plan change; a viewer of the organization sees the refusal instead of the data; and
a server without a payment provider says so instead of asking for a card.
axe-core checks the pages; screenshots go to test-artifacts/portal-billing/."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from caas.billing.v1 import billing_service_pb2 as pb
from caas.billing.v1 import resources_pb2 as res
from google.protobuf import field_mask_pb2
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from tests.browser.axe import ARTIFACTS, AXE
from tests.browser.axe import checked as axe_checked
from tests.browser.test_portal import log_in, portal
from tests.conftest import TEST_CONFIG, AppHandle, unique_id
from tests.e2e.test_billing import Customer
from tests.e2e.test_organizations import Role, app_of, join, organization
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.localstripe import LocalStripe
from tests.support.mail import SmtpServer
from tests.support.portal import sign_up
from tests.support.servers import CaasServer, start_caas
from tests.support.waiting import eventually

SHOTS = ARTIFACTS / "portal-billing"
SECRET_KEY, PUBLISHABLE_KEY = "sk_test_caas_portal", "pk_test_caas_portal"
WEBHOOK_SECRET = "whsec_caas_portal"
STRIPE_JS = "https://js.stripe.com/v3/"
STRIPE_API = "https://api.stripe.com"
# The stand-in works out its API's origin from its own URL (which breaks when it is
# served as js.stripe.com): it is told Stripe's instead, which the browser routes here.
STAND_IN_ORIGIN = "const LOCALSTRIPE_BASE_API = (function () {"
REFUSED = "Your role in this organization does not allow this."
MESSAGES, USERS = res.UNIT_MESSAGES, res.UNIT_MONTHLY_ACTIVE_USERS


@pytest.fixture(scope="module")
def billing_server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer,
                   breach_api: str, stripe_emulator: LocalStripe) -> Iterator[CaasServer]:
    """A server that takes cards: Stripe is the emulator."""
    env = {"CAAS_SMTP_HOST": smtp.host, "CAAS_SMTP_PORT": str(smtp.port),
           "CAAS_SMTP_SECURITY": "none", "CAAS_BREACHED_PASSWORD_URL": breach_api,
           "CAAS_STRIPE_API_KEY": SECRET_KEY, "CAAS_STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
           "CAAS_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "CAAS_STRIPE_API_BASE": stripe_emulator.url}
    caas = start_caas(tmp_path_factory.mktemp("caas-billing"), env=env, config=TEST_CONFIG,
                      http=True)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture(scope="module")
async def billing_client(billing_server: CaasServer) -> AsyncIterator[Client]:
    caas = Client(billing_server.address)
    yield caas
    await caas.close()


@dataclass
class Browsing:
    context: BrowserContext
    csp_violations: list[str]
    stand_in_loads: list[str]


@pytest.fixture
async def browsing(browser: Browser, stripe_emulator: LocalStripe
                   ) -> AsyncIterator[Browsing]:
    """A browser context under the portal's real CSP (axe-core comes as an init script,
    which no policy blocks), with Stripe's origins routed to the emulator."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(path=str(AXE))
    with urllib.request.urlopen(f"{stripe_emulator.url}/js.stripe.com/v3/",  # noqa: ASYNC210 (local, once)
                                timeout=10) as answer:
        source = answer.read().decode()
    assert STAND_IN_ORIGIN in source, "localstripe's Stripe.js stand-in changed"
    source = source.replace(
        STAND_IN_ORIGIN, f"const LOCALSTRIPE_BASE_API = '{STRIPE_API}';\n(function () {{")
    browsing = Browsing(context, [], [])

    async def stand_in(route: Route) -> None:
        browsing.stand_in_loads.append(route.request.url)
        await route.fulfill(body=source, content_type="application/javascript")

    async def emulated(route: Route) -> None:
        path = route.request.url.removeprefix(STRIPE_API)
        answer = await route.fetch(url=stripe_emulator.url + path)
        origin = await route.request.header_value("origin") or "*"
        await route.fulfill(response=answer,
                            headers={**answer.headers, "access-control-allow-origin": origin})

    await context.route(STRIPE_JS + "**", stand_in)
    await context.route(STRIPE_API + "/**", emulated)
    context.on("console", lambda message: browsing.csp_violations.append(message.text)
               if "Content Security Policy" in message.text else None)
    yield browsing
    await context.close()


async def checked(page: Page, name: str) -> None:
    """A screenshot in test-artifacts/portal-billing/, and no serious accessibility
    violation."""
    await axe_checked(page, name, SHOTS)


async def customer(client: Client, server: CaasServer, smtp: SmtpServer) -> Customer:
    """An owner (verified through the emailed link), their organization, an app of it;
    the operator set the account's tax rate."""
    owner = await sign_up(client, smtp.inbox, f"{unique_id('payer')}@example.com")
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    await client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount", tax_rate_bps=1900),
        update_mask=field_mask_pb2.FieldMask(paths=["tax_rate_bps"])),
        metadata=bearer(server.operator_token))
    return Customer(owner, org, app)


async def usage_reaches(client: Client, app: AppHandle,
                        expected: dict[res.Unit.ValueType, int]) -> None:
    """Wait until billing counts `expected` (unit → used) this period."""
    async def there() -> bool:
        got = await client.billing.GetUsage(pb.GetUsageRequest(
            name=f"{app.name}/usage/current"), metadata=app.auth)
        used = {u.unit: u.used for u in got.usage.units}
        return all(used.get(unit) == n for unit, n in expected.items())
    await eventually(there, within=30)


async def tight_plan(client: Client, server: CaasServer, org: str) -> str:
    """A custom plan for `org` that little reaches: 5 messages (80 % at 4), 2 users
    (capped at 2)."""
    made = await client.billing.CreatePlan(pb.CreatePlanRequest(
        plan_id=unique_id("tight-"), plan=res.Plan(
            display_name="Tight", currency_code="EUR", rate_limits="free",
            organizations=[org], units=[
                res.PlanUnit(unit=MESSAGES, included=5, overage_price_micros=100, hard_cap=10),
                res.PlanUnit(unit=USERS, included=2, hard_cap=2)])),
        metadata=bearer(server.operator_token))
    return made.plan.name


async def test_an_owner_adds_a_card_sees_usage_and_changes_plan(
        browsing: Browsing, billing_client: Client, billing_server: CaasServer,
        smtp: SmtpServer) -> None:
    client, server = billing_client, billing_server
    who = await customer(client, server, smtp)
    # Usage: three messages in the app; a second app on a tight plan, near its limits.
    ada = await person(client, who.app.app_id, who.app.api_key, "ada")
    await person(client, who.app.app_id, who.app.api_key, "bob")
    talk = (await ada.create(GROUP, ("bob",))).name
    for n in range(3):
        await ada.send(talk, f"hello {n}")
    busy = await app_of(client, who.owner, who.org)
    moved = await client.billing.ChangePlan(pb.ChangePlanRequest(
        name=f"{busy.name}/subscription", plan=await tight_plan(client, server, who.org),
        override=True), metadata=bearer(server.operator_token))
    assert moved.immediate
    eve = await person(client, busy.app_id, busy.api_key, "eve")
    await person(client, busy.app_id, busy.api_key, "fay")
    busy_talk = (await eve.create(GROUP, ("fay",))).name
    for n in range(4):
        await eve.send(busy_talk, f"busy {n}")
    await usage_reaches(client, who.app, {MESSAGES: 3, USERS: 2})
    await usage_reaches(client, busy, {MESSAGES: 4, USERS: 2})

    page = await browsing.context.new_page()
    await log_in(page, server, who.owner.email)
    await page.goto(portal(server, f"/{who.org}"))
    await page.get_by_role("link", name="Billing", exact=True).click()
    await expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    assert page.url.endswith(f"/portal/{who.org}/billing")  # where billing emails link to
    response = await page.request.get(page.url)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy
    assert "connect-src 'self' https://api.stripe.com;" in policy

    # Empty states; the operator's tax rate, read-only.
    await expect(page.get_by_test_id("card-on-file")).to_have_text("No card on file.")
    await expect(page.get_by_text("No invoices yet.")).to_be_visible()
    await expect(page.get_by_role("heading", name="Credit notes")).to_have_count(0)
    await expect(page.get_by_test_id("tax-rate")).to_have_text("19 %")
    # Stripe.js is not loaded until a card is added.
    await expect(page.locator(f'script[src="{STRIPE_JS}"]')).to_have_count(0)

    # The usage meters: counts of this period, a warning from 80 %, the cap reached.
    first, second = (page.get_by_role("article").filter(
        has=page.locator(f'h3 a[href="/portal/{app.name}"]')) for app in (who.app, busy))
    messages = first.get_by_role("meter", name="Messages used")
    await expect(messages).to_have_attribute("aria-valuetext", "3 of 10,000 included (0 %)")
    await expect(messages).to_have_attribute("aria-valuenow", "3")
    await expect(first.locator(".badge")).to_have_count(0)
    await expect(first.get_by_test_id("current-plan")).to_have_text("Free")
    busy_messages = second.get_by_role("meter", name="Messages used")
    await expect(busy_messages).to_have_attribute("aria-valuetext", "4 of 5 included (80 %)")
    warned = second.get_by_role("row").filter(has=page.get_by_role("meter", name="Messages used"))
    await expect(warned.locator(".usage.warn .badge")).to_have_text("Over 80 % used")
    capped = second.get_by_role("row").filter(has=page.get_by_role(
        "meter", name="Monthly active users used"))
    await expect(capped.locator(".usage.cap .badge")).to_have_text("At the cap: more is refused")
    await expect(second.get_by_test_id("current-plan")).to_have_text("Tight")
    await checked(page, "01-billing-empty")

    # The billing email and address: only the fields changed are saved (a legal name
    # changed elsewhere meanwhile stays).
    await client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=who.account, legal_name="Acme Ltd"),
        update_mask=field_mask_pb2.FieldMask(paths=["legal_name"])), metadata=who.owner.auth)
    books = f"{unique_id('books')}@example.com"
    await page.get_by_label("Billing email").fill(books)
    await page.get_by_label("Address").fill("1 Engine Street\n10115 Berlin")
    await page.get_by_role("button", name="Save billing details").click()
    await expect(page.get_by_role("status").filter(
        has_text="Billing details saved.")).to_be_visible()
    saved = await client.billing.GetBillingAccount(pb.GetBillingAccountRequest(
        name=who.account), metadata=who.owner.auth)
    assert (saved.billing_account.email, saved.billing_account.address,
            saved.billing_account.legal_name) == (books, "1 Engine Street\n10115 Berlin",
                                                  "Acme Ltd")
    await expect(page.get_by_label("Legal name")).to_have_value("Acme Ltd")  # as saved

    # Enterprise needs a card on file: the refusal, in words, and nothing changes.
    plans = first.get_by_label("Plan", exact=True)
    await plans.select_option(label="Enterprise — 499.00 EUR a month")
    await first.get_by_role("button", name="Preview").click()
    await expect(first.get_by_role("alert")).to_have_text(
        "A paid plan needs a card on file: add one under Payment method first.")
    await checked(page, "02-card-required")

    # A card, through Stripe.js: its field, its confirmation, then CAAS completes it.
    await page.get_by_role("button", name="Add card").click()
    field = page.get_by_role("group", name="Card")
    await expect(field.locator("input")).to_have_count(5)  # the stand-in's field, mounted
    await field.locator("input[placeholder=number]").fill("4242424242424242")
    await field.locator("input[placeholder=exp_month]").fill("12")
    await field.locator("input[placeholder=exp_year]").fill("31")
    await field.locator("input[placeholder=cvc]").fill("123")
    await field.locator("input[placeholder=postal_code]").fill("10115")
    SHOTS.mkdir(parents=True, exist_ok=True)
    # No axe here: the stand-in's bare inputs are not Stripe's field (a labelled frame).
    await page.screenshot(path=str(SHOTS / "03-card-field.png"), full_page=True)
    await page.get_by_role("button", name="Save card").click()
    await expect(page.get_by_test_id("card-on-file")).to_have_text("Visa •••• 4242, expires 12/31")
    await expect(page.get_by_role("status").filter(has_text="Card saved")).to_be_visible()
    account = await client.billing.GetBillingAccount(pb.GetBillingAccountRequest(
        name=who.account), metadata=who.owner.auth)
    assert account.billing_account.payment_method.last4 == "4242"
    await checked(page, "04-card-saved")
    # Replacing it loads Stripe.js no second time.
    await page.get_by_role("button", name="Replace card").click()
    await expect(page.get_by_role("group", name="Card").locator("input")).to_have_count(5)
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("button", name="Replace card")).to_be_visible()
    await expect(page.locator(f'script[src="{STRIPE_JS}"]')).to_have_count(1)
    assert browsing.stand_in_loads == [STRIPE_JS]

    # Standard: a preview (at once, on a trial, its proration lines), then the change.
    await plans.select_option(label="Standard — 49.00 EUR a month")
    await first.get_by_role("button", name="Preview").click()
    preview = first.get_by_test_id("plan-preview")
    await expect(preview.get_by_role("status")).to_contain_text(
        "Applies now, on a free trial until")
    lines = preview.get_by_role("table")
    await expect(lines.get_by_role("row")).to_have_count(3)  # the header, free, standard
    await expect(lines.get_by_role("row").nth(1)).to_contain_text("Free plan")
    await expect(lines.get_by_role("row").nth(2)).to_contain_text("Standard plan (trial)")
    await expect(lines.get_by_role("row").nth(2)).to_contain_text("0.00 EUR")
    still = await client.billing.GetSubscription(pb.GetSubscriptionRequest(
        name=f"{who.app.name}/subscription"), metadata=who.owner.auth)
    assert still.subscription.plan == "plans/free"  # a preview changes nothing
    await checked(page, "05-plan-preview")
    await first.get_by_role("button", name="Change to Standard").click()
    await expect(first.get_by_role("status").filter(has_text="Now on Standard.")).to_be_visible()
    await expect(first.get_by_test_id("current-plan")).to_have_text("Standard")
    await expect(first.get_by_role("meter", name="Messages used")).to_have_attribute(
        "aria-valuetext", "3 of 1,000,000 included (0 %)")
    changed = await client.billing.GetSubscription(pb.GetSubscriptionRequest(
        name=f"{who.app.name}/subscription"), metadata=who.owner.auth)
    assert changed.subscription.plan == "plans/standard"
    assert changed.subscription.state == res.Subscription.STATE_TRIALING
    await checked(page, "06-plan-changed")

    # On a phone's width: nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    await expect(first.get_by_test_id("current-plan")).to_have_text("Standard")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await checked(page, "07-phone")
    assert browsing.csp_violations == []


async def test_a_viewer_sees_the_refusal_not_the_billing(
        browsing: Browsing, billing_client: Client, billing_server: CaasServer,
        smtp: SmtpServer) -> None:
    who = await customer(billing_client, billing_server, smtp)
    viewer = await join(billing_client, smtp, who.owner, who.org, Role.ROLE_VIEWER)
    page = await browsing.context.new_page()
    await log_in(page, billing_server, viewer.email)
    await page.goto(portal(billing_server, f"/{who.org}/billing"))
    await expect(page.get_by_role("alert")).to_have_text(REFUSED)
    await expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    for hidden in ("Billing account", "Payment method", "Plans and usage", "Invoices"):
        await expect(page.get_by_role("heading", name=hidden)).to_have_count(0)
    await expect(page.get_by_role("meter")).to_have_count(0)
    await checked(page, "08-viewer-refused")


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_without_a_payment_provider_no_card_is_asked_for(
        browsing: Browsing, client: Client, server: CaasServer, smtp: SmtpServer) -> None:
    who = await customer(client, server, smtp)  # the shared server: no Stripe
    page = await browsing.context.new_page()
    await log_in(page, server, who.owner.email)
    await page.goto(portal(server, f"/{who.org}/billing"))
    await page.get_by_role("button", name="Add card").click()
    await expect(page.get_by_text(
        "This deployment takes no card payments: invoices are paid by bank transfer.")
    ).to_be_visible()
    await expect(page.get_by_role("button", name="Add card")).to_have_count(0)
    await expect(page.get_by_role("alert")).to_have_count(0)
    await expect(page.locator(f'script[src="{STRIPE_JS}"]')).to_have_count(0)
    await checked(page, "09-no-provider")
