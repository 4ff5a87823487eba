"""The Stripe adapter of the payment provider port, against localstripe (no mocks).

What the emulator lacks (docs/plans/billing.md 1.1) and what the adapter does instead:

- No `/v1/checkout/sessions`, `/v1/billing_portal/sessions`, `/v1/prices`,
  `/v1/credit_notes`, `/v1/webhook_endpoints`, `/v1/test_helpers/test_clocks`,
  `/v1/billing/meters`, `/v1/billing/meter_events`, usage records, no
  `invoices/{id}/finalize` (404 with aiohttp's text body): the adapter never needs them
  on its path (customers, SetupIntents, payment methods, PaymentIntents, refunds);
  `checkout_setup` (real Stripe only) raises ProviderFeatureMissing there.
- No search API (`/v1/customers/search`, `/v1/payment_intents/search`: 404) and no
  `customer` or `created` filter on `payment_intents.list` (400 "Unexpected …"):
  find_charge lists PaymentIntents with `created[gte]` and, refused, pages through
  them unfiltered, matching `metadata.caas_op`. (`events.list(type=…)` matches types
  exactly there: `payment_intent.*` finds nothing, and it sends no
  `payment_intent.created` or `requires_action` events.)
- A confirmed SetupIntent's card is not attached to the customer: complete_setup
  attaches it (unless Stripe did already). A declined card cancels the SetupIntent
  (Stripe: back to `requires_payment_method` with `last_setup_error`): both are
  CardDeclined.
- `POST /v1/payment_methods` takes no publishable key (Stripe.js's stand-in confirms
  the SetupIntent with `payment_method_data`, as `browser_confirm` below does).
- `allowed_payment_method_types` (the API version's name) is refused: the SetupIntent
  is created without it, cards being the emulator's default.
- Idempotency keys are ignored (Stripe keeps them 24 h); a decline's error names the
  charge, not the PaymentIntent (read from the charge); `description` on a
  PaymentIntent is refused (never sent).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from services.billing.models import Card
from services.billing.payments import (
    CardDeclined,
    Charge,
    InvalidSignature,
    ProviderError,
    ProviderFeatureMissing,
    ProviderUnavailable,
)
from services.billing.stripe_provider import StripeProvider
from tests.support.localstripe import PUBLISHABLE_KEY, SECRET_KEY, LocalStripe
from tests.support.processes import free_port
from tests.support.webhook_receiver import Received, running_receiver

WEBHOOK_SECRET = "whsec_caas_test"
VISA = "4242424242424242"
DECLINED_AT_SETUP = "4000000000000002"
DECLINED_AT_CHARGE = "4000000000000341"
THREE_D_SECURE = "4000002500003155"


@pytest.fixture(scope="module")
def emulator(stripe_emulator: LocalStripe) -> LocalStripe:
    return stripe_emulator


@pytest.fixture(scope="module")
async def provider(emulator: LocalStripe) -> AsyncIterator[StripeProvider]:
    payments = StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET,
                              api_base=emulator.url, timeout=10)
    yield payments
    await payments.close()


def op_key() -> str:
    return f"inv_{uuid.uuid4().hex[:12]}/1"


def browser_confirm(emulator: LocalStripe, setup_intent: str, client_secret: str,
                    number: str) -> tuple[int, dict[str, Any]]:
    """What Stripe.js does with the card the user typed, with this module's key."""
    return emulator.confirm_card_setup(setup_intent, client_secret, PUBLISHABLE_KEY, number)


async def customer_with_card(provider: StripeProvider, emulator: LocalStripe,
                             number: str = VISA) -> tuple[str, str]:
    customer = await provider.create_customer(f"org{uuid.uuid4().hex[:8]}", "b@example.com",
                                              "Billing Test", uuid.uuid4().hex)
    setup, secret = await provider.start_setup(customer)
    status, answer = browser_confirm(emulator, setup, secret, number)
    assert status == 200, answer
    if answer["status"] == "requires_action":  # 3-D Secure: the user completes it
        status, answer = emulator.confirm_card_setup(setup, secret, PUBLISHABLE_KEY)
        assert status == 200, answer
    assert answer["status"] == "succeeded", answer
    method, _ = await provider.complete_setup(customer, setup)
    return customer, method


# Customers and cards.

