"""Retention policies and legal holds: managing them, and the sweep that applies them.

The sweep deletes each expired message the way DeleteMessage does (one transaction:
its content, revisions and reactions go, a tombstone keeps its sequence, previews and
unread counts follow, and its `message.deleted` event takes it out of the search index
and tells webhooks), oldest first, in batches; holds are read at the start of each
app's sweep. It is idempotent: sweeps may overlap (every process sweeps) and a sweep
cut short is finished by the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from services.apps.store import AppStore
from services.compliance.models import MAX_HOLDS, Holds, LegalHold, RetentionPolicy
from services.compliance.store import ComplianceStore
from services.conversations.access import conversation_name
from services.conversations.models import Kind
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import FailedPrecondition, limit_exceeded, not_found
from services.core.ids import new_id
from services.core.names import app_name, user_name
from services.core.pagination import Page, make_page, page_request, read_all, time_id_position
from services.core.principal import Principal, require_backend
from services.messages.store import MessageStore
from services.moderation.permissions import Permissions
from services.users.store import UserStore

log = logging.getLogger("caas.retention")

KINDS = frozenset(kind.value for kind in Kind)
SWEEP_BATCH = 200  # messages (and conversations) read at a time
SWEEP_EVERY_SECONDS = 3600
MANAGED = "retention policies and legal holds"


def _hold_position(hold: LegalHold) -> tuple[int, str]:
    return to_ms(hold.create_time), hold.hold_id


class RetentionActions:
    def __init__(self, store: ComplianceStore, apps: AppStore,
                 conversations: ConversationStore, users: UserStore,
                 permissions: Permissions, clock: Clock) -> None:
        self._store = store
        self._apps = apps
        self._conversations = conversations
        self._users = users
        self._permissions = permissions
        self._clock = clock

    async def _app(self, principal: Principal, app_id: str) -> None:
        require_backend(principal, app_id, MANAGED)
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))

    async def get_policy(self, principal: Principal, app_id: str) -> RetentionPolicy:
        await self._app(principal, app_id)
        return await self._store.get_policy(app_id) or RetentionPolicy(app_id)

    async def put_policy(self, principal: Principal, app_id: str, messages: timedelta | None,
                         types: Mapping[str, timedelta]) -> RetentionPolicy:
        await self._app(principal, app_id)
        declared = (await self._permissions.policy(app_id)).types
        for name in types:
            if name not in KINDS and name not in declared:
                raise FailedPrecondition(
                    "CONVERSATION_TYPE_UNKNOWN", f"{name} is neither a conversation kind nor "
                    "a conversation type of the app", metadata={"type": name})
        policy = RetentionPolicy(app_id, messages, dict(types), self._clock.now())
        await self._store.put_policy(policy)
        return policy

    async def create_hold(self, principal: Principal, app_id: str, conversation_id: str,
                          user_id: str, reason: str) -> LegalHold:
        await self._app(principal, app_id)
        if conversation_id and await self._conversations.get_conversation(
                app_id, conversation_id) is None:
            raise not_found("caas.dev/Conversation", conversation_name(app_id, conversation_id))
        if user_id and await self._users.get_user(app_id, user_id) is None:
            raise not_found("caas.dev/User", user_name(app_id, user_id))
        hold = LegalHold(app_id, new_id(), conversation_id, user_id, reason, self._clock.now())
        if not await self._store.create_hold(hold, MAX_HOLDS):
            raise limit_exceeded("legal holds per app", MAX_HOLDS)
        return hold

    async def list_holds(self, principal: Principal, app_id: str, page_size: int,
                         page_token: str) -> Page[LegalHold]:
        require_backend(principal, app_id, MANAGED)
        request = page_request(page_size, page_token, [app_id])
        holds = await self._store.list_holds(app_id, request.size + 1,
                                             time_id_position(request))
        return make_page(holds, request, [app_id],
                         _hold_position)

    async def delete_hold(self, principal: Principal, app_id: str, hold_id: str) -> None:
        require_backend(principal, app_id, MANAGED)
        if not await self._store.delete_hold(app_id, hold_id):
            raise not_found("caas.dev/LegalHold", f"{app_name(app_id)}/legalHolds/{hold_id}")


class RetentionSweeper:
    """Applies retention policies, and deletes data exports past their time."""

    def __init__(self, store: ComplianceStore, conversations: ConversationStore,
                 messages: MessageStore, clock: Clock,
                 expire_exports: Callable[[], Awaitable[int]]) -> None:
        self._store = store
        self._conversations = conversations
        self._messages = messages
        self._clock = clock
        self._expire_exports = expire_exports

    async def _holds(self, app_id: str) -> Holds:
        return Holds.of(await read_all(
            lambda after: self._store.list_holds(app_id, SWEEP_BATCH, after),
            _hold_position, SWEEP_BATCH))

    async def sweep(self, app_id: str | None = None) -> int:
        """Apply every app's policy (or `app_id`'s) now; the messages deleted."""
        deleted = 0
        for policy in await self._store.policies():
            if app_id is None or policy.app_id == app_id:
                deleted += await self._sweep_app(policy)
        return deleted

    async def _sweep_app(self, policy: RetentionPolicy) -> int:
        if policy.messages is None and not policy.types:
            return 0
        holds = await self._holds(policy.app_id)
        deleted = 0
        after = None
        while batch := await self._conversations.scan_conversations(
                policy.app_id, SWEEP_BATCH, after):
            after = batch[-1].conversation_id
            for conversation in batch:
                kept_for = policy.retention(conversation.kind.value, conversation.type)
                if kept_for is None or conversation.conversation_id in holds.conversations:
                    continue
                deleted += await self._sweep_conversation(
                    policy.app_id, conversation.conversation_id, kept_for, holds.users)
        if deleted:
            log.info("retention deleted messages",
                     extra={"app": policy.app_id, "messages": deleted})
        return deleted

    async def _sweep_conversation(self, app_id: str, conversation_id: str,
                                  kept_for: timedelta, kept_senders: frozenset[str]) -> int:
        deleted = 0
        while True:
            now = self._clock.now()
            expired = await self._messages.expired(app_id, conversation_id, now - kept_for,
                                                   SWEEP_BATCH, kept_senders)
            for sequence in expired:
                if await self._messages.delete(app_id, conversation_id, sequence, now):
                    deleted += 1
            if len(expired) < SWEEP_BATCH:
                return deleted

    async def run(self) -> None:
        """Sweep now and every hour (until cancelled)."""
        while True:
            try:
                await self.sweep()
                await self._expire_exports()
            except Exception:
                log.warning("retention sweep failed", exc_info=True)
            await asyncio.sleep(SWEEP_EVERY_SECONDS)
