"""The events of moderation. Restrictions: to the restricted user alone, and the app's
webhooks. Flags: to the app's webhooks only (no user is told who reported them)."""

from __future__ import annotations

from datetime import datetime

from services.core.events import DomainEvent
from services.moderation.models import Flag, Restriction, RestrictionType

CREATED = "restriction.created"
DELETED = "restriction.deleted"
REPORTED = "flag.reported"
RESOLVED = "flag.resolved"


def restriction_event(kind: str, restriction: Restriction, now: datetime) -> DomainEvent:
    # A shadow ban is not told to its user: private to no user, for webhooks only.
    told = "" if restriction.type is RestrictionType.SHADOW_BAN else restriction.user_id
    return DomainEvent(kind, restriction.app_id, now,
                       conversation_id=restriction.conversation_id, payload=restriction,
                       user_id=told, private=True)


def flag_event(kind: str, flag: Flag, now: datetime) -> DomainEvent:
    # Private to no user: streams never carry it; webhooks carry every event.
    return DomainEvent(kind, flag.app_id, now, conversation_id=flag.conversation_id,
                       payload=flag, user_id="", private=True)
