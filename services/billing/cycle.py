"""Billing's background work, one process at a time (a lease in the billing store: one
of the event log's would register a consumer, whose missing cursors would hold the
log's purges back), every `billing_interval` (and at once when a test calls `tick`):

1. ended trials and periods: a trial becomes the paid plan (a card on file) or the
   free plan; a period is closed once its grace has passed and the analytics consumer
   has counted the app's events: its usage frozen, its draft invoice written, the
   subscription renewed (a pending downgrade takes effect), in one transaction;
2. invoices advanced, each step recorded so a crash resumes where it stopped: a draft
   numbered (gapless), rendered to PDF (kept in the blob store), emailed, collected;
3. payment attempts a crash left open, settled (services/billing/collection.py);
4. usage checked against the plans: 80 % and 100 % of a unit's included amount and
   its hard cap each fire once per period (an event in the app's log, so its
   webhooks see it, and emails);
5. the emails owed, sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from caas.events.v1 import events_pb2

from services.billing.collection import Collector, Recipients
from services.billing.invoicing import base_lines, overage_lines, terms, totals, unit_usage
from services.billing.metering import Meter
from services.billing.models import (
    THRESHOLDS,
    UNIT_WORDS,
    BillingAccount,
    Email,
    Invoice,
    InvoiceState,
    Issuer,
    Plan,
    State,
    Subscription,
    Unit,
    Usage,
    format_minor,
    period_id,
)
from services.billing.payments import ProviderUnavailable
from services.billing.pdf import render_invoice
from services.billing.plans import Catalogue
from services.billing.quota import THRESHOLD_EVENT
from services.billing.servicer import UNIT_NUMBERS
from services.billing.store import BillingStore
from services.billing.subscriptions import Subscriptions, renewed, trial_ended
from services.core.clock import Clock
from services.core.events import DomainEvent
from services.core.ids import new_id
from services.core.mail import Attachment, Mailer
from services.core.mail import Email as Mail
from services.core.protoconv import timestamp
from services.events.log import EventLog
from services.media.blobs import BlobStore

log = logging.getLogger("caas.billing")

ANALYTICS = "analytics"  # the consumer whose counts a period waits for
BATCH = 100
CAP = 0  # the threshold that records a hard cap reached
RETRY_PROVIDER = timedelta(hours=1)


def invoice_key(invoice_id: str) -> str:
    """Where an invoice's PDF is kept in the blob store (outside any app's prefix:
    invoices outlive their app)."""
    return f"_billing/invoices/{invoice_id}.pdf"


class BillingCycle:
    def __init__(self, store: BillingStore, subscriptions: Subscriptions,
                 catalogue: Catalogue, meter: Meter, collector: Collector, events: EventLog,
                 blobs: BlobStore, mailer: Mailer, clock: Clock, issuer: Issuer,
                 recipients: Recipients, portal_url: Callable[[str], str], *,
                 grace: timedelta, payment_terms: timedelta, interval: float) -> None:
        self._store = store
        self._subscriptions = subscriptions
        self._catalogue = catalogue
        self._meter = meter
        self._collector = collector
        self._events = events
        self._blobs = blobs
        self._mailer = mailer
        self._clock = clock
        self._issuer = issuer
        self._recipients = recipients
        self._portal_url = portal_url
        self._grace = grace
        self._terms = payment_terms
        self._interval = interval
        self._holder = new_id()
        self._lock = asyncio.Lock()

    async def run(self, ok: Callable[[], None]) -> None:
        """A round every interval while this process holds the lease."""
        while True:
            now = self._clock.now()
            until = now + timedelta(seconds=self._interval * 3)
            if await self._store.lease(self._holder, now, until):
                await self.tick()
            ok()
            await asyncio.sleep(self._interval)

    async def tick(self) -> None:
        """One round of everything (see the module)."""
        async with self._lock:
            await self.close_due()
            await self.advance_invoices()
            await self._collector.recover()
            await self.watch()
            await self.send_emails()

    # 1. Trials and periods.
    async def close_due(self) -> int:
        closed = 0
        now = self._clock.now()
        for subscription in await self._store.subscriptions_due(now, BATCH):
            if (subscription.state is State.TRIALING and subscription.trial_end is not None
                    and subscription.trial_end <= now):
                await self._end_trial(subscription)
            elif subscription.period_end + self._grace <= now:
                closed += await self._close(subscription)
        return closed

    async def _end_trial(self, subscription: Subscription) -> None:
        account = await self._account(subscription.organization_id)
        paid = bool(account.payment_method_id)
        now = self._clock.now()
        if await self._store.update_subscription(trial_ended(subscription, now, paid),
                                                 subscription.version):
            plan = await self._plan(subscription.plan_id if paid else "free")
            await self._subscriptions.rate_limits(subscription.app_id, plan)
            changed = await self._store.get_subscription(subscription.app_id)
            if changed is not None:
                await self._subscriptions.published(changed)

    async def _close(self, subscription: Subscription) -> int:
        app_id = subscription.app_id
        if await self._events.behind(ANALYTICS, [app_id]):
            return 0  # the app's last events are not counted yet: next round
        now = self._clock.now()
        plans = await self._catalogue.including(s.plan_id for s in subscription.segments)
        used = await self._meter.used(app_id, subscription.period_start,
                                      subscription.period_end, sample=False)
        usage = Usage(app_id, subscription.period_start, subscription.period_end,
                      unit_usage(subscription, plans, used), final=True, as_of=now,
                      plan_id=subscription.plan_id)
        lines = base_lines(subscription, plans) + overage_lines(usage.units)
        invoice = None
        if subscription.organization_id and any(line.amount_minor for line in lines):
            account = await self._account(subscription.organization_id)
            subtotal, tax, total = totals(lines, account.tax_rate_bps)
            invoice = Invoice(new_id(), subscription.organization_id, app_id,
                              subscription.period_start, subscription.period_end,
                              plans[subscription.plan_id].currency, tuple(lines), subtotal,
                              account.tax_rate_bps, tax, total, issuer=self._issuer.key,
                              bill_to=account, create_time=now)
        next_period = renewed(subscription, now)
        if not await self._store.close_period(invoice, usage, next_period,
                                              subscription.version):
            return 0
        if next_period.plan_id != subscription.plan_id:
            await self._subscriptions.rate_limits(app_id, await self._plan(next_period.plan_id))
        await self._subscriptions.published(next_period)
        log.info("billing period closed", extra={
            "app": app_id, "period": period_id(subscription.period_start),
            "invoice": invoice.invoice_id if invoice else ""})
        return 1

    # 2. Invoices.
    async def advance_invoices(self) -> int:
        advanced = 0
        for invoice in await self._store.invoices_to_advance(self._clock.now(), BATCH):
            try:
                await self._advance(invoice)
            except ProviderUnavailable:
                log.warning("payment provider unavailable", exc_info=True,
                            extra={"invoice": invoice.invoice_id})
                await self._later(invoice)
            advanced += 1
        return advanced

    async def _advance(self, invoice: Invoice) -> None:
        now = self._clock.now()
        if invoice.state is InvoiceState.DRAFT:
            issued = await self._store.finalize_invoice(
                invoice.invoice_id, self._issuer.key, self._issuer.invoice_prefix, now,
                now + self._terms)
            if issued is None:
                return
            invoice = issued
        if not invoice.pdf_key:
            pdf = render_invoice(invoice, self._issuer)
            key = invoice_key(invoice.invoice_id)
            await self._put(key, pdf)
            rendered = replace(invoice, pdf_key=key, pdf_sha256=hashlib.sha256(pdf).hexdigest(),
                               version=invoice.version + 1)
            if not await self._store.update_invoice(rendered, invoice.version):
                return
            invoice = rendered
        if not invoice.emailed:
            await self._store.queue_emails(await self._invoice_emails(invoice))
            emailed = replace(invoice, emailed=True, version=invoice.version + 1)
            if not await self._store.update_invoice(emailed, invoice.version):
                return
            invoice = emailed
        if (invoice.state is InvoiceState.OPEN and invoice.next_attempt_time is not None
                and invoice.next_attempt_time <= now):
            if not self._collector.enabled:  # the operator marks it paid
                waiting = replace(invoice, next_attempt_time=None, version=invoice.version + 1)
                await self._store.update_invoice(waiting, invoice.version)
                return
            await self._collector.collect(invoice)

    async def _later(self, invoice: Invoice) -> None:
        current = await self._store.get_invoice(invoice.invoice_id)
        if current is not None and current.state is InvoiceState.OPEN:
            await self._store.update_invoice(replace(
                current, next_attempt_time=self._clock.now() + RETRY_PROVIDER,
                version=current.version + 1), current.version)

    async def _put(self, key: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "invoice.pdf"
            await asyncio.to_thread(path.write_bytes, data)
            await self._blobs.put_file(key, path, "application/pdf")

    async def _invoice_emails(self, invoice: Invoice) -> list[Email]:
        now = self._clock.now()
        due = f"{invoice.due_time:%Y-%m-%d}" if invoice.due_time else ""
        collected = ("It will be charged to the card on file." if self._collector.enabled
                     else "Please pay it by bank transfer quoting its number.")
        text = (f"Invoice {invoice.display_number} for apps/{invoice.app_id}, period "
                f"{period_id(invoice.period_start)}: "
                f"{format_minor(invoice.total_minor, invoice.currency)}, due {due}.\n"
                f"{collected}\nThe PDF is attached; all invoices: "
                f"{self._portal_url(invoice.organization_id)}")
        return [Email(new_id(), to, f"Invoice {invoice.display_number}", text, now,
                      f"{invoice.display_number}.pdf", invoice.pdf_key)
                for to in await self._recipients(invoice.organization_id)]

    # 4. Thresholds.
    async def watch(self) -> int:
        """Check every subscription's usage of this period; how many thresholds fired."""
        fired, after = 0, ""
        while page := await self._store.subscriptions(after, BATCH):
            for subscription in page:
                fired += await self._watch_one(subscription)
            after = page[-1].app_id
        return fired

    async def _watch_one(self, subscription: Subscription) -> int:
        """The thresholds the app reached (only the units its plan includes, caps or
        sells are read — storage sampled —: none for a plan with no units, as the
        internal plan)."""
        plans = await self._catalogue.including([subscription.plan_id])
        plan = plans[subscription.plan_id]
        caps = terms(subscription, plans)
        watched = frozenset(u for u in Unit if caps[u].included or caps[u].hard_cap
                            or caps[u].overage_price_micros)
        if not watched:
            return 0
        used = await self._meter.used(subscription.app_id, subscription.period_start,
                                      subscription.period_end, watched)
        known = await self._store.thresholds(subscription.app_id, subscription.period_start)
        fired = 0
        for unit in watched:
            term, count = caps[unit], used.get(unit, 0)
            reached = [t for t in THRESHOLDS if term.included
                       and count * 100 >= term.included * t]
            if term.hard_cap and count >= term.hard_cap:
                reached.append(CAP)
            for threshold in reached:
                if (unit, threshold) in known:
                    continue
                fired += await self._fire(subscription, plan, unit, threshold, count,
                                          term.included, term.hard_cap)
        return fired

    async def _fire(self, subscription: Subscription, plan: Plan, unit: Unit, threshold: int,
                    used: int, included: int, cap: int) -> int:
        now = self._clock.now()
        payload = events_pb2.UsageThreshold(
            unit=UNIT_NUMBERS[unit], threshold_percent=threshold, used=used,
            included=included, hard_cap=cap, plan=f"plans/{plan.plan_id}",
            period_start=timestamp(subscription.period_start),
            period_end=timestamp(subscription.period_end))
        event = DomainEvent(THRESHOLD_EVENT, subscription.app_id, now, payload=payload,
                            data={"unit": unit.value, "threshold": str(threshold)})
        words = UNIT_WORDS[unit]
        if threshold == CAP:
            subject = f"apps/{subscription.app_id} reached its cap of {words}"
            text = (f"apps/{subscription.app_id} has used {used:,} {words} this period, its "
                    f"plan's hard cap ({cap:,}, plan {plan.display_name}): actions that use "
                    f"more are refused until {subscription.period_end:%Y-%m-%d}. Upgrade the "
                    "plan to lift it; reading keeps working.")
        else:
            subject = f"apps/{subscription.app_id} used {threshold}% of its {words}"
            after = (f"Above it, each costs {plan.unit(unit).overage_price_micros} millionths "
                     f"of {plan.currency}" if plan.unit(unit).overage_price_micros and
                     subscription.state is not State.TRIALING else "")
            limit = f"; at {cap:,} actions that use more are refused" if cap else ""
            text = (f"apps/{subscription.app_id} has used {used:,} of the {included:,} {words} "
                    f"its plan ({plan.display_name}) includes this period ({threshold}%). "
                    f"{after}{limit}.")
        emails = [Email(new_id(), to, subject, text, now)
                  for to in await self._recipients(subscription.organization_id)] \
            if subscription.organization_id else []
        return int(await self._store.claim_threshold(
            subscription.app_id, subscription.period_start, unit, threshold, event, emails))

    # 5. Emails.
    async def send_emails(self) -> int:
        sent = 0
        for email in await self._store.pending_emails(BATCH):
            attachments: tuple[Attachment, ...] = ()
            if email.attachment_key:
                attachments = (Attachment(email.attachment_name, "application/pdf",
                                          await self._read(email.attachment_key)),)
            try:
                await self._mailer.send(Mail(email.to, email.subject, email.text, attachments))
            except Exception:  # the SMTP server: next round
                log.warning("a billing email was not sent", exc_info=True,
                            extra={"email": email.email_id})
                break
            await self._store.email_sent(email.email_id)
            sent += 1
        return sent

    async def _read(self, key: str) -> bytes:
        blob = await self._blobs.open(key)
        return b"".join([chunk async for chunk in blob.chunks])

    async def _account(self, organization_id: str) -> BillingAccount:
        return (await self._store.get_account(organization_id)
                or BillingAccount(organization_id))

    async def _plan(self, plan_id: str) -> Plan:
        plan = await self._catalogue.get(plan_id)
        if plan is None:
            raise LookupError(f"plan {plan_id} is gone")
        return plan
