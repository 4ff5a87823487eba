"""The moderation store port: restrictions, scoped by app. Writes record their event
(`restriction.created`, `restriction.deleted`) in the event log, in the same
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.moderation.models import (
    ContentFilter,
    Flag,
    FlagState,
    Report,
    Resolution,
    Restriction,
    SendHook,
)

# Listing position: (create time in ms, restriction id); lists resume strictly after it.
Position = tuple[int, str]


class RestrictionStore(Protocol):
    async def migrate(self) -> None: ...

    async def put_restriction(self, restriction: Restriction, now: datetime) -> Restriction:
        """Store `restriction`, or, when the user already has one of its type in its
        place that applies at `now`, replace that one's reason, creator, times (keeping
        its id); the stored restriction. An expired one of the same place and type is
        replaced whole."""

    async def get_restriction(self, app_id: str, restriction_id: str) -> Restriction | None:
        """The restriction, expired or not."""

    async def delete_restriction(self, app_id: str, restriction_id: str, now: datetime
                                 ) -> Restriction | None:
        """Lift a restriction that applies at `now`; what it was, or None if there was
        none that applied."""

    async def list_restrictions(self, app_id: str, now: datetime, limit: int,
                                after: Position | None, *, user_id: str = "",
                                conversation_id: str | None = None, unseen_by: str = ""
                                ) -> list[Restriction]:
        """The app's restrictions that apply at `now`, ordered by (create_time,
        restriction_id); only `user_id`'s when given, only those of `conversation_id`
        when not None (APP_WIDE: the app-wide ones); without the shadow bans of
        `unseen_by` when given."""

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        """Every restriction of the user that applies at `now` (the hot path's read)."""


class FlagStore(Protocol):
    """Flags and their reports, scoped by app. Reports and resolutions record their
    event (`flag.reported`, `flag.resolved`) in the event log, in the same transaction."""

    async def migrate(self) -> None: ...

    async def report(self, flag: Flag, report: Report) -> Flag:
        """Add `report` to the open flag of `flag.target`, or open `flag` with it; the
        reporter's earlier report on that flag is replaced. The flag as stored."""

    async def get_flag(self, app_id: str, flag_id: str) -> Flag | None: ...

    async def forget_texts(self, app_id: str, user_id: str) -> int:
        """Empty the copies of `user_id`'s messages that their flags keep (erasure);
        how many flags."""

    async def get_report(self, app_id: str, flag_id: str, reporter: str) -> Report | None:
        """`reporter`'s report on the flag, if they made one."""

    async def list_flags(self, app_id: str, limit: int, after: Position | None, *,
                         state: FlagState | None = None, conversation_id: str | None = None,
                         user_id: str = "", not_user_id: str = "") -> list[Flag]:
        """The app's flags ordered by (create_time, flag_id), filtered by each given
        (`not_user_id`: leaving out that user's)."""

    async def claim(self, app_id: str, flag_id: str, claimer: str,
                    until: datetime | None, now: datetime) -> Flag | None:
        """Hold the open flag for `claimer` until `until`, or, with None, give up their
        claim; only if nobody else holds it at `now`. The flag, or None if it is not open
        or another holds it (or it does not exist)."""

    async def resolve(self, app_id: str, flag_id: str, resolution: Resolution) -> Flag | None:
        """Resolve the open flag, if nobody but the resolver holds it at the resolution's
        time; the flag, or None as for `claim`."""


class FilterStore(Protocol):
    """The content filters of each app."""

    async def create_filter(self, content_filter: ContentFilter, limit: int) -> None:
        """Store a new filter. Raises StoreConflict when the app has one of that id,
        CapacityExceeded when it has `limit` already; nothing is written then."""

    async def get_filter(self, app_id: str, filter_id: str) -> ContentFilter | None: ...

    async def list_filters(self, app_id: str, limit: int, after: str = ""
                           ) -> list[ContentFilter]:
        """The app's filters by id, after `after`."""

    async def update_filter(self, content_filter: ContentFilter) -> bool:
        """Replace a filter whole; False if there is none of that id."""

    async def delete_filter(self, app_id: str, filter_id: str) -> bool: ...


class SendHookStore(Protocol):
    """Each app's pre-send hook (at most one)."""

    async def get_send_hook(self, app_id: str) -> SendHook | None: ...

    async def create_send_hook(self, hook: SendHook) -> bool:
        """Store the app's hook; False (nothing written) if it has one already."""

    async def update_send_hook(self, hook: SendHook) -> bool:
        """Replace the app's hook (its secret and create time kept); False if none."""

    async def delete_send_hook(self, app_id: str) -> bool: ...
