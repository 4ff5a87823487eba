"""ConversationStore on the embedded SQLite engine."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from services.conversations.events import emit_member_changes, member_event
from services.conversations.listing import BY_JOIN, INBOX
from services.conversations.models import (
    Conversation,
    ConversationChanges,
    Kind,
    Member,
    MemberChanges,
    MlsGroup,
    Preview,
    Role,
)
from services.conversations.store import Keyset, Position
from services.core.clock import from_ms, ms, opt_from_ms, to_ms
from services.core.db import sqlite_filter as sql
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.db.sqlite_filter import SqlTerm, column, flag
from services.core.errors import CapacityExceeded, StoreConflict
from services.core.events import DomainEvent
from services.core.filtering import Expr, Ordering
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE conversations ("
        " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " title TEXT NOT NULL, image_uri TEXT NOT NULL, metadata TEXT NOT NULL,"
        " frozen INTEGER NOT NULL, creator_id TEXT NOT NULL, member_count INTEGER NOT NULL,"
        " last_sequence INTEGER NOT NULL, preview TEXT, create_time INTEGER NOT NULL,"
        " update_time INTEGER NOT NULL, last_activity_time INTEGER NOT NULL,"
        " direct_key TEXT, delete_time INTEGER,"
        " PRIMARY KEY (app_id, conversation_id))",
        "CREATE UNIQUE INDEX conversations_direct ON conversations (app_id, direct_key)"
        " WHERE direct_key IS NOT NULL",
        "CREATE INDEX conversations_channels ON conversations"
        " (app_id, kind, create_time, conversation_id) WHERE delete_time IS NULL",
        "CREATE TABLE members ("
        " app_id TEXT NOT NULL, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " role INTEGER NOT NULL, join_time INTEGER NOT NULL, muted INTEGER NOT NULL,"
        " archived INTEGER NOT NULL, pinned INTEGER NOT NULL, read_sequence INTEGER NOT NULL,"
        " delivered_sequence INTEGER NOT NULL, unread_count INTEGER NOT NULL,"
        " read_time INTEGER, activity_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, conversation_id, user_id))",
        "CREATE INDEX members_by_join ON members (app_id, conversation_id, join_time, user_id)",
        "CREATE INDEX members_inbox ON members"
        " (app_id, user_id, archived, pinned, activity_time, conversation_id)",
    ),
    (
        # A membership carries its conversation's kind and creation time (both never
        # change), so that a user's conversations filter and sort on one table.
        "ALTER TABLE members ADD COLUMN kind TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE members ADD COLUMN conversation_create_time INTEGER NOT NULL DEFAULT 0",
        "UPDATE members SET"
        " kind = coalesce((SELECT c.kind FROM conversations AS c WHERE c.app_id = members.app_id"
        " AND c.conversation_id = members.conversation_id), ''),"
        " conversation_create_time = coalesce((SELECT c.create_time FROM conversations AS c"
        " WHERE c.app_id = members.app_id AND c.conversation_id = members.conversation_id), 0)",
        "CREATE INDEX members_by_created ON members"
        " (app_id, user_id, conversation_create_time, conversation_id)",
        "CREATE INDEX members_by_role ON members"
        " (app_id, conversation_id, role, join_time, user_id)",
    ),
    (
        # Unread messages that mention the member, kept by the messages store like
        # unread_count; its migration 3 fills in the memberships that exist already
        # (it needs the messages table, which is created after this one).
        "ALTER TABLE members ADD COLUMN unread_mention_count INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Slow mode (0: off), and when each member last sent (the messages store keeps
        # it, to hold slow mode).
        "ALTER TABLE conversations ADD COLUMN slow_mode_ms INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE members ADD COLUMN last_send_time INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # An app-defined type (Conversation.type).
        "ALTER TABLE conversations ADD COLUMN type TEXT NOT NULL DEFAULT ''",
    ),
    (
        # End-to-end encrypted conversations: their MLS group (MlsGroup as JSON);
        # NULL for plain ones.
        "ALTER TABLE conversations ADD COLUMN mls TEXT",
    ),
)

# ListConversations: the filter's fields and the orderings' keys, as columns of members.
_INBOX_TERMS: dict[str, SqlTerm] = {
    "kind": column("kind"), "unread": flag("unread_count > 0"),
    "unread_count": column("unread_count"),
    "has_mentions": flag("unread_mention_count > 0"),
    "unread_mention_count": column("unread_mention_count"), "muted": column("muted"),
    "archived": column("archived"), "pinned": column("pinned"), "role": column("role"),
    "last_activity_time": column("activity_time"),
    "create_time": column("conversation_create_time")}
_INBOX_KEYS = {"pinned": "pinned", "last_activity_time": "activity_time",
               "create_time": "conversation_create_time", "conversation_id": "conversation_id"}
# ListMembers.
_MEMBER_TERMS: dict[str, SqlTerm] = {
    "role": column("role"), "user_id": column("user_id"), "join_time": column("join_time")}
_MEMBER_KEYS = {"join_time": "join_time", "user_id": "user_id"}

CONVERSATION_COLUMNS = (
    "app_id, conversation_id, kind, title, image_uri, metadata, frozen, creator_id,"
    " member_count, last_sequence, preview, create_time, update_time, last_activity_time,"
    " slow_mode_ms, type, mls")
MEMBER_COLUMNS = (
    "app_id, conversation_id, user_id, role, join_time, muted, archived, pinned,"
    " read_sequence, delivered_sequence, unread_count, read_time, activity_time,"
    " unread_mention_count")


def preview_json(preview: Preview | None) -> str | None:
    if preview is None:
        return None
    return json.dumps({"s": preview.sequence, "u": preview.sender_id, "t": preview.text,
                       "d": preview.deleted, "c": to_ms(preview.create_time)})


def _preview(text: str | None) -> Preview | None:
    if text is None:
        return None
    data = json.loads(text)
    return Preview(data["s"], data["u"], data["t"], data["d"], from_ms(data["c"]))


def conversation_row(row: Any) -> Conversation:
    return Conversation(row[0], row[1], Kind(row[2]), row[3], row[4], json.loads(row[5]),
                        bool(row[6]), row[7], row[8], row[9], _preview(row[10]),
                        from_ms(row[11]), from_ms(row[12]), from_ms(row[13]),
                        timedelta(milliseconds=row[14]), row[15], mls_group(row[16]))


def mls_group(stored: str | None) -> MlsGroup | None:
    return None if stored is None else MlsGroup.from_dict(json.loads(stored))


def mls_json(group: MlsGroup | None) -> str | None:
    return None if group is None else json.dumps(group.to_dict())


def member_row(row: Any) -> Member:
    return Member(row[0], row[1], row[2], Role(row[3]), from_ms(row[4]), bool(row[5]),
                  bool(row[6]), bool(row[7]), row[8], row[9], row[10], opt_from_ms(row[11]),
                  from_ms(row[12]), row[13])


def select_conversation(conn: sqlite3.Connection, app_id: str, conversation_id: str
                        ) -> Conversation | None:
    row = conn.execute(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = ?"
                       " AND conversation_id = ? AND delete_time IS NULL",
                       (app_id, conversation_id)).fetchone()
    return None if row is None else conversation_row(row)


def select_member(conn: sqlite3.Connection, app_id: str, conversation_id: str, user_id: str
                  ) -> Member | None:
    row = conn.execute(f"SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = ?"
                       " AND conversation_id = ? AND user_id = ?",
                       (app_id, conversation_id, user_id)).fetchone()
    return None if row is None else member_row(row)


def _insert_member(conn: sqlite3.Connection, member: Member, conversation: Conversation
                   ) -> None:
    conn.execute(
        f"INSERT INTO members ({MEMBER_COLUMNS}, kind, conversation_create_time)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (member.app_id, member.conversation_id, member.user_id, int(member.role),
         to_ms(member.join_time), int(member.muted), int(member.archived), int(member.pinned),
         member.read_sequence, member.delivered_sequence, member.unread_count,
         None if member.read_time is None else to_ms(member.read_time),
         to_ms(conversation.last_activity_time), member.unread_mention_count,
         conversation.kind.value,
         to_ms(conversation.create_time)))


class SqliteConversationStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("conversations", MIGRATIONS)

    async def create_conversation(self, conversation: Conversation, members: Sequence[Member],
                                  direct_key: str | None) -> tuple[Conversation, bool]:
        c = conversation

        def tx(conn: sqlite3.Connection, emit: Emit) -> tuple[Conversation, bool]:
            if direct_key is not None:
                row = conn.execute(
                    f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = ?"
                    " AND direct_key = ? AND delete_time IS NULL",
                    (c.app_id, direct_key)).fetchone()
                if row is not None:
                    return conversation_row(row), False
            try:
                conn.execute(
                    f"INSERT INTO conversations ({CONVERSATION_COLUMNS}, direct_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.app_id, c.conversation_id, c.kind.value, c.title, c.image_uri,
                     json.dumps(dict(c.metadata)), int(c.frozen), c.creator_id, len(members),
                     c.last_sequence, preview_json(c.last_message), to_ms(c.create_time),
                     to_ms(c.update_time), to_ms(c.last_activity_time), ms(c.slow_mode),
                     c.type, mls_json(c.mls), direct_key))
            except sqlite3.IntegrityError as exc:
                raise StoreConflict(c.conversation_id) from exc
            for member in members:
                _insert_member(conn, member, c)
            stored = select_conversation(conn, c.app_id, c.conversation_id)
            assert stored is not None
            emit(DomainEvent("conversation.created", c.app_id, c.create_time,
                             {"members": ",".join(m.user_id for m in members)},
                             c.conversation_id, stored, c.creator_id))
            return stored, True

        return await self._log.transact(tx)

    async def get_conversation(self, app_id: str, conversation_id: str) -> Conversation | None:
        return await self._db.read(lambda conn: select_conversation(conn, app_id,
                                                                    conversation_id))

    async def update_conversation(self, app_id: str, conversation_id: str,
                                  changes: ConversationChanges, now: datetime
                                  ) -> Conversation | None:
        def tx(conn: sqlite3.Connection, emit: Emit) -> Conversation | None:
            metadata = None if changes.metadata is None else json.dumps(dict(changes.metadata))
            frozen = None if changes.frozen is None else int(changes.frozen)
            slow = None if changes.slow_mode is None else ms(changes.slow_mode)
            conn.execute(
                "UPDATE conversations SET title = coalesce(?, title),"
                " image_uri = coalesce(?, image_uri), metadata = coalesce(?, metadata),"
                " frozen = coalesce(?, frozen), slow_mode_ms = coalesce(?, slow_mode_ms),"
                " update_time = ?"
                " WHERE app_id = ? AND conversation_id = ? AND delete_time IS NULL",
                (changes.title, changes.image_uri, metadata, frozen, slow, to_ms(now), app_id,
                 conversation_id))
            updated = select_conversation(conn, app_id, conversation_id)
            if updated is not None:
                emit(DomainEvent("conversation.updated", app_id, now,
                                 conversation_id=conversation_id, payload=updated))
            return updated

        return await self._log.transact(tx)

    async def delete_conversation(self, app_id: str, conversation_id: str, now: datetime
                                  ) -> bool:
        def tx(conn: sqlite3.Connection, emit: Emit) -> bool:
            gone = select_conversation(conn, app_id, conversation_id)
            if gone is None:
                return False
            conn.execute(
                "UPDATE conversations SET delete_time = ?, direct_key = NULL"
                " WHERE app_id = ? AND conversation_id = ?",
                (to_ms(now), app_id, conversation_id))
            conn.execute("DELETE FROM members WHERE app_id = ? AND conversation_id = ?",
                         (app_id, conversation_id))
            for table in ("messages", "message_revisions", "reactions", "mls_welcomes"):
                conn.execute(f"DELETE FROM {table} WHERE app_id = ? AND conversation_id = ?",
                             (app_id, conversation_id))
            emit(DomainEvent("conversation.deleted", app_id, now,
                             conversation_id=conversation_id, payload=gone))
            return True

        return await self._log.transact(tx)

    async def get_member(self, app_id: str, conversation_id: str, user_id: str
                         ) -> Member | None:
        return await self._db.read(
            lambda conn: select_member(conn, app_id, conversation_id, user_id))

    async def get_access(self, app_id: str, conversation_id: str, user_id: str
                         ) -> tuple[Conversation | None, Member | None]:
        def query(conn: sqlite3.Connection) -> tuple[Conversation | None, Member | None]:
            conversation = select_conversation(conn, app_id, conversation_id)
            if conversation is None:
                return None, None
            return conversation, select_member(conn, app_id, conversation_id, user_id)

        return await self._db.read(query)

    async def get_memberships(self, app_id: str, user_id: str,
                              conversation_ids: Sequence[str]) -> dict[str, Member]:
        if not conversation_ids:
            return {}

        def query(conn: sqlite3.Connection) -> dict[str, Member]:
            marks = ", ".join("?" * len(conversation_ids))
            rows = conn.execute(
                f"SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = ? AND user_id = ?"
                f" AND conversation_id IN ({marks})", (app_id, user_id, *conversation_ids))
            return {m.conversation_id: m for m in map(member_row, rows)}

        return await self._db.read(query)

    async def conversation_partners(self, app_id: str, user_id: str,
                                    user_ids: Sequence[str]) -> set[str]:
        others = [u for u in user_ids if u != user_id]
        if not others:
            return set()

        def query(conn: sqlite3.Connection) -> set[str]:
            marks = ", ".join("?" * len(others))
            rows = conn.execute(
                "SELECT DISTINCT other.user_id FROM members AS mine"
                " JOIN conversations AS c ON c.app_id = mine.app_id"
                " AND c.conversation_id = mine.conversation_id"
                " JOIN members AS other ON other.app_id = mine.app_id"
                " AND other.conversation_id = mine.conversation_id"
                f" WHERE mine.app_id = ? AND mine.user_id = ? AND other.user_id IN ({marks})"
                " AND c.kind != ? AND c.delete_time IS NULL",
                (app_id, user_id, *others, Kind.CHANNEL.value))
            return {row[0] for row in rows}

        return await self._db.read(query)

    async def add_members(self, app_id: str, conversation_id: str, members: Sequence[Member],
                          max_members: int) -> list[Member]:
        def tx(conn: sqlite3.Connection, emit: Emit) -> list[Member]:
            conversation = select_conversation(conn, app_id, conversation_id)
            if conversation is None:
                return []
            new = [m for m in members
                   if select_member(conn, app_id, conversation_id, m.user_id) is None]
            if conversation.member_count + len(new) > max_members:
                raise CapacityExceeded("members per conversation", max_members)
            added = []
            for member in new:
                joined = Member(app_id, conversation_id, member.user_id, member.role,
                                member.join_time,
                                read_sequence=conversation.last_sequence,
                                delivered_sequence=conversation.last_sequence)
                _insert_member(conn, joined, conversation)
                stored = select_member(conn, app_id, conversation_id, member.user_id)
                assert stored is not None
                added.append(stored)
                emit(member_event("member.added", stored, stored.join_time))
            conn.execute("UPDATE conversations SET member_count = member_count + ?"
                         " WHERE app_id = ? AND conversation_id = ?",
                         (len(new), app_id, conversation_id))
            return added

        return await self._log.transact(tx)

    async def remove_member(self, app_id: str, conversation_id: str, user_id: str,
                            now: datetime) -> Member | None:
        def tx(conn: sqlite3.Connection, emit: Emit) -> Member | None:
            removed = select_member(conn, app_id, conversation_id, user_id)
            if removed is None:
                return None
            key = (app_id, conversation_id)
            conn.execute("DELETE FROM members WHERE app_id = ? AND conversation_id = ?"
                         " AND user_id = ?", (*key, user_id))
            conn.execute("UPDATE conversations SET member_count = member_count - 1"
                         " WHERE app_id = ? AND conversation_id = ?", key)
            emit(member_event("member.removed", removed, now))
            if removed.role is Role.OWNER:
                heir = conn.execute(
                    "SELECT user_id FROM members WHERE app_id = ? AND conversation_id = ?"
                    " ORDER BY role = ? DESC, join_time, user_id LIMIT 1",
                    (*key, int(Role.ADMIN))).fetchone()
                if heir is not None:
                    conn.execute("UPDATE members SET role = ? WHERE app_id = ?"
                                 " AND conversation_id = ? AND user_id = ?",
                                 (int(Role.OWNER), *key, heir[0]))
                    owner = select_member(conn, app_id, conversation_id, heir[0])
                    assert owner is not None
                    emit(member_event("member.updated", owner, now))
            return removed

        return await self._log.transact(tx)

    async def update_member(self, app_id: str, conversation_id: str, user_id: str,
                            changes: MemberChanges, now: datetime) -> Member | None:
        def tx(conn: sqlite3.Connection, emit: Emit) -> Member | None:
            before = select_member(conn, app_id, conversation_id, user_id)
            if before is None:
                return None

            def flag(value: bool | None) -> int | None:
                return None if value is None else int(value)

            conn.execute(
                "UPDATE members SET role = coalesce(?, role), muted = coalesce(?, muted),"
                " archived = coalesce(?, archived), pinned = coalesce(?, pinned)"
                " WHERE app_id = ? AND conversation_id = ? AND user_id = ?",
                (None if changes.role is None else int(changes.role), flag(changes.muted),
                 flag(changes.archived), flag(changes.pinned), app_id, conversation_id,
                 user_id))
            after = select_member(conn, app_id, conversation_id, user_id)
            assert after is not None
            emit_member_changes(emit, before, after, now)
            return after

        return await self._log.transact(tx)

    async def list_members(self, app_id: str, conversation_id: str, limit: int,
                           after: Keyset | None, *, where: Expr | None = None,
                           ordering: Ordering = BY_JOIN) -> list[Member]:
        matching, params = sql.where(where, _MEMBER_TERMS)
        beyond, start, order = sql.keyset([_MEMBER_KEYS[k] for k in ordering.keys],
                                      ordering.descending, after)

        def query(conn: sqlite3.Connection) -> list[Member]:
            rows = conn.execute(
                f"SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = ?"
                f" AND conversation_id = ?{matching}{beyond} ORDER BY {order} LIMIT ?",
                (app_id, conversation_id, *params, *start, limit))
            return [member_row(row) for row in rows]

        return await self._db.read(query)

    async def list_user_conversations(self, app_id: str, user_id: str, include_archived: bool,
                                      limit: int, after: Keyset | None, *,
                                      where: Expr | None = None, ordering: Ordering = INBOX
                                      ) -> list[tuple[Member, Conversation]]:
        archived = "" if include_archived else " AND archived = 0"
        matching, params = sql.where(where, _INBOX_TERMS)
        beyond, start, order = sql.keyset([_INBOX_KEYS[k] for k in ordering.keys],
                                      ordering.descending, after)

        def query(conn: sqlite3.Connection) -> list[tuple[Member, Conversation]]:
            rows = conn.execute(
                f"SELECT {MEMBER_COLUMNS} FROM members WHERE app_id = ? AND user_id = ?"
                f"{archived}{matching}{beyond} ORDER BY {order} LIMIT ?",
                (app_id, user_id, *params, *start, limit)).fetchall()
            result = []
            for row in rows:
                member = member_row(row)
                conversation = select_conversation(conn, app_id, member.conversation_id)
                if conversation is not None:
                    result.append((member, conversation))
            return result

        return await self._db.read(query)

    async def list_channels(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Conversation]:
        def query(conn: sqlite3.Connection) -> list[Conversation]:
            start = after or (2**62, "")
            rows = conn.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = ?"
                " AND kind = ? AND delete_time IS NULL"
                " AND (create_time, conversation_id) < (?, ?)"
                " ORDER BY create_time DESC, conversation_id DESC LIMIT ?",
                (app_id, Kind.CHANNEL.value, *start, limit))
            return [conversation_row(row) for row in rows]

        return await self._db.read(query)

    async def unread_totals(self, app_id: str, user_id: str) -> tuple[int, int]:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT coalesce(sum(unread_count), 0), count(*) FROM members"
            " WHERE app_id = ? AND user_id = ? AND muted = 0 AND unread_count > 0",
            (app_id, user_id)).fetchone())
        return int(row[0]), int(row[1])

    async def scan_conversations(self, app_id: str, limit: int, after: str | None
                                 ) -> list[Conversation]:
        def query(conn: sqlite3.Connection) -> list[Conversation]:
            rows = conn.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE app_id = ?"
                " AND conversation_id > ? AND delete_time IS NULL"
                " ORDER BY conversation_id LIMIT ?", (app_id, after or "", limit))
            return [conversation_row(row) for row in rows]

        return await self._db.read(query)

    async def join_times(self, app_id: str, user_id: str) -> dict[str, datetime]:
        rows = await self._db.read(lambda conn: conn.execute(
            "SELECT conversation_id, join_time FROM members WHERE app_id = ? AND user_id = ?",
            (app_id, user_id)).fetchall())
        return {conversation_id: from_ms(join) for conversation_id, join in rows}

    async def member_ids(self, app_id: str, conversation_id: str) -> list[str]:
        rows = await self._db.read(lambda conn: conn.execute(
            "SELECT user_id FROM members WHERE app_id = ? AND conversation_id = ?",
            (app_id, conversation_id)).fetchall())
        return [user_id for (user_id,) in rows]
