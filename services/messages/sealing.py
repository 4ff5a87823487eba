"""Message content sealed at rest (services/keys/keyring.py) under its sender's own
data key (owner `user:<id>`): the text, attachment titles and link URIs, metadata
values, the conversation preview and the copy a flag keeps. The stores, the event
log (whose payloads are encoded from the sealed messages), and so Kafka's and every
backup's copies, hold ciphertext; erasing a user erases their key
(crypto-shredding), and what they wrote stops opening everywhere at once. A value
whose key is gone reads as empty.

Content is opened on its way out: by `SealedMessageStore` for the actions (so
responses, search indexing, exports and moderation see plaintext), and in event
payloads by `open_payload` where events leave the log (streams, webhooks, consumers,
Kafka). A payload without a sealed value costs one substring search.

Metadata filters compare blind tokens (`Keyring.token`, the app key's HMAC of key and
value), kept beside the sealed values: equal values have equal tokens across senders,
and nothing else can be read from them. A filter is rewritten to match a value's
token or the value itself (messages written before encryption was on).

Sealing applies to what is written while `CAAS_CONTENT_ENCRYPTION` is on; opening
works either way, so turning it on or off leaves a mixed store that reads as one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from caas.events.v1 import events_pb2
from caas.messages.v1 import resources_pb2 as msg_res
from cryptography.exceptions import InvalidTag

from services.conversations.listing import BY_JOIN, INBOX
from services.conversations.models import (
    Conversation,
    ConversationChanges,
    Member,
    MemberChanges,
    Preview,
)
from services.conversations.store import ConversationStore, Keyset
from services.conversations.store import Position as ConversationPosition
from services.core.filtering import And, Comparison, Expr, Not, Op, Or, Ordering
from services.keys.keyring import TEXT_PREFIX, KeyErased, Keyring
from services.keys.models import user_owner
from services.messages.models import (
    Attachment,
    Draft,
    Message,
    MessageChanges,
    Page,
    Reaction,
    ReceiptSummary,
    Revision,
    Welcome,
)
from services.messages.store import Direction, MessageStore, Position

log = logging.getLogger("caas.sealing")

TEXT = "message.text"
ATTACHMENT = "message.attachment"
METADATA = "message.metadata"
_MARK = TEXT_PREFIX.encode()
Change = Callable[[str, str, str], Awaitable[str]]  # (owner's user id, context, value)


def _metadata_context(key: str) -> str:
    return f"{METADATA}/{key}"


class ContentSeal:
    """Seals and opens message content (see the module)."""

    def __init__(self, keyring: Keyring, enabled: bool) -> None:
        self._keyring = keyring
        self.enabled = enabled

    async def _seal(self, app_id: str, user_id: str, context: str, text: str) -> str:
        if not text:
            return text
        return await self._keyring.seal_text(app_id, context, text, user_owner(user_id))

    async def open(self, app_id: str, user_id: str, context: str, text: str) -> str:
        """The plaintext of a sealed value ("" when its key was erased); other values
        as they are."""
        if not text.startswith(TEXT_PREFIX):
            return text
        try:
            return await self._keyring.open_text(app_id, context, text, user_owner(user_id))
        except KeyErased:
            return ""
        except InvalidTag:
            log.error("sealed content does not open: changed or moved",
                      extra={"app": app_id, "context": context})
            return ""

    @staticmethod
    async def _attachments(user_id: str, attachments: Iterable[Attachment], change: Change
                           ) -> tuple[Attachment, ...]:
        return tuple([replace(a, title=await change(user_id, ATTACHMENT, a.title),
                              uri=await change(user_id, ATTACHMENT, a.uri))
                      for a in attachments])

    @staticmethod
    async def _metadata(user_id: str, metadata: Mapping[str, str], change: Change
                        ) -> dict[str, str]:
        return {k: await change(user_id, _metadata_context(k), v) for k, v in metadata.items()}

    async def _index(self, app_id: str, metadata: Mapping[str, str]) -> dict[str, str]:
        tokens = {}
        for key, value in metadata.items():
            token = await self._keyring.token(app_id, _metadata_context(key), value)
            assert token is not None
            tokens[key] = token
        return tokens

    def _sealer(self, app_id: str) -> Change:
        return lambda user_id, context, text: self._seal(app_id, user_id, context, text)

    def _opener(self, app_id: str) -> Change:
        return lambda user_id, context, text: self.open(app_id, user_id, context, text)

    async def seal_draft(self, app_id: str, draft: Draft) -> Draft:
        if not self.enabled:
            return draft
        seal, sender = self._sealer(app_id), draft.sender_id
        text = await seal(sender, TEXT, draft.text)
        shown = draft.preview_text  # the text's start, or a preview of its own (a call's)
        preview = text if shown == draft.text else await seal(sender, TEXT, shown)
        return replace(
            draft, text=text, preview=preview,
            attachments=await self._attachments(sender, draft.attachments, seal),
            metadata=await self._metadata(sender, draft.metadata, seal),
            metadata_index=await self._index(app_id, draft.metadata))

    async def seal_changes(self, app_id: str, sender_id: str, changes: MessageChanges
                           ) -> MessageChanges:
        if not self.enabled:
            return changes
        seal = self._sealer(app_id)
        return MessageChanges(
            None if changes.text is None else await seal(sender_id, TEXT, changes.text),
            None if changes.attachments is None else await self._attachments(
                sender_id, changes.attachments, seal),
            None if changes.metadata is None else await self._metadata(
                sender_id, changes.metadata, seal),
            None if changes.metadata is None else await self._index(app_id, changes.metadata))

    async def open_message(self, m: Message) -> Message:
        if not self._sealed(m):
            return m
        open_, sender = self._opener(m.app_id), m.sender_id
        return replace(m, text=await open_(sender, TEXT, m.text),
                       attachments=await self._attachments(sender, m.attachments, open_),
                       metadata=await self._metadata(sender, m.metadata, open_))

    @staticmethod
    def _sealed(m: Message) -> bool:
        return (m.text.startswith(TEXT_PREFIX)
                or any(v.startswith(TEXT_PREFIX) for v in m.metadata.values())
                or any(a.title.startswith(TEXT_PREFIX) or a.uri.startswith(TEXT_PREFIX)
                       for a in m.attachments))

    async def open_preview(self, app_id: str, preview: Preview | None) -> Preview | None:
        if preview is None or not preview.text.startswith(TEXT_PREFIX):
            return preview
        return replace(preview, text=await self.open(app_id, preview.sender_id, TEXT,
                                                     preview.text))

    async def seal_text(self, app_id: str, user_id: str, text: str) -> str:
        """A copy of a message's text kept elsewhere (a flag's), sealed as it is."""
        return await self._seal(app_id, user_id, TEXT, text) if self.enabled else text

    async def open_text(self, app_id: str, user_id: str, text: str) -> str:
        return await self.open(app_id, user_id, TEXT, text)

    async def metadata_filter(self, app_id: str, where: Expr | None) -> Expr | None:
        """`where` with each metadata value compared as its token or itself."""
        if where is None:
            return None
        if isinstance(where, Comparison):
            if where.field != "metadata" or where.op is Op.HAS:
                return where
            token = await self._keyring.token(app_id, _metadata_context(where.key),
                                              str(where.value), create=False)
            if token is None:  # no key: no token was ever written
                return where
            both = (where, replace(where, value=token))
            return Or(both) if where.op is Op.EQ else And(both)
        if isinstance(where, Not):
            term = await self.metadata_filter(app_id, where.term)
            assert term is not None
            return Not(term)
        terms = tuple([t for t in [await self.metadata_filter(app_id, term)
                                   for term in where.terms] if t is not None])
        return And(terms) if isinstance(where, And) else Or(terms)

    async def open_payload(self, payload: bytes) -> bytes:
        """A logged event's payload with its sealed content opened."""
        if _MARK not in payload:
            return payload
        event = events_pb2.Event.FromString(payload)
        await self.open_event(event)
        return event.SerializeToString()

    async def open_event(self, event: events_pb2.Event) -> None:
        """Open the sealed content of an event, in place."""
        app_id = event.name.split("/", 2)[1] if event.name.startswith("apps/") else ""
        kind = event.WhichOneof("payload")
        if kind in ("message_created", "message_updated", "message_deleted"):
            await self._open_proto(app_id, getattr(event, kind))
        elif kind in ("reaction_added", "reaction_removed"):
            await self._open_proto(app_id, getattr(event, kind).message)
        elif kind in ("conversation_created", "conversation_updated"):
            preview = getattr(event, kind).last_message
            preview.text = await self.open_text(app_id, preview.sender_id, preview.text)
        elif kind in ("flag_reported", "flag_resolved"):
            flag = getattr(event, kind)
            flag.message_text = await self.open_text(app_id, flag.user_id, flag.message_text)

    async def _open_proto(self, app_id: str, message: msg_res.Message) -> None:
        sender = message.sender_id
        message.text = await self.open(app_id, sender, TEXT, message.text)
        for attachment in message.attachments:
            attachment.title = await self.open(app_id, sender, ATTACHMENT, attachment.title)
            attachment.uri = await self.open(app_id, sender, ATTACHMENT, attachment.uri)
        for key, value in list(message.metadata.items()):
            message.metadata[key] = await self.open(app_id, sender, _metadata_context(key),
                                                    value)


