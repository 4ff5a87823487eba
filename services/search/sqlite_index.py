"""The embedded search index: SQLite FTS5 in `search.db` of the data directory.

Layout:
- `message_docs` / `conversation_docs`: one row per document (its key, the log
  position that last wrote it, whether it is live);
  their `id` is the rowid of the document's row in the full-text table.
- `message_fts(body, tags)` / `conversation_fts(title, tags)`: FTS5 tables with the
  unicode61 tokenizer (case folding, `remove_diacritics 2`: accents folded, also
  those of precomposed characters) and prefix indexes for 2 and 3 characters. CJK text
  is segmented before indexing (services/search/text.py). `tags` holds the facts the
  filters need as words (`a…` app, `s…` sender, `m…` mentioned user: hashes, so any
  id is one word; `hasatt`, `kimage`, `thr`…), so that FTS5 intersects them with the
  text in its posting lists. A user's conversations and join times are checked on
  the documents' rows, as FTS5 walks the matches newest first.
- Ranking and snippets of messages: services/search/ranking.py.

A message's id is its send time in milliseconds shifted left by 20 bits plus a hash of
its key: ordering by id is ordering by time, which FTS5 walks in either direction and
stops at the page's end, so a search never sorts all its matches.

Writes go through the engine's single writer (services/core/db/sqlite.py, group
commit, one process at a time); searches run on a small pool of reader threads, each
with its own connection, since a full-text query may take milliseconds that the event
loop must not wait for.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase, connect
from services.search.index import (
    ConversationDoc,
    ConversationKey,
    ConversationQuery,
    Deletion,
    Hit,
    MessageDoc,
    MessageKey,
    MessageQuery,
    Order,
    Scan,
    Write,
)
from services.search.ranking import (
    RELEVANCE_CANDIDATES,
    DocumentCounts,
    bm25,
    highlight,
    matched,
    tokens,
    words,
)
from services.search.text import MATCH_END, MATCH_START, Term, clean, segment, snippet_parts

T = TypeVar("T")

TOKENIZER = "unicode61 remove_diacritics 2"
MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE message_docs ("
        " id INTEGER PRIMARY KEY, app_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
        " sequence INTEGER NOT NULL, position INTEGER NOT NULL, live INTEGER NOT NULL,"
        " edit_ms INTEGER, UNIQUE (app_id, conversation_id, sequence))",
        f"CREATE VIRTUAL TABLE message_fts USING fts5(body, tags, tokenize='{TOKENIZER}',"
        " prefix='2 3')",
        "INSERT INTO message_fts (message_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)')",
        "CREATE TABLE conversation_docs ("
        " id INTEGER PRIMARY KEY, app_id TEXT NOT NULL, conversation_id TEXT NOT NULL,"
        " kind TEXT NOT NULL, position INTEGER NOT NULL, live INTEGER NOT NULL,"
        " UNIQUE (app_id, conversation_id))",
        f"CREATE VIRTUAL TABLE conversation_fts USING fts5(title, tags,"
        f" tokenize='{TOKENIZER}', prefix='2 3')",
        "INSERT INTO conversation_fts (conversation_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)')",
        # Each word's document count, for ranking (services/search/ranking.py).
        "CREATE VIRTUAL TABLE message_vocab USING fts5vocab(message_fts, 'row')",
        "CREATE TABLE identity (id TEXT NOT NULL)",
        "INSERT INTO identity (id) VALUES (lower(hex(randomblob(8))))",
    ),
    (
        # Live messages per app, kept by triggers: for ranking and for choosing plans
        # without counting rows.
        "CREATE TABLE app_counts (app_id TEXT PRIMARY KEY, messages INTEGER NOT NULL)"
        " WITHOUT ROWID",
        "INSERT INTO app_counts SELECT app_id, count(*) FROM message_docs WHERE live = 1"
        " GROUP BY app_id",
        "CREATE TRIGGER message_docs_added AFTER INSERT ON message_docs WHEN new.live = 1"
        " BEGIN INSERT INTO app_counts VALUES (new.app_id, 1) ON CONFLICT (app_id)"
        " DO UPDATE SET messages = messages + 1; END",
        "CREATE TRIGGER message_docs_removed AFTER DELETE ON message_docs WHEN old.live = 1"
        " BEGIN UPDATE app_counts SET messages = messages - 1 WHERE app_id = old.app_id; END",
        "CREATE TRIGGER message_docs_changed AFTER UPDATE OF live ON message_docs"
        " WHEN old.live != new.live BEGIN INSERT INTO app_counts"
        " VALUES (new.app_id, new.live - old.live) ON CONFLICT (app_id)"
        " DO UPDATE SET messages = messages + new.live - old.live; END",
    ),
)
TIME_SHIFT = 20
READERS = 2
SMALL_APP_SHARE = 0.2  # of the index's messages: below it, searches use the app's tag


def tag(kind: str, *parts: str) -> str:
    """One word standing for a fact: `kind` and a hash of `parts`."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()
    return kind + digest