async def test_customer_and_card_setup(provider: StripeProvider, emulator: LocalStripe) -> None:
    customer = await provider.create_customer("org_a1", "owner@example.com", "Acme GmbH",
                                              "org_a1/customer")
    assert customer.startswith("cus_")
    _, found = emulator.request("GET", f"/v1/customers/{customer}")
    assert (found["email"], found["name"]) == ("owner@example.com", "Acme GmbH")
    assert found["metadata"] == {"caas_organization": "org_a1"}

    await provider.update_customer(customer, "billing@example.com", "Acme AG")
    _, found = emulator.request("GET", f"/v1/customers/{customer}")
    assert (found["email"], found["name"]) == ("billing@example.com", "Acme AG")

    setup, secret = await provider.start_setup(customer)
    assert setup.startswith("seti_") and secret.startswith(f"{setup}_secret_")
    _, intent = emulator.request("GET", f"/v1/setup_intents/{setup}")
    assert (intent["customer"], intent["usage"]) == (customer, "off_session")

    status, confirmed = browser_confirm(emulator, setup, secret, VISA)
    assert (status, confirmed["status"]) == (200, "succeeded")
    method_id = str(confirmed["payment_method"])
    _, unattached = emulator.request("GET", f"/v1/payment_methods/{method_id}")
    assert unattached["customer"] is None  # the emulator does not attach on confirm

    method, card = await provider.complete_setup(customer, setup)
    assert method == method_id
    assert card == Card(brand="visa", last4="4242", exp_month=12, exp_year=2031)
    _, found = emulator.request("GET", f"/v1/customers/{customer}")
    assert found["invoice_settings"]["default_payment_method"] == method
    _, attached = emulator.request("GET", f"/v1/payment_methods/{method}")
    assert attached["customer"] == customer

    # Again (a retried request): the card is attached already, the same answer.
    assert await provider.complete_setup(customer, setup) == (method, card)


async def test_complete_setup_refuses_what_is_not_a_confirmed_setup_of_the_customer(
        provider: StripeProvider, emulator: LocalStripe) -> None:
    owner = await provider.create_customer("org_b1", "", "", uuid.uuid4().hex)
    other = await provider.create_customer("org_b2", "", "", uuid.uuid4().hex)
    setup, secret = await provider.start_setup(owner)
    with pytest.raises(ValueError, match="is requires_payment_method"):
        await provider.complete_setup(owner, setup)  # not confirmed yet
    assert browser_confirm(emulator, setup, secret, VISA)[0] == 200
    with pytest.raises(ValueError, match="is not"):
        await provider.complete_setup(other, setup)
    with pytest.raises(ValueError, match="no SetupIntent"):
        await provider.complete_setup(owner, "seti_doesnotexist0")
    with pytest.raises(ValueError):
        await provider.complete_setup(owner, "../customers")
    _, found = emulator.request("GET", f"/v1/customers/{other}")
    assert found["invoice_settings"]["default_payment_method"] is None


async def test_a_declined_card_is_not_set_up(provider: StripeProvider,
                                             emulator: LocalStripe) -> None:
    customer = await provider.create_customer("org_c1", "", "", uuid.uuid4().hex)
    setup, secret = await provider.start_setup(customer)
    status, answer = browser_confirm(emulator, setup, secret, DECLINED_AT_SETUP)
    assert status == 402 and answer["error"]["code"] == "card_declined"  # shown in the page
    with pytest.raises(CardDeclined) as declined:
        await provider.complete_setup(customer, setup)  # called anyway
    assert declined.value.code
    _, found = emulator.request("GET", f"/v1/customers/{customer}")
    assert found["invoice_settings"]["default_payment_method"] is None


# Charges.

async def test_charge_outcomes(provider: StripeProvider, emulator: LocalStripe) -> None:
    customer, method = await customer_with_card(provider, emulator)
    key = op_key()
    charged = await provider.charge(customer, method, 5831, "EUR", key,
                                    {"caas_invoice": "INV-2026-000001"})
    assert charged.state == "succeeded" and charged.payment_intent.startswith("pi_")
    assert (charged.decline_code, charged.client_secret) == ("", "")
    _, intent = emulator.request("GET", f"/v1/payment_intents/{charged.payment_intent}")
    assert (intent["amount"], intent["currency"], intent["customer"],
            intent["payment_method"]) == (5831, "eur", customer, method)
    assert intent["metadata"] == {"caas_invoice": "INV-2026-000001", "caas_op": key}

    customer, method = await customer_with_card(provider, emulator, DECLINED_AT_CHARGE)
    declined = await provider.charge(customer, method, 1200, "eur", op_key(), {})
    assert declined.state == "failed" and declined.decline_code == "card_declined"
    assert declined.payment_intent.startswith("pi_")  # read from the declined charge
    _, intent = emulator.request("GET", f"/v1/payment_intents/{declined.payment_intent}")
    assert intent["status"] == "requires_payment_method"

    customer, method = await customer_with_card(provider, emulator, THREE_D_SECURE)
    pending = await provider.charge(customer, method, 1200, "eur", op_key(), {})
    assert pending.state == "requires_action"
    assert pending.client_secret.startswith(f"{pending.payment_intent}_secret_")


