"""The payment provider port (services/billing/payments.py) on Stripe.

The only module importing `stripe`: every Stripe exception is turned into the port's
errors here (ProviderUnavailable, ProviderFeatureMissing, CardDeclined, ProviderError,
InvalidSignature, ValueError), so no caller ever needs the library.

It uses only calls that behave the same on real Stripe and on the emulator the tests
run against (localstripe, docs/plans/billing.md section 1), never asking which one it
talks to:

- complete_setup attaches the SetupIntent's card explicitly (Stripe attaches it on
  confirm, the emulator does not) unless it is attached to this customer already.
- A card that needs the cardholder shows up as a PaymentIntent in `requires_action`
  (the emulator) or as a 402 `authentication_required` whose PaymentIntent can be
  confirmed on-session (Stripe, off-session): both are Charge("requires_action").
- A decline names its PaymentIntent in the error (Stripe) or only its charge (the
  emulator: the PaymentIntent is read from the charge).
- find_charge lists PaymentIntents created since a moment (`created[gte]`); a
  provider refusing that filter (the emulator) is paged through unfiltered. No search
  API (eventually consistent on Stripe, absent on the emulator).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe
from stripe.params import (
    CustomerCreateParams,
    PaymentIntentCreateParams,
    PaymentIntentListParams,
    SetupIntentCreateParams,
)

from services.billing.models import Card
from services.billing.payments import (
    CardDeclined,
    Charge,
    InvalidSignature,
    ProviderError,
    ProviderEvent,
    ProviderFeatureMissing,
    ProviderUnavailable,
)

T = TypeVar("T")

WEBHOOK_TOLERANCE = 300  # seconds a signed webhook stays acceptable
CLOCK_SKEW = 300  # find_charge looks this much before `since` (our clock vs Stripe's)
PAGE = 100  # the largest page Stripe lists


class StripeProvider:
    def __init__(self, api_key: str, publishable_key: str, webhook_secret: str,
                 api_base: str = "", timeout: float = 20.0) -> None:
        self.publishable_key = publishable_key
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._api_base = api_base.rstrip("/")
        self._timeout = timeout
        self._http: stripe.AIOHTTPClient | None = None
        self._client: stripe.StripeClient | None = None

    def _stripe(self) -> stripe.StripeClient:
        # Made on first use, inside the running loop, where its aiohttp session lives.
        if self._client is None:
            self._http = stripe.AIOHTTPClient(timeout=self._timeout)
            self._client = stripe.StripeClient(
                self._api_key,
                base_addresses={"api": self._api_base} if self._api_base else None,
                http_client=self._http, max_network_retries=2)
        return self._client

    async def close(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close_async()  # type: ignore[no-untyped-call]

    # Customers and cards.

    async def create_customer(self, organization_id: str, email: str, name: str,
                              idempotency_key: str) -> str:
        params: CustomerCreateParams = {"metadata": {"caas_organization": organization_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        customer = await _call("POST /v1/customers", self._stripe().v1.customers.create_async(
            params=params, options={"idempotency_key": idempotency_key}))
        return str(customer.id)

    async def update_customer(self, customer_id: str, email: str, name: str) -> None:
        _check_id(customer_id, "cus_")
        await _call("POST /v1/customers/{id}", self._stripe().v1.customers.update_async(
            customer_id, params={"email": email, "name": name}))

    async def start_setup(self, customer_id: str) -> tuple[str, str]:
        _check_id(customer_id, "cus_")
        params: SetupIntentCreateParams = {"customer": customer_id, "usage": "off_session",
                                           "allowed_payment_method_types": ["card"]}
        try:
            intent = await self._stripe().v1.setup_intents.create_async(params=params)
        except stripe.InvalidRequestError as error:
            if not _unsupported(error, "allowed_payment_method_types"):
                raise _mapped(error, "POST /v1/setup_intents") from error
            # The emulator knows only the older `payment_method_types`, and offers
            # cards alone by default.
            del params["allowed_payment_method_types"]
            intent = await _call("POST /v1/setup_intents",
                                 self._stripe().v1.setup_intents.create_async(params=params))
        except stripe.StripeError as error:
            raise _mapped(error, "POST /v1/setup_intents") from error
        if not intent.client_secret:
            raise ProviderError(f"SetupIntent {intent.id} came without a client secret")
        return str(intent.id), str(intent.client_secret)

    async def complete_setup(self, customer_id: str, setup_intent_id: str
                             ) -> tuple[str, Card]:
        _check_id(customer_id, "cus_")
        _check_id(setup_intent_id, "seti_")
        try:
            found = await self._stripe().v1.setup_intents.retrieve_async(setup_intent_id)
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 404):  # the route exists: the object does not
                raise ValueError(f"no SetupIntent {setup_intent_id}") from error
            raise _mapped(error, "GET /v1/setup_intents/{id}") from error
        except stripe.StripeError as error:
            raise _mapped(error, "GET /v1/setup_intents/{id}") from error
        intent = found.to_dict()
        if _id(intent.get("customer")) != customer_id:
            raise ValueError(f"SetupIntent {setup_intent_id} is not {customer_id}'s")
        status = str(intent.get("status") or "")
        if status != "succeeded":
            failure = _dict(intent.get("last_setup_error"))
            if failure:  # Stripe: the confirmation was declined
                raise CardDeclined(_code(failure), str(failure.get("message") or ""))
            if status == "canceled":  # the emulator cancels it when the card is declined
                raise CardDeclined("setup_intent_canceled",
                                   f"SetupIntent {setup_intent_id} was canceled")
            raise ValueError(f"SetupIntent {setup_intent_id} is {status}, not succeeded")
        method_id = _id(intent.get("payment_method"))
        if not method_id:
            raise ValueError(f"SetupIntent {setup_intent_id} has no payment method")
        method = (await _call("GET /v1/payment_methods/{id}",
                              self._stripe().v1.payment_methods.retrieve_async(method_id))
                  ).to_dict()
        owner = _id(method.get("customer"))
        if owner and owner != customer_id:
            raise ValueError(f"payment method {method_id} belongs to another customer")
        if not owner:  # Stripe attached it on confirm; the emulator does not
            await _call("POST /v1/payment_methods/{id}/attach",
                        self._stripe().v1.payment_methods.attach_async(
                            method_id, params={"customer": customer_id}))
        await _call("POST /v1/customers/{id}", self._stripe().v1.customers.update_async(
            customer_id, params={"invoice_settings": {"default_payment_method": method_id}}))
        card = _dict(method.get("card"))
        if not card:
            raise ValueError(f"payment method {method_id} is not a card")
        return method_id, Card(brand=str(card.get("brand") or ""),
                               last4=str(card.get("last4") or ""),
                               exp_month=int(card.get("exp_month") or 0),
                               exp_year=int(card.get("exp_year") or 0))

    async def checkout_setup(self, customer_id: str, success_url: str, cancel_url: str
                             ) -> str:
        """A Checkout page (mode=setup) collecting a card; its URL. Real Stripe only:
        the emulator has no /v1/checkout/sessions (ProviderFeatureMissing)."""
        _check_id(customer_id, "cus_")
        session = await _call("POST /v1/checkout/sessions",
                              self._stripe().v1.checkout.sessions.create_async(params={
                                  "mode": "setup", "customer": customer_id,
                                  "allowed_payment_method_types": ["card"],
                                  "success_url": success_url, "cancel_url": cancel_url}))
        return str(session.url or "")

    # Money.

    async def charge(self, customer_id: str, payment_method_id: str, amount_minor: int,
                     currency: str, op_key: str, metadata: dict[str, str]) -> Charge:
        _check_id(customer_id, "cus_")
        if amount_minor <= 0:
            raise ValueError(f"nothing to charge: {amount_minor}")
        if not op_key:
            raise ValueError("a charge needs its op_key")
        # No `description`: the emulator refuses it (400).
        params: PaymentIntentCreateParams = {
            "amount": amount_minor, "currency": currency.lower(), "customer": customer_id,
            "payment_method": payment_method_id, "off_session": True, "confirm": True,
            "metadata": {**metadata, "caas_op": op_key}}
        try:
            intent = await self._stripe().v1.payment_intents.create_async(
                params=params, options={"idempotency_key": op_key})
        except stripe.CardError as error:
            return await self._declined(error)
        except stripe.StripeError as error:
            raise _mapped(error, "POST /v1/payment_intents") from error
        return _charge_of(intent.to_dict())

    async def _declined(self, error: stripe.CardError) -> Charge:
        body = _dict(_dict(error.json_body).get("error"))
        code = _code(body) or str(error.code or "") or "card_declined"
        intent = _dict(body.get("payment_intent"))
        if intent:  # Stripe names the PaymentIntent (status requires_payment_method)
            if code == "authentication_required" and intent.get("client_secret"):
                return Charge("requires_action", str(intent.get("id") or ""),
                              client_secret=str(intent["client_secret"]))
            return Charge("failed", str(intent.get("id") or ""), code)
        intent_id = ""
        charge_id = _id(body.get("charge"))
        if charge_id:  # the emulator names only the charge
            try:
                charge = await self._stripe().v1.charges.retrieve_async(charge_id)
                intent_id = _id(charge.to_dict().get("payment_intent"))
            except stripe.StripeError:
                intent_id = ""  # the decline stands; find_charge finds it by op_key
        return Charge("failed", intent_id, code)

    async def find_charge(self, op_key: str, since: datetime) -> Charge | None:
        if not op_key:
            raise ValueError("find_charge needs an op_key")
        found = [intent async for intent in self._intents_since(since)
                 if _dict(intent.get("metadata")).get("caas_op") == op_key]
        if not found:
            return None
        # One per op_key on Stripe (the idempotency key); should a provider have made
        # more (the emulator ignores idempotency keys), the one that collected wins.
        charges = [_charge_of(intent) for intent in found]
        rank = {"succeeded": 0, "processing": 1, "requires_action": 2, "failed": 3}
        return min(charges, key=lambda charge: rank.get(charge.state, 4))

    async def _intents_since(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        """Every PaymentIntent created since `since` (less CLOCK_SKEW), page by page."""
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # CAAS's times are UTC
        start = int(since.timestamp()) - CLOCK_SKEW
        params: PaymentIntentListParams = {"limit": PAGE, "created": {"gte": start}}
        seen: set[str] = set()
        while True:
            try:
                page = await self._stripe().v1.payment_intents.list_async(params=params)
            except stripe.InvalidRequestError as error:
                if "created" in params and _unsupported(error, "created"):
                    # The filter is not supported (the emulator: "Unexpected created"):
                    # list them all, newest or oldest first, and filter here.
                    del params["created"]
                    continue
                raise _mapped(error, "GET /v1/payment_intents") from error
            except stripe.StripeError as error:
                raise _mapped(error, "GET /v1/payment_intents") from error
            intents = [intent.to_dict() for intent in page.data]
            for intent in intents:
                if int(intent.get("created") or 0) >= start:
                    yield intent
            if not page.has_more or not intents:
                return
            last = str(intents[-1]["id"])
            if last in seen:
                raise ProviderError("GET /v1/payment_intents: paging does not advance")
            seen.add(last)
            params["starting_after"] = last

    async def refund(self, payment_intent: str, amount_minor: int,
                     idempotency_key: str) -> str:
        _check_id(payment_intent, "pi_")
        if amount_minor <= 0:
            raise ValueError(f"nothing to refund: {amount_minor}")
        refund = await _call("POST /v1/refunds", self._stripe().v1.refunds.create_async(
            params={"payment_intent": payment_intent, "amount": amount_minor},
            options={"idempotency_key": idempotency_key}))
        return str(refund.id)

    # Webhooks.

    def parse_webhook(self, body: bytes, signature_header: str) -> ProviderEvent:
        try:
            stripe.WebhookSignature.verify_header(body, signature_header,
                                                  self._webhook_secret, WEBHOOK_TOLERANCE)
            event = json.loads(body)
        except stripe.SignatureVerificationError as error:
            raise InvalidSignature(str(error.user_message or error)) from error
        except ValueError as error:  # not UTF-8, not JSON
            raise InvalidSignature(f"unparsable webhook body: {error}") from error
        data = _dict(_dict(event).get("data"))
        thing = _dict(data.get("object"))
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            raise InvalidSignature("the webhook body is not an event")
        failure = _dict(thing.get("last_payment_error")) or _dict(
            thing.get("last_setup_error"))
        metadata = {str(key): str(value)
                    for key, value in _dict(thing.get("metadata")).items()
                    if value is not None}
        return ProviderEvent(event_id=str(event["id"]), type=str(event["type"]),
                             object_id=str(thing.get("id") or ""),
                             status=str(thing.get("status") or ""),
                             metadata=metadata, decline_code=_code(failure))


# Stripe's errors, as the port's.

async def _call(endpoint: str, request: Awaitable[T]) -> T:
    try:
        return await request
    except stripe.StripeError as error:
        raise _mapped(error, endpoint) from error


def _mapped(error: stripe.StripeError, endpoint: str) -> ProviderError:
    status = error.http_status or 0
    message = str(error.user_message or error) or type(error).__name__
    if isinstance(error, stripe.CardError):
        body = _dict(_dict(error.json_body).get("error"))
        return CardDeclined(_code(body) or str(error.code or "") or "card_declined", message)
    if (isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)
            or status in (409, 429) or status >= 500):
        # 409: a lock or the same idempotency key in flight; the client retried already.
        return ProviderUnavailable(f"{endpoint}: {message}")
    if status == 404 and _unknown_route(error):
        return ProviderFeatureMissing(endpoint, message)
    detail = " ".join(str(part) for part in (status or "", error.code or "", message) if part)
    return ProviderError(f"{endpoint}: {detail}")


def _unknown_route(error: stripe.StripeError) -> bool:
    """A 404 for the route, not for an object: a body that is not Stripe's error JSON
    (the emulator: aiohttp's "404: Not Found", an APIError), or Stripe's own answer."""
    if error.code == "resource_missing":
        return False
    body = _dict(error.json_body)
    if "error" not in body:
        return True
    message = str(_dict(body["error"]).get("message") or "")
    return message.startswith("Unrecognized request URL")


def _unsupported(error: stripe.InvalidRequestError, param: str) -> bool:
    """A 400 refusing `param` itself: the emulator's "Unexpected <param>", Stripe's
    "Received unknown parameter: <param>"."""
    return error.http_status == 400 and param in str(error.user_message or error)


def _code(failure: Mapping[str, Any]) -> str:
    return str(failure.get("decline_code") or failure.get("code") or "")


def _charge_of(intent: Mapping[str, Any]) -> Charge:
    intent_id = str(intent.get("id") or "")
    status = str(intent.get("status") or "")
    secret = str(intent.get("client_secret") or "")
    if status == "succeeded":
        return Charge("succeeded", intent_id)
    if status == "requires_action":
        return Charge("requires_action", intent_id, client_secret=secret)
    if status in ("requires_payment_method", "canceled"):
        code = _code(_dict(intent.get("last_payment_error")))
        if code == "authentication_required" and status != "canceled" and secret:
            return Charge("requires_action", intent_id, client_secret=secret)
        return Charge("failed", intent_id, code or status)
    return Charge("processing", intent_id)  # processing, requires_confirmation, …


def _check_id(value: str, prefix: str) -> None:
    if not value.startswith(prefix) or not value[len(prefix):].replace("_", "").isalnum():
        raise ValueError(f"not a {prefix}… id: {value!r}")


def _id(value: object) -> str:
    """An id, whether the field holds it or the expanded object."""
    if isinstance(value, str):
        return value
    return str(_dict(value).get("id") or "")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
