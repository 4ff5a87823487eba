"""The messages store port. Every method is scoped by app id and conversation id.

Each write that changes something records its domain event in its own transaction
(services.events.log): message.created / updated / deleted, reaction.added / removed,
read.updated, delivered.updated."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal, Protocol

from services.conversations.models import Member, MlsGroup
from services.core.filtering import Expr
from services.messages.models import (
    Draft,
    Message,
    MessageChanges,
    Page,
    Reaction,
    ReceiptSummary,
    Revision,
    Welcome,
)

Position = tuple[int, str]  # (time in ms, id)
Direction = Literal["latest", "before", "after", "around"]


def around_page(older: list[Message], newer: list[Message], limit: int) -> Page:
    """A page centred on a sequence from up to `limit + 1` messages on either side
    (`older` newest first, `newer` from the sequence on): half each, and the other
    side's room when one side runs short."""
    take_older = min(len(older), max(limit // 2, limit - len(newer)))
    take_newer = min(len(newer), limit - take_older)
    return Page(older[:take_older][::-1] + newer[:take_newer], len(older) > take_older,
                len(newer) > take_newer)


class TooSoon(Exception):
    """A send in slow mode before the sender may send again (`ready_at`)."""

    def __init__(self, ready_at: datetime) -> None:
        super().__init__(ready_at.isoformat())
        self.ready_at = ready_at


class StaleEpoch(Exception):
    """An MLS message built on an epoch its conversation's group has left (`group`)."""

    def __init__(self, group: MlsGroup) -> None:
        super().__init__(f"the group is at epoch {group.epoch}")
        self.group = group


class MessageStore(Protocol):
    async def migrate(self) -> None:
        """Bring this store's schema and indexes up to date; safe on every start."""

    async def append(self, app_id: str, conversation_id: str, draft: Draft, request_id: str,
                     now: datetime, slow_mode: timedelta = timedelta(0)
                     ) -> tuple[Message, bool]:
        """Send a message, atomically: (message, created).

        With `slow_mode`, raises TooSoon (and changes nothing) when the sender sent in
        this conversation less than that before `now`; every send records its time.

        A message of the same sender with the same request_id in this conversation is
        returned instead (created False), and nothing changes. Otherwise it takes the
        conversation's next sequence number (gapless, also under concurrent senders),
        becomes its last message and activity, counts as unread for every other member
        and as an unread mention for every other member it mentions (non-members
        mentioned count nothing), moves the sender's read and delivered positions to it
        (their unread counts to 0), and counts as a reply of its thread root. Raises
        LookupError if the conversation does not exist.

        An MLS message (`draft.mls`) goes only if its epoch is still the group's
        (StaleEpoch otherwise, changing nothing); a commit sets the group to its next
        state (commit_sequence: its own), keeps its Welcome for the devices it adds,
        and counts nowhere (Draft.counted).
        """

    async def get(self, app_id: str, conversation_id: str, sequence: int) -> Message | None: ...

    async def sent(self, app_id: str, conversation_id: str, sender_id: str, request_id: str
                   ) -> Message | None:
        """The message that sender sent with that request id, if any."""

    async def list_welcomes(self, app_id: str, user_id: str, device_id: str, limit: int,
                            after: Position | None) -> list[Welcome]:
        """The Welcomes for a device (MlsDraft.welcomed) in conversations its user is
        still a member of, newest first: (create time in ms, Welcome.position)
        descending, after `after`."""

    async def forget_device(self, app_id: str, user_id: str, device_id: str) -> None:
        """Drop the Welcomes for a device."""

    async def get_many(self, app_id: str, conversation_id: str, sequences: Iterable[int]
                       ) -> dict[int, Message]: ...

    async def list_page(self, app_id: str, conversation_id: str, thread_root: int,
                        direction: Direction, sequence: int, limit: int, *,
                        where: Expr | None = None, viewer: str | None = None,
                        since: datetime | None = None) -> Page:
        """A page of the top-level messages (thread_root 0) or of one thread's replies:
        the latest, the ones before or after `sequence` (exclusive), or around it. With
        `where` (fields of listing.MESSAGE_FILTER), only the messages that match, on the
        page and in its more_before / more_after. With `viewer` (a user), shadowed
        messages only if they are the viewer's own; with `since`, only messages sent
        then or later."""

    async def edit(self, app_id: str, conversation_id: str, sequence: int,
                   changes: MessageChanges, now: datetime) -> Message | None:
        """Change a live message; a text change records the earlier text as a revision and
        sets edit_time. A deleted message is returned unchanged; None if unknown."""

    async def revisions(self, app_id: str, conversation_id: str, sequence: int
                        ) -> list[Revision]:
        """Every text the message had, oldest first, the current one last."""

    async def delete(self, app_id: str, conversation_id: str, sequence: int, now: datetime
                     ) -> Message | None:
        """Make a tombstone (content, reactions and revisions gone; sequence kept), stop
        counting it as unread (and as an unread mention), and update the conversation's
        preview if it was last.
        Deleting a tombstone changes nothing; None if unknown."""

    async def add_reaction(self, app_id: str, conversation_id: str, sequence: int,
                           user_id: str, emoji: str, now: datetime, max_emoji: int,
                           max_per_user: int) -> Message | None:
        """Add a reaction unless it exists. Raises CapacityExceeded (adding nothing) past
        `max_emoji` distinct emoji on the message or `max_per_user` by this user."""

    async def remove_reaction(self, app_id: str, conversation_id: str, sequence: int,
                              user_id: str, emoji: str, now: datetime) -> Message | None: ...

    async def reacted(self, app_id: str, conversation_id: str, sequences: Iterable[int],
                      user_id: str) -> dict[int, set[str]]:
        """The emoji `user_id` reacted with, per message."""

    async def list_reactions(self, app_id: str, conversation_id: str, sequence: int,
                             limit: int, after: Position | None) -> list[Reaction]:
        """Ordered by (create_time, user_id + "\\x1f" + emoji)."""

    async def mark(self, app_id: str, conversation_id: str, user_id: str,
                   which: Literal["read", "delivered"], sequence: int, now: datetime
                   ) -> Member | None:
        """Move a member's read (and then also delivered) or delivered position forward
        to `sequence` (0 or past the end: the last message); never backward. Reading
        recounts the member's unread messages and unread mentions. None if not a
        member."""

    async def receipts(self, app_id: str, conversation_id: str, message: Message, limit: int,
                       after: Position | None) -> tuple[list[Member], ReceiptSummary]:
        """The members other than the sender, by (join_time, user_id), and how many of
        all of them have read and received `message`."""

    async def expired(self, app_id: str, conversation_id: str, before: datetime, limit: int,
                      kept_senders: frozenset[str]) -> list[int]:
        """Sequences of the conversation's messages (not deleted) created before
        `before`, oldest first, but those of `kept_senders` (retention)."""

    async def sent_by(self, app_id: str, user_id: str, limit: int,
                      after: tuple[str, int] | None = None) -> list[tuple[str, int]]:
        """(conversation id, sequence) of live messages the user sent, in that order,
        after `after` (erasure, export)."""

    async def reactions_by(self, app_id: str, user_id: str, limit: int
                           ) -> list[tuple[str, int, str]]:
        """(conversation id, sequence, emoji) of the user's reactions (erasure)."""

    async def scan_messages(self, app_id: str, conversation_id: str, after: int, limit: int
                            ) -> list[Message]:
        """The conversation's messages (replies and tombstones too) by sequence, after
        `after`: for reindexing."""
