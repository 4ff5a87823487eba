"""The payment provider port: what billing asks of a card processor, and its errors.

CAAS rates and invoices; the provider holds the customers and their cards (card data
never reaches CAAS) and collects each invoice with one off-session charge. The one
adapter is services/billing/stripe_provider.py, the only module importing `stripe`:
nothing else sees the provider's library or its exceptions, only the errors below.

Every failure an adapter raises is a ProviderError: ProviderUnavailable (retry later),
ProviderFeatureMissing (the provider lacks an endpoint), CardDeclined, or a plain
ProviderError (a request the provider refused: a bug or a misconfiguration, such as a
wrong API key). A bad argument from the caller (a SetupIntent of another customer, an
unknown one) is a ValueError. A declined charge is not an exception but an answer:
Charge("failed", …).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.billing.models import Card

__all__ = [
    "Card",
    "CardDeclined",
    "Charge",
    "InvalidSignature",
    "PaymentProvider",
    "ProviderError",
    "ProviderEvent",
    "ProviderFeatureMissing",
    "ProviderUnavailable",
]


@dataclass(frozen=True, slots=True)
class Charge:
    """The outcome of one off-session charge.

    state: "succeeded"; "failed" (declined: `decline_code`); "requires_action" (the
    bank wants the cardholder: confirm `client_secret` in the browser, 3-D Secure);
    "processing" (no outcome yet: it comes by webhook; not seen for cards in practice).
    """

    state: str
    payment_intent: str  # the provider's id ("pi_…"); "" if a decline named none
    decline_code: str = ""  # for "failed": the card error's decline_code, or its code
    client_secret: str = ""  # for "requires_action"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A webhook event whose signature was verified."""

    event_id: str
    type: str  # "payment_intent.succeeded", …
    object_id: str  # data.object.id
    status: str  # data.object.status ("" when the object has none)
    metadata: dict[str, str]  # data.object.metadata
    decline_code: str = ""  # data.object.last_payment_error: decline_code or code


class ProviderError(Exception):
    """The provider refused or failed a request (base of the errors below)."""


class ProviderUnavailable(ProviderError):
    """Network error, timeout, 5xx or 429 (after the client's own retries): retry later."""


class ProviderFeatureMissing(ProviderError):
    """The provider has no such endpoint (404 on a route: an emulator, an account
    without the product)."""

    def __init__(self, endpoint: str, message: str = "") -> None:
        super().__init__(f"{endpoint}: {message or 'not available at this provider'}")
        self.endpoint = endpoint  # "POST /v1/checkout/sessions"


class CardDeclined(ProviderError):
    """Setting up (attaching) a card was declined."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or f"card declined: {code}")
        self.code = code  # the decline_code, else the error's code ("card_declined")


class InvalidSignature(Exception):
    """A webhook's signature is wrong or too old, or its body cannot be parsed."""


class PaymentProvider(Protocol):
    publishable_key: str  # for the browser (Stripe.js)

    async def create_customer(self, organization_id: str, email: str, name: str,
                              idempotency_key: str) -> str:
        """A new customer for the organization; its id ("cus_…")."""
        ...

    async def update_customer(self, customer_id: str, email: str, name: str) -> None: ...

    async def start_setup(self, customer_id: str) -> tuple[str, str]:
        """A SetupIntent for an off-session card: (its id, the client secret the
        browser confirms it with)."""
        ...

    async def complete_setup(self, customer_id: str, setup_intent_id: str
                             ) -> tuple[str, Card]:
        """After the browser confirmed the SetupIntent: attach its card to the customer
        and make it the default; (payment method id, Card). ValueError if the
        SetupIntent is unknown, of another customer, or not confirmed yet;
        CardDeclined if the card was declined."""
        ...

    async def charge(self, customer_id: str, payment_method_id: str, amount_minor: int,
                     currency: str, op_key: str, metadata: dict[str, str]) -> Charge:
        """Charge the card off-session, once per `op_key` (also the idempotency key
        and metadata["caas_op"])."""
        ...

    async def find_charge(self, op_key: str, since: datetime) -> Charge | None:
        """The charge made with `op_key` at or after `since` (its current state), or
        None: recovery after a crash between asking the provider and recording it."""
        ...

    async def refund(self, payment_intent: str, amount_minor: int,
                     idempotency_key: str) -> str:
        """Refund `amount_minor` of a charge; the refund's id."""
        ...

    def parse_webhook(self, body: bytes, signature_header: str) -> ProviderEvent:
        """The verified event; InvalidSignature otherwise."""
        ...

    async def close(self) -> None: ...