class SealedMessageStore:
    """The messages store with content sealed on the way in, opened on the way out."""

    def __init__(self, inner: MessageStore, seal: ContentSeal) -> None:
        self._inner = inner
        self._seal = seal

    async def _opened(self, messages: Iterable[Message]) -> list[Message]:
        return [await self._seal.open_message(m) for m in messages]

    async def _open(self, message: Message | None) -> Message | None:
        return None if message is None else await self._seal.open_message(message)

    async def migrate(self) -> None:
        await self._inner.migrate()

    async def append(self, app_id: str, conversation_id: str, draft: Draft, request_id: str,
                     now: datetime, slow_mode: timedelta = timedelta(0)
                     ) -> tuple[Message, bool]:
        sealed = await self._seal.seal_draft(app_id, draft)
        message, created = await self._inner.append(app_id, conversation_id, sealed,
                                                    request_id, now, slow_mode)
        if created:  # what was sent, without opening it again
            return replace(message, text=draft.text, attachments=draft.attachments,
                           metadata=dict(draft.metadata)), True
        return await self._seal.open_message(message), False

    async def get(self, app_id: str, conversation_id: str, sequence: int) -> Message | None:
        return await self._open(await self._inner.get(app_id, conversation_id, sequence))

    async def get_many(self, app_id: str, conversation_id: str, sequences: Iterable[int]
                       ) -> dict[int, Message]:
        found = await self._inner.get_many(app_id, conversation_id, sequences)
        return {s: await self._seal.open_message(m) for s, m in found.items()}

    async def list_page(self, app_id: str, conversation_id: str, thread_root: int,
                        direction: Direction, sequence: int, limit: int, *,
                        where: Expr | None = None, viewer: str | None = None,
                        since: datetime | None = None) -> Page:
        page = await self._inner.list_page(
            app_id, conversation_id, thread_root, direction, sequence, limit,
            where=await self._seal.metadata_filter(app_id, where), viewer=viewer,
            since=since)
        return replace(page, messages=await self._opened(page.messages))

    async def edit(self, app_id: str, conversation_id: str, sequence: int,
                   changes: MessageChanges, now: datetime) -> Message | None:
        current = await self.get(app_id, conversation_id, sequence)
        if current is None or current.deleted:
            return current
        # Sealed values never compare equal: what stays the same is left out.
        same = MessageChanges(
            None if changes.text == current.text else changes.text,
            None if changes.attachments == current.attachments else changes.attachments,
            None if changes.metadata == current.metadata else changes.metadata)
        sealed = await self._seal.seal_changes(app_id, current.sender_id, same)
        return await self._open(await self._inner.edit(app_id, conversation_id, sequence,
                                                       sealed, now))

    async def revisions(self, app_id: str, conversation_id: str, sequence: int
                        ) -> list[Revision]:
        revisions = await self._inner.revisions(app_id, conversation_id, sequence)
        if not revisions:
            return revisions
        message = await self._inner.get(app_id, conversation_id, sequence)
        sender = "" if message is None else message.sender_id
        return [replace(r, text=await self._seal.open_text(app_id, sender, r.text))
                for r in revisions]

    async def delete(self, app_id: str, conversation_id: str, sequence: int, now: datetime
                     ) -> Message | None:
        return await self._open(await self._inner.delete(app_id, conversation_id, sequence,
                                                         now))

    async def add_reaction(self, app_id: str, conversation_id: str, sequence: int,
                           user_id: str, emoji: str, now: datetime, max_emoji: int,
                           max_per_user: int) -> Message | None:
        return await self._open(await self._inner.add_reaction(
            app_id, conversation_id, sequence, user_id, emoji, now, max_emoji, max_per_user))

    async def remove_reaction(self, app_id: str, conversation_id: str, sequence: int,
                              user_id: str, emoji: str, now: datetime) -> Message | None:
        return await self._open(await self._inner.remove_reaction(
            app_id, conversation_id, sequence, user_id, emoji, now))

    async def reacted(self, app_id: str, conversation_id: str, sequences: Iterable[int],
                      user_id: str) -> dict[int, set[str]]:
        return await self._inner.reacted(app_id, conversation_id, sequences, user_id)

    async def list_reactions(self, app_id: str, conversation_id: str, sequence: int,
                             limit: int, after: Position | None) -> list[Reaction]:
        return await self._inner.list_reactions(app_id, conversation_id, sequence, limit,
                                                after)

    async def mark(self, app_id: str, conversation_id: str, user_id: str,
                   which: Literal["read", "delivered"], sequence: int, now: datetime
                   ) -> Member | None:
        return await self._inner.mark(app_id, conversation_id, user_id, which, sequence, now)

    async def receipts(self, app_id: str, conversation_id: str, message: Message, limit: int,
                       after: Position | None) -> tuple[list[Member], ReceiptSummary]:
        return await self._inner.receipts(app_id, conversation_id, message, limit, after)

    async def expired(self, app_id: str, conversation_id: str, before: datetime, limit: int,
                      kept_senders: frozenset[str]) -> list[int]:
        return await self._inner.expired(app_id, conversation_id, before, limit, kept_senders)

    async def sent_by(self, app_id: str, user_id: str, limit: int,
                      after: tuple[str, int] | None = None) -> list[tuple[str, int]]:
        return await self._inner.sent_by(app_id, user_id, limit, after)

    async def reactions_by(self, app_id: str, user_id: str, limit: int
                           ) -> list[tuple[str, int, str]]:
        return await self._inner.reactions_by(app_id, user_id, limit)

    async def scan_messages(self, app_id: str, conversation_id: str, after: int, limit: int
                            ) -> list[Message]:
        return await self._opened(await self._inner.scan_messages(app_id, conversation_id,
                                                                  after, limit))

    async def sent(self, app_id: str, conversation_id: str, sender_id: str, request_id: str
                   ) -> Message | None:
        return await self._open(await self._inner.sent(app_id, conversation_id, sender_id,
                                                       request_id))

    async def list_welcomes(self, app_id: str, user_id: str, device_id: str, limit: int,
                            after: Position | None) -> list[Welcome]:
        return await self._inner.list_welcomes(app_id, user_id, device_id, limit, after)

    async def forget_device(self, app_id: str, user_id: str, device_id: str) -> None:
        await self._inner.forget_device(app_id, user_id, device_id)


