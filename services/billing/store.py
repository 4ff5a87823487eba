"""Billing's storage port. Each method is one transaction; those that take an
`expected_version` change a record only if it is still that version (optimistic
concurrency: the caller reads again and retries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.billing.models import (
    BillingAccount,
    CreditNote,
    Email,
    Invoice,
    Payment,
    Plan,
    Subscription,
    Unit,
    Usage,
)
from services.core.events import DomainEvent

# Payment states; an invoice has at most one attempt in an open state at a time.
SENDING, SUCCEEDED, FAILED, REQUIRES_ACTION = "sending", "succeeded", "failed", "requires_action"
OPEN_PAYMENT_STATES = (SENDING, REQUIRES_ACTION)


class BillingStore(Protocol):
    async def migrate(self) -> None: ...

    # Plans.
    async def get_plan(self, plan_id: str) -> Plan | None: ...

    async def list_plans(self) -> list[Plan]: ...

    async def create_plan(self, plan: Plan) -> bool:
        """Whether it was created (False: the id is taken)."""

    async def update_plan(self, plan: Plan, expected_version: int) -> bool: ...

    # Billing accounts (one per organization).
    async def get_account(self, organization_id: str) -> BillingAccount | None: ...

    async def put_account(self, account: BillingAccount) -> None: ...

    # Subscriptions (one per app).
    async def get_subscription(self, app_id: str) -> Subscription | None: ...

    async def create_subscription(self, subscription: Subscription) -> bool:
        """Whether it was created (False: the app has one)."""

    async def update_subscription(self, subscription: Subscription, expected_version: int
                                  ) -> bool: ...

    async def subscriptions(self, after_app_id: str, limit: int) -> list[Subscription]:
        """A page of every subscription, by app id."""

    async def subscriptions_due(self, before: datetime, limit: int) -> list[Subscription]:
        """Those whose period ended or whose trial ended before `before`."""

    # Warnings: each (app, period, unit, threshold) fires once.
    async def claim_threshold(self, app_id: str, period_start: datetime, unit: Unit,
                              threshold: int, event: DomainEvent, emails: Sequence[Email]
                              ) -> bool:
        """Record that the threshold was reached, with its event (in the app's event
        log) and its emails (queued), in one transaction, unless it was recorded
        already; whether it was recorded now."""

    async def thresholds(self, app_id: str, period_start: datetime) -> set[tuple[Unit, int]]:
        """The thresholds recorded for the app's period."""

    # Storage, sampled: the period's largest value.
    async def record_storage(self, app_id: str, period_start: datetime, gib: int) -> None: ...

    async def storage_peak(self, app_id: str, period_start: datetime) -> int: ...

    # Closing a period.
    async def close_period(self, invoice: Invoice | None, usage: Usage, renewed: Subscription,
                           expected_version: int) -> bool:
        """In one transaction: the period's draft invoice (None: nothing to bill) and its
        frozen usage, and the subscription moved to its next period; False (nothing
        written) if the subscription changed meanwhile or the period's invoice exists."""

    async def get_usage(self, app_id: str, period_start: datetime) -> Usage | None:
        """A closed period's frozen usage."""

    # Invoices.
    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def list_invoices(self, organization_id: str, before: tuple[int, str] | None,
                            limit: int) -> list[Invoice]:
        """Issued invoices, newest first ((issue time ms, id) of the last one seen)."""

    async def invoices_to_advance(self, now: datetime, limit: int) -> list[Invoice]:
        """Drafts, invoices issued but not rendered or not emailed, and open invoices
        whose next payment attempt is due."""

    async def finalize_invoice(self, invoice_id: str, issuer: str, prefix: str,
                               issue_time: datetime, due_time: datetime) -> Invoice | None:
        """Number a draft (the issuer's next number, gapless: taken in the transaction
        that makes it open); the invoice, or None if it is not a draft."""

    async def update_invoice(self, invoice: Invoice, expected_version: int) -> bool: ...

    # Payment attempts (the journal that makes collection exactly-once).
    async def begin_payment(self, payment: Payment) -> bool:
        """Record an attempt as `sending` before the provider is asked; False if the
        invoice has an open attempt already (or this key exists)."""

    async def finish_payment(self, op_key: str, state: str, payment_intent: str,
                             decline_code: str) -> Payment | None:
        """The attempt's outcome (the payment, or None if unknown)."""

    async def get_payment(self, op_key: str) -> Payment | None: ...

    async def open_payments(self, before: datetime) -> list[Payment]:
        """Attempts still `sending` that began before `before` (a crash cut them)."""

    # Provider webhooks: each event applied once.
    async def record_provider_event(self, event_id: str, event_type: str, time: datetime
                                    ) -> bool:
        """Whether the event is new (False: seen before)."""

    # Credit notes.
    async def create_credit_note(self, note: CreditNote, issuer: str, prefix: str,
                                 request_id: str) -> tuple[CreditNote, Invoice] | None:
        """Number the credit note and add its amount to the invoice's credited amount, in
        one transaction; the same `request_id` again answers the first one's result.
        None if the invoice would be credited more than its total."""

    async def credit_note_refunded(self, credit_note_id: str, refund_id: str) -> None: ...

    async def list_credit_notes(self, organization_id: str, before: tuple[int, str] | None,
                                limit: int) -> list[CreditNote]: ...

    # Emails owed (sent until they go).
    async def queue_emails(self, emails: Sequence[Email]) -> None: ...

    async def pending_emails(self, limit: int) -> list[Email]: ...

    async def email_sent(self, email_id: str) -> None: ...

    # Who runs the billing cycle.
    async def lease(self, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the right to run the billing cycle until `until`: True if
        `holder` has it (it had it, nobody did, or the last holder's ran out by `now`)."""
