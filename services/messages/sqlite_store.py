"""MessageStore on the embedded SQLite engine.

Sending runs in one write transaction on SQLite's single writer, which is what makes
sequence numbers gapless: the conversation's counter, the message, the thread root,
the preview and every member's unread count (and unread mention count) change
together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from services.calls.codec import call_doc, call_of
from services.conversations.models import Member, Preview, split_key
from services.conversations.sqlite_store import (
    MEMBER_COLUMNS,
    member_row,
    mls_group,
    mls_json,
    preview_json,
    select_conversation,
    select_member,
)
from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db import sqlite_filter as sql
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.db.sqlite_filter import Sql, SqlTerm, column, flag, json_list_has, json_map
from services.core.errors import CapacityExceeded
from services.core.filtering import Comparison, Expr, Op
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog
from services.messages.events import emit_mark, message_event
from services.messages.listing import DELETED
from services.messages.models import (
    Attachment,
    Draft,
    Mention,
    Message,
    MessageChanges,
    MlsContent,
    MlsDraft,
    Page,
    Reaction,
    ReceiptSummary,
    Revision,
    Welcome,
    mentioned_others,
    welcome_position,
)
from services.messages.store import Direction, Position, StaleEpoch, TooSoon, around_page

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE messages ("
        " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
        " sender_id TEXT NOT NULL, text TEXT NOT NULL, attachments TEXT NOT NULL,"
        " mentions TEXT NOT NULL, metadata TEXT NOT NULL, thread_root INTEGER NOT NULL,"
        " reply_count INTEGER NOT NULL, last_reply_time INTEGER, reactions TEXT NOT NULL,"
        " request_id TEXT NOT NULL, create_time INTEGER NOT NULL, edit_time INTEGER,"
        " delete_time INTEGER, PRIMARY KEY (app_id, conversation_id, sequence))",
        "CREATE UNIQUE INDEX messages_by_request ON messages"
        " (app_id, conversation_id, sender_id, request_id)",
        "CREATE INDEX messages_by_thread ON messages"
        " (app_id, conversation_id, thread_root, sequence)",
        "CREATE TABLE message_revisions ("
        " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
        " revision INTEGER NOT NULL, text TEXT NOT NULL, create_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, conversation_id, sequence, revision))",
        "CREATE TABLE reactions ("
        " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
        " user_id TEXT NOT NULL, emoji TEXT NOT NULL, create_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, conversation_id, sequence, user_id, emoji))",
        "CREATE INDEX reactions_by_time ON reactions"
        " (app_id, conversation_id, sequence, create_time, user_id, emoji)",
    ),
    (
        # ListMessages filtered by sender.
        "CREATE INDEX messages_by_sender ON messages"
        " (app_id, conversation_id, thread_root, sender_id, sequence)",
    ),
    (
        # Count the unread mentions of the memberships that exist already (the column
        # is the conversations store's migration 3): what `mark` would count.
        "UPDATE members SET unread_mention_count = (SELECT count(*) FROM messages AS m"
        " WHERE m.app_id = members.app_id AND m.conversation_id = members.conversation_id"
        " AND m.sequence > members.read_sequence AND m.sender_id != members.user_id"
        " AND m.delete_time IS NULL AND EXISTS (SELECT 1 FROM json_each(m.mentions)"
        " WHERE json_extract(value, '$.user_id') = members.user_id))",
    ),
    (
        # Messages of shadow-banned senders (Message.shadowed).
        "ALTER TABLE messages ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Retention: the live messages of a conversation by age.
        "CREATE INDEX messages_by_age ON messages"
        " (app_id, conversation_id, delete_time, create_time)",
    ),
    (
        # Erasure: a user's messages and reactions, over the app.
        "CREATE INDEX messages_by_app_sender ON messages (app_id, sender_id, delete_time)",
        "CREATE INDEX reactions_by_user ON reactions (app_id, user_id)",
    ),
    (
        # What metadata filters compare: blind tokens of sealed values (Draft).
        "ALTER TABLE messages ADD COLUMN metadata_index TEXT NOT NULL DEFAULT '{}'",
        "UPDATE messages SET metadata_index = metadata",
    ),
    (
        # End-to-end encrypted conversations: MLS messages (MlsContent), and the
        # Welcomes of the commits that added devices (MlsDraft.welcomed).
        "ALTER TABLE messages ADD COLUMN mls_kind TEXT",
        "ALTER TABLE messages ADD COLUMN mls_epoch INTEGER",
        "ALTER TABLE messages ADD COLUMN mls_data BLOB",
        "ALTER TABLE messages ADD COLUMN mls_device TEXT",
        "CREATE TABLE mls_welcomes ("
        " app_id TEXT NOT NULL, user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
        " conversation_id TEXT NOT NULL, sequence INTEGER NOT NULL, epoch INTEGER NOT NULL,"
        " data BLOB NOT NULL, create_time INTEGER NOT NULL, position TEXT NOT NULL,"
        " PRIMARY KEY (app_id, user_id, device_id, conversation_id, sequence))",
        "CREATE INDEX mls_welcomes_by_time ON mls_welcomes"
        " (app_id, user_id, device_id, create_time, position)",
    ),
    (
        # System messages recording an ended call (services/calls): the call as JSON.
        "ALTER TABLE messages ADD COLUMN call TEXT",
    ),
)

_COLUMNS = ("app_id, conversation_id, sequence, sender_id, text, attachments, mentions,"
            " metadata, thread_root, reply_count, last_reply_time, reactions, create_time,"
            " edit_time, delete_time, shadow, mls_kind, mls_epoch, mls_data, mls_device, call")
_KEY = "app_id = ? AND conversation_id = ?"


def _message(row: Any) -> Message:
    return Message(
        row[0], row[1], row[2], row[3], row[4],
        tuple(Attachment.from_dict(a) for a in json.loads(row[5])),
        tuple(Mention(**m) for m in json.loads(row[6])), json.loads(row[7]), row[8], row[9],
        opt_from_ms(row[10]), dict(json.loads(row[11])), from_ms(row[12]),
        opt_from_ms(row[13]), opt_from_ms(row[14]), bool(row[15]),
        None if row[16] is None else MlsContent(row[16], row[17], bytes(row[18]), row[19]),
        None if row[20] is None else call_of(json.loads(row[20])))


def _by_request(conn: sqlite3.Connection, app_id: str, conversation_id: str, sender_id: str,
                request_id: str) -> Message | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE {_KEY}"
                       " AND sender_id = ? AND request_id = ?",
                       (app_id, conversation_id, sender_id, request_id)).fetchone()
    return None if row is None else _message(row)


def _check_epoch(stored: str | None, epoch: int) -> None:
    group = mls_group(stored)
    assert group is not None, "an MLS message for a plain conversation"
    if group.epoch != epoch:
        raise StaleEpoch(group)


def _commit(conn: sqlite3.Connection, key: tuple[str, str], sequence: int, mls: MlsDraft,
            at: int) -> None:
    """A commit's next group, and its Welcome for each device it adds."""
    assert mls.group is not None
    group = replace(mls.group, commit_sequence=sequence)
    conn.execute(f"UPDATE conversations SET mls = ? WHERE {_KEY}", (mls_json(group), *key))
    position = welcome_position(key[1], sequence)
    conn.executemany(
        "INSERT INTO mls_welcomes (app_id, user_id, device_id, conversation_id, sequence,"
        " epoch, data, create_time, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(key[0], *split_key(device), key[1], sequence, group.epoch, mls.welcome, at,
          position) for device in mls.welcomed])


