"""The plans a new deployment starts with (the operator changes them with the API):
free, standard and enterprise, matching the rate-limit plans of the same names."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import datetime

from services.billing.models import Plan, PlanUnit, Unit
from services.billing.store import BillingStore

M = 1_000_000  # micros per currency unit


def seed_plans(currency: str, now: datetime, rate_limits: str) -> list[Plan]:
    """The plans of a new deployment (`rate_limits`: the server's default rate-limit
    plan, which the internal plan keeps)."""
    free = Plan("free", "Free", currency, 0, (
        PlanUnit(Unit.MONTHLY_ACTIVE_USERS, 100, 0, 100),
        PlanUnit(Unit.MESSAGES, 10_000, 0, 10_000),
        PlanUnit(Unit.PEAK_CONNECTIONS, 20, 0, 20),
        PlanUnit(Unit.STORAGE_GIB, 1, 0, 1),
        PlanUnit(Unit.WEBHOOK_DELIVERIES, 10_000),
        PlanUnit(Unit.API_CALLS, 100_000)),
        "free", "To build and try: hard caps, no charges.", rank=0,
        create_time=now, update_time=now)
    standard = Plan("standard", "Standard", currency, 49 * M, (
        PlanUnit(Unit.MONTHLY_ACTIVE_USERS, 10_000, M // 50, 100_000),  # 0.02 each
        PlanUnit(Unit.MESSAGES, 1_000_000, 100, 20_000_000),  # 0.0001 each
        PlanUnit(Unit.PEAK_CONNECTIONS, 1_000, M // 10, 10_000),
        PlanUnit(Unit.STORAGE_GIB, 50, M // 10, 5_000),
        PlanUnit(Unit.WEBHOOK_DELIVERIES, 1_000_000, 50),
        PlanUnit(Unit.API_CALLS, 10_000_000, 10)),
        "standard", "For apps in production.", trial_days=14, rank=1,
        create_time=now, update_time=now)
    enterprise = Plan("enterprise", "Enterprise", currency, 499 * M, (
        PlanUnit(Unit.MONTHLY_ACTIVE_USERS, 200_000, M // 100),
        PlanUnit(Unit.MESSAGES, 50_000_000, 50),
        PlanUnit(Unit.PEAK_CONNECTIONS, 20_000, M // 20),
        PlanUnit(Unit.STORAGE_GIB, 1_000, M // 20),
        PlanUnit(Unit.WEBHOOK_DELIVERIES, 50_000_000, 20),
        PlanUnit(Unit.API_CALLS, 500_000_000, 5)),
        "enterprise", "High volume, no caps.", rank=2, create_time=now, update_time=now)
    internal = Plan(
        "internal", "Internal", currency, 0, (), rate_limits,
        "The operator's own apps, outside organizations: metered, never capped or "
        "invoiced. Offered to nobody; the operator puts apps on it with override.",
        archived=True, rank=-1, create_time=now, update_time=now)
    return [free, standard, enterprise, internal]


class Catalogue:
    """The plans, read from the store at most every `ttl` seconds (a plan changed in
    this process is seen at once: `forget`)."""

    def __init__(self, store: BillingStore, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._plans: dict[str, Plan] = {}
        self._read_at = -math.inf

    async def all(self) -> dict[str, Plan]:
        if time.monotonic() - self._read_at > self._ttl:
            self._plans = {plan.plan_id: plan for plan in await self._store.list_plans()}
            self._read_at = time.monotonic()
        return self._plans

    async def get(self, plan_id: str) -> Plan | None:
        found = (await self.all()).get(plan_id)
        if found is None:  # made by another process since the last read
            self.forget()
            found = (await self.all()).get(plan_id)
        return found

    async def including(self, plan_ids: Iterable[str]) -> dict[str, Plan]:
        """Every plan, read again if one of `plan_ids` is not among them yet."""
        plans = await self.all()
        if any(plan_id not in plans for plan_id in plan_ids):
            self.forget()
            plans = await self.all()
        return plans

    def forget(self) -> None:
        self._read_at = -math.inf

    async def seed(self, currency: str, now: datetime, rate_limits: str) -> None:
        """Create the seed plans that do not exist (a new deployment)."""
        for plan in seed_plans(currency, now, rate_limits):
            await self._store.create_plan(plan)
        self.forget()
