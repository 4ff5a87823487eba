"""What can be done with flags: report messages and users, review the reports.

- Reporting: a user flags a message of a conversation they belong to, or a user of
  their app; never themself nor their own message. The app's backend and the
  operator flag anything of the app.
- Reviewing (get whole, list, claim, resolve): the app's backend and the operator,
  every flag; a moderator, admin or owner of a conversation, the flags of its
  messages, except those of their own messages. A reporter sees the flag they reported
  with their own report only; anyone else gets NOT_FOUND, as for a flag that does not
  exist.
- Resolving does what it decides (delete the message, mute or ban the user) through
  the same actions as doing it directly, so it is authorised the same way, and then
  records it. Those actions are idempotent: if recording fails, the flag stays open
  and a retry completes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import FailedPrecondition, PermissionDenied, invalid_field, not_found
from services.core.ids import new_id
from services.core.names import flag_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import AppBackend, Operator, Principal, User, require_app
from services.messages.actions import MessagesActions
from services.moderation.actions import ModerationActions, creator_of
from services.moderation.models import (
    APP_WIDE,
    Flag,
    FlagState,
    Report,
    ReportReason,
    Resolution,
    RestrictionType,
)
from services.moderation.permissions import Permission
from services.moderation.store import FlagStore
from services.users.actions import check_users
from services.users.store import UserStore

CLAIM_TIME = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Sanction:
    """The mute or ban a resolution imposes on the flagged user."""

    type: RestrictionType
    app_wide: bool
    reason: str
    expire_time: datetime | None


def _not_allowed(message: str) -> PermissionDenied:
    return PermissionDenied("FLAG_NOT_ALLOWED", message)


def reporter_view(flag: Flag, report: Report) -> Flag:
    """The flag as its reporter sees it: their report, not the others' nor the review."""
    return replace(flag, report_count=1, reports=(report,), claimer="",
                   claim_expire_time=None, resolution=None)