def _select(conn: sqlite3.Connection, app_id: str, conversation_id: str, sequence: int
            ) -> Message | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE {_KEY} AND sequence = ?",
                       (app_id, conversation_id, sequence)).fetchone()
    return None if row is None else _message(row)


def _in(values: list[str]) -> str:
    return ", ".join("?" * len(values))


def _attachments_json(attachments: Iterable[Attachment]) -> str:
    return json.dumps([asdict(a) for a in attachments])


def _state(c: Comparison) -> Sql:
    deleted = (c.value == DELETED) == (c.op is Op.EQ)
    return ("delete_time IS NOT NULL" if deleted else "delete_time IS NULL"), []


# ListMessages: the filter's fields (services/messages/listing.py) as columns.
_TERMS: dict[str, SqlTerm] = {
    "sender_id": column("sender_id"), "create_time": column("create_time"),
    "has_attachments": flag("json_array_length(attachments) > 0"),
    "mention_ids": json_list_has("mentions", "user_id"), "state": _state,
    "reply_count": column("reply_count"), "metadata": json_map("metadata_index")}


def _page_query(conn: sqlite3.Connection, key: tuple[str, str, int], matching: Sql,
                where: str, order: str, args: tuple[int, ...], limit: int) -> list[Message]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE {_KEY} AND thread_root = ?{matching[0]}"
        f" {where} ORDER BY sequence {order} LIMIT ?", (*key, *matching[1], *args, limit))
    return [_message(row) for row in rows]


