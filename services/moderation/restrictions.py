"""What the hot paths ask of moderation: may this user write here, join there, sign in?

A user's restrictions that apply are read once and kept for `auth_cache_ttl` (one
dictionary lookup per call after that). This process forgets them at once when one
changes (`restriction.*` events); other processes within that time, as for revoked
API keys and sessions."""

from __future__ import annotations

from datetime import datetime

from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import PermissionDenied
from services.core.events import DomainEvent, EventBus
from services.core.names import restriction_name
from services.moderation.events import CREATED, DELETED
from services.moderation.models import APP_WIDE, Restriction, RestrictionType
from services.moderation.store import RestrictionStore


def refusal(restriction: Restriction) -> PermissionDenied:
    """PERMISSION_DENIED, USER_BANNED or USER_MUTED, saying why and until when."""
    banned = restriction.type is RestrictionType.BAN
    where = "in this app" if restriction.conversation_id == APP_WIDE else "in this conversation"
    expire = restriction.expire_time
    message = (f"you are {'banned' if banned else 'muted'} {where}"
               f"{f' until {expire.isoformat()}' if expire else ''}"
               f"{f': {restriction.reason}' if restriction.reason else ''}")
    metadata = {"restriction": restriction_name(restriction.app_id, restriction.restriction_id)}
    if restriction.reason:
        metadata["restriction_reason"] = restriction.reason
    if expire is not None:
        metadata["expire_time"] = expire.isoformat()
    if banned:
        return PermissionDenied("USER_BANNED", message, metadata=metadata)
    return PermissionDenied("USER_MUTED", message, metadata=metadata)


class Restrictions:
    def __init__(self, store: RestrictionStore, clock: Clock, ttl: float, bus: EventBus) -> None:
        self._store = store
        self._clock = clock
        self._cache: TtlCache[tuple[str, str], tuple[Restriction, ...]] = TtlCache(ttl)
        self._changes = 0  # a lookup that raced a change must not cache its result
        bus.subscribe(self._on_event)

    async def of(self, app_id: str, user_id: str, now: datetime) -> list[Restriction]:
        """The user's restrictions that apply at `now`."""
        key = (app_id, user_id)
        found = self._cache.get(key)
        if found is None:
            changes = self._changes
            found = tuple(await self._store.user_restrictions(app_id, user_id, now))
            if changes == self._changes:
                self._cache.put(key, found)
        return [r for r in found if r.applies(now)]

    async def check_write(self, app_id: str, user_id: str, conversation_id: str) -> None:
        """Refuse a write (send, edit, react) by a user muted or banned there."""
        await self._refuse_first(app_id, user_id, conversation_id, RestrictionType.MUTE,
                                 RestrictionType.BAN)

    async def shadowed(self, app_id: str, user_id: str, conversation_id: str) -> bool:
        """Whether the user's messages there are for them alone (a shadow ban)."""
        return any(r.type is RestrictionType.SHADOW_BAN and r.covers(conversation_id)
                   for r in await self.of(app_id, user_id, self._clock.now()))

    async def check_entry(self, app_id: str, user_id: str, conversation_id: str) -> None:
        """Refuse a user banned there (or in the app) joining or being added."""
        await self._refuse_first(app_id, user_id, conversation_id, RestrictionType.BAN)

    async def check_sign_in(self, app_id: str, user_id: str) -> None:
        """Refuse a user banned in the app."""
        await self._refuse_first(app_id, user_id, APP_WIDE, RestrictionType.BAN)

    async def _refuse_first(self, app_id: str, user_id: str, conversation_id: str,
                            *types: RestrictionType) -> None:
        applying = [r for r in await self.of(app_id, user_id, self._clock.now())
                    if r.type in types and r.covers(conversation_id)]
        if applying:  # a ban says more than a mute
            raise refusal(max(applying, key=lambda r: r.type is RestrictionType.BAN))

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type in (CREATED, DELETED):
            assert isinstance(event.payload, Restriction)
            self._changes += 1
            self._cache.discard((event.app_id, event.payload.user_id))
