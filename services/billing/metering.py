"""How much of each unit an app used in a period, read from what is counted already:
the analytics counters (services/analytics: the event log's consumer and each
process's flushes), and the media store for storage. Billing adds no counting of its
own to the send path.

- monthly active users, messages: the month bucket;
- peak connections: the largest hour of the period, each hour the sum of every
  process's own peak (exact with one process; an upper bound with several);
- webhook deliveries: those that reached the endpoint;
- API calls: every call but the refusals for rate or quota (RESOURCE_EXHAUSTED);
- storage: the most GiB kept at once, as sampled (each check samples it).
"""

from __future__ import annotations

from datetime import datetime

from services.analytics.models import Granularity, Metric
from services.analytics.store import AnalyticsStore, Span
from services.billing.models import Unit
from services.billing.store import BillingStore
from services.media.store import MediaStore

GIB = 1024**3
_MONTHLY = {Unit.MONTHLY_ACTIVE_USERS: Metric.ACTIVE_USERS, Unit.MESSAGES: Metric.MESSAGES}


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class Meter:
    def __init__(self, analytics: AnalyticsStore, media: MediaStore, store: BillingStore
                 ) -> None:
        self._analytics = analytics
        self._media = media
        self._store = store

    async def used(self, app_id: str, start: datetime, end: datetime,
                   units: frozenset[Unit] = frozenset(Unit), *, sample: bool = True
                   ) -> dict[Unit, int]:
        """The app's usage of `units` in the period [start, end) (with `sample`, the
        storage kept now counts in the period's peak: not once the period is over)."""
        month = Span(Granularity.MONTH, _seconds(start), _seconds(end))
        found: dict[Unit, int] = {}
        for unit, metric in _MONTHLY.items():
            if unit in units:
                rows = await self._analytics.series(app_id, metric, month, by_dimension=False)
                found[unit] = sum(value for _, _, value in rows)
        if Unit.PEAK_CONNECTIONS in units:
            hours = Span(Granularity.HOUR, _seconds(start), _seconds(end))
            rows = await self._analytics.series(app_id, Metric.PEAK_STREAMS, hours,
                                                by_dimension=False)
            found[Unit.PEAK_CONNECTIONS] = max((value for _, _, value in rows), default=0)
        if Unit.WEBHOOK_DELIVERIES in units:
            rows = await self._analytics.series(app_id, Metric.WEBHOOK_DELIVERIES, month)
            found[Unit.WEBHOOK_DELIVERIES] = sum(v for _, d, v in rows if d == "delivered")
        if Unit.API_CALLS in units:
            rows = await self._analytics.series(app_id, Metric.API_CALLS, month)
            found[Unit.API_CALLS] = sum(v for _, d, v in rows
                                        if not d.endswith(" RESOURCE_EXHAUSTED"))
        if Unit.STORAGE_GIB in units:
            found[Unit.STORAGE_GIB] = await self.storage(app_id, start, sample)
        return found

    async def kept_gib(self, app_id: str) -> int:
        """GiB of media the app keeps now (rounded up)."""
        return -(-(await self._media.usage(app_id)).used_bytes // GIB)

    async def storage(self, app_id: str, period_start: datetime, sample: bool) -> int:
        """The period's peak of GiB kept (with `sample`, now counts too)."""
        peak = await self._store.storage_peak(app_id, period_start)
        if sample and (now_gib := await self.kept_gib(app_id)) > peak:
            await self._store.record_storage(app_id, period_start, now_gib)
            peak = now_gib
        return peak
