"""The port of the call store: calls, written whole with their events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.calls.models import Call
from services.core.events import DomainEvent

Position = tuple[int, str]  # (create_time in ms, call_id) of a page's last call
CallKey = tuple[str, str, str]  # (app id, conversation id, call id)


class CallInProgress(Exception):
    """Another call of the conversation is ringing or active."""

    def __init__(self, call: Call) -> None:
        super().__init__(call.call_id)
        self.call = call


class CallStore(Protocol):
    async def migrate(self) -> None: ...

    async def create(self, call: Call, events: Sequence[DomainEvent]) -> tuple[Call, bool]:
        """Stores a new call with its events, in one transaction: (call, True). The call
        already stored under its id instead, with False (a retried start). Raises
        CallInProgress, storing nothing, while another call of its conversation has not
        ended."""

    async def update(self, call: Call, events: Sequence[DomainEvent]) -> bool:
        """Replaces the call by `call` (whose version is one more than the stored one's)
        with its events, in one transaction; False, changing nothing, if the stored call
        is not the version `call` was made from (another change came first)."""

    async def get(self, app_id: str, conversation_id: str, call_id: str) -> Call | None: ...

    async def list_calls(self, app_id: str, conversation_id: str, limit: int,
                         after: Position | None) -> list[Call]:
        """The conversation's calls, newest first, after `after`."""

    async def current(self, app_id: str, conversation_id: str) -> Call | None:
        """The conversation's call that has not ended, if any."""

    async def busy(self, app_id: str, user_ids: Sequence[str]) -> set[str]:
        """Which of these users are joined in a call of the app that has not ended."""

    async def joined_calls(self, app_id: str, user_id: str) -> list[Call]:
        """The calls of the app the user is joined in that have not ended."""

    async def ongoing(self, limit: int, after: CallKey | None) -> list[Call]:
        """Calls of every app that have not ended, by (app, conversation, call), after
        `after`: the sweeper's look at who is in a call."""

    async def due(self, now: datetime, limit: int) -> list[Call]:
        """Calls that need the sweeper: not ended with someone rung past the ring
        deadline, or ended with no record message yet; oldest first."""

    async def set_record(self, app_id: str, conversation_id: str, call_id: str,
                         sequence: int) -> None:
        """Notes the message that records the ended call (its version unchanged)."""

    async def delete_conversation_calls(self, app_id: str, conversation_id: str) -> int:
        """Deletes the conversation's calls (it was deleted); how many."""

    async def signal(self, event: DomainEvent) -> None:
        """Records a `call.signal` event in the event log (alone in its transaction)."""
