"""Billing end to end, on both stores, with time moved by the test (the runtime's
clock), against real parts: the server in this process with its Envoy, the Stripe
emulator (localstripe), a local SMTP server and a webhook receiver.

An app lives through November: usage grows, the 80 % and 100 % warnings fire once
each (a `billing.usage_threshold` webhook and emails), the hard cap refuses sends
with the unit named while reading keeps working, a card is added the way a browser
does, an upgrade lifts the cap with proration; the month closes, the invoice is
numbered, rendered, emailed with its PDF and collected once, and the PDF read back
says what was metered. A crash between charging and recording charges once, and a
Stripe webhook replayed changes nothing the second time."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pypdf
import pytest
import stripe
from caas.accounts.v1 import accounts_service_pb2 as acc_pb
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.billing.v1 import billing_service_pb2 as pb
from caas.billing.v1 import resources_pb2 as res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.organizations.v1 import resources_pb2 as org_res
from google.protobuf import field_mask_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from services.core.settings import Settings
from services.edge.envoy import Envoy
from services.runtime import Runtime, build_runtime
from services.server import Server, edge
from tests.conftest import AppHandle, expect_error, unique_id
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.e2e.test_ops import GRPCURL
from tests.e2e.test_organizations import app_of, organization
from tests.e2e.test_webhooks import create_webhook
from tests.support.chat import Person, person
from tests.support.client import Client, bearer
from tests.support.clock import MovableClock
from tests.support.localstripe import LocalStripe
from tests.support.mail import SmtpServer
from tests.support.portal import PASSWORD, Developer, sign_up
from tests.support.servers import OPERATOR_TOKEN, ExternalServer
from tests.support.stream import Stream, subscribed
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver, running_receiver

SECRET_KEY, PUBLISHABLE_KEY = "sk_test_caas_billing", "pk_test_caas_billing"
WEBHOOK_SECRET = "whsec_caas_billing_e2e"
T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
UPGRADE = datetime(2026, 11, 16, tzinfo=UTC)
CLOSE = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # past the hour of grace
MESSAGES = res.UNIT_MESSAGES
OPERATOR = bearer(OPERATOR_TOKEN)


@dataclass
class World:
    runtime: Runtime
    clock: MovableClock
    client: Client
    http: httpx.AsyncClient
    envoy: Envoy
    smtp: SmtpServer
    stripe: LocalStripe
    receiver: Receiver

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy.port}"

    async def tick(self) -> None:
        await self.runtime.billing.cycle.tick()


def settings_for(request: pytest.FixtureRequest, data_dir: Path, smtp: SmtpServer,
                 emulator: LocalStripe) -> Settings:
    engine: dict[str, object] = {}
    if request.param == "mongodb":
        mongo: ExternalServer = request.getfixturevalue("mongo")
        engine = {"store": "mongodb", "mongodb_url": mongo.url,
                  "mongodb_database": f"b{uuid.uuid4().hex[:12]}"}
    return Settings(
        data_dir=data_dir, operator_token=OPERATOR_TOKEN, listen="127.0.0.1:0",
        media_listen="127.0.0.1:0", http_listen="127.0.0.1:0", metrics_listen="",
        smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none",
        stripe_api_key=SECRET_KEY, stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=emulator.url,
        billing_interval=timedelta(hours=1),  # the test ticks
        analytics_flush_interval=timedelta(seconds=0.2), webhook_allow_insecure=True,
        breached_password_url="",
        **engine)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "mongodb"])
async def world(request: pytest.FixtureRequest, tmp_path: Path, smtp: SmtpServer,
                stripe_emulator: LocalStripe) -> AsyncIterator[World]:
    settings = settings_for(request, tmp_path, smtp, stripe_emulator)
    clock = MovableClock(T0)
    runtime = await build_runtime(settings, clock=clock)
    server = await Server.start(settings, runtime)
    try:
        async with edge(settings, f"127.0.0.1:{server.port}",
                        f"127.0.0.1:{server.media_port}") as envoy:
            assert envoy is not None
            runtime.media_urls.base_url = f"http://127.0.0.1:{envoy.port}"
            client = Client(f"127.0.0.1:{server.port}")
            with running_receiver() as receiver:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{envoy.port}",
                                             timeout=30) as http:
                    yield World(runtime, clock, client, http, envoy, smtp, stripe_emulator,
                                receiver)
            await client.close()
    finally:
        await server.stop()


@dataclass
class Customer:
    owner: Developer
    org: str
    app: AppHandle

    @property
    def account(self) -> str:
        return f"{self.org}/billingAccount"

    @property
    def subscription(self) -> str:
        return f"{self.app.name}/subscription"


async def customer(world: World) -> Customer:
    """A developer, their organization (billing email, 19 % tax set by the operator)
    and an app of it."""
    owner = await sign_up(world.client, world.smtp.inbox, f"{unique_id('owner')}@example.com")
    org = await organization(world.client, owner)
    app = await app_of(world.client, owner, org)
    await world.client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount",
                                           email=f"{unique_id('books')}@example.com",
                                           legal_name="Acme Müller GmbH", country_code="DE"),
        update_mask=field_mask_pb2.FieldMask(paths=["email", "legal_name", "country_code"])),
        metadata=owner.auth)
    await world.client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount", tax_rate_bps=1900),
        update_mask=field_mask_pb2.FieldMask(paths=["tax_rate_bps"])), metadata=OPERATOR)
    return Customer(owner, org, app)


async def custom_plan(world: World, org: str, plan_id: str, base_eur: int, included: int,
                      overage_micros: int, cap: int, rate_limits: str) -> str:
    made = await world.client.billing.CreatePlan(pb.CreatePlanRequest(
        plan_id=plan_id, plan=res.Plan(
            display_name=plan_id.title(), currency_code="EUR",
            base_price_micros=base_eur * 1_000_000, rate_limits=rate_limits,
            organizations=[org], units=[res.PlanUnit(
                unit=MESSAGES, included=included, overage_price_micros=overage_micros,
                hard_cap=cap)])), metadata=OPERATOR)
    return made.plan.name


async def add_card(world: World, who: Customer, number: str = "4242424242424242") -> None:
    """What the portal does: a setup from CAAS, the card confirmed by Stripe.js with
    the publishable key only (localstripe's stand-in), then CAAS completes it."""
    setup = await world.client.billing.SetupPaymentMethod(
        pb.SetupPaymentMethodRequest(name=who.account), metadata=who.owner.auth)
    assert setup.publishable_key == PUBLISHABLE_KEY
    status, answer = world.stripe.confirm_card_setup(setup.setup_intent, setup.client_secret,
                                                     PUBLISHABLE_KEY, number)
    if answer.get("status") == "requires_action":  # 3-D Secure: the cardholder confirms
        status, answer = world.stripe.confirm_card_setup(
            setup.setup_intent, setup.client_secret, PUBLISHABLE_KEY)
    assert status == 200 and answer["status"] == "succeeded", answer
    done = await world.client.billing.CompletePaymentMethodSetup(
        pb.CompletePaymentMethodSetupRequest(name=who.account, setup_intent=setup.setup_intent),
        metadata=who.owner.auth)
    assert done.billing_account.payment_method.last4 == number[-4:]


async def log_in_again(world: World, who: Customer) -> None:
    login = await world.client.accounts.Login(acc_pb.LoginRequest(email=who.owner.email,
                                                                  password=PASSWORD))
    who.owner = Developer(who.owner.account, who.owner.email, login.token)


async def used(world: World, who: Customer, period: str = "current") -> dict[int, res.UnitUsage]:
    got = await world.client.billing.GetUsage(pb.GetUsageRequest(
        name=f"{who.app.name}/usage/{period}"), metadata=who.app.auth)
    return {u.unit: u for u in got.usage.units}


async def counted(world: World, who: Customer, messages: int) -> None:
    """Wait until billing's usage shows `messages` (the counts trail the log)."""
    async def there() -> bool:
        return (await used(world, who))[MESSAGES].used == messages
    await eventually(there)


async def send_json(world: World, alice: Person, conversation: str, text: str
                    ) -> httpx.Response:
    return await world.http.post(f"/v1/{conversation}/messages", json={"text": text},
                                 params={"request_id": uuid.uuid4().hex},
                                 headers={"authorization": f"Bearer {alice.token}"})


async def send_grpc_web(world: World, alice: Person, conversation: str, text: str) -> None:
    request = msg_pb.CreateMessageRequest(parent=conversation, request_id=uuid.uuid4().hex)
    request.message.text = text
    answer = await world.http.post(
        "/caas.messages.v1.MessagesService/CreateMessage",
        content=grpc_web_frame(request.SerializeToString()),
        headers={"authorization": f"Bearer {alice.token}", "x-grpc-web": "1",
                 "content-type": "application/grpc-web+proto"})
    _, trailers = grpc_web_frames(answer.content)
    assert trailers.get("grpc-status") == "0", trailers


def threshold_events(world: World, url: str) -> list[tuple[int, int]]:
    found = []
    for received in world.receiver.to(url):
        event = json.loads(received.body)
        change = event["billingUsageThreshold"]
        found.append((change.get("thresholdPercent", 0), int(change["used"])))
    return found


def listed(world: World, path: str) -> list[dict[str, Any]]:
    """Every item of one of the emulator's lists (all pages; other tests share it)."""
    found: list[dict[str, Any]] = []
    after = ""
    while True:
        page = world.stripe.request(
            "GET", f"{path}{'&' if '?' in path else '?'}limit=100"
            + (f"&starting_after={after}" if after else ""))[1]
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        after = page["data"][-1]["id"]


def payment_intents(world: World, invoice_id: str) -> list[dict[str, Any]]:
    """The emulator's PaymentIntents for a CAAS invoice."""
    return [p for p in listed(world, "/v1/payment_intents")
            if p.get("metadata", {}).get("caas_invoice") == invoice_id]


async def test_a_month_metered_capped_upgraded_invoiced_and_paid_once(world: World) -> None:
    who = await customer(world)
    starter = await custom_plan(world, who.org, "starter", 5, 10, 0, 10, "free")
    growth = await custom_plan(world, who.org, "growth", 20, 20, 10_000, 100, "standard")
    hook = world.receiver.url("ok")
    await create_webhook(world.client, who.app, hook, "billing.usage_threshold")

    # Free by default; the operator puts the app on the small custom plan.
    first = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=who.owner.auth)
    assert first.subscription.plan == "plans/free"
    moved = await world.client.billing.ChangePlan(pb.ChangePlanRequest(
        name=who.subscription, plan=starter, override=True), metadata=OPERATOR)
    assert moved.immediate and moved.subscription.plan == starter

    alice = await person(world.client, who.app.app_id, who.app.api_key, "alice")
    await person(world.client, who.app.app_id, who.app.api_key, "bob")
    conversation = (await alice.create(members=("bob",))).name
    for n in range(6):  # native gRPC
        await alice.send(conversation, f"grpc {n}")
    assert (await send_json(world, alice, conversation, "json")).status_code == 200
    await send_grpc_web(world, alice, conversation, "grpc-web")
    await counted(world, who, 8)
    await world.tick()
    await world.receiver.wait(hook, lambda got: len(got) == 1)
    assert threshold_events(world, hook) == [(80, 8)]
    warned = await world.smtp.inbox.wait_for(who.owner.email, "used 80% of its messages")
    assert "8 of the 10 messages" in warned.text

    for n in range(2):
        await alice.send(conversation, f"more {n}")
    await counted(world, who, 10)
    await world.tick()
    await world.tick()  # a second round fires nothing again
    await world.receiver.wait(hook, lambda got: len(got) == 3)
    assert sorted(threshold_events(world, hook)) == [(0, 10), (80, 8), (100, 10)]
    await world.smtp.inbox.wait_for(who.owner.email, "reached its cap of messages")

    refused = await expect_error(alice.send(conversation, "one too many"),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert refused.metadata["unit"] == "messages" and refused.metadata["limit"] == "10"
    assert refused.quota_subjects == [f"app:{who.app.app_id}"]
    assert refused.retry_seconds is not None and refused.retry_seconds > 0
    over_json = await send_json(world, alice, conversation, "json too many")
    assert over_json.status_code == 429
    assert over_json.json()["details"][0]["reason"] == "QUOTA_EXCEEDED"
    assert len((await alice.messages(conversation)).messages) == 10  # reading works

    # A card, then the upgrade: at once, prorated, the cap lifted.
    await add_card(world, who)
    world.clock.moment = UPGRADE
    await log_in_again(world, who)  # 13 days later
    preview = await world.client.billing.ChangePlan(pb.ChangePlanRequest(
        name=who.subscription, plan=growth, validate_only=True), metadata=who.owner.auth)
    assert preview.immediate
    assert [(line.plan, line.amount_minor) for line in preview.proration_lines] == [
        ("plans/free", 0), (starter, 210), (growth, 1000)]
    still = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=who.owner.auth)
    assert still.subscription.plan == starter  # validate_only changed nothing
    await world.client.billing.ChangePlan(pb.ChangePlanRequest(
        name=who.subscription, plan=growth), metadata=who.owner.auth)
    alice = await person(world.client, who.app.app_id, who.app.api_key, "alice")  # 13 days on
    for n in range(15):
        await alice.send(conversation, f"after the upgrade {n}")
    await counted(world, who, 25)
    current = await used(world, who)
    assert (current[MESSAGES].included, current[MESSAGES].billable) == (20, 5)

    # The month ends: closed once its grace passed, invoiced, paid.
    world.stripe.register_webhook(f"{world.http_url}/billing/v1/stripe/webhook", WEBHOOK_SECRET)
    world.clock.moment = CLOSE
    await log_in_again(world, who)
    await world.tick()
    listed = await world.client.billing.ListInvoices(
        pb.ListInvoicesRequest(parent=who.org), metadata=who.owner.auth)
    assert len(listed.invoices) == 1
    invoice = listed.invoices[0]
    assert invoice.number == "INV-2026-000001"
    assert invoice.state == res.Invoice.STATE_PAID
    lines = [(line.kind, line.quantity, line.amount_minor) for line in invoice.lines]
    assert lines == [(res.InvoiceLine.KIND_BASE, 1, 0), (res.InvoiceLine.KIND_BASE, 1, 210),
                     (res.InvoiceLine.KIND_BASE, 1, 1000), (res.InvoiceLine.KIND_OVERAGE, 5, 5)]
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (1215, 231, 1446)
    final = await used(world, who, "2026-11")
    assert final[MESSAGES].used == 25 and final[MESSAGES].billable == 5
    november = await world.client.billing.GetUsage(pb.GetUsageRequest(
        name=f"{who.app.name}/usage/2026-11"), metadata=who.owner.auth)
    assert (november.usage.plan, november.usage.final) == (growth, True)
    intents = payment_intents(world, invoice.name.rsplit("/", 1)[1])
    assert [(p["amount"], p["status"]) for p in intents] == [(1446, "succeeded")]

    # The PDF, through Envoy by its signed link, says what was metered and charged.
    pdf = await world.http.get(invoice.pdf_uri.removeprefix(world.http_url))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "INV-2026-000001" in text and "Acme Müller GmbH" in text
    cells = text.splitlines()
    at = cells.index("Messages above the 20 included")
    # The overage row: the billable count metered, its price, its amount.
    assert cells[at + 1:at + 4] == [str(final[MESSAGES].billable), "0.01 EUR", "0.05 EUR"]
    for label, amount in (("Subtotal", "12.15 EUR"), ("Tax (19%)", "2.31 EUR"),
                          ("Total", "14.46 EUR")):
        assert cells[cells.index(label) + 1] == amount, label
    assert "2.10 EUR" in cells and "10.00 EUR" in cells  # the prorated base prices
    tampered = await world.http.get(invoice.pdf_uri.removeprefix(world.http_url) + "0")
    assert tampered.status_code == 403

    mail = await world.smtp.inbox.wait_for(who.owner.email, "Invoice INV-2026-000001")
    assert "14.46 EUR" in mail.text
    assert mail.attachments == (("INV-2026-000001.pdf", pdf.content),)

    renewed = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=who.app.auth)
    assert renewed.subscription.plan == growth
    assert renewed.subscription.state == res.Subscription.STATE_ACTIVE
    assert renewed.subscription.current_period_start.ToDatetime(tzinfo=UTC) == datetime(
        2026, 12, 1, tzinfo=UTC)
    await world.tick()  # closing again does nothing
    again = await world.client.billing.ListInvoices(
        pb.ListInvoicesRequest(parent=who.org), metadata=OPERATOR)
    assert [i.name for i in again.invoices] == [invoice.name]

    # Every surface: JSON through Envoy, grpcurl by reflection.
    answer = await world.http.get(f"/v1/{who.org}/invoices",
                                  headers={"authorization": f"Bearer {who.owner.token}"})
    assert answer.status_code == 200
    assert answer.json()["invoices"][0]["totalMinor"] == "1446"
    out = await asyncio.to_thread(  # not on the loop: the server answers on it
        subprocess.run,
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {OPERATOR_TOKEN}", "-d",
         json.dumps({"name": f"{who.app.name}/usage/2026-11"}),
         f"127.0.0.1:{world.envoy.port}", "caas.billing.v1.BillingService/GetUsage"],
        capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["usage"]["final"] is True


