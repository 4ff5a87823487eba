"""Exporting a user's data (ComplianceService.ExportUserData): one step, `collect`,
that writes the archive (a JSON document, `caas.export.v1`) to a temporary file and
then to the blob store, under exports/{app}/{user}/{operation}.json. Run again after a
crash, it writes the whole archive anew. The archive is downloaded by a signed link
(services/media/http.py), and deleted after `export_ttl` (the hourly sweep) or when the
user is erased.

What it holds: the profile; sessions (device, times, state); memberships with the
conversation's title and kind, the member's role, join time and read and delivered
positions; every live message the user sent, with text, attachments, mentions,
metadata and times; their reactions (at most MAX_REACTIONS); and the users they block.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import IO, Any

from services.auth.store import AuthStore
from services.compliance.operations import EXPORT_USER_DATA, Operation, OperationStore
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.names import app_name, user_name
from services.core.pagination import read_all
from services.media.blobs import BlobStore
from services.media.delivery import export_key
from services.messages.store import MessageStore
from services.users.store import UserStore

FORMAT = "caas.export.v1"
EXPIRED = "archive_expired"  # in an export's counts once its archive is deleted
PAGE = 500
MAX_REACTIONS = 10_000


def _plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


class _Writer:
    """A JSON object written key by key, arrays item by item (an archive of many
    messages never sits in memory whole)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._first = True
        out.write("{")

    def field(self, key: str, value: Any) -> None:
        self._out.write(("" if self._first else ",") + f"\n{json.dumps(key)}: "
                        + json.dumps(_plain(value), ensure_ascii=False))
        self._first = False

    def array(self, key: str, items: Iterator[Any]) -> int:
        self._out.write(("" if self._first else ",") + f"\n{json.dumps(key)}: [")
        self._first = False
        count = 0
        for item in items:
            self._out.write(("," if count else "") + "\n  "
                            + json.dumps(_plain(item), ensure_ascii=False))
            count += 1
        self._out.write("]")
        return count

    def close(self) -> None:
        self._out.write("\n}\n")


class Exporter:
    steps: tuple[str, ...] = ("collect",)

    def __init__(self, users: UserStore, auth: AuthStore, conversations: ConversationStore,
                 messages: MessageStore, blobs: BlobStore, clock: Clock) -> None:
        self._users = users
        self._auth = auth
        self._conversations = conversations
        self._messages = messages
        self._blobs = blobs
        self._clock = clock

    async def step(self, stage: str, op: Operation) -> dict[str, int]:
        assert stage == "collect"
        fd, name = tempfile.mkstemp(prefix="caas-export-", suffix=".json")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                counts = await self._write(_Writer(out), op.app_id, op.target)
            await self._blobs.put_file(export_key(op.app_id, op.target, op.operation_id),
                                       path, "application/json")
            size = (await asyncio.to_thread(path.stat)).st_size
            return {**counts, "archive_bytes": size}
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def _write(self, writer: _Writer, app_id: str, user_id: str) -> dict[str, int]:
        writer.field("format", FORMAT)
        writer.field("app", app_name(app_id))
        writer.field("user", user_name(app_id, user_id))
        writer.field("exported_at", self._clock.now())
        writer.field("profile", await self._users.get_user(app_id, user_id))
        writer.array("sessions", iter(await read_all(
            lambda after: self._auth.list_sessions(app_id, user_id, PAGE, after),
            lambda s: (to_ms(s.create_time), s.session_id), PAGE)))
        joined = await self._conversations.join_times(app_id, user_id)
        memberships = []
        for conversation_id in sorted(joined):
            conversation = await self._conversations.get_conversation(app_id, conversation_id)
            member = await self._conversations.get_member(app_id, conversation_id, user_id)
            memberships.append({
                "conversation": f"{app_name(app_id)}/conversations/{conversation_id}",
                "title": conversation.title if conversation else "",
                "kind": conversation.kind.value if conversation else "",
                "member": member})
        conversations = writer.array("memberships", iter(memberships))
        messages = writer.array("messages_sent", iter(await self._sent(app_id, user_id)))
        reactions = await self._messages.reactions_by(app_id, user_id, MAX_REACTIONS)
        writer.array("reactions", ({"conversation": f"{app_name(app_id)}/conversations/{c}",
                                    "sequence": s, "emoji": e} for c, s, e in reactions))
        writer.array("blocks", iter(await read_all(
            lambda after: self._users.list_blocks(app_id, user_id, PAGE, after),
            lambda b: (to_ms(b.create_time), b.blocked_id), PAGE)))
        writer.close()
        return {"messages": messages, "conversations": conversations}

    async def _sent(self, app_id: str, user_id: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        after: tuple[str, int] | None = None
        while batch := await self._messages.sent_by(app_id, user_id, PAGE, after):
            by_conversation: dict[str, list[int]] = {}
            for conversation_id, sequence in batch:
                by_conversation.setdefault(conversation_id, []).append(sequence)
            for conversation_id, sequences in by_conversation.items():
                found = await self._messages.get_many(app_id, conversation_id, sequences)
                for message in sorted(found.values(), key=lambda m: m.sequence):
                    sent.append({
                        "conversation": f"{app_name(app_id)}/conversations/{conversation_id}",
                        "sequence": message.sequence, "text": message.text,
                        "attachments": message.attachments, "mentions": message.mentions,
                        "metadata": message.metadata, "thread_root": message.thread_root,
                        "create_time": message.create_time, "edit_time": message.edit_time})
            after = batch[-1]
            if len(batch) < PAGE:
                break
        return sent


async def expire_exports(store: OperationStore, blobs: BlobStore, now: datetime,
                         keep_for: timedelta) -> int:
    """Delete the archives of exports done more than `keep_for` ago (marking their
    operations so); how many."""
    expired = 0
    for op in await store.finished_before(EXPORT_USER_DATA, now - keep_for, 500):
        if op.counts.get(EXPIRED):
            continue
        await blobs.delete_prefix(export_key(op.app_id, op.target, op.operation_id))
        await store.save(replace(op, counts={**op.counts, EXPIRED: 1}, update_time=now))
        expired += 1
    return expired
