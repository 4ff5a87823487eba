"""The moderation store port: restrictions, scoped by app. Writes record their event
(`restriction.created`, `restriction.deleted`) in the event log, in the same
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.moderation.models import Restriction

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
                                conversation_id: str | None = None) -> list[Restriction]:
        """The app's restrictions that apply at `now`, ordered by (create_time,
        restriction_id); only `user_id`'s when given, only those of `conversation_id`
        when not None (APP_WIDE: the app-wide ones)."""

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        """Every restriction of the user that applies at `now` (the hot path's read)."""
