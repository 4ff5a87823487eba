"""Usage analytics: what is counted, in which buckets, and how a batch of counts is
written.

Every count lands in buckets of three sizes at once (an hour, a day, a calendar month,
UTC), so that a query reads as many rows as it answers buckets, whatever the size.
Counters add up; distinct counts (active users, active conversations, new users) keep
their members per bucket, and a counter grows only when a member is new to its bucket
(so the DAU of a day is the users of that day, not the sum of its hours). Peaks keep
each server process's own maximum (`source`), summed when read.

A batch of counts (`Changes`) is written in one transaction, together with what makes
writing it twice harmless: the log position it reaches, or the flush it is.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

HOUR_SECONDS = 3600
DAY_SECONDS = 86_400


class Granularity(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


BUCKET_SIZES = (Granularity.HOUR, Granularity.DAY, Granularity.MONTH)
EVER = "ever"  # the granularity of first-seen members: one bucket (0) for all time


class Metric(enum.StrEnum):
    """What is counted (as stored)."""

    MESSAGES = "messages"
    ACTIVE_USERS = "active_users"
    NEW_USERS = "new_users"
    CONVERSATIONS_CREATED = "conversations_created"
    ACTIVE_CONVERSATIONS = "active_conversations"
    MEDIA_UPLOADS = "media_uploads"
    MEDIA_BYTES = "media_bytes"
    API_CALLS = "api_calls"  # dimension: "<method> <code>"
    PEAK_STREAMS = "peak_streams"  # dimension: the process (source) that saw the peak
    WEBHOOK_DELIVERIES = "webhook_deliveries"  # dimension: the outcome
    WEBHOOK_DEAD_LETTERS = "webhook_dead_letters"
    # Per conversation, per user (dimension): the top lists' counts, days and months only.
    CONVERSATION_MESSAGES = "conversation_messages"
    USER_MESSAGES = "user_messages"


TOP_SIZES = (Granularity.DAY, Granularity.MONTH)


class Kind(enum.StrEnum):
    """What distinct members are."""

    USER = "user"
    CONVERSATION = "conversation"


# (app id, metric, granularity, bucket start in epoch seconds, dimension)
CounterKey = tuple[str, str, str, int, str]
# (app id, kind, granularity, bucket start in epoch seconds, member)
MemberKey = tuple[str, str, str, int, str]


def month_start(seconds: int) -> int:
    """The first instant (epoch seconds) of the UTC month holding `seconds`."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


class Buckets:
    """The hour, day and month starts of instants, the month computed once per day."""

    def __init__(self) -> None:
        self._months: dict[int, int] = {}

    def of(self, seconds: int) -> tuple[int, int, int]:
        day = seconds - seconds % DAY_SECONDS
        month = self._months.get(day)
        if month is None:
            month = self._months[day] = month_start(day)
        return seconds - seconds % HOUR_SECONDS, day, month