class FlagActions:
    def __init__(self, store: FlagStore, moderation: ModerationActions,
                 messages: MessagesActions, conversation_store: ConversationStore,
                 users: UserStore, clock: Clock) -> None:
        self._store = store
        self._moderation = moderation
        self._messages = messages
        self._conversation_store = conversation_store
        self._users = users
        self._clock = clock

    async def do_flag_message(self, principal: Principal, app_id: str, conversation_id: str,
                              sequence: int, reason: ReportReason, details: str) -> Flag:
        message = (await self._messages.get(principal, app_id, conversation_id,
                                            sequence)).message
        if message.deleted:
            raise FailedPrecondition("MESSAGE_DELETED", "the message was deleted")
        if isinstance(principal, User) and message.sender_id == principal.user_id:
            raise _not_allowed("a user does not flag their own message")
        now = self._clock.now()
        return await self._report(principal, Flag(
            app_id, new_id(), conversation_id, sequence, message.sender_id, message.text,
            FlagState.OPEN, now, now), reason, details)

    async def do_flag_user(self, principal: Principal, app_id: str, user_id: str,
                           reason: ReportReason, details: str) -> Flag:
        require_app(principal, app_id)
        if isinstance(principal, User) and user_id == principal.user_id:
            raise _not_allowed("a user does not flag themself")
        await check_users(self._users, app_id, [user_id])
        now = self._clock.now()
        return await self._report(principal, Flag(
            app_id, new_id(), APP_WIDE, 0, user_id, "", FlagState.OPEN, now, now), reason,
            details)

    async def _report(self, principal: Principal, flag: Flag, reason: ReportReason,
                      details: str) -> Flag:
        report = Report(creator_of(principal), reason, details, self._clock.now())
        stored = await self._store.report(flag, report)
        return reporter_view(stored, report) if isinstance(principal, User) else stored

    async def _reviews(self, principal: Principal, flag: Flag) -> bool:
        """Whether the caller may review the flag."""
        if isinstance(principal, AppBackend | Operator):
            return True
        assert isinstance(principal, User)
        if not flag.conversation_id or flag.user_id == principal.user_id:
            return False
        return await self._moderation.moderates(principal, flag.app_id, flag.conversation_id)

    async def _seen(self, principal: Principal, app_id: str, flag_id: str
                    ) -> tuple[Flag, bool]:
        """The flag as the caller may see it, and whether they may review it; NOT_FOUND
        when they may not see it."""
        require_app(principal, app_id)
        flag = await self._store.get_flag(app_id, flag_id)
        if flag is not None:
            if await self._reviews(principal, flag):
                return flag, True
            report = await self._store.get_report(app_id, flag_id, creator_of(principal))
            if report is not None:
                return reporter_view(flag, report), False
        raise not_found("caas.dev/Flag", flag_name(app_id, flag_id))

    async def get(self, principal: Principal, app_id: str, flag_id: str) -> Flag:
        return (await self._seen(principal, app_id, flag_id))[0]

    async def _reviewed(self, principal: Principal, app_id: str, flag_id: str,
                        now: datetime, held: bool = False) -> Flag:
        """The open flag the caller may review and nobody else holds (or, `held`, that
        another may hold)."""
        flag, reviews = await self._seen(principal, app_id, flag_id)
        if not reviews:  # a reporter
            if flag.conversation_id:
                raise PermissionDenied(
                    "PERMISSION_MISSING", "reviewing a flag needs the moderate permission",
                    metadata={"permission": Permission.MODERATE.value})
            raise _not_allowed("only the app's backend reviews the flags of users")
        if flag.state is FlagState.RESOLVED:
            raise FailedPrecondition("FLAG_RESOLVED", "the flag is resolved already")
        if not held and flag.held_by_other(creator_of(principal), now):
            assert flag.claim_expire_time is not None
            raise FailedPrecondition(
                "FLAG_CLAIMED", f"{flag.claimer} reviews this flag",
                metadata={"claimer": flag.claimer,
                          "claim_expire_time": flag.claim_expire_time.isoformat()})
        return flag

    async def _changed(self, principal: Principal, app_id: str, flag_id: str,
                       changed: Flag | None) -> Flag:
        """What the store changed; if it changed nothing, the flag was resolved or
        claimed meanwhile: say which."""
        if changed is not None:
            return changed
        await self._reviewed(principal, app_id, flag_id, self._clock.now())
        raise AssertionError("the flag changed state twice")  # pragma: no cover

    async def do_claim(self, principal: Principal, app_id: str, flag_id: str,
                       release: bool) -> Flag:
        now = self._clock.now()
        flag = await self._reviewed(principal, app_id, flag_id, now, held=release)
        if release and flag.held_by_other(creator_of(principal), now):
            return flag  # the caller holds no claim to give up
        return await self._changed(principal, app_id, flag_id, await self._store.claim(
            app_id, flag_id, creator_of(principal), None if release else now + CLAIM_TIME,
            now))

    async def do_resolve(self, principal: Principal, app_id: str, flag_id: str, note: str,
                         delete_message: bool, sanction: Sanction | None) -> Flag:
        flag = await self._reviewed(principal, app_id, flag_id, self._clock.now())
        if delete_message:
            if not flag.sequence:
                raise invalid_field("delete_message", "only a message's flag deletes one")
            await self._messages.do_delete(principal, app_id, flag.conversation_id,
                                           flag.sequence)
        restriction_id = ""
        if sanction is not None:
            place = APP_WIDE if sanction.app_wide else flag.conversation_id
            restriction_id = (await self._moderation.do_restrict(
                principal, app_id, flag.user_id, place, sanction.type, sanction.reason,
                sanction.expire_time)).restriction_id
        resolution = Resolution(creator_of(principal), note, delete_message, restriction_id,
                                self._clock.now())
        return await self._changed(principal, app_id, flag_id,
                                   await self._store.resolve(app_id, flag_id, resolution))

    async def list_flags(self, principal: Principal, app_id: str, state: FlagState | None,
                         conversation_id: str | None, user_id: str, page_size: int,
                         page_token: str) -> Page[Flag]:
        require_app(principal, app_id)
        if isinstance(principal, User):
            if not conversation_id:
                raise _not_allowed("a user lists the flags of a conversation they moderate "
                                   "(conversation)")
            await self._moderation.moderated(principal, app_id, conversation_id)
            if user_id == principal.user_id:
                raise _not_allowed("a moderator does not review flags of themself")
        scope = [app_id, "" if state is None else state.value, conversation_id or "", user_id]
        request = page_request(page_size, page_token, scope)
        rows = await self._store.list_flags(
            app_id, request.size + 1, time_id_position(request), state=state,
            conversation_id=conversation_id, user_id=user_id,
            # A moderator does not see the flags of their own messages.
            not_user_id=principal.user_id if isinstance(principal, User) else "")
        return make_page(rows, request, scope, lambda f: (to_ms(f.create_time), f.flag_id))
