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
  flagged messages' texts are emptied, webhook deliveries and dead letters of those
  events are dropped, and their data exports are deleted;
- `keys`: their data key is destroyed (crypto-shredding, services/messages/sealing.py):
  whatever still holds their sealed content — a backup of the store, of the event log
  — holds ciphertext nobody can open;
- `search`: waits until the search index has taken the deletions;
- `compact`: the embedded store and index leave nothing erased on disk (SQLite's
  secure_delete zeroes deleted content; the checkpoint empties the WAL; the index
  merges its segments). MongoDB's own files are the database's to compact (its
  `compact` command, or a resync), as its backups are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from caas.events.v1 import events_pb2

from services.compliance.exports import Exporter
from services.compliance.operations import (
    ERASE_USER,
    EXPORT_USER_DATA,
    Operation,
    OperationStore,
    OperationWorker,
)
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import not_found
from services.core.ids import new_id
from services.core.names import app_name, user_name
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import Operator, Principal, require_backend
from services.events.log import EventLog
from services.keys.keyring import Keyring
from services.keys.models import user_owner
from services.media.blobs import BlobStore
from services.messages.store import MessageStore
from services.moderation.store import FlagStore
from services.search.indexer import Indexer
from services.users.actions import UsersActions
from services.users.store import UserStore
from services.webhooks.store import WebhookStore

log = logging.getLogger("caas.erasure")

STEPS = ("profile", "messages", "reactions", "memberships", "copies", "keys", "search",
         "compact")
BATCH = 200
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

    steps: tuple[str, ...] = STEPS

    def __init__(self, users: UsersActions, user_store: UserStore, messages: MessageStore,
                 conversations: ConversationStore, events: EventLog, flags: FlagStore,
                 webhooks: WebhookStore, indexer: Indexer, blobs: BlobStore, keyring: Keyring,
                 compact: Callable[[], Awaitable[object]], clock: Clock) -> None:
        self._users = users
        self._user_store = user_store
        self._messages = messages
        self._conversations = conversations
        self._events = events
        self._flags = flags
        self._webhooks = webhooks
        self._indexer = indexer
        self._blobs = blobs
        self._keyring = keyring
        self._compact = compact
        self._clock = clock

    async def step(self, stage: str, op: Operation) -> dict[str, int]:
        """Run one step; what it did (counts to add)."""
        steps = {"profile": self._step_profile, "messages": self._step_messages,
                 "reactions": self._step_reactions, "memberships": self._step_memberships,
                 "copies": self._step_copies, "keys": self._step_keys,
                 "search": self._step_search,
                 "compact": self._step_compact_files}
        return await steps[stage](op.app_id, op.target)

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
        await self._blobs.delete_prefix(f"exports/{app_id}/{user_id}/")  # their exports
        return {"events_redacted": len(positions)}

    async def _step_keys(self, app_id: str, user_id: str) -> dict[str, int]:
        return {"keys_destroyed": int(await self._keyring.erase(app_id, user_owner(user_id)))}

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


class UserDataActions:
    """Starting erasures and exports, and following them."""

    def __init__(self, store: OperationStore, users: UserStore, worker: OperationWorker,
                 clock: Clock) -> None:
        self._store = store
        self._users = users
        self._worker = worker
        self._clock = clock

    async def erase_user(self, principal: Principal, app_id: str, user_id: str) -> Operation:
        await self._user_of(principal, app_id, user_id, "erasures")
        return await self.start(ERASE_USER, STEPS[0], app_id, user_id)

    async def export_user(self, principal: Principal, app_id: str, user_id: str
                          ) -> Operation:
        await self._user_of(principal, app_id, user_id, "data exports")
        return await self.start(EXPORT_USER_DATA, Exporter.steps[0], app_id, user_id)

    async def _user_of(self, principal: Principal, app_id: str, user_id: str,
                       managed: str) -> None:
        """The app's backend (or the operator) naming a user the app has (had)."""
        require_backend(principal, app_id, managed)
        if await self._users.get_user(app_id, user_id) is None:
            raise not_found("caas.dev/User", user_name(app_id, user_id))

    async def start(self, kind: str, first: str, app_id: str, target: str) -> Operation:
        """Start an operation of `kind` on `target` (or find the one running)."""
        now = self._clock.now()
        op = await self._store.start(Operation(app_id, new_id(), kind, target, first, 0, {},
                                               create_time=now, update_time=now))
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
        ops = await self._store.list_operations(app_id, request.size + 1,
                                                time_id_position(request))
        return make_page(ops, request, [app_id], lambda op: (
            to_ms(op.create_time) if op.create_time else 0, op.operation_id))
