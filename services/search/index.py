"""The search index port: what the indexer writes and the search actions ask.

Documents are copies of messages and conversations, each with the event-log position
that last wrote it. Writes are idempotent by position: a write carrying a position
at or below the document's is ignored, so events applied twice (at least once
delivery) or out of date (a reindex scan racing live events) never roll a document
back. A deleted message stays as a tombstone (no text, never found) for the same
reason. Positions are per app, like the log's.

Adapters: `SqliteSearchIndex` (embedded default, SQLite FTS5 in the data directory)
and `ElasticIndex` (Elasticsearch). One contract suite runs against both
(tests/search/test_index_contract.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from services.search.text import Term


@dataclass(frozen=True, slots=True)
class MessageDoc:
    app_id: str
    conversation_id: str
    sequence: int
    sender_id: str
    text: str
    create_time: datetime
    edit_time: datetime | None = None
    thread_root: int = 0
    attachment_kinds: frozenset[str] = frozenset()  # image, video, audio, file, link
    mention_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConversationDoc:
    app_id: str
    conversation_id: str
    title: str
    kind: str  # direct, group, channel
    create_time: datetime


@dataclass(frozen=True, slots=True)
class MessageKey:
    app_id: str
    conversation_id: str
    sequence: int


@dataclass(frozen=True, slots=True)
class ConversationKey:
    app_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Deletion:
    """A deleted message (its tombstone) or a deleted conversation (its documents go,
    its messages' too)."""

    key: MessageKey | ConversationKey


Change = MessageDoc | ConversationDoc | Deletion


@dataclass(frozen=True, slots=True)
class Write:
    """A change, with the log position it comes from."""

    position: int
    change: Change


class Order(Enum):
    RELEVANCE = "relevance"
    NEWEST = "newest"
    OLDEST = "oldest"


@dataclass(frozen=True, slots=True)
class MessageQuery:
    app_id: str
    terms: tuple[Term, ...]
    order: Order
    limit: int
    # Conversation → the time from which its messages may be found (a user's
    # memberships); None: every conversation of the app (the app's backend).
    windows: Mapping[str, datetime] | None = None
    conversations: frozenset[str] = frozenset()  # only these, if any
    sender_ids: frozenset[str] = frozenset()
    start_time: datetime | None = None
    end_time: datetime | None = None
    has_attachments: bool | None = None
    attachment_kinds: frozenset[str] = frozenset()
    in_thread: bool | None = None
    mentioned_user_id: str = ""
    after: tuple[str | int, ...] | None = None  # the cursor of the last hit shown


@dataclass(frozen=True, slots=True)
class ConversationQuery:
    app_id: str
    terms: tuple[Term, ...]
    limit: int
    # The conversations a user belongs to (found whatever their kind) and whether the
    # app's channels are found too; None: every conversation (the app's backend).
    member_of: frozenset[str] | None = None
    channels: bool = True
    channels_only: bool = False
    after: tuple[str | int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A found document: which, its snippet as (text, matched) runs, and the cursor to
    continue after it. `edit_time` is that of the indexed text (to tell a stale copy)."""

    conversation_id: str
    sequence: int = 0
    snippet: tuple[tuple[str, bool], ...] = ()
    cursor: tuple[str | int, ...] = ()
    edit_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """A reindex run of one app. It writes the documents read from the store at
    `position`, the log's head when the run started: over every older copy, but not
    over one an event at or after that position wrote. Every document still in the
    store is then at `position` or later, so `sweep` drops those before it: documents
    of messages and conversations gone from the store."""

    app_id: str
    position: int


class SearchIndex(Protocol):
    async def migrate(self) -> None:
        """Create the index (tables, or mappings and aliases); safe on every start."""

    async def identity(self) -> str:
        """An id of this index, new when the index is new (a new file, a new mapping
        version): the indexer's consumer name, so a new index is filled anew."""

    async def promote(self) -> None:
        """Make what this index wrote the index searched: for an engine that builds a
        new version beside the one searched (Elasticsearch's aliases), once the indexer
        has caught up with the log; nothing for the others."""

    async def apply(self, app_id: str, writes: Sequence[Write]) -> None:
        """Apply writes of one app, in order, idempotently by position (module doc).
        Raises on an engine failure; nothing is half-applied that a retry would not
        complete."""

    async def scan_write(self, scan: Scan, docs: Sequence[MessageDoc | ConversationDoc]
                         ) -> None:
        """Write documents read from the store during a reindex run (see Scan)."""

    async def sweep(self, scan: Scan) -> int:
        """Drop the app's documents (and tombstones) older than the run: those gone from
        the store. How many live documents went."""

    async def search_messages(self, query: MessageQuery) -> list[Hit]:
        """Live messages that match, in the query's order, after its cursor."""

    async def search_conversations(self, query: ConversationQuery) -> list[Hit]:
        """Conversations whose title matches, best first, after the cursor."""

    async def compact(self) -> None:
        """Leave no trace of deleted documents on disk (erasure): the embedded index
        merges its segments and checkpoints; Elasticsearch drops them at its own
        segment merges."""

    async def count(self, app_id: str) -> tuple[int, int]:
        """(live messages, conversations) indexed for the app."""

    async def close(self) -> None: ...
