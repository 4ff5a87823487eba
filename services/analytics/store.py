"""Usage analytics' storage port: counters and distinct members in buckets, written a
batch per transaction, each batch at most once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.analytics.models import Changes, Fact, Granularity, Kind, Metric
from services.apps.store import AppStore

LOG = "log"  # the source of the counts from the event log (its positions)

# Which of these apps exist and are not deleted: counts of the others are dropped, so
# that none outlive an app's offboarding (see `live_apps`).
LiveApps = Callable[[Collection[str]], Awaitable[set[str]]]


def live_apps(apps: AppStore) -> LiveApps:
    """The apps that exist and are not deleted. An app being deleted has its
    credentials refused (nothing new is counted for it) and its records purged once
    its grace ends: counts written after that would outlive it."""
    async def live(app_ids: Collection[str]) -> set[str]:
        found = set()
        for app_id in app_ids:
            app = await apps.get_app(app_id)
            if app is not None and app.delete_time is None:
                found.add(app_id)
        return found

    return live


@dataclass(frozen=True, slots=True)
class Span:
    """Buckets of one size, from `start` (included) to `end` (excluded), epoch seconds."""

    granularity: Granularity
    start: int
    end: int


class AnalyticsStore(Protocol):
    async def migrate(self) -> None: ...

    async def apply_events(self, app_id: str, facts: Sequence[Fact], through: int) -> int:
        """Count the app's `facts` (in position order) whose position is past the one the
        store holds, and move that position to `through`, in one transaction; how many
        facts were counted (0 when all of them were, before)."""

    async def apply_flush(self, source: str, sequence: int, changes: Changes) -> bool:
        """Write `changes` (of any apps), in one transaction, unless flush `sequence` of
        `source` (or a later one) was written already; whether it was written now."""

    async def is_member(self, app_id: str, kind: Kind, granularity: Granularity, bucket: int,
                        member: str) -> bool:
        """Whether `member` counts in the bucket (a user active this month…)."""

    async def position(self, app_id: str) -> int:
        """The last log position the app's counts include (0: none)."""

    async def series(self, app_id: str, metric: Metric, span: Span, by_dimension: bool = True
                     ) -> list[tuple[int, str, int]]:
        """(bucket start, dimension, value) of the metric's counters in `span`, in bucket
        order; without `by_dimension`, one sum per bucket (dimension "")."""

    async def top(self, app_id: str, metric: Metric, spans: Sequence[Span], limit: int
                  ) -> list[tuple[str, int]]:
        """The `limit` dimensions of the metric with the largest sums over `spans`
        (disjoint), largest first, then by dimension."""
