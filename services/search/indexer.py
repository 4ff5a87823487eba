"""Keeping the search index up to date: a consumer of the event log, and reindexing.

The indexer is a relay of the event log (services/events/relay.py) whose sink writes
to the index: at least once, in position order per app (so in order per
conversation), idempotent by position (the index ignores older writes). A failing
index (Elasticsearch down) makes the relay retry with growing delays while its
component (`relay-search-…`) is down; sending never waits for it, and the log keeps
the events until the indexer has taken them.

The consumer's name carries the index's identity: a new index (a new embedded file,
a new Elasticsearch mapping version) is a new consumer, which starts from the
beginning of every app's log. Where the log no longer goes back that far (purged),
the app is reindexed from the store first: a new deployment starts search on
existing data without an operator's step.

Reindexing one app (`caas admin reindex`) is online: it notes the log's head, writes
every message and conversation of the store at that position (never over a newer
copy), drops what the store no longer has, then replays the events since the noted
head, which puts back whatever changed during the scan. The index then equals the
store, while searches and the live indexer go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC

from caas.conversations.v1 import resources_pb2 as conversations_res
from caas.events.v1 import events_pb2
from caas.messages.v1 import resources_pb2 as messages_res

from services.conversations.models import Conversation
from services.conversations.store import ConversationStore
from services.core.clock import Clock
from services.core.health import Health
from services.core.metrics import RelayMeter
from services.events.log import EventLog, LoggedEvent, Opener, opened, same_payload
from services.events.relay import Relay, Wake
from services.messages.models import Message
from services.messages.store import MessageStore
from services.search.index import (
    ConversationDoc,
    ConversationKey,
    Deletion,
    MessageDoc,
    MessageKey,
    Scan,
    SearchIndex,
    Write,
)

log = logging.getLogger("caas.search")

SCAN_BATCH = 500
CATCH_UP_POLL_SECONDS = 1.0
# After an index failure: retried at first after half a second, then at most every
# 5 s (a search engine back from an outage is caught up with soon).
RETRY_SECONDS = (0.5, 5.0)
# Index rounds start at least this far apart: under load one index transaction and one
# cursor write carry 0.1 s of messages (the searchable-lag target is 1 s).
SPACING_SECONDS = 0.1
REPLAY_BATCH = 500

ATTACHMENT_KINDS = {messages_res.Attachment.KIND_IMAGE: "image",
                    messages_res.Attachment.KIND_VIDEO: "video",
                    messages_res.Attachment.KIND_AUDIO: "audio",
                    messages_res.Attachment.KIND_FILE: "file",
                    messages_res.Attachment.KIND_LINK: "link"}
CONVERSATION_KINDS = {conversations_res.Conversation.KIND_DIRECT: "direct",
                      conversations_res.Conversation.KIND_GROUP: "group",
                      conversations_res.Conversation.KIND_CHANNEL: "channel"}

Progress = Callable[[str], None]


def message_doc(message: Message) -> MessageDoc:
    """The document of a message read from the store."""
    return MessageDoc(message.app_id, message.conversation_id, message.sequence,
                      message.sender_id, message.text, message.create_time,
                      message.edit_time, message.thread_root,
                      frozenset(a.kind for a in message.attachments),
                      frozenset(m.user_id for m in message.mentions))


def conversation_doc(conversation: Conversation) -> ConversationDoc:
    return ConversationDoc(conversation.app_id, conversation.conversation_id,
                           conversation.title, conversation.kind.value,
                           conversation.create_time)


def _message_doc(app_id: str, proto: messages_res.Message) -> MessageDoc:
    """The document of a message as an event carries it."""
    conversation_id = proto.name.split("/")[3]
    return MessageDoc(
        app_id, conversation_id, proto.sequence, proto.sender_id, proto.text,
        proto.create_time.ToDatetime(tzinfo=UTC),
        proto.edit_time.ToDatetime(tzinfo=UTC) if proto.HasField("edit_time")
        else None,
        proto.thread_root_sequence,
        frozenset(ATTACHMENT_KINDS[a.kind] for a in proto.attachments
                  if a.kind in ATTACHMENT_KINDS),
        frozenset(proto.mention_ids))


def write_of(event: LoggedEvent) -> Write | None:
    """What an event changes in the index, if anything."""
    kind = event.type
    if kind not in INDEXED or (event.private and kind.startswith("message.")):
        return None  # a shadowed message's: its sender's alone, never found by others
    proto = events_pb2.Event.FromString(event.payload)
    app_id = event.app_id
    if kind in ("message.created", "message.updated"):
        message = proto.message_created if kind == "message.created" else proto.message_updated
        if message.HasField("mls"):
            return None  # end-to-end encrypted: nothing the server may read, nor index
        return Write(event.position, _message_doc(app_id, message))
    if kind == "message.deleted":
        return Write(event.position, Deletion(MessageKey(
            app_id, event.conversation_id, proto.message_deleted.sequence)))
    if kind == "conversation.deleted":
        return Write(event.position, Deletion(ConversationKey(app_id, event.conversation_id)))
    conversation = (proto.conversation_created if kind == "conversation.created"
                    else proto.conversation_updated)
    return Write(event.position, ConversationDoc(
        app_id, event.conversation_id, conversation.title,
        CONVERSATION_KINDS.get(conversation.kind, "group"),
        conversation.create_time.ToDatetime(tzinfo=UTC)))


INDEXED = frozenset({"message.created", "message.updated", "message.deleted",
                     "conversation.created", "conversation.updated", "conversation.deleted"})


async def writes_of(events: Sequence[LoggedEvent], open_payload: Opener) -> list[Write]:
    """What the events change in the index; only the events it takes are opened."""
    taken = await opened([e for e in events if e.type in INDEXED], open_payload)
    return [w for w in (write_of(e) for e in taken) if w is not None]


class IndexSink:
    """The relay's sink: a batch of one app's events, as one write to the index."""

    def __init__(self, index: SearchIndex, open_payload: Opener) -> None:
        self._index = index
        self._open = open_payload

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        writes = await writes_of(events, self._open)
        if writes:
            await self._index.apply(events[0].app_id, writes)


@dataclass(frozen=True, slots=True)
class Lag:
    app_id: str
    indexed: int  # the consumer's position
    head: int  # the log's


class Indexer:
    def __init__(self, index: SearchIndex, events: EventLog,
                 conversations: ConversationStore, messages: MessageStore, clock: Clock,
                 health: Health | None = None, meter: RelayMeter | None = None,
                 open_payload: Opener = same_payload) -> None:
        """`open_payload` opens the sealed content of events: the index is a store of
        its own, and keeps what it finds in clear (services/messages/sealing.py)."""
        self.index = index
        self._open = open_payload
        self.consumer = ""  # known once the index answered (start)
        self._events = events
        self._conversations = conversations
        self._messages = messages
        self._clock = clock
        self._health = health
        self._meter = meter

    async def start(self) -> None:
        """Create the index if missing, learn its identity (raises while the engine is
        unreachable), and register as a consumer of the log."""
        await self.index.migrate()
        self.consumer = f"search-{await self.index.identity()}"
        await self._events.register(self.consumer)

    async def run(self, wake: Wake) -> None:
        """Index until cancelled (after `start`): first reindex the apps whose log was
        purged past the consumer's position (a new index on existing data), then follow
        the log."""
        for app_id, taken, _ in await self._events.behind(self.consumer):
            head = await self._events.head(app_id)
            if head.purged_through > taken:
                log.info("search: indexing an app from the store (its log was purged)",
                         extra={"app": app_id})
                await self.reindex(app_id)
                await self._events.advance(self.consumer, app_id, head.position)
        relay = Relay(self._events, IndexSink(self.index, self._open),
                      self.consumer, now=self._clock.now, health=self._health,
                      retry_seconds=RETRY_SECONDS, meter=self._meter, spacing=SPACING_SECONDS)
        following = asyncio.create_task(relay.run(wake))
        try:
            while not await self._caught_up():  # noqa: ASYNC110 - a state in the store
                await asyncio.sleep(CATCH_UP_POLL_SECONDS)
            await self.index.promote()  # a new index version is searched from now on
            await following
        finally:
            following.cancel()

    async def _caught_up(self) -> bool:
        return not await self._events.behind(self.consumer)

    async def lag(self) -> list[Lag]:
        """The apps whose events the index has yet to take (after `start`)."""
        return [Lag(app_id, taken, head)
                for app_id, taken, head in await self._events.behind(self.consumer)]

    async def reindex(self, app_id: str, progress: Progress | None = None) -> int:
        """Rebuild the app's documents from the store, online (module doc); how many
        documents the scan wrote."""
        say = progress or (lambda _: None)
        scan = Scan(app_id, (await self._events.head(app_id)).position)
        say(f"reindexing app {app_id} from log position {scan.position}")
        written = 0
        after: str | None = None
        while True:
            conversations = await self._conversations.scan_conversations(
                app_id, SCAN_BATCH, after)
            if not conversations:
                break
            await self.index.scan_write(scan, [conversation_doc(c) for c in conversations])
            written += len(conversations)
            for conversation in conversations:
                written += await self._scan_messages(scan, conversation.conversation_id)
            after = conversations[-1].conversation_id
            say(f"  {written} documents written")
        gone = await self.index.sweep(scan)
        say(f"  {gone} documents of deleted messages or conversations dropped")
        replayed = await self._replay(app_id, scan.position)
        say(f"  {replayed} events since the start replayed; done")
        return written

    async def _scan_messages(self, scan: Scan, conversation_id: str) -> int:
        written, after = 0, 0
        while True:
            messages = await self._messages.scan_messages(
                scan.app_id, conversation_id, after, SCAN_BATCH)
            if not messages:
                return written
            await self.index.scan_write(scan, [message_doc(m) for m in messages
                                               if not m.deleted and not m.shadowed])
            written += len(messages)
            after = messages[-1].sequence

    async def _replay(self, app_id: str, after: int) -> int:
        replayed = 0
        while True:
            events = await self._events.read(app_id, after, REPLAY_BATCH)
            if not events:
                return replayed
            writes = await writes_of(events, self._open)
            if writes:
                await self.index.apply(app_id, writes)
            replayed += len(events)
            after = events[-1].position