async def tick_crashing_after_a_charge(world: World) -> None:
    """A round of billing in which the process dies right after Stripe charged a card,
    before the outcome is recorded (the store's write fails)."""
    store = world.runtime.stores.billing
    finish = store.finish_payment
    failures = []

    async def crashing(*args: object, **kwargs: object) -> object:
        failures.append(args)
        raise RuntimeError("the process died here")

    store.finish_payment = crashing  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="died"):
            await world.tick()
    finally:
        store.finish_payment = finish  # type: ignore[method-assign]
    assert len(failures) == 1


async def only_invoice(world: World, who: Customer) -> res.Invoice:
    listed = await world.client.billing.ListInvoices(
        pb.ListInvoicesRequest(parent=who.org), metadata=OPERATOR)
    assert len(listed.invoices) == 1
    return listed.invoices[0]


async def test_a_crash_after_charging_charges_once_and_a_replayed_webhook_changes_nothing(
        world: World) -> None:
    first, second = await customer(world), await customer(world)
    for who in (first, second):
        await add_card(world, who)
        await world.client.billing.ChangePlan(pb.ChangePlanRequest(
            name=who.subscription, plan="plans/standard", override=True), metadata=OPERATOR)
    world.clock.moment = CLOSE
    # Both invoices are charged, and each time the process dies before recording it.
    await tick_crashing_after_a_charge(world)
    await tick_crashing_after_a_charge(world)
    recovered = (await only_invoice(world, first)).name
    second_invoice = await only_invoice(world, second)
    for name in (recovered, second_invoice.name):
        found = await world.client.billing.GetInvoice(pb.GetInvoiceRequest(name=name),
                                                      metadata=OPERATOR)
        assert found.invoice.state == res.Invoice.STATE_OPEN
        assert len(payment_intents(world, name.rsplit("/", 1)[1])) == 1

    # Stripe's webhook settles the second: its event, signed, posted twice.
    intent = payment_intents(world, second_invoice.name.rsplit("/", 1)[1])
    assert len(intent) == 1
    events = listed(world, "/v1/events?type=payment_intent.succeeded")
    event = next(e for e in events if e["data"]["object"]["id"] == intent[0]["id"])
    body = json.dumps(event).encode()
    signature = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    answers = []
    for _ in range(2):
        answers.append(await world.http.post("/billing/v1/stripe/webhook", content=body,
                                             headers={"Stripe-Signature": signature}))
        after = await world.client.billing.GetInvoice(
            pb.GetInvoiceRequest(name=second_invoice.name), metadata=OPERATOR)
        if len(answers) == 1:
            paid = after.invoice
    assert [a.status_code for a in answers] == [200, 200]
    assert paid.state == res.Invoice.STATE_PAID
    assert after.invoice == paid  # the replay changed nothing
    forged = await world.http.post("/billing/v1/stripe/webhook", content=body,
                                   headers={"Stripe-Signature": "t=1,v1=00"})
    assert forged.status_code == 400
    assert forged.json()["details"][0]["reason"] == "STRIPE_WEBHOOK_SIGNATURE_INVALID"

    # The first is recovered once the attempt is old enough: found at Stripe by its
    # key, never charged again.
    world.clock.moment = CLOSE + timedelta(minutes=5)
    await world.tick()
    done = await world.client.billing.GetInvoice(pb.GetInvoiceRequest(name=recovered),
                                                 metadata=OPERATOR)
    assert done.invoice.state == res.Invoice.STATE_PAID
    for name in (recovered, second_invoice.name):
        assert len(payment_intents(world, name.rsplit("/", 1)[1])) == 1
    await world.tick()
    assert len(payment_intents(world, recovered.rsplit("/", 1)[1])) == 1


