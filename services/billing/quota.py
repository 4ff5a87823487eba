"""Hard caps, checked before the actions that use a capped unit: sending a message,
a new user's session (monthly active users), opening a stream (peak connections),
starting an upload (storage). Reading, editing and the streams already open keep
working past a cap.

Each process keeps an app's counts for `billing_quota_refresh` (a dictionary lookup
per call); the counts themselves trail activity by about a second (see metering).
A cap can therefore be passed by that much traffic: what slips past it is counted but
never billed (UnitUsage.billable stops at the cap). A subscription changed in this
process, or a threshold reached, is seen at once; in others within the refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.analytics.models import Granularity, Kind
from services.apps.store import AppStore
from services.billing.invoicing import terms
from services.billing.metering import Meter
from services.billing.models import UNIT_WORDS, PlanUnit, State, Unit
from services.billing.plans import Catalogue
from services.billing.subscriptions import CHANGED, Subscriptions
from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import (
    DomainError,
    FailedPrecondition,
    QuotaViolation,
    ResourceExhausted,
)
from services.core.events import DomainEvent, EventBus
from services.core.principal import AppBackend, Principal, User

THRESHOLD_EVENT = "billing.usage_threshold"
# The RPCs a cap can refuse, and the unit each uses.
METHOD_UNITS = {
    "caas.messages.v1.MessagesService/CreateMessage": Unit.MESSAGES,
    "caas.auth.v1.AuthService/CreateSession": Unit.MONTHLY_ACTIVE_USERS,
    "caas.auth.v1.AuthService/CreateGuestSession": Unit.MONTHLY_ACTIVE_USERS,
    "caas.realtime.v1.RealtimeService/Subscribe": Unit.PEAK_CONNECTIONS,
    "caas.media.v1.MediaService/CreateUpload": Unit.STORAGE_GIB,
}
# Whether a user already counts as active in the month starting at (epoch seconds).
ActiveCheck = Callable[[str, Kind, Granularity, int, str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class _Known:
    plan_id: str
    state: State
    period_start: datetime
    period_end: datetime
    caps: dict[Unit, PlanUnit]
    used: dict[Unit, int]


class QuotaGate:
    def __init__(self, subscriptions: Subscriptions, catalogue: Catalogue, meter: Meter,
                 apps: AppStore, clock: Clock, refresh: float, bus: EventBus,
                 open_streams: Callable[[str], int], is_member: ActiveCheck) -> None:
        self._subscriptions = subscriptions
        self._apps = apps
        self._catalogue = catalogue
        self._meter = meter
        self._clock = clock
        self._open_streams = open_streams
        self._is_member = is_member
        self._known: TtlCache[str, _Known] = TtlCache(refresh, max_entries=100_000)
        bus.subscribe(self._on_event)

    async def admit(self, method: str, principal: Principal, request: Any) -> None:
        """The gateway's check before an RPC (after validation): refuses an action
        past its unit's cap."""
        unit = METHOD_UNITS.get(method)
        if unit is None:
            return
        guest = method.endswith("/CreateGuestSession")
        if guest:  # anonymous, for the app named: checked if it admits guests (the
            # servicer refuses the others alike, so that nobody learns which apps exist)
            app_id = request.parent.split("/")[1]
            app = await self._apps.get_app(app_id)
            if app is not None and app.delete_time is None and app.guest_access.enabled:
                await self.check(app_id, unit, guest=True)
            return
        if not isinstance(principal, AppBackend | User):
            return  # the operator
        user_id = ""
        if method.endswith("/CreateSession"):
            user_id = request.parent.rsplit("/", 1)[-1]
        elif isinstance(principal, User):
            user_id = principal.user_id
        await self.check(principal.app_id, unit, user_id)

    async def check(self, app_id: str, unit: Unit, user_id: str = "", guest: bool = False
                    ) -> None:
        known = await self._of(app_id)
        cap = known.caps[unit].hard_cap
        if not cap:
            return
        if unit is Unit.PEAK_CONNECTIONS:
            used = self._open_streams(app_id)
        elif unit is Unit.STORAGE_GIB:
            used = await self._meter.kept_gib(app_id)
        else:
            used = known.used.get(unit, 0)
        if used < cap:
            return
        if unit is Unit.MONTHLY_ACTIVE_USERS and not guest and user_id and await self._is_member(
                app_id, Kind.USER, Granularity.MONTH, int(known.period_start.timestamp()),
                user_id):
            return  # already counted this month
        raise self._refusal(app_id, unit, known, cap, used)

    def _refusal(self, app_id: str, unit: Unit, known: _Known, cap: int, used: int
                 ) -> DomainError:
        metadata = {"unit": unit.value, "limit": str(cap), "used": str(used),
                    "plan": f"plans/{known.plan_id}",
                    "period_end": known.period_end.isoformat()}
        words = UNIT_WORDS[unit]
        if known.state is State.UNPAID:
            return FailedPrecondition(
                "SUBSCRIPTION_UNPAID", f"the app's subscription is unpaid: it is held to "
                f"{cap:,} {words} until the open invoice is paid", metadata=metadata)
        return ResourceExhausted(
            "QUOTA_EXCEEDED", f"the app used its plan's {cap:,} {words} of this billing "
            f"period: upgrade the plan, or wait for the next period", metadata=metadata,
            quota_violations=(QuotaViolation(
                f"app:{app_id}", f"{unit.value}: {cap} per billing period "
                f"(plan {known.plan_id})"),),
            retry_after=known.period_end - self._clock.now())

    async def _of(self, app_id: str) -> _Known:
        found = self._known.get(app_id)
        if found is not None:
            return found
        subscription = await self._subscriptions.get(app_id)
        plans = await self._catalogue.including([subscription.plan_id])
        caps = terms(subscription, plans)
        capped = frozenset(u for u in (Unit.MONTHLY_ACTIVE_USERS, Unit.MESSAGES)
                           if caps[u].hard_cap)
        used = await self._meter.used(app_id, subscription.period_start,
                                      subscription.period_end, capped, sample=False)
        found = _Known(subscription.plan_id,
                       subscription.state, subscription.period_start,
                       subscription.period_end, caps, used)
        self._known.put(app_id, found)
        return found

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type in (CHANGED, THRESHOLD_EVENT, "app.updated"):
            self._known.discard(event.app_id)
