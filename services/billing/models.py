"""Billing: plans, subscriptions, usage, invoices and money.

Money never touches a float. Prices are integer micros of the currency unit
(1 EUR = 1,000,000 micros, so a message can cost 0.0001 EUR = 100 micros); amounts
on invoices are integer minor units (cents). A line's amount is its quantity times its
unit price, rounded half up to the cent once; tax is rounded once per invoice.

A billing period is a calendar month, UTC: its usage is exactly the analytics month
bucket (services/analytics). An app's subscription holds the plan segments of its
current period (an upgrade starts a new segment at once; a downgrade waits for the
period's end), and the invoice of a period bills each segment's base price for the
time it lasted, and usage above the included units of the plan in force at the end
(the largest of the period: plans only grow within one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

MICROS_PER_MINOR = 10_000  # currencies with two decimals (EUR, USD, GBP …)
BPS = 10_000  # basis points: tax_rate_bps 1900 = 19 %


class Unit(enum.StrEnum):
    """What is metered (the contract's Unit, lower case)."""

    MONTHLY_ACTIVE_USERS = "monthly_active_users"
    MESSAGES = "messages"
    PEAK_CONNECTIONS = "peak_connections"
    STORAGE_GIB = "storage_gib"
    WEBHOOK_DELIVERIES = "webhook_deliveries"
    API_CALLS = "api_calls"


UNIT_WORDS = {Unit.MONTHLY_ACTIVE_USERS: "monthly active users",
              Unit.MESSAGES: "messages", Unit.PEAK_CONNECTIONS: "peak concurrent connections",
              Unit.STORAGE_GIB: "GiB of storage", Unit.WEBHOOK_DELIVERIES: "webhook deliveries",
              Unit.API_CALLS: "API calls"}
# Units an action can be refused for past the hard cap (the others only warn and bill).
CAPPABLE = frozenset({Unit.MONTHLY_ACTIVE_USERS, Unit.MESSAGES, Unit.PEAK_CONNECTIONS,
                      Unit.STORAGE_GIB})
THRESHOLDS = (80, 100)  # percent of the included units that warn


class State(enum.StrEnum):
    """A subscription's state (the contract's Subscription.State)."""

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a payment failed; retrying
    UNPAID = "unpaid"  # retries exhausted: capped to the free plan's units


class InvoiceState(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"  # credited in full before it was paid


class LineKind(enum.StrEnum):
    BASE = "base"
    OVERAGE = "overage"


@dataclass(frozen=True, slots=True)
class PlanUnit:
    unit: Unit
    included: int  # per period
    overage_price_micros: int = 0  # per unit above `included`; 0: no overage sold
    hard_cap: int = 0  # 0: none; else actions that would pass it are refused


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    display_name: str
    currency: str  # ISO 4217, upper case
    base_price_micros: int  # per period
    units: tuple[PlanUnit, ...]
    rate_limits: str  # the settings' rate-limit plan applied to the app (`plans`)
    description: str = ""
    trial_days: int = 0
    organizations: tuple[str, ...] = ()  # a custom plan: only these organizations
    archived: bool = False
    rank: int = 0  # upgrades go up (by base price, then rank)
    create_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    update_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    version: int = 1

    def unit(self, unit: Unit) -> PlanUnit:
        for found in self.units:
            if found.unit is unit:
                return found
        return PlanUnit(unit, 0)

    def above(self, other: Plan) -> bool:
        """Whether moving from `other` to this plan is an upgrade (at once)."""
        return (self.base_price_micros, self.rank) > (other.base_price_micros, other.rank)

    def offered_to(self, organization_id: str) -> bool:
        return not self.archived and (not self.organizations
                                      or organization_id in self.organizations)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a period on one plan (`trial`: its base price is waived)."""

    start: datetime
    plan_id: str
    trial: bool = False


@dataclass(frozen=True, slots=True)
class Subscription:
    app_id: str
    organization_id: str  # "" for an app outside organizations (not invoiced)
    plan_id: str
    state: State
    period_start: datetime
    period_end: datetime
    segments: tuple[Segment, ...]  # of the current period, in time order
    trial_end: datetime | None = None
    trialed: bool = False  # a trial was used (one per app)
    pending_plan_id: str = ""  # a downgrade at the period's end
    cancel_at_period_end: bool = False
    past_due_since: datetime | None = None
    update_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    version: int = 1

    def next_version(self, now: datetime, **changes: object) -> Subscription:
        return replace(self, update_time=now, version=self.version + 1, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    kind: LineKind
    description: str
    quantity: int
    unit_price_micros: int
    amount_minor: int
    unit: Unit | None = None
    plan_id: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    """A payment method as shown (the card itself stays with the provider)."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class BillingAccount:
    organization_id: str
    email: str = ""
    legal_name: str = ""
    address: str = ""  # lines separated by "\n"
    country: str = ""  # ISO 3166-1 alpha-2
    tax_id: str = ""
    tax_rate_bps: int = 0  # set by the operator from country and VAT status
    customer_id: str = ""  # the payment provider's customer
    payment_method_id: str = ""
    card: Card | None = None
    update_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who issues the invoices (the operator's company)."""

    name: str
    address: str = ""
    tax_id: str = ""
    invoice_prefix: str = "INV"
    credit_note_prefix: str = "CN"
    key: str = "default"  # numbering series are per issuer


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    organization_id: str
    app_id: str
    period_start: datetime
    period_end: datetime
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal_minor: int
    tax_rate_bps: int
    tax_minor: int
    total_minor: int
    state: InvoiceState = InvoiceState.DRAFT
    number: int | None = None  # gapless per issuer, taken when finalized
    display_number: str = ""
    issuer: str = "default"
    bill_to: BillingAccount | None = None  # as it was when issued
    create_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    issue_time: datetime | None = None
    due_time: datetime | None = None
    paid_time: datetime | None = None
    credited_minor: int = 0
    pdf_key: str = ""
    pdf_sha256: str = ""
    emailed: bool = False
    attempts: int = 0  # payment attempts made
    next_attempt_time: datetime | None = None
    last_error: str = ""  # the last decline's code
    payment_intent: str = ""
    action_secret: str = ""  # what the cardholder confirms a 3-D Secure payment with
    version: int = 1

    @property
    def amount_due_minor(self) -> int:
        return max(0, self.total_minor - self.credited_minor)


def advance_at(invoice: Invoice) -> datetime | None:
    """When the invoice next has work to do (None: none): a draft, to issue; an issued
    invoice not yet rendered or emailed; an open one, its next payment attempt."""
    if invoice.state is InvoiceState.DRAFT:
        return invoice.create_time
    if invoice.issue_time is not None and not (invoice.pdf_key and invoice.emailed):
        return invoice.issue_time
    if invoice.state is InvoiceState.OPEN:
        return invoice.next_attempt_time
    return None


def display_number(prefix: str, issued: datetime, number: int) -> str:
    """`INV-2026-000042`: the year is for people; the series does not restart."""
    return f"{prefix}-{issued.year:04d}-{number:06d}"


@dataclass(frozen=True, slots=True)
class CreditNote:
    credit_note_id: str
    organization_id: str
    invoice_id: str
    amount_minor: int  # tax included
    reason: str
    number: int = 0
    display_number: str = ""
    issue_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    refund_id: str = ""


@dataclass(frozen=True, slots=True)
class UnitUsage:
    unit: Unit
    used: int
    included: int
    hard_cap: int
    overage_price_micros: int = 0  # 0: none sold (nothing above included is billed)

    @property
    def percent(self) -> int:
        return 0 if self.included <= 0 else self.used * 100 // self.included

    @property
    def billable(self) -> int:
        """Units billed as overage: above the included ones, not past the hard cap
        (what slipped past it before the refusals began is counted, not billed); none
        when the plan sells none."""
        if not self.overage_price_micros:
            return 0
        ceiling = self.used if not self.hard_cap else min(self.used, self.hard_cap)
        return max(0, ceiling - self.included)


@dataclass(frozen=True, slots=True)
class Usage:
    app_id: str
    period_start: datetime
    period_end: datetime
    units: tuple[UnitUsage, ...]
    final: bool = False
    as_of: datetime | None = None
    plan_id: str = ""  # the plan in force at the period's end


@dataclass(frozen=True, slots=True)
class Payment:
    """One attempt to collect an invoice: recorded before the provider is asked, so a
    crash between the two is found and resolved (never charged twice)."""

    op_key: str  # "<invoice id>/<attempt>": the provider's idempotency key too
    invoice_id: str
    organization_id: str
    state: str  # sending, succeeded, failed, requires_action
    create_time: datetime
    payment_intent: str = ""
    decline_code: str = ""


@dataclass(frozen=True, slots=True)
class Email:
    """An email billing owes (queued with what caused it, sent until it goes)."""

    email_id: str
    to: str
    subject: str
    text: str
    create_time: datetime
    attachment_name: str = ""  # a PDF from the blob store, attached as this file
    attachment_key: str = ""


# Period arithmetic (calendar months, UTC) and money.

def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_after(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_of(moment: datetime) -> tuple[datetime, datetime]:
    start = month_start(moment)
    return start, month_after(start)


def period_id(start: datetime) -> str:
    return f"{start.year:04d}-{start.month:02d}"


def amount_minor(quantity: int, price_micros: int) -> int:
    """quantity x price, in minor units, rounded half up (amounts are never negative
    but credits, whose sign is applied after rounding)."""
    return (quantity * price_micros + MICROS_PER_MINOR // 2) // MICROS_PER_MINOR


def prorated_micros(price_micros: int, part: timedelta, whole: timedelta) -> int:
    """`price` for `part` of `whole`, in micros, rounded half up (to the micro)."""
    numerator = price_micros * int(part.total_seconds() * 1000)
    denominator = int(whole.total_seconds() * 1000)
    return (2 * numerator + denominator) // (2 * denominator)


def tax_of(subtotal_minor: int, rate_bps: int) -> int:
    return (subtotal_minor * rate_bps + BPS // 2) // BPS


def format_minor(amount: int, currency: str) -> str:
    """1234567 EUR → "12,345.67 EUR" (no locale: invoices read the same everywhere)."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def format_micros(price: int, currency: str) -> str:
    """A unit price, with as many decimals as it needs (at least two)."""
    whole, fraction = divmod(price, 1_000_000)
    digits = f"{fraction:06d}".rstrip("0")
    return f"{whole:,}.{digits.ljust(2, '0')} {currency}"

