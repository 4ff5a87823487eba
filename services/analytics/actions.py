"""Reading an app's usage: series of buckets and top lists, for its backend (or its
developers, as its backend) and the operator. A query reads the buckets it answers
(a top list: the days at the edges of its interval and the whole months between),
never events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.analytics.models import (
    Granularity,
    Metric,
    bucket_start,
    buckets_between,
    next_bucket,
)
from services.analytics.store import AnalyticsStore, Span
from services.apps.store import AppStore
from services.core.errors import not_found
from services.core.names import app_name
from services.core.principal import Principal, require_backend

# What a breakdown labels each part with, and how it reads the part from a dimension.
BREAKDOWNS = {"method": 0, "code": 1, "outcome": 0}
TOP_DEFAULT = 10


@dataclass(frozen=True, slots=True)
class Series:
    metric: Metric
    points: list[tuple[datetime, int]]
    labels: dict[str, str] = field(default_factory=dict)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _part(dimension: str, breakdown: str) -> str:
    """The part of a counter's dimension a breakdown names (`method code`: either)."""
    pieces = dimension.split(" ")
    index = BREAKDOWNS[breakdown]
    return pieces[index] if index < len(pieces) else ""


def top_spans(start: datetime, end: datetime) -> list[Span]:
    """The whole days that meet [start, end): days up to the first month boundary,
    whole months, then the days of the last month."""
    days = buckets_between(start, end, Granularity.DAY)
    first, stop = days[0], next_bucket(days[-1], Granularity.DAY)
    month_in = bucket_start(first, Granularity.MONTH)
    if month_in < first:
        month_in = next_bucket(month_in, Granularity.MONTH)
    month_out = bucket_start(stop, Granularity.MONTH)
    if month_in >= month_out:
        return [Span(Granularity.DAY, _seconds(first), _seconds(stop))]
    spans = [Span(Granularity.DAY, _seconds(first), _seconds(month_in)),
             Span(Granularity.MONTH, _seconds(month_in), _seconds(month_out)),
             Span(Granularity.DAY, _seconds(month_out), _seconds(stop))]
    return [span for span in spans if span.start < span.end]


class AnalyticsActions:
    def __init__(self, store: AnalyticsStore, apps: AppStore) -> None:
        self._store = store
        self._apps = apps

    async def _app(self, principal: Principal, app_id: str) -> None:
        require_backend(principal, app_id, "analytics")
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))

    async def query_series(self, principal: Principal, app_id: str,
                           metrics: Sequence[Metric], start: datetime, end: datetime,
                           granularity: Granularity, breakdown: str = "") -> list[Series]:
        """A series per metric (with `breakdown`, one per part that counted anything:
        `method`, `code` or `outcome`), with a point for every bucket meeting
        [start, end), zero-filled. The contract bounds the interval (a few thousand
        buckets at most)."""
        await self._app(principal, app_id)
        starts = buckets_between(start, end, granularity)
        seconds = [_seconds(at) for at in starts]
        span = Span(granularity, seconds[0], _seconds(next_bucket(starts[-1], granularity)))
        found: list[Series] = []
        for metric in metrics:
            parts: dict[str, dict[int, int]] = {} if breakdown else {"": {}}
            for bucket, dimension, value in await self._store.series(
                    app_id, metric, span, by_dimension=bool(breakdown)):
                part = _part(dimension, breakdown) if breakdown else ""
                values = parts.setdefault(part, {})
                values[bucket] = values.get(bucket, 0) + value
            for part in sorted(parts):
                values = parts[part]
                points = [(at, values.get(s, 0)) for at, s in zip(starts, seconds, strict=True)]
                found.append(Series(metric, points, {breakdown: part} if breakdown else {}))
        return found

    async def top_list(self, principal: Principal, app_id: str, metric: Metric,
                       start: datetime, end: datetime, limit: int) -> list[tuple[str, int]]:
        """(conversation or user id, messages) of the `limit` (0: 10) largest counts of
        `metric` (CONVERSATION_MESSAGES or USER_MESSAGES) over the whole days meeting
        [start, end), largest first."""
        await self._app(principal, app_id)
        return await self._store.top(app_id, metric, top_spans(start, end),
                                     limit or TOP_DEFAULT)
