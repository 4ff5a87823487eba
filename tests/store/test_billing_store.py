"""The billing store on both engines: gapless invoice numbers under concurrent
finalizations (and with some of them failing), a period closed once, a threshold
fired once with its event and emails, the payment journal's single open attempt per
invoice, provider events recorded once, credit notes numbered and idempotent."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from caas.events.v1 import events_pb2

from services.billing.models import (
    BillingAccount,
    Card,
    CreditNote,
    Email,
    Invoice,
    InvoiceLine,
    InvoiceState,
    LineKind,
    Payment,
    Plan,
    PlanUnit,
    Segment,
    State,
    Subscription,
    Unit,
    UnitUsage,
    Usage,
)
from services.compliance.offboarding import KEEP
from services.core.events import DomainEvent
from services.runtime import Stores

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
JAN = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def subscription(app_id: str, start: datetime = NOV, end: datetime = DEC) -> Subscription:
    return Subscription(app_id, "org", "free", State.ACTIVE, start, end,
                        (Segment(start, "free"),), update_time=start)


def draft(invoice_id: str, app_id: str = "app", period: datetime = NOV,
          total: int = 1190) -> Invoice:
    return Invoice(invoice_id, "org", app_id, period, DEC, "EUR",
                   (InvoiceLine(LineKind.BASE, "Standard", 1, 10_000_000, 1000, plan_id="s"),),
                   1000, 1900, total - 1000, total, create_time=NOW)


def usage(app_id: str = "app") -> Usage:
    return Usage(app_id, NOV, DEC, (UnitUsage(Unit.MESSAGES, 120, 100, 150, 100),), final=True)


async def test_plans_are_created_once_and_updated_by_version(stores: Stores) -> None:
    plan = Plan("gold", "Gold", "EUR", 9_000_000, (PlanUnit(Unit.MESSAGES, 10, 100, 20),),
                "standard")
    assert await stores.billing.create_plan(plan)
    assert not await stores.billing.create_plan(replace(plan, display_name="Other"))
    assert await stores.billing.get_plan("gold") == plan
    changed = replace(plan, display_name="Gold 2", version=2)
    assert await stores.billing.update_plan(changed, 1)
    assert not await stores.billing.update_plan(replace(changed, version=3), 1)  # stale
    assert [p.display_name for p in await stores.billing.list_plans()] == ["Gold 2"]
    assert await stores.billing.get_plan("nope") is None


async def test_accounts_are_kept_whole(stores: Stores) -> None:
    account = BillingAccount("org", "a@b.c", "Müller GmbH", "Street 1\nBerlin", "DE",
                             "DE123", 1900, "cus_1", "pm_1", Card("visa", "4242", 4, 2030))
    await stores.billing.put_account(account)
    assert await stores.billing.get_account("org") == account
    await stores.billing.put_account(replace(account, email="x@y.z"))
    found = await stores.billing.get_account("org")
    assert found is not None and found.email == "x@y.z"


async def test_subscriptions_change_by_version_and_come_due(stores: Stores) -> None:
    first = subscription("a1")
    assert await stores.billing.create_subscription(first)
    assert not await stores.billing.create_subscription(first)
    await stores.billing.create_subscription(subscription("a2", DEC, JAN))
    moved = first.next_version(NOW, plan_id="standard")
    assert await stores.billing.update_subscription(moved, 1)
    assert not await stores.billing.update_subscription(moved.next_version(NOW), 1)
    assert (await stores.billing.get_subscription("a1")) == moved
    due = await stores.billing.subscriptions_due(NOW, 10)
    assert [s.app_id for s in due] == ["a1"]
    trial = subscription("a3", DEC, JAN)
    trial = replace(trial, state=State.TRIALING, trial_end=DEC + timedelta(days=1))
    await stores.billing.create_subscription(trial)
    later = await stores.billing.subscriptions_due(DEC + timedelta(days=2), 10)
    assert [s.app_id for s in later] == ["a1", "a3"]
    page = await stores.billing.subscriptions("a1", 1)
    assert [s.app_id for s in page] == ["a2"]


async def test_a_threshold_fires_once_with_its_event_and_emails(stores: Stores) -> None:
    event = DomainEvent("billing.usage_threshold", "app", NOW, payload=events_pb2.UsageThreshold(
        threshold_percent=80, used=80, included=100))
    email = Email("e1", "a@b.c", "80 %", "text", NOW)
    head = await stores.events.head("app")
    results = await asyncio.gather(*[
        stores.billing.claim_threshold("app", NOV, Unit.MESSAGES, 80, event, [email])
        for _ in range(5)])
    assert results.count(True) == 1
    assert await stores.billing.thresholds("app", NOV) == {(Unit.MESSAGES, 80)}
    assert await stores.billing.thresholds("app", DEC) == set()
    logged = await stores.events.read("app", head.position, 10)
    assert [e.type for e in logged] == ["billing.usage_threshold"]
    decoded = events_pb2.Event.FromString(logged[0].payload)
    assert decoded.billing_usage_threshold.threshold_percent == 80
    assert [e.email_id for e in await stores.billing.pending_emails(10)] == ["e1"]
    await stores.billing.email_sent("e1")
    assert await stores.billing.pending_emails(10) == []


async def test_storage_keeps_the_period_peak(stores: Stores) -> None:
    for gib in (3, 7, 5):
        await stores.billing.record_storage("app", NOV, gib)
    assert await stores.billing.storage_peak("app", NOV) == 7
    assert await stores.billing.storage_peak("app", DEC) == 0


async def test_a_period_closes_once(stores: Stores) -> None:
    current = subscription("app")
    await stores.billing.create_subscription(current)
    renewed = current.next_version(NOW, period_start=DEC, period_end=JAN,
                                   segments=(Segment(DEC, "free"),))
    results = await asyncio.gather(
        stores.billing.close_period(draft("i1"), usage(), renewed, 1),
        stores.billing.close_period(draft("i2"), usage(), renewed, 1))
    assert sorted(results) == [False, True]
    assert (await stores.billing.get_subscription("app")) == renewed
    assert await stores.billing.get_usage("app", NOV) == usage()
    invoices = [await stores.billing.get_invoice(i) for i in ("i1", "i2")]
    assert sum(1 for i in invoices if i is not None) == 1
    # An invoice of the period exists: a second close (even with a fresh version) fails
    # whole, leaving the subscription as it was.
    again = renewed.next_version(NOW)
    assert not await stores.billing.close_period(draft("i3"), usage(), again, renewed.version)
    assert (await stores.billing.get_subscription("app")) == renewed


async def test_invoice_numbers_are_gapless_under_concurrent_finalizing(stores: Stores) -> None:
    ids = [f"inv{n:03d}" for n in range(40)]
    for number, invoice_id in enumerate(ids):
        current = subscription(f"app{number}")
        await stores.billing.create_subscription(current)
        assert await stores.billing.close_period(
            draft(invoice_id, f"app{number}"), usage(f"app{number}"),
            current.next_version(NOW, period_start=DEC, period_end=JAN), 1)
    due = DEC + timedelta(days=14)
    finalized = await asyncio.gather(*[
        stores.billing.finalize_invoice(i, "default", "INV", NOW, due) for i in ids + ids])
    issued = [i for i in finalized if i is not None]
    assert len(issued) == 40  # each draft once
    assert sorted(i.number or 0 for i in issued) == list(range(1, 41))
    one = next(i for i in issued if i.number == 7)
    assert one.display_number == "INV-2026-000007"
    assert one.state is InvoiceState.OPEN and one.due_time == due
    # Another issuer has its own series.
    current = subscription("other")
    await stores.billing.create_subscription(current)
    await stores.billing.close_period(draft("x1", "other"), usage("other"),
                                      current.next_version(NOW, period_start=DEC,
                                                           period_end=JAN), 1)
    other = await stores.billing.finalize_invoice("x1", "second", "B", NOW, due)
    assert other is not None and other.number == 1


async def test_invoices_list_newest_first_and_come_up_to_advance(stores: Stores) -> None:
    for number in range(3):
        current = subscription(f"app{number}")
        await stores.billing.create_subscription(current)
        await stores.billing.close_period(
            draft(f"i{number}", f"app{number}"), usage(f"app{number}"),
            current.next_version(NOW, period_start=DEC, period_end=JAN), 1)
    assert [i.invoice_id for i in await stores.billing.list_invoices("org", None, 10)] == []
    todo = await stores.billing.invoices_to_advance(NOW, 10)
    assert {i.invoice_id for i in todo} == {"i0", "i1", "i2"}  # drafts
    for number in range(3):
        await stores.billing.finalize_invoice(f"i{number}", "default", "INV",
                                              NOW + timedelta(minutes=number), JAN)
    page = await stores.billing.list_invoices("org", None, 2)
    assert [i.invoice_id for i in page] == ["i2", "i1"]
    last = page[-1]
    assert last.issue_time is not None
    rest = await stores.billing.list_invoices(
        "org", (int(last.issue_time.timestamp() * 1000), last.invoice_id), 2)
    assert [i.invoice_id for i in rest] == ["i0"]
    issued = await stores.billing.get_invoice("i0")
    assert issued is not None
    done = replace(issued, pdf_key="k", emailed=True, state=InvoiceState.PAID,
                   next_attempt_time=None, version=issued.version + 1)
    assert await stores.billing.update_invoice(done, issued.version)
    assert not await stores.billing.update_invoice(done, issued.version)  # stale
    todo = await stores.billing.invoices_to_advance(NOW + timedelta(hours=1), 10)
    assert {i.invoice_id for i in todo} == {"i1", "i2"}  # issued, not yet rendered


async def test_an_invoice_has_one_open_payment_attempt(stores: Stores) -> None:
    first = Payment("inv/1", "inv", "org", "sending", NOW)
    assert await stores.billing.begin_payment(first)
    assert not await stores.billing.begin_payment(Payment("inv/2", "inv", "org", "sending", NOW))
    assert not await stores.billing.begin_payment(first)
    assert [p.op_key for p in await stores.billing.open_payments(NOW)] == ["inv/1"]
    assert await stores.billing.open_payments(NOW - timedelta(seconds=1)) == []
    done = await stores.billing.finish_payment("inv/1", "failed", "pi_1", "card_declined")
    assert done is not None and done.decline_code == "card_declined"
    assert await stores.billing.open_payments(NOW) == []
    assert await stores.billing.begin_payment(Payment("inv/2", "inv", "org", "sending", NOW))
    assert await stores.billing.finish_payment("nope", "failed", "", "") is None
    found = await stores.billing.get_payment("inv/1")
    assert found is not None and found.payment_intent == "pi_1"


async def test_provider_events_are_recorded_once(stores: Stores) -> None:
    results = await asyncio.gather(*[
        stores.billing.record_provider_event("evt_1", "payment_intent.succeeded", NOW)
        for _ in range(4)])
    assert results.count(True) == 1
    assert await stores.billing.record_provider_event("evt_2", "x", NOW)


async def test_credit_notes_are_numbered_idempotent_and_bounded(stores: Stores) -> None:
    current = subscription("app")
    await stores.billing.create_subscription(current)
    await stores.billing.close_period(draft("inv"), usage(), current.next_version(
        NOW, period_start=DEC, period_end=JAN), 1)
    await stores.billing.finalize_invoice("inv", "default", "INV", NOW, JAN)
    note = CreditNote("cn1", "org", "inv", 190, "wrong rate", issue_time=NOW)
    made = await stores.billing.create_credit_note(note, "default", "CN", "r1")
    assert made is not None
    numbered, invoice = made
    assert numbered.number == 1 and numbered.display_number == "CN-2026-000001"
    assert invoice.credited_minor == 190 and invoice.state is InvoiceState.OPEN
    again = await stores.billing.create_credit_note(replace(note, credit_note_id="cn9"),
                                                    "default", "CN", "r1")
    assert again is not None and again[0].credit_note_id == "cn1"  # the same request
    assert await stores.billing.create_credit_note(
        CreditNote("cn2", "org", "inv", 1001, "too much", issue_time=NOW),
        "default", "CN", "r2") is None
    rest = await stores.billing.create_credit_note(
        CreditNote("cn3", "org", "inv", 1000, "the rest", issue_time=NOW + timedelta(1)),
        "default", "CN", "r3")
    assert rest is not None and rest[0].number == 2
    assert rest[1].state is InvoiceState.VOID and rest[1].amount_due_minor == 0
    await stores.billing.credit_note_refunded("cn1", "re_1")
    notes = await stores.billing.list_credit_notes("org", None, 10)
    assert [(n.credit_note_id, n.refund_id) for n in notes] == [("cn3", ""), ("cn1", "re_1")]


async def test_an_apps_offboarding_keeps_its_invoices(stores: Stores) -> None:
    """Invoices and credit notes are accounting records: an app's purge (offboarding)
    removes its subscription, thresholds and usage, not them."""
    current = subscription("gone")
    await stores.billing.create_subscription(current)
    await stores.billing.close_period(draft("inv", "gone"), usage("gone"), current.next_version(
        NOW, period_start=DEC, period_end=JAN), 1)
    await stores.billing.finalize_invoice("inv", "default", "INV", NOW, JAN)
    await stores.billing.create_credit_note(CreditNote("cn", "org", "inv", 10, "x",
                                                       issue_time=NOW), "default", "CN", "r")
    await stores.billing.record_storage("gone", DEC, 3)
    await stores.purge_app("gone", KEEP)
    assert await stores.billing.get_subscription("gone") is None
    assert await stores.billing.get_usage("gone", NOV) is None
    assert await stores.billing.storage_peak("gone", DEC) == 0
    kept = await stores.billing.get_invoice("inv")
    assert kept is not None and kept.number == 1
    assert [n.credit_note_id for n in await stores.billing.list_credit_notes("org", None, 5)
            ] == ["cn"]


async def test_one_holder_runs_the_cycle_until_its_lease_runs_out(stores: Stores) -> None:
    later = NOW + timedelta(minutes=3)
    assert await stores.billing.lease("a", NOW, later)
    assert not await stores.billing.lease("b", NOW + timedelta(minutes=1), later)
    assert await stores.billing.lease("a", NOW + timedelta(minutes=1), later)  # renewed
    assert await stores.billing.lease("b", later, later + timedelta(minutes=3))  # ran out
    assert not await stores.billing.lease("a", later, later + timedelta(minutes=3))
    # The lease is no consumer of the event log's: its purges are not held back.
    event = DomainEvent("billing.usage_threshold", "app", NOW,
                        payload=events_pb2.UsageThreshold(threshold_percent=80))
    await stores.billing.claim_threshold("app", NOV, Unit.MESSAGES, 80, event, [])
    assert await stores.events.purge(NOW + timedelta(seconds=1)) == 1