class PreviewOpeningStore:
    """The conversations store with the previews of its conversations opened (the
    messages store writes them sealed)."""

    def __init__(self, inner: ConversationStore, seal: ContentSeal) -> None:
        self._inner = inner
        self._seal = seal

    async def _open(self, c: Conversation | None) -> Conversation | None:
        if c is None or c.last_message is None:
            return c
        return replace(c, last_message=await self._seal.open_preview(c.app_id,
                                                                     c.last_message))

    async def _opened(self, c: Conversation) -> Conversation:
        opened = await self._open(c)
        assert opened is not None
        return opened

    async def migrate(self) -> None:
        await self._inner.migrate()

    async def create_conversation(self, conversation: Conversation, members: Sequence[Member],
                                  direct_key: str | None) -> tuple[Conversation, bool]:
        stored, created = await self._inner.create_conversation(conversation, members,
                                                                direct_key)
        return await self._opened(stored), created

    async def get_conversation(self, app_id: str, conversation_id: str) -> Conversation | None:
        return await self._open(await self._inner.get_conversation(app_id, conversation_id))

    async def update_conversation(self, app_id: str, conversation_id: str,
                                  changes: ConversationChanges, now: datetime
                                  ) -> Conversation | None:
        return await self._open(await self._inner.update_conversation(
            app_id, conversation_id, changes, now))

    async def delete_conversation(self, app_id: str, conversation_id: str, now: datetime
                                  ) -> bool:
        return await self._inner.delete_conversation(app_id, conversation_id, now)

    async def get_member(self, app_id: str, conversation_id: str, user_id: str
                         ) -> Member | None:
        return await self._inner.get_member(app_id, conversation_id, user_id)

    async def get_access(self, app_id: str, conversation_id: str, user_id: str
                         ) -> tuple[Conversation | None, Member | None]:
        conversation, member = await self._inner.get_access(app_id, conversation_id, user_id)
        return await self._open(conversation), member

    async def get_memberships(self, app_id: str, user_id: str,
                              conversation_ids: Sequence[str]) -> dict[str, Member]:
        return await self._inner.get_memberships(app_id, user_id, conversation_ids)

    async def conversation_partners(self, app_id: str, user_id: str,
                                    user_ids: Sequence[str]) -> set[str]:
        return await self._inner.conversation_partners(app_id, user_id, user_ids)

    async def add_members(self, app_id: str, conversation_id: str, members: Sequence[Member],
                          max_members: int) -> list[Member]:
        return await self._inner.add_members(app_id, conversation_id, members, max_members)

    async def remove_member(self, app_id: str, conversation_id: str, user_id: str,
                            now: datetime) -> Member | None:
        return await self._inner.remove_member(app_id, conversation_id, user_id, now)

    async def update_member(self, app_id: str, conversation_id: str, user_id: str,
                            changes: MemberChanges, now: datetime) -> Member | None:
        return await self._inner.update_member(app_id, conversation_id, user_id, changes, now)

    async def list_members(self, app_id: str, conversation_id: str, limit: int,
                           after: Keyset | None, *, where: Expr | None = None,
                           ordering: Ordering = BY_JOIN) -> list[Member]:
        return await self._inner.list_members(app_id, conversation_id, limit, after,
                                              where=where, ordering=ordering)

    async def list_user_conversations(self, app_id: str, user_id: str, include_archived: bool,
                                      limit: int, after: Keyset | None, *,
                                      where: Expr | None = None, ordering: Ordering = INBOX
                                      ) -> list[tuple[Member, Conversation]]:
        found = await self._inner.list_user_conversations(
            app_id, user_id, include_archived, limit, after, where=where, ordering=ordering)
        return [(m, await self._opened(c)) for m, c in found]

    async def list_channels(self, app_id: str, limit: int, after: ConversationPosition | None
                            ) -> list[Conversation]:
        return [await self._opened(c)
                for c in await self._inner.list_channels(app_id, limit, after)]

    async def unread_totals(self, app_id: str, user_id: str) -> tuple[int, int]:
        return await self._inner.unread_totals(app_id, user_id)

    async def scan_conversations(self, app_id: str, limit: int, after: str | None
                                 ) -> list[Conversation]:
        return [await self._opened(c)
                for c in await self._inner.scan_conversations(app_id, limit, after)]

    async def join_times(self, app_id: str, user_id: str) -> dict[str, datetime]:
        return await self._inner.join_times(app_id, user_id)

    async def member_ids(self, app_id: str, conversation_id: str) -> list[str]:
        return await self._inner.member_ids(app_id, conversation_id)