async def on_plan(world: World, who: Customer, plan: str) -> None:
    await world.client.billing.ChangePlan(pb.ChangePlanRequest(
        name=who.subscription, plan=plan, override=True), metadata=OPERATOR)


async def test_a_declined_card_is_retried_then_the_app_is_held_until_it_pays(
        world: World) -> None:
    """Dunning: 4000000000000341 attaches but is declined when charged."""
    # The free plan (what an unpaid app is held to) allows 2 messages in this world.
    await world.client.billing.UpdatePlan(pb.UpdatePlanRequest(
        plan=res.Plan(name="plans/free", units=[res.PlanUnit(unit=MESSAGES, included=2,
                                                              hard_cap=2)]),
        update_mask=field_mask_pb2.FieldMask(paths=["units"])), metadata=OPERATOR)
    who = await customer(world)
    await add_card(world, who, "4000000000000341")
    await on_plan(world, who, "plans/standard")
    world.clock.moment = CLOSE
    await world.tick()
    invoice = await only_invoice(world, who)
    assert (invoice.state, invoice.attempts, invoice.last_payment_error) == (
        res.Invoice.STATE_OPEN, 1, "card_declined")
    assert invoice.next_attempt_time.ToDatetime(tzinfo=UTC) == CLOSE + timedelta(days=3)
    state = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=OPERATOR)
    assert state.subscription.state == res.Subscription.STATE_PAST_DUE
    await world.smtp.inbox.wait_for(who.owner.email, f"Payment failed: {invoice.number}")

    for days, attempts in ((3, 2), (3 + 5, 3), (3 + 5 + 7, 4)):
        world.clock.moment = CLOSE + timedelta(days=days)
        await world.tick()
        assert (await only_invoice(world, who)).attempts == attempts
    state = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=OPERATOR)
    assert state.subscription.state == res.Subscription.STATE_UNPAID
    assert not (await only_invoice(world, who)).HasField("next_attempt_time")

    # Unpaid: held to the free plan's 2 messages; reading works.
    alice = await person(world.client, who.app.app_id, who.app.api_key, "alice")
    conversation = (await alice.create()).name
    for n in range(2):
        await alice.send(conversation, f"m{n}")
    await counted(world, who, 2)
    await world.tick()
    held = await expect_error(alice.send(conversation, "m2"),
                              grpc.StatusCode.FAILED_PRECONDITION, "SUBSCRIPTION_UNPAID")
    assert held.metadata["limit"] == "2"
    assert len((await alice.messages(conversation)).messages) == 2

    # A new card; paying restores the subscription at once.
    await log_in_again(world, who)
    await add_card(world, who)
    paid = await world.client.billing.PayInvoice(pb.PayInvoiceRequest(name=invoice.name),
                                                 metadata=who.owner.auth)
    assert paid.invoice.state == res.Invoice.STATE_PAID
    assert len(payment_intents(world, invoice.name.rsplit("/", 1)[1])) == 5  # 4 declined
    state = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=OPERATOR)
    assert state.subscription.state == res.Subscription.STATE_ACTIVE
    await alice.send(conversation, "m2 again")  # standard's caps again
    await expect_error(world.client.billing.PayInvoice(pb.PayInvoiceRequest(
        name=invoice.name), metadata=who.owner.auth), grpc.StatusCode.FAILED_PRECONDITION,
        "INVOICE_NOT_PAYABLE")

    # Credit notes: numbered, idempotent, refunded on a paid invoice, bounded by it.
    note = res.CreditNote(invoice=invoice.name, amount_minor=500, reason="goodwill")
    made = await world.client.billing.CreateCreditNote(pb.CreateCreditNoteRequest(
        parent=who.org, credit_note=note, request_id="cn-1"), metadata=OPERATOR)
    again = await world.client.billing.CreateCreditNote(pb.CreateCreditNoteRequest(
        parent=who.org, credit_note=note, request_id="cn-1"), metadata=OPERATOR)
    assert made.credit_note == again.credit_note
    assert made.credit_note.number == "CN-2026-000001" and made.credit_note.refunded
    charged = next(p["id"] for p in payment_intents(world, invoice.name.rsplit("/", 1)[1])
                   if p["status"] == "succeeded")
    refunds = listed(world, "/v1/refunds")
    assert [r["amount"] for r in refunds if r["payment_intent"] == charged] == [500]
    too_much = res.CreditNote(invoice=invoice.name, amount_minor=invoice.total_minor,
                              reason="all of it")
    over = await expect_error(world.client.billing.CreateCreditNote(
        pb.CreateCreditNoteRequest(parent=who.org, credit_note=too_much, request_id="cn-2"),
        metadata=OPERATOR), grpc.StatusCode.FAILED_PRECONDITION, "CREDIT_EXCEEDS_INVOICE")
    assert over.metadata["creditable_minor"] == str(invoice.total_minor - 500)
    notes = await world.client.billing.ListCreditNotes(
        pb.ListCreditNotesRequest(parent=who.org), metadata=who.owner.auth)
    assert [n.name for n in notes.credit_notes] == [made.credit_note.name]
    credited = await world.client.billing.GetInvoice(pb.GetInvoiceRequest(name=invoice.name),
                                                     metadata=who.owner.auth)
    assert (credited.invoice.credited_minor, credited.invoice.amount_due_minor) == (
        500, invoice.total_minor - 500)


