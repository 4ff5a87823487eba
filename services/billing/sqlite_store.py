"""Billing on SQLite: each record a JSON document (services/billing/codec.py) beside
the columns its queries and constraints need."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

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
from services.billing.store import OPEN_PAYMENT_STATES
from services.core.clock import to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.events import DomainEvent
from services.events.sqlite_log import SqliteEventLog

T = TypeVar("T")

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE billing_plans (plan_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " doc TEXT NOT NULL)",
    "CREATE TABLE billing_accounts (organization_id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    # The app's rows go when the app is purged (offboarding); invoices stay (billed_app).
    "CREATE TABLE billing_subscriptions (app_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " due_ms INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX billing_subscriptions_due ON billing_subscriptions (due_ms)",
    "CREATE TABLE billing_thresholds (app_id TEXT NOT NULL, period_ms INTEGER NOT NULL,"
    " unit TEXT NOT NULL, threshold INTEGER NOT NULL,"
    " PRIMARY KEY (app_id, period_ms, unit, threshold)) WITHOUT ROWID",
    "CREATE TABLE billing_storage (app_id TEXT NOT NULL, period_ms INTEGER NOT NULL,"
    " gib INTEGER NOT NULL, PRIMARY KEY (app_id, period_ms)) WITHOUT ROWID",
    "CREATE TABLE billing_usage (app_id TEXT NOT NULL, period_ms INTEGER NOT NULL,"
    " doc TEXT NOT NULL, PRIMARY KEY (app_id, period_ms)) WITHOUT ROWID",
    "CREATE TABLE billing_invoices (invoice_id TEXT PRIMARY KEY,"
    " organization_id TEXT NOT NULL, billed_app TEXT NOT NULL, period_ms INTEGER NOT NULL,"
    " issuer TEXT NOT NULL, number INTEGER, issue_ms INTEGER, advance_ms INTEGER,"
    " version INTEGER NOT NULL, doc TEXT NOT NULL,"
    " UNIQUE (billed_app, period_ms), UNIQUE (issuer, number))",
    "CREATE INDEX billing_invoices_by_org ON billing_invoices (organization_id, issue_ms)",
    "CREATE INDEX billing_invoices_to_advance ON billing_invoices (advance_ms)"
    " WHERE advance_ms IS NOT NULL",
    "CREATE TABLE billing_sequences (issuer TEXT NOT NULL, series TEXT NOT NULL,"
    " next INTEGER NOT NULL, PRIMARY KEY (issuer, series)) WITHOUT ROWID",
    "CREATE TABLE billing_payments (op_key TEXT PRIMARY KEY, invoice_id TEXT NOT NULL,"
    " state TEXT NOT NULL, create_ms INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE UNIQUE INDEX billing_payments_open ON billing_payments (invoice_id)"
    " WHERE state IN ('sending', 'requires_action')",
    "CREATE TABLE billing_provider_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL)",
    "CREATE TABLE billing_credit_notes (credit_note_id TEXT PRIMARY KEY,"
    " organization_id TEXT NOT NULL, request_id TEXT NOT NULL UNIQUE,"
    " issue_ms INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE billing_emails (email_id TEXT PRIMARY KEY, create_ms INTEGER NOT NULL,"
    " sent INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX billing_emails_pending ON billing_emails (create_ms) WHERE sent = 0",
), (
    "CREATE TABLE billing_lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
    " until_ms INTEGER NOT NULL)",
))


def _json(value: Any) -> str:
    return json.dumps(to_doc(value), separators=(",", ":"))


def _load(cls: type[T], text: str) -> T:
    return from_doc(cls, json.loads(text))


def _due_ms(subscription: Subscription) -> int:
    due = subscription.period_end
    if subscription.trial_end is not None and subscription.trial_end < due:
        due = subscription.trial_end
    return to_ms(due)


def _optional_ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def _put_invoice(conn: sqlite3.Connection, invoice: Invoice, expected: int | None) -> bool:
    values = (invoice.issuer, invoice.number, _optional_ms(invoice.issue_time),
              _optional_ms(advance_at(invoice)), invoice.version, _json(invoice))
    if expected is None:
        return conn.execute(
            "INSERT OR IGNORE INTO billing_invoices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (invoice.invoice_id, invoice.organization_id, invoice.app_id,
             to_ms(invoice.period_start), *values)).rowcount == 1
    return conn.execute(
        "UPDATE billing_invoices SET issuer = ?, number = ?, issue_ms = ?, advance_ms = ?,"
        " version = ?, doc = ? WHERE invoice_id = ? AND version = ?",
        (*values, invoice.invoice_id, expected)).rowcount == 1


def _take_number(conn: sqlite3.Connection, issuer: str, series: str) -> int:
    """The series' next number, taken in the running transaction (gapless: a rollback
    gives it back)."""
    conn.execute("INSERT OR IGNORE INTO billing_sequences VALUES (?, ?, 1)", (issuer, series))
    row = conn.execute("UPDATE billing_sequences SET next = next + 1 WHERE issuer = ?"
                       " AND series = ? RETURNING next - 1", (issuer, series)).fetchone()
    return int(row[0])


class SqliteBillingStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("billing", MIGRATIONS)

    async def _one(self, sql: str, args: tuple[Any, ...], cls: type[T]) -> T | None:
        def query(conn: sqlite3.Connection) -> T | None:
            row = conn.execute(sql, args).fetchone()
            return None if row is None else _load(cls, row[0])

        return await self._db.read(query)

    async def _many(self, sql: str, args: tuple[Any, ...], cls: type[T]) -> list[T]:
        def query(conn: sqlite3.Connection) -> list[T]:
            return [_load(cls, row[0]) for row in conn.execute(sql, args)]

        return await self._db.read(query)

    async def _changed(self, sql: str, args: tuple[Any, ...]) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, args).rowcount == 1

        return await self._db.write(tx)

    # Plans.
    async def get_plan(self, plan_id: str) -> Plan | None:
        return await self._one("SELECT doc FROM billing_plans WHERE plan_id = ?", (plan_id,),
                               Plan)

    async def list_plans(self) -> list[Plan]:
        return await self._many("SELECT doc FROM billing_plans ORDER BY plan_id", (), Plan)

    async def create_plan(self, plan: Plan) -> bool:
        return await self._changed("INSERT OR IGNORE INTO billing_plans VALUES (?, ?, ?)",
                                   (plan.plan_id, plan.version, _json(plan)))

    async def update_plan(self, plan: Plan, expected_version: int) -> bool:
        return await self._changed(
            "UPDATE billing_plans SET version = ?, doc = ? WHERE plan_id = ? AND version = ?",
            (plan.version, _json(plan), plan.plan_id, expected_version))

    # Accounts.
    async def get_account(self, organization_id: str) -> BillingAccount | None:
        return await self._one("SELECT doc FROM billing_accounts WHERE organization_id = ?",
                               (organization_id,), BillingAccount)

    async def put_account(self, account: BillingAccount) -> None:
        await self._changed("INSERT INTO billing_accounts VALUES (?, ?) ON CONFLICT"
                            " (organization_id) DO UPDATE SET doc = excluded.doc",
                            (account.organization_id, _json(account)))

    # Subscriptions.
    async def get_subscription(self, app_id: str) -> Subscription | None:
        return await self._one("SELECT doc FROM billing_subscriptions WHERE app_id = ?",
                               (app_id,), Subscription)

    async def create_subscription(self, subscription: Subscription) -> bool:
        return await self._changed(
            "INSERT OR IGNORE INTO billing_subscriptions VALUES (?, ?, ?, ?)",
            (subscription.app_id, subscription.version, _due_ms(subscription),
             _json(subscription)))

    async def update_subscription(self, subscription: Subscription, expected_version: int
                                  ) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return _update_subscription(conn, subscription, expected_version)

        return await self._db.write(tx)

    async def subscriptions(self, after_app_id: str, limit: int) -> list[Subscription]:
        return await self._many("SELECT doc FROM billing_subscriptions WHERE app_id > ?"
                                " ORDER BY app_id LIMIT ?", (after_app_id, limit), Subscription)

    async def subscriptions_due(self, before: datetime, limit: int) -> list[Subscription]:
        return await self._many("SELECT doc FROM billing_subscriptions WHERE due_ms <= ?"
                                " ORDER BY due_ms LIMIT ?", (to_ms(before), limit),
                                Subscription)

    # Thresholds and storage.
    async def claim_threshold(self, app_id: str, period_start: datetime, unit: Unit,
                              threshold: int, event: DomainEvent, emails: Sequence[Email]
                              ) -> bool:
        def body(conn: sqlite3.Connection, emit: Callable[[DomainEvent], None]) -> bool:
            if not conn.execute("INSERT OR IGNORE INTO billing_thresholds VALUES (?, ?, ?, ?)",
                                (app_id, to_ms(period_start), unit.value, threshold)).rowcount:
                return False
            _queue(conn, emails)
            emit(event)
            return True

        return await self._log.transact(body)

    async def thresholds(self, app_id: str, period_start: datetime) -> set[tuple[Unit, int]]:
        def query(conn: sqlite3.Connection) -> set[tuple[Unit, int]]:
            return {(Unit(row[0]), int(row[1])) for row in conn.execute(
                "SELECT unit, threshold FROM billing_thresholds WHERE app_id = ?"
                " AND period_ms = ?", (app_id, to_ms(period_start)))}

        return await self._db.read(query)

    async def record_storage(self, app_id: str, period_start: datetime, gib: int) -> None:
        await self._changed("INSERT INTO billing_storage VALUES (?, ?, ?) ON CONFLICT"
                            " (app_id, period_ms) DO UPDATE SET gib = max(gib, excluded.gib)",
                            (app_id, to_ms(period_start), gib))

    async def storage_peak(self, app_id: str, period_start: datetime) -> int:
        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT gib FROM billing_storage WHERE app_id = ?"
                               " AND period_ms = ?", (app_id, to_ms(period_start))).fetchone()
            return 0 if row is None else int(row[0])

        return await self._db.read(query)

    # Closing.
    async def close_period(self, invoice: Invoice | None, usage: Usage, renewed: Subscription,
                           expected_version: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            if not _update_subscription(conn, renewed, expected_version):
                return False
            if invoice is not None and not _put_invoice(conn, invoice, None):
                raise _Conflict
            if not conn.execute("INSERT OR IGNORE INTO billing_usage VALUES (?, ?, ?)",
                                (usage.app_id, to_ms(usage.period_start),
                                 _json(usage))).rowcount:
                raise _Conflict
            return True

        try:
            return await self._db.write(tx)
        except _Conflict:
            return False

    async def get_usage(self, app_id: str, period_start: datetime) -> Usage | None:
        return await self._one("SELECT doc FROM billing_usage WHERE app_id = ? AND"
                               " period_ms = ?", (app_id, to_ms(period_start)), Usage)

    # Invoices.
    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        return await self._one("SELECT doc FROM billing_invoices WHERE invoice_id = ?",
                               (invoice_id,), Invoice)

    async def list_invoices(self, organization_id: str, before: tuple[int, str] | None,
                            limit: int) -> list[Invoice]:
        after: str = ""
        args: tuple[Any, ...] = (organization_id,)
        if before is not None:
            after, args = " AND (issue_ms, invoice_id) < (?, ?)", (organization_id, *before)
        return await self._many(
            "SELECT doc FROM billing_invoices WHERE organization_id = ? AND issue_ms IS NOT"
            f" NULL{after} ORDER BY issue_ms DESC, invoice_id DESC LIMIT ?", (*args, limit),
            Invoice)

    async def invoices_to_advance(self, now: datetime, limit: int) -> list[Invoice]:
        return await self._many("SELECT doc FROM billing_invoices WHERE advance_ms IS NOT NULL"
                                " AND advance_ms <= ? ORDER BY advance_ms LIMIT ?",
                                (to_ms(now), limit), Invoice)

    async def finalize_invoice(self, invoice_id: str, issuer: str, prefix: str,
                               issue_time: datetime, due_time: datetime) -> Invoice | None:
        def tx(conn: sqlite3.Connection) -> Invoice | None:
            row = conn.execute("SELECT doc FROM billing_invoices WHERE invoice_id = ?",
                               (invoice_id,)).fetchone()
            draft = None if row is None else _load(Invoice, row[0])
            if draft is None or draft.state is not InvoiceState.DRAFT:
                return None
            number = _take_number(conn, issuer, "invoice")
            issued = replace(draft, state=InvoiceState.OPEN, number=number, issuer=issuer,
                             display_number=display_number(prefix, issue_time, number),
                             issue_time=issue_time, due_time=due_time,
                             next_attempt_time=issue_time, version=draft.version + 1)
            if not _put_invoice(conn, issued, draft.version):
                raise AssertionError("an invoice changed inside its own transaction")
            return issued

        return await self._db.write(tx)

    async def update_invoice(self, invoice: Invoice, expected_version: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return _put_invoice(conn, invoice, expected_version)

        return await self._db.write(tx)

    # Payments.
    async def begin_payment(self, payment: Payment) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute("INSERT INTO billing_payments VALUES (?, ?, ?, ?, ?)",
                             (payment.op_key, payment.invoice_id, payment.state,
                              to_ms(payment.create_time), _json(payment)))
            except sqlite3.IntegrityError:
                return False
            return True

        return await self._db.write(tx)

    async def finish_payment(self, op_key: str, state: str, payment_intent: str,
                             decline_code: str) -> Payment | None:
        def tx(conn: sqlite3.Connection) -> Payment | None:
            row = conn.execute("SELECT doc FROM billing_payments WHERE op_key = ?",
                               (op_key,)).fetchone()
            if row is None:
                return None
            done = replace(_load(Payment, row[0]), state=state,
                           payment_intent=payment_intent, decline_code=decline_code)
            conn.execute("UPDATE billing_payments SET state = ?, doc = ? WHERE op_key = ?",
                         (state, _json(done), op_key))
            return done

        return await self._db.write(tx)

    async def get_payment(self, op_key: str) -> Payment | None:
        return await self._one("SELECT doc FROM billing_payments WHERE op_key = ?", (op_key,),
                               Payment)

    async def open_payments(self, before: datetime) -> list[Payment]:
        return await self._many(
            "SELECT doc FROM billing_payments WHERE state = ? AND create_ms <= ?"
            " ORDER BY create_ms", (OPEN_PAYMENT_STATES[0], to_ms(before)), Payment)

    async def record_provider_event(self, event_id: str, event_type: str, time: datetime
                                    ) -> bool:
        return await self._changed(
            "INSERT OR IGNORE INTO billing_provider_events VALUES (?, ?, ?)",
            (event_id, event_type, to_ms(time)))

    # Credit notes.
    async def create_credit_note(self, note: CreditNote, issuer: str, prefix: str,
                                 request_id: str) -> tuple[CreditNote, Invoice] | None:
        def tx(conn: sqlite3.Connection) -> tuple[CreditNote, Invoice] | None:
            row = conn.execute("SELECT doc FROM billing_invoices WHERE invoice_id = ?",
                               (note.invoice_id,)).fetchone()
            invoice = _load(Invoice, row[0])
            done = conn.execute("SELECT doc FROM billing_credit_notes WHERE request_id = ?",
                                (request_id,)).fetchone()
            if done is not None:
                return _load(CreditNote, done[0]), invoice
            if invoice.credited_minor + note.amount_minor > invoice.total_minor:
                return None
            number = _take_number(conn, issuer, "credit_note")
            numbered = replace(note, number=number,
                               display_number=display_number(prefix, note.issue_time,
                                                             number))
            conn.execute("INSERT INTO billing_credit_notes VALUES (?, ?, ?, ?, ?)",
                         (numbered.credit_note_id, numbered.organization_id, request_id,
                          to_ms(numbered.issue_time), _json(numbered)))
            credited = invoice.credited_minor + note.amount_minor
            state = (InvoiceState.VOID if invoice.state is InvoiceState.OPEN
                     and credited >= invoice.total_minor else invoice.state)
            changed = replace(invoice, credited_minor=credited, state=state,
                              version=invoice.version + 1)
            _put_invoice(conn, changed, invoice.version)
            return numbered, changed

        return await self._db.write(tx)

    async def credit_note_refunded(self, credit_note_id: str, refund_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT doc FROM billing_credit_notes WHERE credit_note_id = ?",
                               (credit_note_id,)).fetchone()
            note = replace(_load(CreditNote, row[0]), refund_id=refund_id)
            conn.execute("UPDATE billing_credit_notes SET doc = ? WHERE credit_note_id = ?",
                         (_json(note), credit_note_id))

        await self._db.write(tx)

    async def list_credit_notes(self, organization_id: str, before: tuple[int, str] | None,
                                limit: int) -> list[CreditNote]:
        after: str = ""
        args: tuple[Any, ...] = (organization_id,)
        if before is not None:
            after, args = " AND (issue_ms, credit_note_id) < (?, ?)", (organization_id,
                                                                         *before)
        return await self._many(
            f"SELECT doc FROM billing_credit_notes WHERE organization_id = ?{after}"
            " ORDER BY issue_ms DESC, credit_note_id DESC LIMIT ?", (*args, limit), CreditNote)

    # Emails.
    async def queue_emails(self, emails: Sequence[Email]) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            _queue(conn, emails)

        await self._db.write(tx)

    async def pending_emails(self, limit: int) -> list[Email]:
        return await self._many("SELECT doc FROM billing_emails WHERE sent = 0"
                                " ORDER BY create_ms LIMIT ?", (limit,), Email)

    async def email_sent(self, email_id: str) -> None:
        await self._changed("UPDATE billing_emails SET sent = 1 WHERE email_id = ?",
                            (email_id,))

    async def lease(self, holder: str, now: datetime, until: datetime) -> bool:
        return await self._changed(
            "INSERT INTO billing_lease VALUES ('cycle', ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET holder = excluded.holder, until_ms = excluded.until_ms"
            " WHERE holder = excluded.holder OR until_ms <= ?",
            (holder, to_ms(until), to_ms(now)))


class _Conflict(Exception):
    """Rolls a transaction back (the period's invoice exists)."""


def _update_subscription(conn: sqlite3.Connection, subscription: Subscription,
                         expected_version: int) -> bool:
    return conn.execute(
        "UPDATE billing_subscriptions SET version = ?, due_ms = ?, doc = ?"
        " WHERE app_id = ? AND version = ?",
        (subscription.version, _due_ms(subscription), _json(subscription),
         subscription.app_id, expected_version)).rowcount == 1


def _queue(conn: sqlite3.Connection, emails: Sequence[Email]) -> None:
    conn.executemany("INSERT OR IGNORE INTO billing_emails VALUES (?, ?, 0, ?)",
                     [(e.email_id, to_ms(e.create_time), _json(e)) for e in emails])