def message_tags(doc: MessageDoc) -> str:
    words = [tag("a", doc.app_id), tag("s", doc.app_id, doc.sender_id),
             "thr" if doc.thread_root else "top",
             "hasatt" if doc.attachment_kinds else "noatt"]
    words += ["k" + kind for kind in sorted(doc.attachment_kinds)]
    words += [tag("m", doc.app_id, user) for user in sorted(doc.mention_ids)]
    return " ".join(words)


def fts_terms(column: str, terms: Sequence[Term]) -> list[str]:
    """FTS5 query clauses for the items of a query, on `column`."""
    clauses = []
    for term in terms:
        quoted = '"' + segment(term.text).replace('"', '""') + '"'
        clauses.append(f"{column} : {quoted}{' *' if term.prefix else ''}")
    return clauses


def any_of(words: Sequence[str]) -> str:
    return "tags : (" + " OR ".join(words) + ")"


def message_id(conn: sqlite3.Connection, doc_key: MessageKey, create_ms: int) -> int:
    """A free id for a new message document: its time, then its hash (module doc)."""
    low = int.from_bytes(hashlib.blake2b(
        f"{doc_key.app_id}\x1f{doc_key.conversation_id}\x1f{doc_key.sequence}".encode(),
        digest_size=4).digest()) & ((1 << TIME_SHIFT) - 1)
    candidate = (create_ms << TIME_SHIFT) | low
    while conn.execute("SELECT 1 FROM message_docs WHERE id = ?", (candidate,)).fetchone():
        candidate += 1
    return candidate


