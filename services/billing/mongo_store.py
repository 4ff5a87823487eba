"""Billing on MongoDB: one collection per SQLite table, each record's document
(services/billing/codec.py) under `doc`, beside the top-level fields its queries,
indexes and constraints need.

Purging an app (`MongoDatabase.purge_app`) deletes the documents whose top-level
`app_id` is the app's or whose `_id` is it or starts with it and a slash: those of
subscriptions, thresholds, storage peaks and frozen usage carry the app's id so. What
is billed stays: invoices name their app `billed_app` (the record's `app_id` is under
`doc`, where the purge does not look), and credit notes and payments have no app field.

Multi-document changes run in transactions (`MongoDatabase.transaction`, or the event
log's `transact` when an event is recorded with them). Two transactions writing the
same document conflict; the driver runs the loser again, which then sees the winner's
writes: so a counter document makes numbering gapless and serial per issuer, and an
upsert (`$setOnInsert`) claims a key once. A stale version is a write that matched
nothing (False); a duplicate that must undo the transaction's other writes (a second
invoice for the period) raises out of it, so it aborts whole."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from services.billing.codec import from_doc, to_doc
from services.billing.models import (
    BillingAccount,
    CreditNote,
    Email,
    Invoice,
    InvoiceState,
    Payment,
    Plan,
    Subscription,
    Unit,
    Usage,
    advance_at,
    display_number,
)
from services.billing.store import OPEN_PAYMENT_STATES, SENDING
from services.core.clock import to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.events import DomainEvent
from services.events.log import Emit
from services.events.mongo_log import MongoEventLog

T = TypeVar("T")

PLANS = "billing_plans"
ACCOUNTS = "billing_accounts"
SUBSCRIPTIONS = "billing_subscriptions"
THRESHOLDS = "billing_thresholds"
STORAGE = "billing_storage"
USAGE = "billing_usage"
INVOICES = "billing_invoices"
SEQUENCES = "billing_sequences"
PAYMENTS = "billing_payments"
PROVIDER_EVENTS = "billing_provider_events"
CREDIT_NOTES = "billing_credit_notes"
LEASE = "billing_lease"
EMAILS = "billing_emails"

_NAMESPACE_EXISTS = 48
# Upserts of one new key at once, outside a transaction (or as the transaction's first
# write), may answer a duplicate to all but one: run again, they find it.
_DUPLICATE_RETRIES = 3


async def _create(db: AsyncDatabase[Document], name: str) -> None:
    """The collection, made now: transactions write to collections that exist."""
    if name in await db.list_collection_names():
        return
    try:
        await db.create_collection(name)
    except CollectionInvalid:  # another process made it meanwhile
        pass
    except OperationFailure as error:
        if error.code != _NAMESPACE_EXISTS:
            raise


async def _v1(db: AsyncDatabase[Document]) -> None:
    for name in (PLANS, ACCOUNTS, SEQUENCES, PROVIDER_EVENTS):
        await _create(db, name)
    # Due first (period or trial end); `app_id` (here and below) for the app's purge.
    await db[SUBSCRIPTIONS].create_index([("due_ms", ASCENDING), ("_id", ASCENDING)])
    await db[SUBSCRIPTIONS].create_index([("app_id", ASCENDING)])
    await db[THRESHOLDS].create_index([("app_id", ASCENDING), ("period_ms", ASCENDING)])
    await db[STORAGE].create_index([("app_id", ASCENDING)])
    await db[USAGE].create_index([("app_id", ASCENDING)])
    invoices = db[INVOICES]
    # One invoice per app and period (a second close of the period fails whole).
    await invoices.create_index([("billed_app", ASCENDING), ("period_ms", ASCENDING)],
                                unique=True)
    # The safety net of gapless numbering: a number is given once per issuer (drafts
    # have no `number` field).
    await invoices.create_index([("issuer", ASCENDING), ("number", ASCENDING)], unique=True,
                                partialFilterExpression={"number": {"$exists": True}})
    # Listing and work to do. Not partial: a planner may not choose a partial index
    # unhinted (SecantusDB does not); invoices without the field index as null.
    await invoices.create_index(
        [("organization_id", ASCENDING), ("issue_ms", DESCENDING), ("_id", DESCENDING)])
    await invoices.create_index([("advance_ms", ASCENDING), ("_id", ASCENDING)])
    payments = db[PAYMENTS]
    # At most one open attempt per invoice.
    await payments.create_index(
        [("invoice_id", ASCENDING)], unique=True, name="billing_payments_open",
        partialFilterExpression={"state": {"$in": list(OPEN_PAYMENT_STATES)}})
    await payments.create_index([("state", ASCENDING), ("create_ms", ASCENDING)])
    notes = db[CREDIT_NOTES]
    await notes.create_index([("request_id", ASCENDING)], unique=True)
    await notes.create_index(
        [("organization_id", ASCENDING), ("issue_ms", DESCENDING), ("_id", DESCENDING)])
    await db[EMAILS].create_index([("sent", ASCENDING), ("create_ms", ASCENDING),
                                   ("_id", ASCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    await _create(db, LEASE)


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2)


def _period_key(app_id: str, period_start: datetime) -> str:
    return f"{app_id}/{to_ms(period_start)}"


def _due_ms(subscription: Subscription) -> int:
    due = subscription.period_end
    if subscription.trial_end is not None and subscription.trial_end < due:
        due = subscription.trial_end
    return to_ms(due)


def _subscription_doc(subscription: Subscription) -> Document:
    return {"_id": subscription.app_id, "app_id": subscription.app_id,
            "version": subscription.version, "due_ms": _due_ms(subscription),
            "doc": to_doc(subscription)}


def _invoice_doc(invoice: Invoice) -> Document:
    """No top-level `app_id`: invoices outlive their app. The number, issue time and
    time of the next work are left out while there are none (the number's unique index
    is partial: drafts have none)."""
    doc: Document = {"_id": invoice.invoice_id, "organization_id": invoice.organization_id,
                     "billed_app": invoice.app_id, "period_ms": to_ms(invoice.period_start),
                     "issuer": invoice.issuer, "version": invoice.version}
    if invoice.number is not None:
        doc["number"] = invoice.number
    if invoice.issue_time is not None:
        doc["issue_ms"] = to_ms(invoice.issue_time)
    advance = advance_at(invoice)
    if advance is not None:
        doc["advance_ms"] = to_ms(advance)
    doc["doc"] = to_doc(invoice)
    return doc


def _credit_note_doc(note: CreditNote, request_id: str) -> Document:
    return {"_id": note.credit_note_id, "organization_id": note.organization_id,
            "invoice_id": note.invoice_id, "request_id": request_id,
            "issue_ms": to_ms(note.issue_time), "doc": to_doc(note)}


def _before(position: tuple[int, str] | None) -> Document:
    """Keyset paging, newest first: strictly before (issue time ms, id)."""
    if position is None:
        return {}
    when, key = position
    return {"$or": [{"issue_ms": {"$lt": when}}, {"issue_ms": when, "_id": {"$lt": key}}]}


def _load(cls: type[T], doc: Document | None) -> T | None:
    return None if doc is None else from_doc(cls, doc["doc"])


async def _again_on_duplicate(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, run again if it lost a race to insert the same new key."""
    for _ in range(_DUPLICATE_RETRIES - 1):
        with contextlib.suppress(DuplicateKeyError):
            return await call()
    return await call()