async def test_without_a_card_the_operator_records_a_transfer(world: World) -> None:
    who = await customer(world)
    await on_plan(world, who, "plans/standard")  # the operator's override: no card
    world.clock.moment = CLOSE
    await world.tick()
    invoice = await only_invoice(world, who)
    assert (invoice.state, invoice.last_payment_error) == (
        res.Invoice.STATE_OPEN, "no_payment_method")
    state = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=OPERATOR)
    assert state.subscription.state == res.Subscription.STATE_PAST_DUE
    paid = await world.client.billing.MarkInvoicePaid(pb.MarkInvoicePaidRequest(
        name=invoice.name, note="bank transfer 2026-12-02"), metadata=OPERATOR)
    assert paid.invoice.state == res.Invoice.STATE_PAID
    assert paid.invoice.paid_time.ToDatetime(tzinfo=UTC) == CLOSE
    state = await world.client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=who.subscription), metadata=OPERATOR)
    assert state.subscription.state == res.Subscription.STATE_ACTIVE
    await expect_error(world.client.billing.MarkInvoicePaid(pb.MarkInvoicePaidRequest(
        name=invoice.name), metadata=OPERATOR), grpc.StatusCode.FAILED_PRECONDITION,
        "INVOICE_NOT_PAYABLE")
    assert payment_intents(world, invoice.name.rsplit("/", 1)[1]) == []


