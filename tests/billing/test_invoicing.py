"""What a period costs, by hand-checked numbers: base prices prorated over plan
segments to the millisecond, overage above the included units and never past the cap,
trials waived and capped at their included units, unpaid subscriptions held to the
free plan's, rounding half up once per line and once for tax."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.billing.invoicing import base_lines, overage_lines, terms, totals, unit_usage
from services.billing.models import (
    Plan,
    PlanUnit,
    Segment,
    State,
    Subscription,
    Unit,
    UnitUsage,
    amount_minor,
    format_micros,
    format_minor,
    prorated_micros,
    tax_of,
)
from services.billing.subscriptions import downgraded, renewed, trial_ended, upgraded

NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
M = 1_000_000
FREE = Plan("free", "Free", "EUR", 0, (PlanUnit(Unit.MESSAGES, 100, 0, 100),
                                       PlanUnit(Unit.MONTHLY_ACTIVE_USERS, 5, 0, 5)), "free")
PRO = Plan("pro", "Pro", "EUR", 30 * M, (PlanUnit(Unit.MESSAGES, 1_000, 100, 5_000),
                                         PlanUnit(Unit.API_CALLS, 10, 7)), "standard",
           trial_days=14, rank=1)
PLANS = {"free": FREE, "pro": PRO}


def subscription(*segments: Segment, state: State = State.ACTIVE) -> Subscription:
    return Subscription("app", "org", segments[-1].plan_id, state, NOV, DEC, segments)


def test_money_is_integers_rounded_half_up_once() -> None:
    assert amount_minor(5, 10_000) == 5  # 5 x 0.01
    assert amount_minor(1, 5_000) == 1  # 0.005 rounds up
    assert amount_minor(1, 4_999) == 0
    assert amount_minor(3, 3_333) == 1  # 0.009999 → 0.01, rounded once, not per unit
    assert tax_of(1215, 1900) == 231  # 230.85
    assert tax_of(1, 1900) == 0
    assert prorated_micros(30 * M, timedelta(days=15), timedelta(days=30)) == 15 * M
    assert prorated_micros(5 * M, timedelta(hours=302), timedelta(hours=720)) == 2_097_222
    assert format_minor(123456789, "EUR") == "1,234,567.89 EUR"
    assert format_minor(-2000, "EUR") == "-20.00 EUR"
    assert format_micros(100, "EUR") == "0.0001 EUR"
    assert format_micros(30 * M, "EUR") == "30.00 EUR"


def test_an_upgrade_prorates_both_plans_over_the_period() -> None:
    at = datetime(2026, 11, 16, tzinfo=UTC)
    moved = upgraded(subscription(Segment(NOV, "free")), PRO, at, trial=False)
    assert [(s.start, s.plan_id) for s in moved.segments] == [(NOV, "free"), (at, "pro")]
    lines = base_lines(moved, PLANS)
    assert [(line.plan_id, line.amount_minor) for line in lines] == [("free", 0), ("pro", 1500)]
    assert lines[1].description == "Pro plan, 2026-11-16 to 2026-11-30"


def test_usage_is_billed_above_the_included_units_and_never_past_the_cap() -> None:
    on_pro = subscription(Segment(NOV, "pro"))
    usage = unit_usage(on_pro, PLANS, {Unit.MESSAGES: 6_000, Unit.API_CALLS: 13})
    assert [(u.unit, u.used, u.billable) for u in usage] == [
        (Unit.MESSAGES, 6_000, 4_000), (Unit.API_CALLS, 13, 3)]
    lines = overage_lines(usage)
    assert [(line.quantity, line.amount_minor) for line in lines] == [(4_000, 40), (3, 0)]
    subtotal, tax, total = totals(base_lines(on_pro, PLANS) + lines, 2000)
    assert (subtotal, tax, total) == (3040, 608, 3648)
    assert UnitUsage(Unit.MESSAGES, 50, 0, 0, 10).billable == 50  # nothing included, no cap
    assert UnitUsage(Unit.MESSAGES, 50, 0, 0).billable == 0  # none sold: none billed


def test_a_trial_is_free_and_capped_at_its_included_units() -> None:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    trial = upgraded(subscription(Segment(NOV, "free")), PRO, at, trial=True)
    assert trial.state is State.TRIALING and trial.trial_end == at + timedelta(days=14)
    found = terms(trial, PLANS)
    assert (found[Unit.MESSAGES].hard_cap, found[Unit.MESSAGES].overage_price_micros) == (
        1_000, 0)
    assert [line.amount_minor for line in base_lines(trial, PLANS)] == [0, 0]
    ended = trial_ended(trial, at + timedelta(days=14), paid=True)
    assert ended.state is State.ACTIVE and ended.segments[-1] == Segment(
        at + timedelta(days=14), "pro")
    assert [line.amount_minor for line in base_lines(ended, PLANS)] == [0, 0, 700]  # 7 days
    lapsed = trial_ended(trial, at + timedelta(days=14), paid=False)
    assert lapsed.plan_id == "free"


def test_an_unpaid_subscription_is_held_to_the_free_plans_units() -> None:
    unpaid = subscription(Segment(NOV, "pro"), state=State.UNPAID)
    found = terms(unpaid, PLANS)
    assert found[Unit.MESSAGES].hard_cap == 100
    assert found[Unit.API_CALLS].hard_cap == 0  # not cappable: untouched


def test_a_downgrade_waits_for_the_period_and_renews_into_it() -> None:
    on_pro = subscription(Segment(NOV, "pro"))
    at = datetime(2026, 11, 20, tzinfo=UTC)
    down = downgraded(on_pro, FREE, at)
    assert down is not None and (down.pending_plan_id, down.cancel_at_period_end) == (
        "free", True)
    assert downgraded(down, FREE, at) is None  # asked twice: nothing more
    kept = downgraded(down, PRO, at)
    assert kept is not None and kept.pending_plan_id == ""
    next_period = renewed(down, DEC)
    assert (next_period.plan_id, next_period.period_start, next_period.period_end) == (
        "free", DEC, datetime(2027, 1, 1, tzinfo=UTC))
    assert next_period.segments == (Segment(DEC, "free"),)
    assert next_period.version == down.version + 1
