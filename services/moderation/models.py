"""Restrictions: a mute or a ban of one user, in a whole app or in one conversation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class RestrictionType(enum.Enum):
    MUTE = "mute"  # reads, does not write
    BAN = "ban"  # kept out
    SHADOW_BAN = "shadow_ban"  # writes as ever, seen by nobody else (and is not told)


APP_WIDE = ""  # the conversation id of a restriction that applies in the whole app


@dataclass(frozen=True, slots=True)
class Restriction:
    app_id: str
    restriction_id: str
    user_id: str
    conversation_id: str  # APP_WIDE, or where it applies
    type: RestrictionType
    reason: str
    creator: str  # "operator", "apps/{app}/apiKeys/{key}" or "apps/{app}/users/{user}"
    create_time: datetime
    expire_time: datetime | None = None  # None: until lifted

    def applies(self, now: datetime) -> bool:
        return self.expire_time is None or now < self.expire_time

    def covers(self, conversation_id: str) -> bool:
        """Whether it applies in `conversation_id` (an app-wide one applies everywhere)."""
        return self.conversation_id in (APP_WIDE, conversation_id)


class FlagState(enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"


class ReportReason(enum.Enum):
    SPAM = "spam"
    HARASSMENT = "harassment"
    HATE = "hate"
    SEXUAL = "sexual"
    VIOLENCE = "violence"
    SELF_HARM = "self_harm"
    IMPERSONATION = "impersonation"
    OTHER = "other"


REPORTS_SHOWN = 20  # the latest reports a flag carries (report_count counts them all)


@dataclass(frozen=True, slots=True)
class Report:
    reporter: str  # as Restriction.creator
    reason: ReportReason
    details: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    resolver: str  # as Restriction.creator
    note: str
    message_deleted: bool
    restriction_id: str  # the mute or ban it imposed; "" for none
    resolve_time: datetime


@dataclass(frozen=True, slots=True)
class Flag:
    """The reports of one message (conversation_id, sequence) or one user (sequence 0)."""

    app_id: str
    flag_id: str
    conversation_id: str  # "" when a user is flagged
    sequence: int  # 0 when a user is flagged
    user_id: str  # the flagged user, or the flagged message's sender
    message_text: str  # the message's text when first flagged
    state: FlagState
    create_time: datetime
    update_time: datetime
    report_count: int = 0
    reports: tuple[Report, ...] = ()  # the latest REPORTS_SHOWN, newest first
    claimer: str = ""  # as Restriction.creator; "" when nobody holds it
    claim_expire_time: datetime | None = None
    resolution: Resolution | None = None

    @property
    def target(self) -> str:
        """What is flagged; an app has at most one open flag per target."""
        if self.sequence:
            return f"message/{self.conversation_id}/{self.sequence}"
        return f"user/{self.user_id}"

    def held_by_other(self, claimer: str, now: datetime) -> bool:
        """Whether someone other than `claimer` holds a live claim at `now`."""
        return (self.claimer not in ("", claimer) and self.claim_expire_time is not None
                and now < self.claim_expire_time)


class FilterAction(enum.IntEnum):
    """What a content filter's match does; a higher one wins when several match."""

    MASK = 1  # the matches are replaced by *** before the message is stored
    FLAG = 2  # the message goes through, flagged for review
    BLOCK = 3  # the message is refused


MAX_FILTERS = 20  # per app


@dataclass(frozen=True, slots=True)
class ContentFilter:
    app_id: str
    filter_id: str
    display_name: str
    words: tuple[str, ...]
    patterns: tuple[str, ...]
    blocked_domains: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    action: FilterAction
    kinds: frozenset[str]  # conversation kinds ("direct", "group", "channel"); empty: all
    create_time: datetime
    update_time: datetime


class FailurePolicy(enum.Enum):
    OPEN = "open"  # a failed call lets the message go as sent
    CLOSED = "closed"  # a failed call refuses the send


DEFAULT_HOOK_TIMEOUT = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class SendHook:
    """The app's pre-send hook."""

    app_id: str
    url: str
    secret: str
    timeout: timedelta
    failure_policy: FailurePolicy
    kinds: frozenset[str]  # conversation kinds it sees; empty: all
    create_time: datetime
    update_time: datetime