async def test_a_payment_the_bank_wants_confirmed_waits_for_the_cardholder(
        world: World) -> None:
    """4000002500003155 asks for 3-D Secure: the invoice waits, the cardholder is told
    and confirms in their browser, Stripe's webhook (delivered by the emulator) settles
    it."""
    world.stripe.register_webhook(f"{world.http_url}/billing/v1/stripe/webhook", WEBHOOK_SECRET)
    who = await customer(world)
    await add_card(world, who, "4000002500003155")
    await on_plan(world, who, "plans/standard")
    world.clock.moment = CLOSE
    await log_in_again(world, who)
    await world.tick()
    invoice = await only_invoice(world, who)
    assert (invoice.state, invoice.last_payment_error) == (
        res.Invoice.STATE_OPEN, "authentication_required")
    await world.smtp.inbox.wait_for(who.owner.email, f"Confirm the payment of {invoice.number}")
    asked = await expect_error(world.client.billing.PayInvoice(pb.PayInvoiceRequest(
        name=invoice.name), metadata=who.owner.auth), grpc.StatusCode.FAILED_PRECONDITION,
        "PAYMENT_ACTION_REQUIRED")
    intent, secret = asked.metadata["payment_intent"], asked.metadata["client_secret"]
    assert secret.startswith(intent)
    # What stripe.confirmCardPayment does once the cardholder passed the bank's check
    # (the emulator's stand-in of that step).
    status, answer = world.stripe.request(
        "POST", f"/v1/payment_intents/{intent}/_authenticate?success=true",
        {"key": PUBLISHABLE_KEY, "client_secret": secret}, key=PUBLISHABLE_KEY)
    assert status == 200, answer

    async def paid() -> bool:
        found = await world.client.billing.GetInvoice(
            pb.GetInvoiceRequest(name=invoice.name), metadata=who.owner.auth)
        return found.invoice.state == res.Invoice.STATE_PAID
    await eventually(paid)
    assert len(payment_intents(world, invoice.name.rsplit("/", 1)[1])) == 1