async def test_charge_refusals(provider: StripeProvider, emulator: LocalStripe) -> None:
    customer, _ = await customer_with_card(provider, emulator)
    with pytest.raises(ValueError):
        await provider.charge(customer, "pm_x", 0, "eur", op_key(), {})
    # An unknown payment method: the provider's 404 is about the object, not the route.
    with pytest.raises(ProviderError) as refused:
        await provider.charge(customer, "pm_doesnotexist0", 100, "eur", op_key(), {})
    assert not isinstance(refused.value, ProviderFeatureMissing | ProviderUnavailable)


async def test_find_charge_pages_through_the_intents(provider: StripeProvider,
                                                     emulator: LocalStripe) -> None:
    since = datetime.now(UTC)
    customer, method = await customer_with_card(provider, emulator)
    keys = [op_key() for _ in range(130)]  # more than one page (100) on either side
    made: list[Charge] = []
    for key in keys:
        made.append(await provider.charge(customer, method, 100, "eur", key, {}))
    declined_customer, declined_method = await customer_with_card(
        provider, emulator, DECLINED_AT_CHARGE)
    declined_key = op_key()
    declined = await provider.charge(declined_customer, declined_method, 100, "eur",
                                     declined_key, {})
    secure_customer, secure_method = await customer_with_card(provider, emulator,
                                                              THREE_D_SECURE)
    secure_key = op_key()
    pending = await provider.charge(secure_customer, secure_method, 100, "eur", secure_key, {})

    for index in (0, 64, 129):  # the first, the middle and the last made
        assert await provider.find_charge(keys[index], since) == made[index]
    assert await provider.find_charge(declined_key, since) == declined
    assert await provider.find_charge(secure_key, since) == pending
    assert await provider.find_charge(op_key(), since) is None
    # Only intents made since `since` (less a tolerance for the clocks) are looked at.
    assert await provider.find_charge(keys[0], since + timedelta(hours=1)) is None


async def test_refund(provider: StripeProvider, emulator: LocalStripe) -> None:
    customer, method = await customer_with_card(provider, emulator)
    charged = await provider.charge(customer, method, 5000, "eur", op_key(), {})
    refund = await provider.refund(charged.payment_intent, 1500, f"{uuid.uuid4().hex}/refund")
    assert refund.startswith("re_")
    _, found = emulator.request("GET", f"/v1/refunds/{refund}")
    assert (found["amount"], found["payment_intent"]) == (1500, charged.payment_intent)
    with pytest.raises(ValueError):
        await provider.refund(charged.payment_intent, 0, "nothing")


# Webhooks.

def event_payload(event_id: str = "evt_test1", status: str = "requires_payment_method"
                  ) -> str:
    return json.dumps({
        "id": event_id, "object": "event", "type": "payment_intent.payment_failed",
        "created": int(time.time()), "api_version": "2026-10-28.endive",
        "data": {"object": {"id": "pi_test1", "object": "payment_intent", "status": status,
                            "metadata": {"caas_op": "inv_1/1", "caas_invoice": "INV-1"},
                            "last_payment_error": {"code": "card_declined",
                                                   "decline_code": "insufficient_funds"}}}})