def _exists(conn: sqlite3.Connection, key: tuple[str, str, int], matching: Sql, where: str,
            value: int) -> bool:
    row = conn.execute(f"SELECT 1 FROM messages WHERE {_KEY} AND thread_root = ?{matching[0]}"
                       f" {where} LIMIT 1", (*key, *matching[1], value)).fetchone()
    return row is not None


def _list(conn: sqlite3.Connection, key: tuple[str, str, int], direction: Direction,
          sequence: int, limit: int, matching: Sql) -> Page:
    """A page of the messages that match (`matching`: the filter's SQL, see
    services/core/db/sqlite_filter.py), and whether matching ones lie beyond it."""
    if direction == "latest":
        rows = _page_query(conn, key, matching, "", "DESC", (), limit + 1)
        return Page(rows[:limit][::-1], len(rows) > limit, False)
    if direction == "before":
        rows = _page_query(conn, key, matching, "AND sequence < ?", "DESC", (sequence,),
                           limit + 1)
        return Page(rows[:limit][::-1], len(rows) > limit,
                    _exists(conn, key, matching, "AND sequence >= ?", sequence))
    if direction == "after":
        rows = _page_query(conn, key, matching, "AND sequence > ?", "ASC", (sequence,),
                           limit + 1)
        return Page(rows[:limit], _exists(conn, key, matching, "AND sequence <= ?", sequence),
                    len(rows) > limit)
    older = _page_query(conn, key, matching, "AND sequence < ?", "DESC", (sequence,),
                        limit + 1)
    newer = _page_query(conn, key, matching, "AND sequence >= ?", "ASC", (sequence,),
                        limit + 1)
    return around_page(older, newer, limit)


def _set_reactions(conn: sqlite3.Connection, key: tuple[str, str, int],
                   counts: dict[str, int], emit: Emit, kind: str, user_id: str, emoji: str,
                   now: datetime) -> Message:
    conn.execute(f"UPDATE messages SET reactions = ? WHERE {_KEY} AND sequence = ?",
                 (json.dumps(list(counts.items())), *key))
    changed = _select(conn, *key)
    assert changed is not None
    emit(message_event(kind, changed, now, user_id, emoji=emoji))
    return changed


class SqliteMessageStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("messages", MIGRATIONS)

    async def append(self, app_id: str, conversation_id: str, draft: Draft, request_id: str,
                     now: datetime, slow_mode: timedelta = timedelta(0)
                     ) -> tuple[Message, bool]:
        key = (app_id, conversation_id)

        def tx(conn: sqlite3.Connection, emit: Emit) -> tuple[Message, bool]:
            sent = _by_request(conn, app_id, conversation_id, draft.sender_id, request_id)
            if sent is not None:
                return sent, False
            found = conn.execute(f"SELECT last_sequence, mls FROM conversations WHERE {_KEY}"
                                 " AND delete_time IS NULL", key).fetchone()
            if found is None:
                raise LookupError(conversation_id)
            if slow_mode:
                last = conn.execute(f"SELECT last_send_time FROM members WHERE {_KEY}"
                                    " AND user_id = ?", (*key, draft.sender_id)).fetchone()
                if last is not None and last[0] and from_ms(last[0]) + slow_mode > now:
                    raise TooSoon(from_ms(last[0]) + slow_mode)
            sequence = found[0] + 1
            at = to_ms(now)
            content = None if draft.mls is None else draft.mls.content
            if content is not None:
                _check_epoch(found[1], content.epoch)
            conn.execute(
                f"INSERT INTO messages ({_COLUMNS}, request_id, metadata_index)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, '[]', ?, NULL, NULL, ?, ?, ?, ?,"
                " ?, ?, ?, ?)",
                (*key, sequence, draft.sender_id, draft.text,
                 _attachments_json(draft.attachments),
                 json.dumps([asdict(m) for m in draft.mentions]),
                 json.dumps(dict(draft.metadata)), draft.thread_root, at,
                 int(draft.shadowed), None if content is None else content.kind,
                 None if content is None else content.epoch,
                 None if content is None else content.data,
                 None if content is None else content.device_id,
                 None if draft.call is None else json.dumps(call_doc(draft.call)),
                 request_id, json.dumps(dict(draft.indexed_metadata))))
            if draft.mls is not None and draft.mls.group is not None:
                _commit(conn, key, sequence, draft.mls, at)
            if not draft.counted:  # nobody else's counts move
                conn.execute(f"UPDATE conversations SET last_sequence = ? WHERE {_KEY}",
                             (sequence, *key))
            elif draft.thread_root:  # a reply: the thread root counts it; no new preview
                conn.execute(f"UPDATE messages SET reply_count = reply_count + 1,"
                             f" last_reply_time = ? WHERE {_KEY} AND sequence = ?",
                             (at, *key, draft.thread_root))
                conn.execute(f"UPDATE conversations SET last_sequence = ?,"
                             f" last_activity_time = ? WHERE {_KEY}", (sequence, at, *key))
            else:
                preview = Preview(sequence, draft.sender_id, draft.preview_text, False, now)
                conn.execute(f"UPDATE conversations SET last_sequence = ?, preview = ?,"
                             f" last_activity_time = ? WHERE {_KEY}",
                             (sequence, preview_json(preview), at, *key))
            if draft.counted:
                conn.execute(f"UPDATE members SET unread_count = unread_count + 1,"
                             f" activity_time = ? WHERE {_KEY} AND user_id != ?",
                             (at, *key, draft.sender_id))
            mentioned = mentioned_others(draft.sender_id, draft.mentions) if draft.counted \
                else []
            if mentioned:  # members only: the others have no row
                conn.execute(f"UPDATE members SET unread_mention_count ="
                             f" unread_mention_count + 1 WHERE {_KEY}"
                             f" AND user_id IN ({_in(mentioned)})", (*key, *mentioned))
            conn.execute(f"UPDATE members SET read_sequence = ?, delivered_sequence = ?,"
                         f" read_time = ?, unread_count = 0, unread_mention_count = 0,"
                         f" activity_time = ?, last_send_time = ? WHERE {_KEY} AND user_id = ?",
                         (sequence, sequence, at, at, at, *key, draft.sender_id))
            sent = Message(app_id, conversation_id, sequence, draft.sender_id, draft.text,
                           draft.attachments, draft.mentions, dict(draft.metadata),
                           draft.thread_root, 0, None, {}, now, shadowed=draft.shadowed,
                           mls=content, call=draft.call)
            emit(message_event("message.created", sent, now))
            return sent, True

        return await self._log.transact(tx)

    async def get(self, app_id: str, conversation_id: str, sequence: int) -> Message | None:
        return await self._db.read(lambda conn: _select(conn, app_id, conversation_id,
                                                        sequence))

    async def sent(self, app_id: str, conversation_id: str, sender_id: str, request_id: str
                   ) -> Message | None:
        return await self._db.read(lambda conn: _by_request(conn, app_id, conversation_id,
                                                            sender_id, request_id))

    async def list_welcomes(self, app_id: str, user_id: str, device_id: str, limit: int,
                            after: Position | None) -> list[Welcome]:
        def query(conn: sqlite3.Connection) -> list[Welcome]:
            where = ""
            args: tuple[int | str, ...] = ()
            if after is not None:
                where = " AND (w.create_time < ? OR (w.create_time = ? AND w.position < ?))"
                args = (after[0], after[0], after[1])
            rows = conn.execute(
                "SELECT w.conversation_id, w.sequence, w.epoch, w.data, w.create_time"
                " FROM mls_welcomes AS w JOIN members AS m ON m.app_id = w.app_id"
                " AND m.conversation_id = w.conversation_id AND m.user_id = w.user_id"
                " WHERE w.app_id = ? AND w.user_id = ? AND w.device_id = ?" + where +
                " ORDER BY w.create_time DESC, w.position DESC LIMIT ?",
                (app_id, user_id, device_id, *args, limit))
            return [Welcome(app_id, row[0], row[1], row[2], bytes(row[3]), from_ms(row[4]))
                    for row in rows]

        return await self._db.read(query)

    async def forget_device(self, app_id: str, user_id: str, device_id: str) -> None:
        await self._db.write(lambda conn: conn.execute(
            "DELETE FROM mls_welcomes WHERE app_id = ? AND user_id = ? AND device_id = ?",
            (app_id, user_id, device_id)))

    async def get_many(self, app_id: str, conversation_id: str, sequences: Iterable[int]
                       ) -> dict[int, Message]:
        wanted = sorted(set(sequences))
        if not wanted:
            return {}

        def query(conn: sqlite3.Connection) -> dict[int, Message]:
            marks = ", ".join("?" * len(wanted))
            rows = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE {_KEY}"
                                f" AND sequence IN ({marks})", (app_id, conversation_id,
                                                                *wanted))
            return {m.sequence: m for m in map(_message, rows)}

        return await self._db.read(query)

    async def list_page(self, app_id: str, conversation_id: str, thread_root: int,
                        direction: Direction, sequence: int, limit: int, *,
                        where: Expr | None = None, viewer: str | None = None,
                        since: datetime | None = None) -> Page:
        matching = sql.where(where, _TERMS)
        if viewer is not None:  # shadowed messages: their senders' alone
            matching = (f"{matching[0]} AND (shadow = 0 OR sender_id = ?)",
                        [*matching[1], viewer])
        if since is not None:
            matching = (f"{matching[0]} AND create_time >= ?", [*matching[1], to_ms(since)])
        return await self._db.read(lambda conn: _list(
            conn, (app_id, conversation_id, thread_root), direction, sequence, limit,
            matching))

    async def edit(self, app_id: str, conversation_id: str, sequence: int,
                   changes: MessageChanges, now: datetime) -> Message | None:
        key = (app_id, conversation_id, sequence)

        def tx(conn: sqlite3.Connection, emit: Emit) -> Message | None:
            current = _select(conn, *key)
            if current is None or current.deleted:
                return current
            edit_time = current.edit_time
            if changes.text is not None and changes.text != current.text:
                count = conn.execute(
                    f"SELECT count(*) FROM message_revisions WHERE {_KEY} AND sequence = ?",
                    key).fetchone()[0]
                if count == 0:  # keep the original text as revision 1
                    conn.execute("INSERT INTO message_revisions VALUES (?, ?, ?, 1, ?, ?)",
                                 (*key, current.text, to_ms(current.create_time)))
                    count = 1
                conn.execute("INSERT INTO message_revisions VALUES (?, ?, ?, ?, ?, ?)",
                             (*key, count + 1, changes.text, to_ms(now)))
                edit_time = now
            conn.execute(
                f"UPDATE messages SET text = coalesce(?, text),"
                f" attachments = coalesce(?, attachments), metadata = coalesce(?, metadata),"
                f" metadata_index = coalesce(?, metadata_index),"
                f" edit_time = ? WHERE {_KEY} AND sequence = ?",
                (changes.text,
                 None if changes.attachments is None else _attachments_json(changes.attachments),
                 None if changes.metadata is None else json.dumps(dict(changes.metadata)),
                 None if changes.metadata is None else json.dumps(
                     dict(changes.indexed_metadata or {})),
                 None if edit_time is None else to_ms(edit_time), *key))
            edited = _select(conn, *key)
            assert edited is not None
            if edited != current:
                emit(message_event("message.updated", edited, now))
            return edited

        return await self._log.transact(tx)

    async def revisions(self, app_id: str, conversation_id: str, sequence: int
                        ) -> list[Revision]:
        def query(conn: sqlite3.Connection) -> list[Revision]:
            rows = conn.execute(f"SELECT revision, text, create_time FROM message_revisions"
                                f" WHERE {_KEY} AND sequence = ? ORDER BY revision",
                                (app_id, conversation_id, sequence)).fetchall()
            if rows:
                return [Revision(r[0], r[1], from_ms(r[2])) for r in rows]
            message = _select(conn, app_id, conversation_id, sequence)
            if message is None or message.deleted:
                return []
            return [Revision(1, message.text, message.create_time)]

        return await self._db.read(query)

    async def delete(self, app_id: str, conversation_id: str, sequence: int, now: datetime
                     ) -> Message | None:
        key = (app_id, conversation_id, sequence)

        def tx(conn: sqlite3.Connection, emit: Emit) -> Message | None:
            current = _select(conn, *key)
            if current is None or current.deleted:
                return current
            conn.execute(f"UPDATE messages SET text = '', attachments = '[]', mentions = '[]',"
                         f" metadata = '{{}}', metadata_index = '{{}}', reactions = '[]',"
                         f" delete_time = ?"
                         f" WHERE {_KEY} AND sequence = ?", (to_ms(now), *key))
            for table in ("message_revisions", "reactions"):
                conn.execute(f"DELETE FROM {table} WHERE {_KEY} AND sequence = ?", key)
            if not current.shadowed:  # a shadowed one was never counted
                conn.execute(f"UPDATE members SET unread_count = max(unread_count - 1, 0)"
                             f" WHERE {_KEY} AND user_id != ? AND read_sequence < ?",
                             (app_id, conversation_id, current.sender_id, sequence))
            # Counted for exactly the mentioned members it is still unread for: a member
            # who joined after it has a read position at or past it.
            mentioned = [] if current.shadowed else mentioned_others(current.sender_id,
                                                                     current.mentions)
            if mentioned:
                conn.execute(f"UPDATE members SET unread_mention_count ="
                             f" max(unread_mention_count - 1, 0) WHERE {_KEY}"
                             f" AND user_id IN ({_in(mentioned)}) AND read_sequence < ?",
                             (app_id, conversation_id, *mentioned, sequence))
            conversation = select_conversation(conn, app_id, conversation_id)
            preview = conversation.last_message if conversation else None
            if preview is not None and preview.sequence == sequence:
                gone = Preview(sequence, preview.sender_id, "", True, preview.create_time)
                conn.execute(f"UPDATE conversations SET preview = ? WHERE {_KEY}",
                             (preview_json(gone), app_id, conversation_id))
            tombstone = _select(conn, *key)
            assert tombstone is not None
            emit(message_event("message.deleted", tombstone, now))
            return tombstone

        return await self._log.transact(tx)

    async def add_reaction(self, app_id: str, conversation_id: str, sequence: int,
                           user_id: str, emoji: str, now: datetime, max_emoji: int,
                           max_per_user: int) -> Message | None:
        key = (app_id, conversation_id, sequence)

        def tx(conn: sqlite3.Connection, emit: Emit) -> Message | None:
            current = _select(conn, *key)
            if current is None or current.deleted:
                return current
            mine = [r[0] for r in conn.execute(
                f"SELECT emoji FROM reactions WHERE {_KEY} AND sequence = ? AND user_id = ?",
                (*key, user_id))]
            if emoji in mine:
                return current
            if len(mine) >= max_per_user:
                raise CapacityExceeded("reactions per user per message", max_per_user)
            if emoji not in current.reactions and len(current.reactions) >= max_emoji:
                raise CapacityExceeded("distinct emoji per message", max_emoji)
            conn.execute("INSERT INTO reactions VALUES (?, ?, ?, ?, ?, ?)",
                         (*key, user_id, emoji, to_ms(now)))
            counts = dict(current.reactions)
            counts[emoji] = counts.get(emoji, 0) + 1
            return _set_reactions(conn, key, counts, emit, "reaction.added", user_id, emoji,
                                  now)

        return await self._log.transact(tx)

    async def remove_reaction(self, app_id: str, conversation_id: str, sequence: int,
                              user_id: str, emoji: str, now: datetime) -> Message | None:
        key = (app_id, conversation_id, sequence)

        def tx(conn: sqlite3.Connection, emit: Emit) -> Message | None:
            current = _select(conn, *key)
            if current is None or current.deleted:
                return current
            removed = conn.execute(
                f"DELETE FROM reactions WHERE {_KEY} AND sequence = ? AND user_id = ?"
                " AND emoji = ?", (*key, user_id, emoji)).rowcount
            if not removed:
                return current
            counts = dict(current.reactions)
            counts[emoji] -= 1
            if counts[emoji] <= 0:
                del counts[emoji]
            return _set_reactions(conn, key, counts, emit, "reaction.removed", user_id, emoji,
                                  now)

        return await self._log.transact(tx)

    async def reacted(self, app_id: str, conversation_id: str, sequences: Iterable[int],
                      user_id: str) -> dict[int, set[str]]:
        wanted = sorted(set(sequences))
        if not wanted:
            return {}

        def query(conn: sqlite3.Connection) -> dict[int, set[str]]:
            marks = ", ".join("?" * len(wanted))
            found: dict[int, set[str]] = {}
            for sequence, emoji in conn.execute(
                    f"SELECT sequence, emoji FROM reactions WHERE {_KEY} AND user_id = ?"
                    f" AND sequence IN ({marks})", (app_id, conversation_id, user_id, *wanted)):
                found.setdefault(sequence, set()).add(emoji)
            return found

        return await self._db.read(query)

    async def list_reactions(self, app_id: str, conversation_id: str, sequence: int,
                             limit: int, after: Position | None) -> list[Reaction]:
        def query(conn: sqlite3.Connection) -> list[Reaction]:
            start = after or (-1, "")
            rows = conn.execute(
                f"SELECT user_id, emoji, create_time FROM reactions WHERE {_KEY}"
                " AND sequence = ? AND (create_time, user_id || char(31) || emoji) > (?, ?)"
                " ORDER BY create_time, user_id || char(31) || emoji LIMIT ?",
                (app_id, conversation_id, sequence, *start, limit))
            return [Reaction(r[0], r[1], from_ms(r[2])) for r in rows]

        return await self._db.read(query)

    async def mark(self, app_id: str, conversation_id: str, user_id: str,
                   which: Literal["read", "delivered"], sequence: int, now: datetime
                   ) -> Member | None:
        key = (app_id, conversation_id)

        def tx(conn: sqlite3.Connection, emit: Emit) -> Member | None:
            member = select_member(conn, app_id, conversation_id, user_id)
            conversation = select_conversation(conn, app_id, conversation_id)
            if member is None or conversation is None:
                return None
            last = conversation.last_sequence
            target = last if sequence == 0 or sequence > last else sequence
            if which == "delivered":
                conn.execute(f"UPDATE members SET delivered_sequence = max(delivered_sequence, ?)"
                             f" WHERE {_KEY} AND user_id = ?", (target, *key, user_id))
            elif target > member.read_sequence:
                unread, mentions = conn.execute(
                    "SELECT count(*), coalesce(sum(EXISTS (SELECT 1 FROM json_each(mentions)"
                    " WHERE json_extract(value, '$.user_id') = ?)), 0)"
                    f" FROM messages WHERE {_KEY} AND sequence > ?"
                    " AND sender_id != ? AND delete_time IS NULL AND shadow = 0",
                    (user_id, *key, target, user_id)).fetchone()
                conn.execute(f"UPDATE members SET read_sequence = ?, read_time = ?,"
                             f" unread_count = ?, unread_mention_count = ?,"
                             f" delivered_sequence = max(delivered_sequence, ?)"
                             f" WHERE {_KEY} AND user_id = ?",
                             (target, to_ms(now), unread, mentions, target, *key, user_id))
            after = select_member(conn, app_id, conversation_id, user_id)
            assert after is not None
            emit_mark(emit, member, after, now)
            return after

        return await self._log.transact(tx)

    async def receipts(self, app_id: str, conversation_id: str, message: Message, limit: int,
                       after: Position | None) -> tuple[list[Member], ReceiptSummary]:
        def query(conn: sqlite3.Connection) -> tuple[list[Member], ReceiptSummary]:
            start = after or (-1, "")
            rows = conn.execute(
                f"SELECT {MEMBER_COLUMNS} FROM members WHERE {_KEY} AND user_id != ?"
                " AND (join_time, user_id) > (?, ?) ORDER BY join_time, user_id LIMIT ?",
                (app_id, conversation_id, message.sender_id, *start, limit))
            members = [member_row(row) for row in rows]
            read, delivered = conn.execute(
                f"SELECT coalesce(sum(read_sequence >= ?), 0),"
                f" coalesce(sum(delivered_sequence >= ?), 0)"
                f" FROM members WHERE {_KEY} AND user_id != ?",
                (message.sequence, message.sequence, app_id, conversation_id,
                 message.sender_id)).fetchone()
            return members, ReceiptSummary(int(read), int(delivered))

        return await self._db.read(query)

    async def expired(self, app_id: str, conversation_id: str, before: datetime, limit: int,
                      kept_senders: frozenset[str]) -> list[int]:
        kept = sorted(kept_senders)
        sql = (f"SELECT sequence FROM messages WHERE {_KEY} AND delete_time IS NULL"
               f" AND create_time < ? AND sender_id NOT IN ({_in(kept)})"
               " ORDER BY create_time, sequence LIMIT ?")

        def query(conn: sqlite3.Connection) -> list[int]:
            return [row[0] for row in conn.execute(
                sql, (app_id, conversation_id, to_ms(before), *kept, limit))]

        return await self._db.read(query)

    async def sent_by(self, app_id: str, user_id: str, limit: int,
                      after: tuple[str, int] | None = None) -> list[tuple[str, int]]:
        start = after or ("", 0)

        def query(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return [(row[0], row[1]) for row in conn.execute(
                "SELECT conversation_id, sequence FROM messages WHERE app_id = ?"
                " AND sender_id = ? AND delete_time IS NULL AND (conversation_id, sequence)"
                " > (?, ?) ORDER BY conversation_id, sequence LIMIT ?",
                (app_id, user_id, *start, limit))]

        return await self._db.read(query)

    async def reactions_by(self, app_id: str, user_id: str, limit: int
                           ) -> list[tuple[str, int, str]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, int, str]]:
            return [(row[0], row[1], row[2]) for row in conn.execute(
                "SELECT conversation_id, sequence, emoji FROM reactions WHERE app_id = ?"
                " AND user_id = ? LIMIT ?", (app_id, user_id, limit))]

        return await self._db.read(query)

    async def scan_messages(self, app_id: str, conversation_id: str, after: int, limit: int
                            ) -> list[Message]:
        def query(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE {_KEY}"
                                " AND sequence > ? ORDER BY sequence LIMIT ?",
                                (app_id, conversation_id, after, limit))
            return [_message(row) for row in rows]

        return await self._db.read(query)