async def test_caps_on_users_and_connections_refuse_only_new_ones(world: World) -> None:
    who = await customer(world)
    plan = await world.client.billing.CreatePlan(pb.CreatePlanRequest(
        plan_id="tiny", plan=res.Plan(
            display_name="Tiny", currency_code="EUR", rate_limits="free",
            units=[res.PlanUnit(unit=res.UNIT_MONTHLY_ACTIVE_USERS, included=2, hard_cap=2),
                   res.PlanUnit(unit=res.UNIT_PEAK_CONNECTIONS, included=1, hard_cap=1)])),
        metadata=OPERATOR)
    await on_plan(world, who, plan.plan.name)
    alice = await person(world.client, who.app.app_id, who.app.api_key, "alice")
    bob = await person(world.client, who.app.app_id, who.app.api_key, "bob")

    async def two_active() -> bool:
        return (await used(world, who))[res.UNIT_MONTHLY_ACTIVE_USERS].used == 2
    await eventually(two_active)
    await world.tick()
    refused = await expect_error(world.client.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=f"{who.app.name}/users/carol"),
        metadata=who.app.auth), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert refused.metadata["unit"] == "monthly_active_users"
    again = await world.client.auth.CreateSession(auth_pb.CreateSessionRequest(
        parent=f"{who.app.name}/users/alice"), metadata=who.app.auth)  # counted already
    assert again.credentials.access_token

    stream = await subscribed(alice)
    second = Stream(bob)
    error = await second.error()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "peak" in (error.details() or "")
    await stream.close()
    third = await subscribed(bob)  # a connection freed is a connection to use
    await third.close()


__all__ = ["asyncio", "error_details_pb2", "json_format", "org_res", "status_pb2"]
