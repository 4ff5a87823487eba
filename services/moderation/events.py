"""The events of restrictions: to the restricted user alone, and the app's webhooks."""

from __future__ import annotations

from datetime import datetime

from services.core.events import DomainEvent
from services.moderation.models import Restriction

CREATED = "restriction.created"
DELETED = "restriction.deleted"


def restriction_event(kind: str, restriction: Restriction, now: datetime) -> DomainEvent:
    return DomainEvent(kind, restriction.app_id, now,
                       conversation_id=restriction.conversation_id, payload=restriction,
                       user_id=restriction.user_id, private=True)
