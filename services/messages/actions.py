"""Sending, reading, editing, deleting and reacting to messages; read and delivery state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from services.conversations.access import Access, conversation_name
from services.conversations.actions import ConversationsActions, facts
from services.conversations.models import Kind, Member
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import (
    CapacityExceeded,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    invalid_field,
    limit_exceeded,
    not_found,
)
from services.core.filter_syntax import parse_filter
from services.core.pagination import Page as ListPage
from services.core.pagination import make_page, page_request, time_id_position
from services.core.principal import AppBackend, Operator, Principal, User, require_user_or_app
from services.e2ee.delivery import stale
from services.messages.flood import SendRate
from services.messages.listing import MESSAGE_FILTER
from services.messages.models import (
    COMMIT,
    Attachment,
    Draft,
    Mention,
    Message,
    MessageChanges,
    MlsDraft,
    Page,
    Reaction,
    ReceiptSummary,
    Revision,
)
from services.messages.store import Direction, MessageStore, StaleEpoch, TooSoon
from services.moderation.matching import has_link
from services.moderation.permissions import Permission
from services.moderation.restrictions import Restrictions
from services.moderation.screening import Screening
from services.moderation.send_hooks import Presend, SendHooks
from services.users.actions import check_not_blocked, user_deleted
from services.users.store import UserStore

# Stated in the contract (MessagesService.AddReaction).
MAX_REACTION_EMOJI = 50
MAX_REACTIONS_PER_USER = 10


@dataclass(frozen=True, slots=True)
class MlsSend:
    """An MLS message a member's device sends (Message.mls)."""

    data: bytes
    device_id: str = ""
    welcome: bytes = b""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message as a caller asks to send it."""

    text: str
    attachments: tuple[Attachment, ...] = ()
    mention_ids: Sequence[str] = ()
    metadata: Mapping[str, str] | None = None
    thread_root: int = 0
    sender_id: str = ""  # the app's backend names the sender
    mls: MlsSend | None = None  # in an end-to-end encrypted conversation

    @property
    def plaintext(self) -> bool:
        return bool(self.text or self.attachments or self.mention_ids or self.metadata)


@dataclass(frozen=True, slots=True)
class Shown:
    """A message with what depends on who looks at it."""

    message: Message
    reacted: frozenset[str]  # emoji the caller reacted with
    sender_deleted: bool
    shadowed: bool = False  # said only to the app's backend and the operator


class MediaAttachments(Protocol):
    """What sending needs of the media domain (services/media/actions.py)."""

    async def attach(self, app_id: str, conversation_id: str, sender: str, backend: bool,
                     attachments: Sequence[Attachment]) -> tuple[Attachment, ...]:
        """The attachments with their media filled in; raises if one may not be sent."""

    async def detach(self, app_id: str, attachments: Sequence[Attachment]) -> None:
        """No message carries these any more."""


class MlsDelivery(Protocol):
    """What sending needs of the MLS delivery service (services/e2ee/actions.py)."""

    async def check_send(self, access: Access, sender_id: str, send: MlsSend) -> MlsDraft:
        """The MLS message as the group takes it; raises if it may not go."""


def not_encrypted(access: Access) -> FailedPrecondition:
    return FailedPrecondition("E2EE_NOT_ENABLED", "the conversation is not end-to-end"
                              " encrypted", metadata={"conversation": access.conversation_id})


def unsupported(feature: str, what: str) -> FailedPrecondition:
    return FailedPrecondition("E2EE_NOT_SUPPORTED", f"{what}: the conversation is end-to-end"
                              " encrypted and the server cannot read it",
                              metadata={"feature": feature})


def message_name(app_id: str, conversation_id: str, sequence: int) -> str:
    return f"{conversation_name(app_id, conversation_id)}/messages/{sequence}"


class MessagesActions:
    def __init__(self, store: MessageStore, conversations: ConversationsActions,
                 conversation_store: ConversationStore, users: UserStore, clock: Clock,
                 media: MediaAttachments, restrictions: Restrictions,
                 screening: Screening, send_hooks: SendHooks, send_rate: SendRate,
                 mls: MlsDelivery) -> None:
        self._store = store
        self._mls = mls
        self._restrictions = restrictions
        self._screening = screening
        self._send_hooks = send_hooks
        self._send_rate = send_rate
        self._media = media
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._users = users
        self._clock = clock

    async def _member_access(self, principal: Principal, app_id: str, conversation_id: str
                             ) -> Access:
        access = await self._conversations.access(principal, app_id, conversation_id)
        access.require_member()
        return access

    async def _message(self, access: Access, sequence: int) -> Message:
        """The message, if the caller may see it: a shadowed one is its sender's alone
        (and the app's backend's); NOT_FOUND otherwise, as for none."""
        message = await self._store.get(access.app_id, access.conversation_id, sequence)
        if message is not None and await self._before_joining(access, message):
            message = None  # history the caller may not read
        if message is None or (message.shadowed and not access.backend and (
                access.member is None or access.member.user_id != message.sender_id)):
            raise not_found("caas.dev/Message",
                            message_name(access.app_id, access.conversation_id, sequence))
        return message

    async def _history_start(self, access: Access) -> datetime | None:
        """When the caller's reading starts: their joining, when they may not read the
        history before it (Permission.READ_HISTORY); None: the beginning."""
        if access.backend or access.member is None or await self._conversations.permits(
                access, Permission.READ_HISTORY):
            return None
        return access.member.join_time

    async def _before_joining(self, access: Access, message: Message) -> bool:
        member = access.member
        return (member is not None and message.create_time < member.join_time
                and await self._history_start(access) is not None)

    async def show(self, principal: Principal, messages: Sequence[Message]) -> list[Shown]:
        """Decorate messages for the caller: their own reactions, deleted senders."""
        if not messages:
            return []
        first = messages[0]
        mine: dict[int, set[str]] = {}
        if isinstance(principal, User):
            mine = await self._store.reacted(first.app_id, first.conversation_id,
                                             [m.sequence for m in messages if m.reactions],
                                             principal.user_id)
        senders = await self._users.get_users(first.app_id, {m.sender_id for m in messages})
        backend = isinstance(principal, AppBackend | Operator)
        return [Shown(m, frozenset(mine.get(m.sequence, ())),
                      m.sender_id in senders and senders[m.sender_id].deleted,
                      backend and m.shadowed)
                for m in messages]

    async def _sender(self, principal: Principal, access: Access, sender_id: str) -> Member:
        """The sending member: the calling user, or the member the app's backend names."""
        if isinstance(principal, User):
            if sender_id and sender_id != principal.user_id:
                raise PermissionDenied("USER_MISMATCH", "a user sends as themself only",
                                       metadata={"user": sender_id})
            assert access.member is not None
            return access.member
        if not sender_id:
            raise invalid_field("message.sender_id",
                                "the app's backend must name the sending member")
        member = await self._conversation_store.get_member(access.app_id,
                                                           access.conversation_id, sender_id)
        if member is None:
            raise invalid_field("message.sender_id", "must be a member of the conversation")
        return member

    async def _mentions(self, app_id: str, user_ids: Sequence[str]) -> tuple[Mention, ...]:
        found = await self._users.get_users(app_id, user_ids)
        mentions = []
        for user_id in user_ids:
            user = found.get(user_id)
            if user is None or user.deleted:
                raise invalid_field("message.mention_ids", f"user {user_id} does not exist")
            mentions.append(Mention(user_id, user.display_name))
        return tuple(mentions)

    async def do_send(self, principal: Principal, app_id: str, conversation_id: str,
                      outgoing: Outgoing, request_id: str) -> tuple[Shown, bool]:
        """Send (or, for a request_id seen before, return the first send). See the
        contract of MessagesService.CreateMessage for every rule."""
        # Whoever sends, the words are the sender's: a muted or banned sender is refused,
        # first (a user banned from a conversation is no member of it any more).
        sender_id = principal.user_id if isinstance(principal, User) else outgoing.sender_id
        if sender_id:
            await self._restrictions.check_write(app_id, sender_id, conversation_id)
        access = await self._member_access(principal, app_id, conversation_id)
        sender = await self._sender(principal, access, outgoing.sender_id)
        conversation = access.conversation
        kind = conversation.kind.value
        if conversation.encrypted or outgoing.mls is not None:
            return await self._send_mls(principal, access, sender, outgoing, request_id)
        links = has_link(outgoing.text)
        if isinstance(principal, User):  # the app's backend sends anything, as anyone
            request = {"text_length": len(outgoing.text), "has_links": links,
                       "attachment_count": len(outgoing.attachments),
                       "mention_count": len(outgoing.mention_ids)}
            needed = [Permission.SEND_MESSAGE]
            needed += [Permission.ATTACH_MEDIA] if outgoing.attachments else []
            needed += [Permission.SEND_LINKS] if links else []
            await self._conversations.require(access, *needed, request=request)
        await self._check_open(principal, access, sender)
        verdict = await self._screening.check(app_id, kind, outgoing.text)
        if outgoing.thread_root:
            root = await self._store.get(app_id, conversation_id, outgoing.thread_root)
            if root is None or root.thread_root != 0 or (
                    root.shadowed and root.sender_id != sender.user_id):
                raise InvalidArgument(
                    "THREAD_ROOT_INVALID", "thread_root_sequence must name a top-level "
                    "message of this conversation")
        mentions = await self._mentions(app_id, outgoing.mention_ids)
        attachments = await self._media.attach(app_id, conversation_id, sender.user_id,
                                               access.backend, outgoing.attachments)
        text = await self._send_hooks.check(Presend(
            app_id, conversation_id, kind, sender.user_id, request_id,
            verdict.text, outgoing.metadata or {}, outgoing.mention_ids, len(attachments),
            outgoing.thread_root))
        shadowed = await self._restrictions.shadowed(app_id, sender.user_id, conversation_id)
        draft = Draft(sender.user_id, text, attachments, mentions,
                      dict(outgoing.metadata or {}), outgoing.thread_root, shadowed)
        message, created = await self._append(access, sender, draft, request_id)
        if created and verdict.flagged_by:
            await self._screening.flag(app_id, conversation_id, message.sequence,
                                       message.sender_id, message.text, verdict)
        return Shown(message, frozenset(), False), created

    async def _check_open(self, principal: Principal, access: Access, sender: Member) -> None:
        """Whether the conversation takes the sender's message now: not frozen (for them),
        a direct one not blocked, within the user's send budget."""
        conversation = access.conversation
        if conversation.frozen and not access.backend and not await (
                self._conversations.permissions.allows(
                    access.app_id, sender.user_id, conversation.kind.value, sender.role,
                    Permission.SEND_WHEN_FROZEN, facts(access))):
            raise FailedPrecondition("CONVERSATION_FROZEN",
                                     "the conversation is frozen: only admins may send")
        if conversation.kind is Kind.DIRECT:
            await self._check_direct_open(access, sender.user_id)
        if isinstance(principal, User):  # a backend's sends have the app's budgets
            await self._send_rate.check(access.app_id, access.conversation_id,
                                        principal.user_id)

    async def _append(self, access: Access, sender: Member, draft: Draft, request_id: str
                      ) -> tuple[Message, bool]:
        """Store the message, in slow mode unless the sender skips it (commits are the
        group's, never slowed)."""
        conversation = access.conversation
        slow = conversation.slow_mode
        if slow and ((draft.mls is not None and draft.mls.group is not None) or await (
                self._conversations.permissions.allows(
                    access.app_id, sender.user_id, conversation.kind.value, sender.role,
                    Permission.SKIP_SLOW_MODE, facts(access)))):
            slow = timedelta(0)
        now = self._clock.now()
        try:
            return await self._store.append(access.app_id, access.conversation_id, draft,
                                            request_id, now, slow)
        except LookupError:
            raise not_found("caas.dev/Conversation", conversation_name(
                access.app_id, access.conversation_id)) from None
        except StaleEpoch as moved:
            assert draft.mls is not None
            raise stale(moved.group, draft.mls.content.epoch) from None
        except TooSoon as wait:
            seconds = slow.total_seconds()
            raise ResourceExhausted(
                "SLOW_MODE", f"slow mode: one message per {seconds:g} s here; the next may "
                f"go at {wait.ready_at.isoformat()}",
                metadata={"slow_mode_seconds": f"{seconds:g}"},
                retry_after=wait.ready_at - now) from None

    async def _send_mls(self, principal: Principal, access: Access, sender: Member,
                        outgoing: Outgoing, request_id: str) -> tuple[Shown, bool]:
        """An MLS message of a member's device into an end-to-end encrypted conversation
        (services/e2ee): its MLS framing checked by the delivery service, nothing in the
        clear, no screening or send hook (there is nothing they could read)."""
        if not access.conversation.encrypted:
            raise not_encrypted(access)
        if outgoing.mls is None or outgoing.plaintext:
            raise FailedPrecondition(
                "E2EE_PLAINTEXT_REFUSED", "the conversation is end-to-end encrypted: send"
                " an MLS message (message.mls) and nothing in the clear")
        if not isinstance(principal, User):
            raise unsupported("backend_send", "only a member's device sends here")
        if outgoing.thread_root:
            raise unsupported("threads", "replies are not threaded here (say it inside the"
                              " encrypted message)")
        await self._conversations.require(access, Permission.SEND_MESSAGE, request={
            "text_length": 0, "has_links": False, "attachment_count": 0, "mention_count": 0})
        await self._check_open(principal, access, sender)
        try:
            mls = await self._mls.check_send(access, sender.user_id, outgoing.mls)
        except DomainError:
            # A retry returns the first send, even once the group has moved past its
            # epoch (a retry the group still takes is answered by the store).
            sent = await self._store.sent(access.app_id, access.conversation_id,
                                          sender.user_id, request_id)
            if sent is None:
                raise
            return Shown(sent, frozenset(), False), False
        shadowed = mls.group is None and await self._restrictions.shadowed(
            access.app_id, sender.user_id, access.conversation_id)
        draft = Draft(sender.user_id, "", shadowed=shadowed, mls=mls)
        message, created = await self._append(access, sender, draft, request_id)
        return Shown(message, frozenset(), False), created

    async def _check_direct_open(self, access: Access, sender_id: str) -> None:
        rows = await self._conversation_store.list_members(access.app_id,
                                                           access.conversation_id, 3, None)
        others = [m.user_id for m in rows if m.user_id != sender_id]
        if others:
            await check_not_blocked(self._users, access.app_id, sender_id, others[0])
            recipient = await self._users.get_user(access.app_id, others[0])
            if recipient is not None and recipient.deleted:
                raise user_deleted(access.app_id, others[0])

    async def get(self, principal: Principal, app_id: str, conversation_id: str,
                  sequence: int) -> Shown:
        access = await self._member_access(principal, app_id, conversation_id)
        return (await self.show(principal, [await self._message(access, sequence)]))[0]

    async def list_messages(self, principal: Principal, app_id: str, conversation_id: str,
                            thread_root: int, direction: Direction, sequence: int,
                            page_size: int, filter_text: str = ""
                            ) -> tuple[list[Shown], bool, bool]:
        """A page of messages by position, only those matching `filter_text`
        (services/messages/listing.py), and whether matching ones lie on either side.
        Raises InvalidArgument for a bad filter (after the caller's access is checked)."""
        access = await self._member_access(principal, app_id, conversation_id)
        where = parse_filter(filter_text, MESSAGE_FILTER)
        page: Page = await self._store.list_page(
            app_id, conversation_id, thread_root, direction, sequence, page_size or 50,
            where=where, viewer=principal.user_id if isinstance(principal, User) else None,
            since=await self._history_start(access))
        return await self.show(principal, page.messages), page.more_before, page.more_after

    async def do_edit(self, principal: Principal, app_id: str, conversation_id: str,
                      sequence: int, changes: MessageChanges) -> Shown:
        access = await self._member_access(principal, app_id, conversation_id)
        if access.conversation.encrypted:
            raise unsupported("editing", "messages cannot be edited here (send a new one)")
        message = await self._message(access, sequence)
        if message.deleted:
            raise FailedPrecondition("MESSAGE_DELETED", "the message was deleted")
        if message.call is not None:
            raise FailedPrecondition("MESSAGE_NOT_EDITABLE",
                                     "a call's record cannot be edited (it can be deleted)")
        if not access.backend and (not isinstance(principal, User)
                                   or principal.user_id != message.sender_id):
            raise PermissionDenied("NOT_AUTHOR", "only the author may edit a message")
        if isinstance(principal, User):  # the app's backend may still edit (to moderate)
            await self._restrictions.check_write(app_id, principal.user_id, conversation_id)
        verdict = None
        if changes.text is not None:
            verdict = await self._screening.check(app_id, access.conversation.kind.value,
                                                  changes.text)
            changes = replace(changes, text=verdict.text)
        text = message.text if changes.text is None else changes.text
        attachments = (message.attachments if changes.attachments is None
                       else changes.attachments)
        if not text and not attachments:
            raise invalid_field("message.text", "a message needs text or an attachment")
        dropped: list[Attachment] = []
        if changes.attachments is not None:
            kept = {a.media_id: a for a in message.attachments if a.media_id}
            asked = changes.attachments
            given = iter(await self._media.attach(
                app_id, conversation_id, message.sender_id, access.backend,
                [a for a in asked if a.media_id not in kept]))
            final = tuple(kept[a.media_id] if a.media_id in kept else next(given)
                          for a in asked)
            changes = replace(changes, attachments=final)
            still = {a.media_id for a in final}
            dropped = [a for a in message.attachments if a.media_id and a.media_id not in still]
        edited = await self._store.edit(app_id, conversation_id, sequence, changes,
                                        self._clock.now())
        if edited is None or edited.deleted:
            raise FailedPrecondition("MESSAGE_DELETED", "the message was deleted")
        await self._media.detach(app_id, dropped)
        if verdict is not None and verdict.flagged_by:
            await self._screening.flag(app_id, conversation_id, sequence, edited.sender_id,
                                       edited.text, verdict)
        return (await self.show(principal, [edited]))[0]

    async def do_delete(self, principal: Principal, app_id: str, conversation_id: str,
                        sequence: int) -> Shown:
        """By the author, a moderator or higher, or the app's backend."""
        access = await self._member_access(principal, app_id, conversation_id)
        message = await self._message(access, sequence)
        if message.mls is not None and message.mls.kind == COMMIT:
            raise unsupported("deleting_commits", "a commit stays: the group's devices need it")
        is_author = isinstance(principal, User) and principal.user_id == message.sender_id
        if not is_author:
            await self._conversations.require(access, Permission.DELETE_ANY_MESSAGE)
        gone = await self._store.delete(app_id, conversation_id, sequence, self._clock.now())
        assert gone is not None
        await self._media.detach(app_id, message.attachments)
        return Shown(gone, frozenset(), False)

    async def revisions(self, principal: Principal, app_id: str, conversation_id: str,
                        sequence: int) -> list[Revision]:
        access = await self._member_access(principal, app_id, conversation_id)
        await self._message(access, sequence)
        return await self._store.revisions(app_id, conversation_id, sequence)

    async def do_react(self, principal: User, app_id: str, conversation_id: str,
                       sequence: int, emoji: str, add: bool) -> Shown:
        access = await self._member_access(principal, app_id, conversation_id)
        if access.conversation.encrypted:
            raise unsupported("reactions", "reactions would be in the clear here (send them"
                              " inside encrypted messages)")
        if add:
            await self._conversations.require(access, Permission.REACT)
        await self._restrictions.check_write(app_id, principal.user_id, conversation_id)
        message = await self._message(access, sequence)
        if message.deleted:
            raise FailedPrecondition("MESSAGE_DELETED", "the message was deleted")
        if add:
            try:
                changed = await self._store.add_reaction(
                    app_id, conversation_id, sequence, principal.user_id, emoji,
                    self._clock.now(), MAX_REACTION_EMOJI, MAX_REACTIONS_PER_USER)
            except CapacityExceeded as exc:
                raise limit_exceeded(exc.limit, exc.maximum) from exc
        else:
            changed = await self._store.remove_reaction(app_id, conversation_id, sequence,
                                                        principal.user_id, emoji,
                                                        self._clock.now())
        assert changed is not None
        return (await self.show(principal, [changed]))[0]

    async def list_reactions(self, principal: Principal, app_id: str, conversation_id: str,
                             sequence: int, page_size: int, page_token: str
                             ) -> ListPage[Reaction]:
        access = await self._member_access(principal, app_id, conversation_id)
        await self._message(access, sequence)
        scope = [app_id, conversation_id, str(sequence), "reactions"]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_reactions(app_id, conversation_id, sequence,
                                                request.size + 1, time_id_position(request))
        return make_page(rows, request, scope, lambda r: (to_ms(r.create_time),
                                                          f"{r.user_id}\x1f{r.emoji}"))

    async def do_mark(self, principal: User, app_id: str, conversation_id: str,
                      which: Literal["read", "delivered"], sequence: int) -> Member:
        access = await self._member_access(principal, app_id, conversation_id)
        member = await self._store.mark(app_id, conversation_id, principal.user_id, which,
                                        sequence, self._clock.now())
        if member is None:  # left meanwhile
            access.require_member()
            raise not_found("caas.dev/Conversation", conversation_name(app_id, conversation_id))
        return member

    async def receipts(self, principal: Principal, app_id: str, conversation_id: str,
                       sequence: int, page_size: int, page_token: str
                       ) -> tuple[ListPage[Member], ReceiptSummary]:
        access = await self._member_access(principal, app_id, conversation_id)
        message = await self._message(access, sequence)
        scope = [app_id, conversation_id, str(sequence), "receipts"]
        request = page_request(page_size, page_token, scope)
        rows, summary = await self._store.receipts(app_id, conversation_id, message,
                                                   request.size + 1, time_id_position(request))
        return make_page(rows, request, scope,
                         lambda m: (to_ms(m.join_time), m.user_id)), summary

    async def unread(self, principal: Principal, app_id: str, user_id: str) -> tuple[int, int]:
        require_user_or_app(principal, app_id, user_id)
        return await self._conversation_store.unread_totals(app_id, user_id)

