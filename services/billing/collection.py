"""Collecting an invoice from the organization's card, exactly once.

Each attempt is written to the payment journal (`sending`) before the provider is
asked, under a key (`<invoice>/<attempt>`) that is also the provider's idempotency
key and sits in the payment's metadata. A crash between asking and recording leaves
the attempt `sending`: the provider's webhook for it (its metadata names the
attempt) or the recovery pass (`recover`: find the payment by that key, else ask
again with the same key, which the provider answers with the first payment) settles
it. An invoice has at most one open attempt at a time (the store enforces it).

Failures move the subscription to PAST_DUE and schedule retries
(`billing_retry_days`); after the last, UNPAID (capped to the free plan's units)
until the invoice is paid. Paying restores ACTIVE at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from services.billing.models import Email, Invoice, InvoiceState, Payment, State, format_minor
from services.billing.payments import Charge, PaymentProvider
from services.billing.store import FAILED, REQUIRES_ACTION, SENDING, SUCCEEDED, BillingStore
from services.billing.subscriptions import Subscriptions
from services.core.clock import Clock
from services.core.ids import new_id

log = logging.getLogger("caas.billing")

NO_PAYMENT_METHOD = "no_payment_method"
AUTHENTICATION_REQUIRED = "authentication_required"  # 3-D Secure: the cardholder confirms
# Whom an organization's billing emails go to (its billing account's address, owners,
# admins and billing members).
Recipients = Callable[[str], Awaitable[list[str]]]
ADOPT_AFTER = timedelta(minutes=2)  # a `sending` attempt older than this is recovered


class Collector:
    def __init__(self, store: BillingStore, subscriptions: Subscriptions,
                 provider: PaymentProvider | None, clock: Clock, retry_days: list[int],
                 recipients: Recipients) -> None:
        self._store = store
        self._subscriptions = subscriptions
        self._provider = provider
        self._clock = clock
        self._retry_days = retry_days
        self._recipients = recipients

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    async def collect(self, invoice: Invoice) -> Invoice:
        """One attempt at an open invoice (nothing without a provider: the operator
        marks it paid). Raises ProviderUnavailable (the attempt stays open; the
        recovery pass settles it)."""
        if self._provider is None or invoice.state is not InvoiceState.OPEN:
            return invoice
        if invoice.amount_due_minor == 0:
            return await self.paid(invoice, "")
        account = await self._store.get_account(invoice.organization_id)
        attempt = invoice.attempts + 1
        if account is None or not account.payment_method_id:
            return await self._failed(invoice, attempt, NO_PAYMENT_METHOD)
        op_key = f"{invoice.invoice_id}/{attempt}"
        now = self._clock.now()
        if not await self._store.begin_payment(Payment(op_key, invoice.invoice_id,
                                                       invoice.organization_id, SENDING, now)):
            return invoice  # an attempt is open (another process, or awaiting 3-D Secure)
        charge = await self._provider.charge(
            account.customer_id, account.payment_method_id, invoice.amount_due_minor,
            invoice.currency, op_key, {"caas_invoice": invoice.invoice_id,
                                       "caas_number": invoice.display_number})
        return await self.settle(op_key, charge)

    async def settle(self, op_key: str, charge: Charge) -> Invoice:
        """Record an attempt's outcome and apply it to its invoice (idempotent: a
        webhook and the answer may both bring it)."""
        payment = await self._store.finish_payment(op_key, charge.state, charge.payment_intent,
                                                   charge.decline_code)
        if payment is None:
            raise LookupError(f"no payment attempt {op_key}")
        invoice = await self._store.get_invoice(payment.invoice_id)
        assert invoice is not None
        attempt = int(op_key.rsplit("/", 1)[1])
        if charge.state == SUCCEEDED:
            return await self.paid(invoice, charge.payment_intent)
        if charge.state == REQUIRES_ACTION:
            if invoice.last_error == AUTHENTICATION_REQUIRED:
                return invoice  # told already (the answer, then the webhook)
            waiting = await self._update(invoice, lambda i: replace(
                i, attempts=max(i.attempts, attempt), next_attempt_time=None,
                payment_intent=charge.payment_intent, action_secret=charge.client_secret,
                last_error=AUTHENTICATION_REQUIRED))
            await self._store.queue_emails(await self._emails(
                waiting, f"Confirm the payment of {invoice.display_number}",
                f"The bank asks the cardholder to confirm the payment of invoice "
                f"{invoice.display_number} "
                f"({format_minor(invoice.amount_due_minor, invoice.currency)}): confirm "
                "it in the portal, on the organization's billing page."))
            return waiting
        return await self._failed(invoice, attempt, charge.decline_code or "declined")

    async def recover(self) -> int:
        """Settle the attempts a crash left `sending`; how many."""
        if self._provider is None:
            return 0
        settled = 0
        now = self._clock.now()
        for payment in await self._store.open_payments(now - ADOPT_AFTER):
            charge = await self._provider.find_charge(payment.op_key, payment.create_time)
            if charge is None:  # never reached the provider (or lost): ask again, same key
                invoice = await self._store.get_invoice(payment.invoice_id)
                account = await self._store.get_account(payment.organization_id)
                if invoice is None or account is None or not account.payment_method_id:
                    charge = Charge(FAILED, "", NO_PAYMENT_METHOD)
                else:
                    charge = await self._provider.charge(
                        account.customer_id, account.payment_method_id,
                        invoice.amount_due_minor, invoice.currency, payment.op_key,
                        {"caas_invoice": invoice.invoice_id,
                         "caas_number": invoice.display_number})
            await self.settle(payment.op_key, charge)
            settled += 1
        return settled

    async def paid(self, invoice: Invoice, payment_intent: str = "") -> Invoice:
        """Record an invoice paid (by `payment_intent`, or outside the provider), and
        the app's subscription back in good standing."""
        now = self._clock.now()
        if invoice.state is InvoiceState.PAID:
            return invoice
        paid = await self._update(invoice, lambda i: replace(
            i, state=InvoiceState.PAID, paid_time=now, next_attempt_time=None,
            payment_intent=payment_intent or i.payment_intent, last_error=""))
        if paid.state is InvoiceState.PAID:
            await self._subscriptions.change(paid.app_id, lambda s: s.next_version(
                now, state=State.ACTIVE, past_due_since=None)
                if s.state in (State.PAST_DUE, State.UNPAID) else None)
        return paid

    async def _failed(self, invoice: Invoice, attempt: int, code: str) -> Invoice:
        now = self._clock.now()
        if attempt <= invoice.attempts and invoice.last_error:
            return invoice  # this attempt's failure was applied already
        retry = (now + timedelta(days=self._retry_days[attempt - 1])
                 if attempt <= len(self._retry_days) else None)
        failed = await self._update(invoice, lambda i: replace(
            i, attempts=max(i.attempts, attempt), last_error=code, next_attempt_time=retry))
        state = State.PAST_DUE if retry is not None else State.UNPAID
        await self._subscriptions.change(invoice.app_id, lambda s: s.next_version(
            now, state=state, past_due_since=s.past_due_since or now)
            if s.state is not state and s.state is not State.TRIALING else None)
        when = (f"We will try again on {retry:%Y-%m-%d}." if retry is not None else
                "That was the last try: the app is limited to the free plan's units until "
                "the invoice is paid.")
        await self._store.queue_emails(await self._emails(
            failed, f"Payment failed: {invoice.display_number}",
            f"Payment of invoice {invoice.display_number} "
            f"({format_minor(invoice.amount_due_minor, invoice.currency)}) failed: "
            f"{code}.\n{when}\nUpdate the card or pay the invoice in the portal."))
        return failed

    async def _emails(self, invoice: Invoice, subject: str, text: str) -> list[Email]:
        now = self._clock.now()
        return [Email(new_id(), address, subject, text, now)
                for address in await self._recipients(invoice.organization_id)]

    async def _update(self, invoice: Invoice, change: Callable[[Invoice], Invoice]) -> Invoice:
        """Apply `change` (Invoice → Invoice) to the latest version of the invoice."""
        current: Invoice | None = invoice
        for _ in range(5):
            assert current is not None
            changed = replace(change(current), version=current.version + 1)
            if await self._store.update_invoice(changed, current.version):
                return changed
            current = await self._store.get_invoice(invoice.invoice_id)
        raise RuntimeError(f"invoice {invoice.invoice_id} kept changing")