class _Conflict(Exception):
    """Rolls a transaction back (the period's invoice exists)."""


class MongoBillingStore:
    def __init__(self, db: MongoDatabase, log: MongoEventLog) -> None:
        self._mongo = db
        self._log = log
        self._plans = db.db[PLANS]
        self._accounts = db.db[ACCOUNTS]
        self._subscriptions = db.db[SUBSCRIPTIONS]
        self._thresholds = db.db[THRESHOLDS]
        self._storage = db.db[STORAGE]
        self._usage = db.db[USAGE]
        self._invoices = db.db[INVOICES]
        self._sequences = db.db[SEQUENCES]
        self._payments = db.db[PAYMENTS]
        self._provider_events = db.db[PROVIDER_EVENTS]
        self._credit_notes = db.db[CREDIT_NOTES]
        self._lease = db.db[LEASE]
        self._emails = db.db[EMAILS]

    async def migrate(self) -> None:
        await self._mongo.migrate("billing", MIGRATIONS)

    @staticmethod
    async def _one(collection: AsyncCollection[Document], query: Document, cls: type[T],
                   session: AsyncClientSession | None = None) -> T | None:
        return _load(cls, await collection.find_one(query, session=session))

    @staticmethod
    async def _inserted(collection: AsyncCollection[Document], doc: Document) -> bool:
        try:
            await collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    # Plans.
    async def get_plan(self, plan_id: str) -> Plan | None:
        return await self._one(self._plans, {"_id": plan_id}, Plan)

    async def list_plans(self) -> list[Plan]:
        return [from_doc(Plan, doc["doc"])
                async for doc in self._plans.find({}).sort("_id", ASCENDING)]

    async def create_plan(self, plan: Plan) -> bool:
        return await self._inserted(self._plans, {"_id": plan.plan_id, "version": plan.version,
                                                  "doc": to_doc(plan)})

    async def update_plan(self, plan: Plan, expected_version: int) -> bool:
        done = await self._plans.replace_one(
            {"_id": plan.plan_id, "version": expected_version},
            {"version": plan.version, "doc": to_doc(plan)})
        return done.matched_count == 1

    # Accounts.
    async def get_account(self, organization_id: str) -> BillingAccount | None:
        return await self._one(self._accounts, {"_id": organization_id}, BillingAccount)

    async def put_account(self, account: BillingAccount) -> None:
        async def put() -> None:
            await self._accounts.replace_one({"_id": account.organization_id},
                                             {"doc": to_doc(account)}, upsert=True)

        await _again_on_duplicate(put)

    # Subscriptions.
    async def get_subscription(self, app_id: str) -> Subscription | None:
        return await self._one(self._subscriptions, {"_id": app_id}, Subscription)

    async def create_subscription(self, subscription: Subscription) -> bool:
        return await self._inserted(self._subscriptions, _subscription_doc(subscription))

    async def update_subscription(self, subscription: Subscription, expected_version: int
                                  ) -> bool:
        return await self._update_subscription(subscription, expected_version, None)

    async def _update_subscription(self, subscription: Subscription, expected_version: int,
                                   session: AsyncClientSession | None) -> bool:
        doc = _subscription_doc(subscription)
        key = doc.pop("_id")
        done = await self._subscriptions.replace_one({"_id": key, "version": expected_version},
                                                     doc, session=session)
        return done.matched_count == 1

    async def subscriptions(self, after_app_id: str, limit: int) -> list[Subscription]:
        cursor = self._subscriptions.find({"_id": {"$gt": after_app_id}}
                                          ).sort("_id", ASCENDING).limit(limit)
        return [from_doc(Subscription, doc["doc"]) async for doc in cursor]

    async def subscriptions_due(self, before: datetime, limit: int) -> list[Subscription]:
        cursor = self._subscriptions.find({"due_ms": {"$lte": to_ms(before)}}).sort(
            [("due_ms", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [from_doc(Subscription, doc["doc"]) async for doc in cursor]

    # Thresholds and storage.
    async def claim_threshold(self, app_id: str, period_start: datetime, unit: Unit,
                              threshold: int, event: DomainEvent, emails: Sequence[Email]
                              ) -> bool:
        period_ms = to_ms(period_start)

        async def body(s: AsyncClientSession, emit: Emit) -> bool:
            # Claimers at once write the same document: one commits, the others run
            # again and find it claimed.
            claimed = await self._thresholds.update_one(
                {"_id": f"{app_id}/{period_ms}/{unit.value}/{threshold}"},
                {"$setOnInsert": {"app_id": app_id, "period_ms": period_ms,
                                  "unit": unit.value, "threshold": threshold}},
                upsert=True, session=s)
            if claimed.upserted_id is None:
                return False
            await self._queue(emails, s)
            emit(event)
            return True

        return await _again_on_duplicate(lambda: self._log.transact(body))

    async def thresholds(self, app_id: str, period_start: datetime) -> set[tuple[Unit, int]]:
        cursor = self._thresholds.find({"app_id": app_id, "period_ms": to_ms(period_start)},
                                       {"unit": 1, "threshold": 1})
        return {(Unit(doc["unit"]), int(doc["threshold"])) async for doc in cursor}

    async def record_storage(self, app_id: str, period_start: datetime, gib: int) -> None:
        async def record() -> None:
            await self._storage.update_one(
                {"_id": _period_key(app_id, period_start)},
                {"$max": {"gib": gib},
                 "$setOnInsert": {"app_id": app_id, "period_ms": to_ms(period_start)}},
                upsert=True)

        await _again_on_duplicate(record)

    async def storage_peak(self, app_id: str, period_start: datetime) -> int:
        doc = await self._storage.find_one({"_id": _period_key(app_id, period_start)})
        return 0 if doc is None else int(doc["gib"])

    # Closing.
    async def close_period(self, invoice: Invoice | None, usage: Usage, renewed: Subscription,
                           expected_version: int) -> bool:
        async def tx(s: AsyncClientSession) -> bool:
            if not await self._update_subscription(renewed, expected_version, s):
                return False
            try:
                if invoice is not None:
                    await self._invoices.insert_one(_invoice_doc(invoice), session=s)
                await self._usage.insert_one(
                    {"_id": _period_key(usage.app_id, usage.period_start),
                     "app_id": usage.app_id, "period_ms": to_ms(usage.period_start),
                     "doc": to_doc(usage)}, session=s)
            except DuplicateKeyError as error:  # the period's invoice or usage exists
                raise _Conflict from error
            return True

        try:
            return await self._mongo.transaction(tx)
        except _Conflict:
            return False

    async def get_usage(self, app_id: str, period_start: datetime) -> Usage | None:
        return await self._one(self._usage, {"_id": _period_key(app_id, period_start)}, Usage)

    # Invoices.
    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        return await self._one(self._invoices, {"_id": invoice_id}, Invoice)

    async def list_invoices(self, organization_id: str, before: tuple[int, str] | None,
                            limit: int) -> list[Invoice]:
        query: Document = {"organization_id": organization_id, "issue_ms": {"$ne": None},
                           **_before(before)}
        cursor = self._invoices.find(query).sort(
            [("issue_ms", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [from_doc(Invoice, doc["doc"]) async for doc in cursor]

    async def invoices_to_advance(self, now: datetime, limit: int) -> list[Invoice]:
        cursor = self._invoices.find(
            {"advance_ms": {"$lte": to_ms(now)}}).sort(
            [("advance_ms", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [from_doc(Invoice, doc["doc"]) async for doc in cursor]

    async def _take_number(self, issuer: str, series: str, s: AsyncClientSession) -> int:
        """The series' next number, taken in the session's transaction (gapless: an abort
        gives it back). `next` holds the last number taken (0: none yet); takers at once
        conflict on the document and commit one after the other."""
        counter = await self._sequences.find_one_and_update(
            {"_id": f"{issuer}/{series}"}, {"$inc": {"next": 1}},
            upsert=True, return_document=ReturnDocument.AFTER, session=s)
        assert counter is not None
        return int(counter["next"])

    async def _put_invoice(self, invoice: Invoice, expected_version: int,
                           session: AsyncClientSession | None) -> bool:
        doc = _invoice_doc(invoice)
        key = doc.pop("_id")
        done = await self._invoices.replace_one({"_id": key, "version": expected_version},
                                                doc, session=session)
        return done.matched_count == 1

    async def finalize_invoice(self, invoice_id: str, issuer: str, prefix: str,
                               issue_time: datetime, due_time: datetime) -> Invoice | None:
        async def tx(s: AsyncClientSession) -> Invoice | None:
            draft = await self._one(self._invoices, {"_id": invoice_id}, Invoice, s)
            if draft is None or draft.state is not InvoiceState.DRAFT:
                return None
            number = await self._take_number(issuer, "invoice", s)
            issued = replace(draft, state=InvoiceState.OPEN, number=number, issuer=issuer,
                             display_number=display_number(prefix, issue_time, number),
                             issue_time=issue_time, due_time=due_time,
                             next_attempt_time=issue_time, version=draft.version + 1)
            if not await self._put_invoice(issued, draft.version, s):
                raise AssertionError("an invoice changed inside its own transaction")
            return issued

        return await _again_on_duplicate(lambda: self._mongo.transaction(tx))

    async def update_invoice(self, invoice: Invoice, expected_version: int) -> bool:
        return await self._put_invoice(invoice, expected_version, None)

    # Payments.
    async def begin_payment(self, payment: Payment) -> bool:
        # A duplicate: the key exists, or the invoice has an open attempt (the unique
        # partial index `billing_payments_open`).
        return await self._inserted(self._payments, {
            "_id": payment.op_key, "invoice_id": payment.invoice_id, "state": payment.state,
            "create_ms": to_ms(payment.create_time), "doc": to_doc(payment)})

    async def finish_payment(self, op_key: str, state: str, payment_intent: str,
                             decline_code: str) -> Payment | None:
        doc = await self._payments.find_one_and_update(
            {"_id": op_key},
            {"$set": {"state": state, "doc.state": state,
                      "doc.payment_intent": payment_intent,
                      "doc.decline_code": decline_code}},
            return_document=ReturnDocument.AFTER)
        return _load(Payment, doc)

    async def get_payment(self, op_key: str) -> Payment | None:
        return await self._one(self._payments, {"_id": op_key}, Payment)

    async def open_payments(self, before: datetime) -> list[Payment]:
        cursor = self._payments.find(
            {"state": SENDING, "create_ms": {"$lte": to_ms(before)}}).sort(
            [("create_ms", ASCENDING), ("_id", ASCENDING)])
        return [from_doc(Payment, doc["doc"]) async for doc in cursor]

    async def record_provider_event(self, event_id: str, event_type: str, time: datetime
                                    ) -> bool:
        return await self._inserted(self._provider_events, {
            "_id": event_id, "type": event_type, "time_ms": to_ms(time)})

    # Credit notes.
    async def create_credit_note(self, note: CreditNote, issuer: str, prefix: str,
                                 request_id: str) -> tuple[CreditNote, Invoice] | None:
        async def tx(s: AsyncClientSession) -> tuple[CreditNote, Invoice] | None:
            invoice = await self._one(self._invoices, {"_id": note.invoice_id}, Invoice, s)
            if invoice is None:
                raise LookupError(f"no invoice {note.invoice_id!r}")
            done = await self._one(self._credit_notes, {"request_id": request_id},
                                   CreditNote, s)
            if done is not None:
                return done, invoice
            if invoice.credited_minor + note.amount_minor > invoice.total_minor:
                return None
            number = await self._take_number(issuer, "credit_note", s)
            numbered = replace(note, number=number,
                               display_number=display_number(prefix, note.issue_time, number))
            await self._credit_notes.insert_one(_credit_note_doc(numbered, request_id),
                                                session=s)
            credited = invoice.credited_minor + note.amount_minor
            state = (InvoiceState.VOID if invoice.state is InvoiceState.OPEN
                     and credited >= invoice.total_minor else invoice.state)
            changed = replace(invoice, credited_minor=credited, state=state,
                              version=invoice.version + 1)
            if not await self._put_invoice(changed, invoice.version, s):
                raise AssertionError("an invoice changed inside its own transaction")
            return numbered, changed

        # A duplicate: the same request at once (run again, it answers the first's note).
        return await _again_on_duplicate(lambda: self._mongo.transaction(tx))

    async def credit_note_refunded(self, credit_note_id: str, refund_id: str) -> None:
        done = await self._credit_notes.update_one(
            {"_id": credit_note_id}, {"$set": {"doc.refund_id": refund_id}})
        if done.matched_count != 1:
            raise LookupError(f"no credit note {credit_note_id!r}")

    async def list_credit_notes(self, organization_id: str, before: tuple[int, str] | None,
                                limit: int) -> list[CreditNote]:
        cursor = self._credit_notes.find(
            {"organization_id": organization_id, **_before(before)}).sort(
            [("issue_ms", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [from_doc(CreditNote, doc["doc"]) async for doc in cursor]

    # Emails.
    async def _queue(self, emails: Sequence[Email], s: AsyncClientSession) -> None:
        """Queue those not queued yet (an email's id makes it once)."""
        if emails:
            await self._emails.bulk_write([UpdateOne(
                {"_id": e.email_id},
                {"$setOnInsert": {"create_ms": to_ms(e.create_time), "sent": False,
                                  "doc": to_doc(e)}}, upsert=True) for e in emails],
                session=s)

    async def queue_emails(self, emails: Sequence[Email]) -> None:
        if not emails:
            return

        async def tx(s: AsyncClientSession) -> None:
            await self._queue(emails, s)

        await _again_on_duplicate(lambda: self._mongo.transaction(tx))

    async def pending_emails(self, limit: int) -> list[Email]:
        cursor = self._emails.find({"sent": False}).sort(
            [("create_ms", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [from_doc(Email, doc["doc"]) async for doc in cursor]

    async def email_sent(self, email_id: str) -> None:
        await self._emails.update_one({"_id": email_id}, {"$set": {"sent": True}})

    async def lease(self, holder: str, now: datetime, until: datetime) -> bool:
        try:
            await self._lease.update_one(
                {"_id": "cycle", "$or": [{"holder": holder}, {"until_ms": {"$lte": to_ms(now)}}]},
                {"$set": {"holder": holder, "until_ms": to_ms(until)}}, upsert=True)
        except DuplicateKeyError:  # held by another, whose lease runs
            return False
        return True

