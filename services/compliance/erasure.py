"""Erasing a user (ComplianceService.EraseUser): an operation in idempotent steps.

- `profile`: the profile becomes a tombstone (the id stays taken) and every session
  ends, as DeleteUser does;
- `messages`: each message they sent is deleted as DeleteMessage deletes it (its text,
  attachments, metadata, revisions and reactions go; a tombstone keeps the sequence;
  its `message.deleted` event takes it out of the search index);
- `reactions`: their reactions on others' messages are removed;
- `memberships`: they leave every conversation (their read positions, the receipts,
  go with the memberships);
- `copies`: the copies of their content elsewhere: the payloads of their
  `message.created` and `message.updated` events in the log are emptied of it, their
  flagged messages' texts are emptied, and webhook deliveries and dead letters of those
  events are dropped;
- `search`: waits until the search index has taken the deletions;
- `compact`: the embedded store and index leave nothing erased on disk (SQLite's
  secure_delete zeroes deleted content; the checkpoint empties the WAL; the index
  merges its segments). MongoDB's own files are the database's to compact (its
  `compact` command, or a resync), as its backups are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from caas.events.v1 import events_pb2

from services.compliance.operations import ERASE_USER, Operation, OperationStore
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import not_found
from services.core.ids import new_id
from services.core.names import app_name, user_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import Operator, Principal, require_backend
from services.events.log import EventLog
from services.messages.store import MessageStore
from services.moderation.store import FlagStore
from services.search.indexer import Indexer
from services.users.actions import UsersActions
from services.users.store import UserStore
from services.webhooks.store import WebhookStore

log = logging.getLogger("caas.erasure")

STEPS = ("profile", "messages", "reactions", "memberships", "copies", "search", "compact")
BATCH = 200
LEASE = timedelta(seconds=60)  # a step taking longer renews it... by finishing: keep steps short
RETRY = timedelta(seconds=5)  # a failed step is tried again this long after
IDLE_SECONDS = 1.0  # how often an idle worker looks for operations
SEARCH_PATIENCE = 30.0  # seconds the search step waits for the index before retrying
# Events whose payloads may hold a user's content: their messages, the copies flags
# keep of them, and the previews conversations show of them.
CONTENT_TYPES = ("message.created", "message.updated", "flag.reported", "flag.resolved",
                 "conversation.created", "conversation.updated")


def content_redactor(user_id: str) -> Callable[[bytes], bytes | None]:
    """What takes `user_id`'s content out of an event's payload (None: there was none)."""
    def redact(payload: bytes) -> bytes | None:
        event = events_pb2.Event.FromString(payload)
        kind = event.WhichOneof("payload")
        found = False
        if kind in ("message_created", "message_updated"):
            message = getattr(event, kind)
            if message.sender_id == user_id:
                found = True
                message.text = ""
                for field in ("metadata", "attachments", "mention_ids"):
                    message.ClearField(field)
        elif kind in ("flag_reported", "flag_resolved"):
            flag = getattr(event, kind)
            if flag.user_id == user_id and flag.message_text:
                found = True
                flag.message_text = ""
        elif kind in ("conversation_created", "conversation_updated"):
            preview = getattr(event, kind).last_message
            if preview.sender_id == user_id and preview.text:
                found = True
                preview.text = ""
        return event.SerializeToString() if found else None

    return redact


class Eraser:
    """Runs the steps of erasure operations (see the module)."""

    def __init__(self, users: UsersActions, user_store: UserStore, messages: MessageStore,
                 conversations: ConversationStore, events: EventLog, flags: FlagStore,
                 webhooks: WebhookStore, indexer: Indexer,
                 compact: Callable[[], Awaitable[object]], clock: Clock) -> None:
        self._users = users
        self._user_store = user_store
        self._messages = messages
        self._conversations = conversations
        self._events = events
        self._flags = flags
        self._webhooks = webhooks
        self._indexer = indexer
        self._compact = compact
        self._clock = clock

    async def step(self, stage: str, app_id: str, user_id: str) -> dict[str, int]:
        """Run one step; what it did (counts to add)."""
        steps = {"profile": self._step_profile, "messages": self._step_messages,
                 "reactions": self._step_reactions, "memberships": self._step_memberships,
                 "copies": self._step_copies, "search": self._step_search,
                 "compact": self._step_compact_files}
        return await steps[stage](app_id, user_id)

    async def _step_profile(self, app_id: str, user_id: str) -> dict[str, int]:
        await self._users.do_delete_user(Operator(), app_id, user_id)
        return {}

    async def _step_messages(self, app_id: str, user_id: str) -> dict[str, int]:
        erased = 0
        while sent := await self._messages.sent_by(app_id, user_id, BATCH):
            for conversation_id, sequence in sent:
                await self._messages.delete(app_id, conversation_id, sequence,
                                            self._clock.now())
                erased += 1
        return {"messages_erased": erased}

    async def _step_reactions(self, app_id: str, user_id: str) -> dict[str, int]:
        removed = 0
        while reactions := await self._messages.reactions_by(app_id, user_id, BATCH):
            for conversation_id, sequence, emoji in reactions:
                await self._messages.remove_reaction(app_id, conversation_id, sequence,
                                                     user_id, emoji, self._clock.now())
                removed += 1
        return {"reactions_removed": removed}

    async def _step_memberships(self, app_id: str, user_id: str) -> dict[str, int]:
        left = 0
        for conversation_id in await self._conversations.join_times(app_id, user_id):
            if await self._conversations.remove_member(app_id, conversation_id, user_id,
                                                       self._clock.now()):
                left += 1
        return {"conversations_left": left}

    async def _step_copies(self, app_id: str, user_id: str) -> dict[str, int]:
        positions = await self._events.redact(app_id, CONTENT_TYPES,
                                              content_redactor(user_id))
        await self._webhooks.drop_events(
            app_id, [f"{app_name(app_id)}/events/{p}" for p in positions])
        await self._flags.forget_texts(app_id, user_id)
        return {"events_redacted": len(positions)}

    async def _step_search(self, app_id: str, user_id: str) -> dict[str, int]:
        head = (await self._events.head(app_id)).position
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEARCH_PATIENCE
        while any(lag.app_id == app_id and lag.indexed < head
                  for lag in await self._indexer.lag()):
            if loop.time() > deadline:
                raise TimeoutError("the search index has not taken the deletions yet")
            await asyncio.sleep(0.2)  # the indexer moves on its own: no event to await
        return {}

    async def _step_compact_files(self, app_id: str, user_id: str) -> dict[str, int]:
        await self._compact()
        await self._indexer.index.compact()
        return {}


class OperationWorker:
    """Carries out the operations (any process's) one at a time, in the background."""

    def __init__(self, store: OperationStore, eraser: Eraser, clock: Clock) -> None:
        self._store = store
        self._eraser = eraser
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                if await self.work_once():
                    continue
            except Exception:
                log.warning("operation step failed; it is tried again", exc_info=True)
            self._wake.clear()
            # An idle look every so often: another process may have started one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)

    async def work_once(self) -> bool:
        """Claim one operation and run its remaining steps; whether there was one."""
        now = self._clock.now()
        op = await self._store.claim(now, now + LEASE)
        if op is None:
            return False
        while not op.done:
            stage = op.stage
            try:
                counts = await self._eraser.step(stage, op.app_id, op.target)
            except Exception:
                await self._store.save(replace(
                    op, lease_until=self._clock.now() + RETRY, update_time=self._clock.now()))
                raise
            position = STEPS.index(stage) + 1
            merged = dict(op.counts)
            for key, value in counts.items():
                merged[key] = merged.get(key, 0) + value
            now = self._clock.now()
            op = replace(op, stage=STEPS[position] if position < len(STEPS) else "done",
                         progress=100 * position // len(STEPS), counts=merged,
                         update_time=now, lease_until=now + LEASE)
            await self._store.save(op)
        log.info("user erased", extra={"app": op.app_id, "user": op.target, **op.counts})
        return True


class ErasureActions:
    def __init__(self, store: OperationStore, users: UserStore, worker: OperationWorker,
                 clock: Clock) -> None:
        self._store = store
        self._users = users
        self._worker = worker
        self._clock = clock

    async def erase_user(self, principal: Principal, app_id: str, user_id: str) -> Operation:
        require_backend(principal, app_id, "erasures")
        if await self._users.get_user(app_id, user_id) is None:
            raise not_found("caas.dev/User", user_name(app_id, user_id))
        now = self._clock.now()
        op = await self._store.start(Operation(app_id, new_id(), ERASE_USER, user_id,
                                               STEPS[0], 0, {}, create_time=now,
                                               update_time=now))
        self._worker.wake()
        return op

    async def get(self, principal: Principal, app_id: str, operation_id: str) -> Operation:
        require_backend(principal, app_id, "operations")
        op = await self._store.get(app_id, operation_id)
        if op is None:
            raise not_found("caas.dev/Operation",
                            f"{app_name(app_id)}/operations/{operation_id}")
        return op

    async def list(self, principal: Principal, app_id: str, page_size: int,
                   page_token: str) -> Page[Operation]:
        require_backend(principal, app_id, "operations")
        request = page_request(page_size, page_token, [app_id])
        ops = await self._store.list(app_id, request.size + 1, time_id_position(request))
        return make_page(ops, request, [app_id], lambda op: (
            to_ms(op.create_time) if op.create_time else 0, op.operation_id))
