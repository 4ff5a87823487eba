"""What a period costs: the terms in force (trials and unpaid subscriptions change
the caps), base price lines prorated over the plan segments of the period, overage
lines above the included units, and the totals. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from services.billing.models import (
    CAPPABLE,
    UNIT_WORDS,
    InvoiceLine,
    LineKind,
    Plan,
    PlanUnit,
    State,
    Subscription,
    Unit,
    UnitUsage,
    amount_minor,
    prorated_micros,
    tax_of,
)

FREE_PLAN = "free"  # what a cancelled or lapsed trial falls back to; an unpaid app's caps
INTERNAL_PLAN = "internal"  # the operator's own apps (outside organizations): no caps


def terms(subscription: Subscription, plans: Mapping[str, Plan]) -> dict[Unit, PlanUnit]:
    """The unit terms in force: the plan's; on a trial, capped at the included units
    with no overage; unpaid, the capped units held to the free plan's included units."""
    plan = plans[subscription.plan_id]
    found = {unit: plan.unit(unit) for unit in Unit}
    if subscription.state is State.TRIALING:
        found = {unit: replace(t, overage_price_micros=0,
                               hard_cap=t.included if unit in CAPPABLE else t.hard_cap)
                 for unit, t in found.items()}
    elif subscription.state is State.UNPAID and FREE_PLAN in plans:
        free = plans[FREE_PLAN]
        found = {unit: replace(t, hard_cap=free.unit(unit).included) if unit in CAPPABLE else t
                 for unit, t in found.items()}
    return found


def unit_usage(subscription: Subscription, plans: Mapping[str, Plan],
               used: Mapping[Unit, int]) -> tuple[UnitUsage, ...]:
    """Every unit the plan names or that was used, with its terms."""
    found = terms(subscription, plans)
    named = {t.unit for t in plans[subscription.plan_id].units}
    return tuple(UnitUsage(unit, used.get(unit, 0), found[unit].included, found[unit].hard_cap,
                           found[unit].overage_price_micros)
                 for unit in Unit if unit in named or used.get(unit, 0))


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def base_lines(subscription: Subscription, plans: Mapping[str, Plan]) -> list[InvoiceLine]:
    """A line per plan segment of the period: its base price for the time it lasted
    (to the millisecond, rounded half up), waived on a trial."""
    whole = subscription.period_end - subscription.period_start
    lines = []
    segments = subscription.segments
    for index, segment in enumerate(segments):
        stop = (segments[index + 1].start if index + 1 < len(segments)
                else subscription.period_end)
        if stop <= segment.start:
            continue
        plan = plans[segment.plan_id]
        price = 0 if segment.trial else prorated_micros(plan.base_price_micros,
                                                         stop - segment.start, whole)
        span = f"{_day(segment.start)} to {_day(stop - timedelta(milliseconds=1))}"
        trial = " (trial)" if segment.trial else ""
        lines.append(InvoiceLine(LineKind.BASE, f"{plan.display_name} plan{trial}, {span}",
                                 1, price, amount_minor(1, price), plan_id=plan.plan_id))
    return lines


def overage_lines(usage: tuple[UnitUsage, ...]) -> list[InvoiceLine]:
    """A line per unit used above its included amount, at the plan's overage price
    (`unit_usage` took the terms in force)."""
    lines = []
    for counted in usage:
        price = counted.overage_price_micros
        if counted.billable:
            lines.append(InvoiceLine(
                LineKind.OVERAGE,
                f"{UNIT_WORDS[counted.unit].capitalize()} above the {counted.included:,} included",
                counted.billable, price, amount_minor(counted.billable, price),
                unit=counted.unit))
    return lines


def totals(lines: list[InvoiceLine], tax_rate_bps: int) -> tuple[int, int, int]:
    """(subtotal, tax, total) in minor units: tax rounded once, on the subtotal."""
    subtotal = sum(line.amount_minor for line in lines)
    tax = tax_of(subtotal, tax_rate_bps)
    return subtotal, tax, subtotal + tax
