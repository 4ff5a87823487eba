"""Domain events and the bus that carries them once a write has committed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

log = logging.getLogger("caas.events")


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Something that happened in one app: `type` like "api_key.revoked"."""

    type: str
    app_id: str
    time: datetime
    data: Mapping[str, str] = field(default_factory=dict)
    conversation_id: str = ""  # set for events of one conversation
    payload: object = None  # the domain object the event is about (a Message, a Member…)
    user_id: str = ""  # who acted or whom it is about: sender, reactor, reader, member
    private: bool = False  # only `user_id` may see it (their own member settings)


EventHandler = Callable[[DomainEvent], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: DomainEvent) -> None:
        """Deliver `event` to the subscribers. Call only after the write committed."""

    def subscribe(self, handler: EventHandler) -> None: ...


class InProcessBus:
    """Delivers events to handlers in this process, in order of subscription.

    A failing handler is logged and skipped: the change it reacts to has already
    committed, and the other handlers still get the event.
    """

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def publish(self, event: DomainEvent) -> None:
        for handler in self._handlers:
            try:
                await handler(event)
            except Exception:
                log.exception("event handler failed", extra={"event_type": event.type})