async def test_parse_webhook_verifies_the_signature(provider: StripeProvider) -> None:
    payload = event_payload()
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    event = provider.parse_webhook(payload.encode(), header)
    assert (event.event_id, event.type, event.object_id, event.status) == (
        "evt_test1", "payment_intent.payment_failed", "pi_test1", "requires_payment_method")
    assert event.metadata == {"caas_op": "inv_1/1", "caas_invoice": "INV-1"}
    assert event.decline_code == "insufficient_funds"

    wrong = stripe.WebhookSignature.generate_signature_header(payload, "whsec_other")
    old = stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    not_json = "{not json"
    not_an_event = json.dumps({"hello": "world"})
    refused = [
        (payload.encode(), wrong),
        (payload.replace("inv_1/1", "inv_2/1").encode(), header),  # tampered
        (payload.encode(), old),
        (payload.encode(), ""),
        (payload.encode(), "garbage"),
        (not_json.encode(),
         stripe.WebhookSignature.generate_signature_header(not_json, WEBHOOK_SECRET)),
        (not_an_event.encode(),
         stripe.WebhookSignature.generate_signature_header(not_an_event, WEBHOOK_SECRET)),
        (b"\xff\xfe", header),
    ]
    for body, signature in refused:
        with pytest.raises(InvalidSignature):
            provider.parse_webhook(body, signature)


async def test_events_localstripe_sends_verify(provider: StripeProvider,
                                               emulator: LocalStripe) -> None:
    customer, method = await customer_with_card(provider, emulator, DECLINED_AT_CHARGE)
    key = op_key()
    hook = f"t{uuid.uuid4().hex[:8]}"

    def failed_event(requests: list[Received]) -> bool:
        return any(json.loads(r.body)["data"]["object"].get("metadata", {}).get("caas_op")
                   == key for r in requests)

    with running_receiver() as receiver:
        url = receiver.url("ok")
        emulator.register_webhook(url, WEBHOOK_SECRET, hook)
        try:
            declined = await provider.charge(customer, method, 700, "eur", key, {"a": "b"})
            requests = await receiver.wait(url, failed_event, within=20)
        finally:
            emulator.unregister_webhook(hook)
    delivered = next(r for r in requests if failed_event([r]))
    event = provider.parse_webhook(delivered.body, delivered.headers["stripe-signature"])
    assert event.type == "payment_intent.payment_failed"
    assert event.event_id.startswith("evt_")
    assert event.object_id == declined.payment_intent
    assert event.status == "requires_payment_method"
    assert event.metadata == {"a": "b", "caas_op": key}
    assert event.decline_code == "card_declined"
    with pytest.raises(InvalidSignature):  # not with another secret
        StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, "whsec_other").parse_webhook(
            delivered.body, delivered.headers["stripe-signature"])


# Failures.

async def test_unreachable_provider_is_unavailable() -> None:
    nowhere = StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET,
                             api_base=f"http://127.0.0.1:{free_port()}", timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailable):
            await nowhere.create_customer("org_x", "", "", uuid.uuid4().hex)
        with pytest.raises(ProviderUnavailable):
            await nowhere.find_charge(op_key(), datetime.now(UTC))
    finally:
        await nowhere.close()
    assert time.monotonic() - started < 15


async def test_silent_provider_times_out_as_unavailable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        silent = StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET,
                                api_base=f"http://127.0.0.1:{listener.getsockname()[1]}",
                                timeout=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(ProviderUnavailable):
                await silent.start_setup("cus_nobody")
        finally:
            await silent.close()
        assert time.monotonic() - started < 10


async def test_missing_endpoint_is_a_missing_feature(provider: StripeProvider) -> None:
    customer = await provider.create_customer("org_d1", "", "", uuid.uuid4().hex)
    with pytest.raises(ProviderFeatureMissing) as missing:
        await provider.checkout_setup(customer, "https://portal.example/ok",
                                      "https://portal.example/cancel")
    assert missing.value.endpoint == "POST /v1/checkout/sessions"


async def test_a_refused_key_is_a_provider_error(emulator: LocalStripe) -> None:
    wrong = StripeProvider("rk_wrong", PUBLISHABLE_KEY, WEBHOOK_SECRET, api_base=emulator.url)
    try:
        with pytest.raises(ProviderError) as refused:
            await wrong.create_customer("org_e1", "", "", uuid.uuid4().hex)
    finally:
        await wrong.close()
    assert type(refused.value) is ProviderError and "401" in str(refused.value)


async def test_close(emulator: LocalStripe) -> None:
    unused = StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET)
    await unused.close()  # nothing was opened
    payments = StripeProvider(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET,
                              api_base=emulator.url)
    first = await payments.create_customer("org_f1", "", "", uuid.uuid4().hex)
    await payments.close()
    await payments.close()
    # Usable again after close (a new session), closed again after.
    second = await payments.create_customer("org_f1", "", "", uuid.uuid4().hex)
    await payments.close()
    assert first != second and second.startswith("cus_")