class Readers:
    """Reader threads, each with its own connection to the index file."""

    def __init__(self, path: Path, threads: int = READERS) -> None:
        self._path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="search-read")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                return query(conn)
            finally:
                conn.execute("COMMIT")

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def close(self) -> None:
        self._pool.shutdown()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class SqliteSearchIndex:
    def __init__(self, db: SqliteDatabase, path: Path) -> None:
        self._db = db
        self._readers = Readers(path)
        self._counts = DocumentCounts()

    @classmethod
    async def open(cls, path: Path) -> SqliteSearchIndex:
        return cls(await SqliteDatabase.open(path), path)

    async def migrate(self) -> None:
        await self._db.migrate("search", MIGRATIONS)

    async def compact(self) -> None:
        def optimize(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO message_fts(message_fts) VALUES ('optimize')")
            conn.execute("INSERT INTO conversation_fts(conversation_fts) VALUES ('optimize')")

        await self._db.write(optimize)
        await self._db.compact()

    async def close(self) -> None:
        self._readers.close()
        await self._db.close()

    async def identity(self) -> str:
        return await self._readers.read(
            lambda conn: str(conn.execute("SELECT id FROM identity").fetchone()[0]))

    async def promote(self) -> None:
        """One file, one version: nothing to swap."""

    # Writes

    async def apply(self, app_id: str, writes: Sequence[Write]) -> None:
        def transaction(conn: sqlite3.Connection) -> None:
            for write in writes:
                _apply(conn, write.change, write.position)

        await self._db.write(transaction)

    async def scan_write(self, scan: Scan, docs: Sequence[MessageDoc | ConversationDoc]
                         ) -> None:
        def transaction(conn: sqlite3.Connection) -> None:
            for doc in docs:
                _apply(conn, doc, scan.position)

        await self._db.write(transaction)

    async def sweep(self, scan: Scan) -> int:
        def transaction(conn: sqlite3.Connection) -> int:
            gone = 0
            for table, fts in (("message_docs", "message_fts"),
                               ("conversation_docs", "conversation_fts")):
                rows = conn.execute(
                    f"SELECT id, live FROM {table} WHERE app_id = ? AND position < ?",  # noqa: S608
                    (scan.app_id, scan.position)).fetchall()
                for doc_id, live in rows:
                    if live:
                        conn.execute(f"DELETE FROM {fts} WHERE rowid = ?", (doc_id,))  # noqa: S608
                        gone += 1
                    conn.execute(f"DELETE FROM {table} WHERE id = ?", (doc_id,))  # noqa: S608
            return gone

        return await self._db.write(transaction)

    # Searches

    async def search_messages(self, query: MessageQuery) -> list[Hit]:
        relevance = query.order is Order.RELEVANCE and bool(query.terms)

        def run(conn: sqlite3.Connection) -> list[Hit]:
            sql, values = _message_sql(query, relevance, self._small(conn, query.app_id))
            rows = conn.execute(sql, values).fetchall()
            if not relevance:
                return [_hit(row, query.terms, (row[0],)) for row in rows]
            scanned = [(row, words(row[4])) for row in rows]
            documents = self._documents(conn)
            average = sum(len(w) for _, w in scanned) / max(len(scanned), 1)
            holding = self._holding(conn)
            ranked = []
            for row, doc in scanned:
                counts, _ = matched(doc, query.terms, positions=False)
                score = bm25(len(doc), counts, query.terms, documents, average, holding)
                ranked.append((score, row))
            ranked.sort(key=lambda pair: (-pair[0], -pair[1][0]))
            if query.after is not None:
                score, row_id = float(query.after[0]), int(query.after[1])
                ranked = [(s, r) for s, r in ranked
                          if s < score or (s == score and r[0] < row_id)]
            return [_hit(row, query.terms, (repr(s), row[0]))
                    for s, row in ranked[:query.limit]]

        return await self._readers.read(run)

    @staticmethod
    def _documents(conn: sqlite3.Connection, app_id: str = "") -> int:
        """How many live messages the index holds, or one app of it."""
        row = (conn.execute("SELECT messages FROM app_counts WHERE app_id = ?", (app_id,))
               if app_id else conn.execute("SELECT sum(messages) FROM app_counts")).fetchone()
        return max(int(row[0] or 0) if row else 0, 1)

    def _small(self, conn: sqlite3.Connection, app_id: str) -> bool:
        """Whether the app holds a small part of the index. Then its tag's postings are
        short and skip the other apps' matches; for an app holding most of the index,
        they would be as long as the index and cost more than they skip."""
        return self._documents(conn, app_id) < self._documents(conn) * SMALL_APP_SHARE

    def _holding(self, conn: sqlite3.Connection) -> Callable[[str], int]:
        def lookup(word: str) -> int:
            row = conn.execute("SELECT doc FROM message_vocab WHERE term = ?",
                               (word,)).fetchone()
            return 0 if row is None else int(row[0])

        return lambda word: self._counts.get(word, lookup)

    async def search_conversations(self, query: ConversationQuery) -> list[Hit]:
        match = [tag("a", query.app_id), *fts_terms("title", query.terms)]
        where = ["conversation_fts MATCH ?", "d.app_id = ?"]
        values: list[Any] = [" AND ".join(match), query.app_id]
        if query.channels_only:
            where.append("d.kind = 'channel'")
        if query.member_of is not None:
            members = sorted(query.member_of)
            mine = f"d.conversation_id IN ({', '.join('?' * len(members))})"
            where.append(f"({mine} OR d.kind = 'channel')" if query.channels else mine)
            values += members
        if query.after is not None:
            rank, row_id = float(query.after[0]), int(query.after[1])
            where.append("(rank > ? OR (rank = ? AND d.id < ?))")
            values += [rank, rank, row_id]
        # Every fragment is this module's text; every value is bound.
        sql = (f"SELECT d.id, d.conversation_id, highlight(conversation_fts, 0, '{MATCH_START}',"  # noqa: S608
               f" '{MATCH_END}'), rank FROM conversation_fts"
               " JOIN conversation_docs d ON d.id = conversation_fts.rowid"
               f" WHERE {' AND '.join(where)} ORDER BY rank, d.id DESC LIMIT ?")
        values.append(query.limit)

        def run(conn: sqlite3.Connection) -> list[Hit]:
            return [Hit(conversation_id, 0, tuple(snippet_parts(title)),
                        (repr(rank), row_id))
                    for row_id, conversation_id, title, rank in conn.execute(sql, values)]

        return await self._readers.read(run)

    async def count(self, app_id: str) -> tuple[int, int]:
        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute("SELECT messages FROM app_counts WHERE app_id = ?",
                               (app_id,)).fetchone()
            messages = 0 if row is None else row[0]
            conversations = conn.execute("SELECT count(*) FROM conversation_docs"
                                         " WHERE app_id = ? AND live = 1",
                                         (app_id,)).fetchone()[0]
            return int(messages), int(conversations)

        return await self._readers.read(run)


def _hit(row: tuple[Any, ...], terms: Sequence[Term], cursor: tuple[str | int, ...]) -> Hit:
    """A found message's hit, with its snippet."""
    _, conversation_id, sequence, edit_ms, body = row
    doc = tokens(body)
    _, hits = matched([t.text for t in doc], terms)
    text, cut_start, cut_end = highlight(body, doc, hits)
    return Hit(conversation_id, sequence, tuple(snippet_parts(text, cut_start, cut_end)),
               cursor, None if edit_ms is None else from_ms(edit_ms))


def _message_sql(query: MessageQuery, relevance: bool, small_app: bool
                 ) -> tuple[str, list[Any]]:
    """The statement (and its values) of a message search: the page itself in time
    order, or, by relevance, the newest RELEVANCE_CANDIDATES matches to rank."""
    app = query.app_id
    match = [*fts_terms("body", query.terms)]
    if small_app or not match:
        match.insert(0, tag("a", app))
    if query.sender_ids:
        match.append(any_of([tag("s", app, s) for s in sorted(query.sender_ids)]))
    if query.has_attachments is not None:
        match.append("tags : " + ("hasatt" if query.has_attachments else "noatt"))
    if query.attachment_kinds:
        match.append(any_of(["k" + kind for kind in sorted(query.attachment_kinds)]))
    if query.in_thread is not None:
        match.append("tags : " + ("thr" if query.in_thread else "top"))
    if query.mentioned_user_id:
        match.append("tags : " + tag("m", app, query.mentioned_user_id))
    where = ["message_fts MATCH ?", "d.app_id = ?"]
    values: list[Any] = [" AND ".join(match), app]
    if query.conversations:
        conversations = sorted(query.conversations)
        where.append(f"d.conversation_id IN ({', '.join('?' * len(conversations))})")
        values += conversations
    if query.windows is not None:
        if not query.windows:
            where.append("0")
        else:  # each conversation's messages from the time the user joined it
            # The set first (SQLite makes it a lookup), then the join times: twice as
            # fast as the CASE alone over the matches of other conversations.
            cases = " ".join("WHEN ? THEN ?" for _ in query.windows)
            where.append(f"d.conversation_id IN ({', '.join('?' * len(query.windows))})"
                         f" AND d.id >= (CASE d.conversation_id {cases} END)")
            values += list(query.windows)
            for conversation_id, since in query.windows.items():
                values += [conversation_id, to_ms(since) << TIME_SHIFT]
    if query.start_time is not None:
        where.append("message_fts.rowid >= ?")
        values.append(to_ms(query.start_time) << TIME_SHIFT)
    if query.end_time is not None:
        where.append("message_fts.rowid < ?")
        values.append(to_ms(query.end_time) << TIME_SHIFT)
    newest = query.order is not Order.OLDEST
    if query.after is not None and not relevance:
        where.append(f"message_fts.rowid {'<' if newest else '>'} ?")
        values.append(int(query.after[0]))
    values.append(RELEVANCE_CANDIDATES if relevance else query.limit)
    # Every fragment is this module's text; every value is bound.
    sql = ("SELECT d.id, d.conversation_id, d.sequence, d.edit_ms, message_fts.body"  # noqa: S608
           " FROM message_fts JOIN message_docs d ON d.id = message_fts.rowid"
           f" WHERE {' AND '.join(where)}"
           f" ORDER BY message_fts.rowid {'DESC' if newest else 'ASC'} LIMIT ?")
    return sql, values


def _key_where(doc: MessageDoc | ConversationDoc | MessageKey | ConversationKey
               ) -> tuple[str, tuple[Any, ...]]:
    if isinstance(doc, MessageDoc | MessageKey):
        return ("app_id = ? AND conversation_id = ? AND sequence = ?",
                (doc.app_id, doc.conversation_id, doc.sequence))
    return "app_id = ? AND conversation_id = ?", (doc.app_id, doc.conversation_id)


def _apply(conn: sqlite3.Connection, change: MessageDoc | ConversationDoc | Deletion,
           position: int) -> bool:
    """Apply one change at `position`; False if the document is as new or newer."""
    if isinstance(change, MessageDoc | ConversationDoc):
        doc_key: MessageKey | ConversationKey = (
            MessageKey(change.app_id, change.conversation_id, change.sequence)
            if isinstance(change, MessageDoc)
            else ConversationKey(change.app_id, change.conversation_id))
    else:
        doc_key = change.key
    messages = isinstance(doc_key, MessageKey)
    table, fts = (("message_docs", "message_fts") if messages
                  else ("conversation_docs", "conversation_fts"))
    if isinstance(change, Deletion) and isinstance(doc_key, ConversationKey):
        # Its messages go with it: every time, since a reindex scan may have written
        # some back after this deletion was first applied.
        for (doc_id,) in conn.execute(
                "SELECT id FROM message_docs WHERE app_id = ? AND conversation_id = ?"
                " AND live = 1 AND position < ?",
                (doc_key.app_id, doc_key.conversation_id, position)).fetchall():
            conn.execute("DELETE FROM message_fts WHERE rowid = ?", (doc_id,))
        conn.execute("DELETE FROM message_docs WHERE app_id = ? AND conversation_id = ?"
                     " AND position < ?", (doc_key.app_id, doc_key.conversation_id, position))
    where, values = _key_where(doc_key)
    row = conn.execute(f"SELECT id, position, live FROM {table} WHERE {where}",  # noqa: S608
                       values).fetchone()
    if row is not None and row[1] >= position:
        return False
    if row is not None and row[2]:
        conn.execute(f"DELETE FROM {fts} WHERE rowid = ?", (row[0],))  # noqa: S608
    if isinstance(change, Deletion):
        if row is not None:
            conn.execute(f"UPDATE {table} SET position = ?, live = 0 WHERE id = ?",  # noqa: S608
                         (position, row[0]))
        elif isinstance(doc_key, MessageKey):  # a tombstone, so no older write revives it
            conn.execute("INSERT INTO message_docs (id, app_id, conversation_id, sequence,"
                         " position, live, edit_ms) VALUES (?, ?, ?, ?, ?, 0, NULL)",
                         (message_id(conn, doc_key, 0), doc_key.app_id,
                          doc_key.conversation_id, doc_key.sequence, position))
        else:
            conn.execute("INSERT INTO conversation_docs (app_id, conversation_id, kind,"
                         " position, live) VALUES (?, ?, '', ?, 0)",
                         (doc_key.app_id, doc_key.conversation_id, position))
        return True
    if isinstance(change, MessageDoc):
        assert isinstance(doc_key, MessageKey)
        edit_ms = None if change.edit_time is None else to_ms(change.edit_time)
        if row is None or row[0] >> TIME_SHIFT == 0:  # new, or a tombstone's placeholder id
            if row is not None:
                conn.execute("DELETE FROM message_docs WHERE id = ?", (row[0],))
            doc_id = message_id(conn, doc_key, to_ms(change.create_time))
            conn.execute("INSERT INTO message_docs (id, app_id, conversation_id, sequence,"
                         " position, live, edit_ms) VALUES (?, ?, ?, ?, ?, 1, ?)",
                         (doc_id, change.app_id, change.conversation_id, change.sequence,
                          position, edit_ms))
        else:
            doc_id = row[0]
            conn.execute("UPDATE message_docs SET position = ?, live = 1, edit_ms = ?"
                         " WHERE id = ?", (position, edit_ms, doc_id))
        conn.execute("INSERT INTO message_fts (rowid, body, tags) VALUES (?, ?, ?)",
                     (doc_id, segment(clean(change.text)), message_tags(change)))
        return True
    if row is None:
        cursor = conn.execute("INSERT INTO conversation_docs (app_id, conversation_id, kind,"
                              " position, live) VALUES (?, ?, ?, ?, 1)",
                              (change.app_id, change.conversation_id, change.kind, position))
        doc_id = int(cursor.lastrowid or 0)
    else:
        doc_id = row[0]
        conn.execute("UPDATE conversation_docs SET kind = ?, position = ?, live = 1"
                     " WHERE id = ?", (change.kind, position, doc_id))
    conn.execute("INSERT INTO conversation_fts (rowid, title, tags) VALUES (?, ?, ?)",
                 (doc_id, segment(clean(change.title)),
                  f"{tag('a', change.app_id)} k{change.kind}"))
    return True
