"""Subscriptions: every app has one (created on first need, on the free plan), and
plan changes (upgrades at once, downgrades at the period's end, trials).

Changing a subscription is read, compute, write-if-unchanged (its version), retried
when another change won the race."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from services.apps.store import AppStore
from services.billing.invoicing import FREE_PLAN, INTERNAL_PLAN
from services.billing.models import Plan, Segment, State, Subscription, period_of
from services.billing.store import BillingStore
from services.core.clock import Clock
from services.core.errors import Unavailable, not_found
from services.core.events import DomainEvent, EventBus
from services.core.names import app_name

CHANGED = "billing.subscription_changed"  # bus event: forget the app's cached terms
ATTEMPTS = 5


class Subscriptions:
    def __init__(self, store: BillingStore, apps: AppStore, clock: Clock, bus: EventBus
                 ) -> None:
        self._store = store
        self._apps = apps
        self._clock = clock
        self._bus = bus

    async def get(self, app_id: str) -> Subscription:
        """The app's subscription, made (this period) if it has none: on the free plan
        for an app of an organization, on the internal plan (metered, never capped nor
        invoiced) for the operator's own; NOT_FOUND for an app that does not exist."""
        found = await self._store.get_subscription(app_id)
        if found is not None:
            return found
        app = await self._apps.get_app(app_id)
        if app is None:
            raise not_found("caas.dev/App", app_name(app_id))
        now = self._clock.now()
        start, end = period_of(now)
        plan = FREE_PLAN if app.organization_id else INTERNAL_PLAN
        await self._store.create_subscription(Subscription(
            app_id, app.organization_id, plan, State.ACTIVE, start, end,
            (Segment(start, plan),), update_time=now))
        made = await self._store.get_subscription(app_id)
        assert made is not None
        return made

    async def change(self, app_id: str,
                     change: Callable[[Subscription], Subscription | None]) -> Subscription:
        """Apply `change` (None: nothing to change) to the current subscription,
        retrying on a concurrent change; then tell the process (the quota gate) and
        set the app's rate limits to its plan's."""
        for _ in range(ATTEMPTS):
            current = await self.get(app_id)
            changed = change(current)
            if changed is None:
                return current
            if await self._store.update_subscription(changed, current.version):
                await self._changed(current, changed)
                return changed
        raise Unavailable("UNAVAILABLE", "the subscription kept changing: try again",
                      retry_after=timedelta(seconds=1))

    async def rate_limits(self, app_id: str, plan: Plan) -> None:
        """Give the app the rate limits of its plan."""
        app = await self._apps.get_app(app_id)
        if app is not None and app.plan != plan.rate_limits:
            now = self._clock.now()
            await self._apps.update_app(app_id, now, plan=plan.rate_limits)
            await self._bus.publish(DomainEvent("app.updated", app_id, now))

    async def _changed(self, before: Subscription, after: Subscription) -> None:
        await self.published(after)

    async def published(self, subscription: Subscription) -> None:
        """Tell this process that `subscription` changed (the closer's renewals)."""
        await self._bus.publish(DomainEvent(CHANGED, subscription.app_id,
                                            subscription.update_time))


def upgraded(current: Subscription, plan: Plan, now: datetime, *, trial: bool
             ) -> Subscription:
    """On `plan` from now: a new segment (a trial's when `trial`)."""
    segments = tuple(s for s in current.segments if s.start < now)
    state = State.TRIALING if trial else (
        State.ACTIVE if current.state is State.TRIALING else current.state)
    return current.next_version(
        now, plan_id=plan.plan_id, segments=(*segments, Segment(now, plan.plan_id, trial)),
        state=state, trial_end=now + timedelta(days=plan.trial_days) if trial else None,
        trialed=current.trialed or trial, pending_plan_id="", cancel_at_period_end=False)


def downgraded(current: Subscription, plan: Plan, now: datetime) -> Subscription | None:
    """On `plan` from the period's end (None: nothing changes)."""
    pending = "" if plan.plan_id == current.plan_id else plan.plan_id
    cancel = pending == FREE_PLAN
    if (pending, cancel) == (current.pending_plan_id, current.cancel_at_period_end):
        return None
    return current.next_version(now, pending_plan_id=pending, cancel_at_period_end=cancel)


def renewed(current: Subscription, now: datetime) -> Subscription:
    """The next period's subscription: the pending plan from its start."""
    start, end = current.period_end, period_of(current.period_end)[1]
    plan_id = current.pending_plan_id or current.plan_id
    trial = current.state is State.TRIALING and (current.trial_end or end) > start
    return current.next_version(
        now, plan_id=plan_id, period_start=start, period_end=end,
        segments=(Segment(start, plan_id, trial and plan_id == current.plan_id),),
        pending_plan_id="", cancel_at_period_end=False,
        state=current.state if current.state is not State.TRIALING or trial else State.ACTIVE)


def trial_ended(current: Subscription, now: datetime, paid: bool) -> Subscription:
    """A trial over: on with the plan if a card is on file, else back to free."""
    end = current.trial_end or now
    segments = tuple(s for s in current.segments if s.start < end)
    plan_id = current.plan_id if paid else FREE_PLAN
    return replace(current.next_version(now), state=State.ACTIVE, trial_end=None,
                   plan_id=plan_id, segments=(*segments, Segment(end, plan_id)))