def bucket_start(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket holding `moment` (UTC)."""
    moment = moment.astimezone(UTC)
    if granularity is Granularity.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity is Granularity.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_bucket(start: datetime, granularity: Granularity) -> datetime:
    if granularity is Granularity.HOUR:
        return start + timedelta(hours=1)
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def buckets_between(start: datetime, end: datetime, granularity: Granularity
                    ) -> list[datetime]:
    """The starts of the buckets that meet [start, end), in order."""
    found = []
    at = bucket_start(start, granularity)
    while at < end:
        found.append(at)
        at = next_bucket(at, granularity)
    return found


@dataclass(slots=True)
class Changes:
    """Counts to write together: increments, peaks (kept as the larger of the stored
    and the new value), and distinct members, each with the counters that grow when it
    is new to its bucket."""

    counts: dict[CounterKey, int] = field(default_factory=dict)
    peaks: dict[CounterKey, int] = field(default_factory=dict)
    distinct: dict[MemberKey, tuple[CounterKey, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.counts and not self.peaks and not self.distinct

    def apps(self) -> set[str]:
        return {key[0] for part in (self.counts, self.peaks, self.distinct) for key in part}

    def only(self, apps: Collection[str]) -> Changes:
        """The changes of `apps` alone."""
        return Changes({k: v for k, v in self.counts.items() if k[0] in apps},
                       {k: v for k, v in self.peaks.items() if k[0] in apps},
                       {k: v for k, v in self.distinct.items() if k[0] in apps})

    def add(self, key: CounterKey, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    def peak(self, key: CounterKey, value: int) -> None:
        if value > self.peaks.get(key, -1):
            self.peaks[key] = value

    def count_in_buckets(self, app_id: str, metric: Metric, buckets: tuple[int, int, int],
                         dimension: str = "", amount: int = 1) -> None:
        """`amount` more of `metric` in the hour, the day and the month."""
        for granularity, start in zip(BUCKET_SIZES, buckets, strict=True):
            self.add((app_id, metric, granularity, start, dimension), amount)

    def peak_in_buckets(self, app_id: str, metric: Metric, buckets: tuple[int, int, int],
                        dimension: str, value: int) -> None:
        for granularity, start in zip(BUCKET_SIZES, buckets, strict=True):
            self.peak((app_id, metric, granularity, start, dimension), value)

    def member(self, app_id: str, kind: Kind, member: str, buckets: tuple[int, int, int],
               metric: Metric) -> None:
        """`member` is active in the hour, day and month: each of them counts it once in
        `metric`. A member already noted for a bucket keeps its first note."""
        for granularity, start in zip(BUCKET_SIZES, buckets, strict=True):
            self.distinct.setdefault((app_id, kind, granularity, start, member),
                                     ((app_id, metric, granularity, start, ""),))

    def first_seen(self, app_id: str, user_id: str, buckets: tuple[int, int, int]) -> None:
        """The user, if never seen before, is new in these buckets (the earliest noted
        in a batch wins: batches are noted in time order)."""
        self.distinct.setdefault(
            (app_id, Kind.USER, EVER, 0, user_id),
            tuple((app_id, Metric.NEW_USERS, g, s, "")
                  for g, s in zip(BUCKET_SIZES, buckets, strict=True)))

    def active_user(self, app_id: str, user_id: str, buckets: tuple[int, int, int]) -> None:
        self.member(app_id, Kind.USER, user_id, buckets, Metric.ACTIVE_USERS)
        self.first_seen(app_id, user_id, buckets)


def grown(counters: Iterable[CounterKey], into: dict[CounterKey, int]) -> None:
    """Add one to each of `counters` in `into` (the counts of new members)."""
    for key in counters:
        into[key] = into.get(key, 0) + 1


@dataclass(frozen=True, slots=True)
class Fact:
    """What analytics takes of an event of the log (never its content)."""

    position: int
    type: str
    time: int  # epoch seconds
    user_id: str = ""
    conversation_id: str = ""
    size_bytes: int = 0  # media.ready: the file's size


# The event types that make their user active.
ACTING = frozenset({"message.created", "message.updated", "reaction.added",
                    "reaction.removed", "read.updated", "conversation.created"})
COUNTED = ACTING | {"media.ready"}


def count_events(app_id: str, facts: Iterable[Fact]) -> Changes:
    """The counts of an app's events (in position order)."""
    changes = Changes()
    buckets = Buckets()
    for fact in facts:
        at = buckets.of(fact.time)
        kind = fact.type
        if kind == "message.created":
            changes.count_in_buckets(app_id, Metric.MESSAGES, at)
            changes.member(app_id, Kind.CONVERSATION, fact.conversation_id, at,
                           Metric.ACTIVE_CONVERSATIONS)
            for granularity, start in zip(TOP_SIZES, at[1:], strict=True):
                changes.add((app_id, Metric.CONVERSATION_MESSAGES, granularity, start,
                             fact.conversation_id))
                if fact.user_id:
                    changes.add((app_id, Metric.USER_MESSAGES, granularity, start,
                                 fact.user_id))
        elif kind == "conversation.created":
            changes.count_in_buckets(app_id, Metric.CONVERSATIONS_CREATED, at)
        elif kind == "media.ready":
            changes.count_in_buckets(app_id, Metric.MEDIA_UPLOADS, at)
            changes.count_in_buckets(app_id, Metric.MEDIA_BYTES, at, amount=fact.size_bytes)
        if kind in ACTING and fact.user_id:
            changes.active_user(app_id, fact.user_id, at)
    return changes

