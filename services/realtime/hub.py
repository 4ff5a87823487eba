"""Live fan-out of an app's events to the streams connected to this process.

One `Feed` per app with local streams follows the app's event log in position order
and offers each event to the streams that may see it. The events of each commit reach
it straight from the committing process (this one's, or another's through the
`Fanout`): while they continue its cursor without a gap it dispatches them as they
are; after a gap, a wake without events, or its short poll (the safety net), it reads
the log from its cursor. Each event is encoded once, as the bytes of a whole
`SubscribeResponse`, and the same bytes go to every stream.

A stream starts by registering with the feed (from then on it receives every event
of the app past the feed's cursor C into a pending list), then replays its missed
events from the log up to C or the log's head when it subscribed, whichever is
later, then applies its pending events and switches to live — the switch runs without
an await, so nothing falls between replay and live, and positions make duplicates
impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from caas.events.v1 import events_pb2

from services.core.errors import limit_exceeded
from services.events.log import (
    LEAVING,
    EventLog,
    Interval,
    LoggedEvent,
    Opener,
    follow,
    opened,
    same_payload,
    visible,
)
from services.events.types import CALL_SIGNAL

log = logging.getLogger("caas.realtime")

# Fields of caas.realtime.v1.SubscribeResponse.
EVENT, TYPING, PRESENCE, HEARTBEAT, READY = 1, 2, 3, 4, 5
_TOKEN = 6
_BATCH = 7  # an EventBatch, whose field 1 repeats the events
MAX_BATCH = 64  # events in one batch at most
PAGE = 500  # events read from the log at a time
POLL_SECONDS = 1.0  # a feed reads the log at least this often while it has streams
# Events of calls go at once, never held for the batch window: ringing and WebRTC
# signaling are a call's setup time (and few).
URGENT = "call."


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def response_bytes(item: int, payload: bytes, token: str = "") -> bytes:
    """A serialized SubscribeResponse: `item` set to the serialized message `payload`,
    and the resume token if any."""
    return _field(item, payload) + (_field(_TOKEN, token.encode()) if token else b"")


def encode_token(log_id: str, position: int) -> str:
    return f"{log_id}.{position}"


def decode_token(token: str) -> tuple[str, int] | None:
    log_id, _, position = token.partition(".")
    if not log_id or not position.isdigit() or len(position) > 18:
        return None
    return log_id, int(position)


@dataclass(frozen=True, slots=True)
class Durable:
    """A logged event as a stream sends it: alone (`item`), or in a batch (`event`
    field bytes) followed by its resume token."""

    item: bytes
    field: bytes
    token: str


def event_item(log_id: str, event: LoggedEvent) -> Durable:
    token = encode_token(log_id, event.position)
    return Durable(response_bytes(EVENT, event.payload, token),
                   _field(EVENT, event.payload), token)


def _batched(items: Iterable[bytes | Durable]) -> list[bytes]:
    """The stream's messages for `items`: consecutive durable events go as batches."""
    out: list[bytes] = []
    run: list[Durable] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0].item)
        elif run:
            out.append(_field(_BATCH, b"".join(d.field for d in run))
                       + _field(_TOKEN, run[-1].token.encode()))
        run.clear()

    for item in items:
        if isinstance(item, Durable):
            run.append(item)
            if len(run) == MAX_BATCH:
                flush()
        else:
            flush()
            out.append(item)
    flush()
    return out


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Lagging(Exception):
    """The stream fell further behind than its queue holds."""


class StreamCounts:
    """What this process's streams have done, counted on the hot path as plain ints
    (metrics read them now and then)."""

    __slots__ = ("delivered", "lagged")

    def __init__(self) -> None:
        self.delivered = 0  # events and signals taken from queues to be sent
        self.lagged = 0  # streams that fell further behind than their queue holds


@dataclass(frozen=True, slots=True)
class StreamFigures:
    open: int  # streams registered (catching up or live)
    queued: int  # events waiting in their queues, all together
    longest: int  # the longest queue


class Subscriber:
    """One stream: what its user may see, and what waits to be sent."""

    __slots__ = (
        "_log_id",
        "_queue",
        "_waiter",
        "active",
        "app_id",
        "beat",
        "counts",
        "device",
        "intervals",
        "lagging",
        "last",
        "limit",
        "live",
        "pending",
        "user_id",
    )

    def __init__(self, app_id: str, user_id: str, limit: int,
                 counts: StreamCounts | None = None, device: str = "") -> None:
        self.app_id = app_id
        self.device = device  # signals addressed to another device are not for it
        self.counts = counts or StreamCounts()
        self.user_id = user_id
        self.intervals: dict[str, list[Interval]] = {}
        self.last = 0  # position of the last event offered
        self.live = False
        self.pending: list[LoggedEvent] = []
        self.lagging = False
        self.limit = limit
        # A list, not a deque: it is only ever emptied whole, and an idle stream's empty
        # deque would cost 0.6 KiB (a preallocated block) where a list costs 56 bytes.
        self._queue: list[bytes | Durable] = []
        self._waiter: asyncio.Future[None] | None = None
        self._log_id = ""
        self.active = 0.0  # loop time items were last taken to be sent
        self.beat = False  # a heartbeat is due

    def start(self, log_id: str, after: int) -> None:
        self._log_id = log_id
        self.last = after
        self.active = asyncio.get_running_loop().time()

    def push(self, item: bytes | Durable) -> None:
        if self.lagging:
            return
        if len(self._queue) >= self.limit:
            self._fall_behind()
            return
        self._queue.append(item)
        self._wake()

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self.pending)

    def _fall_behind(self) -> None:
        if not self.lagging:
            self.counts.lagged += 1
        self.lagging = True
        self._queue.clear()
        self.pending = []
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def offer(self, event: LoggedEvent, item: Durable) -> bool:
        """Take the next event of the app (`item`: its stream form); True if it made the
        user a member of its conversation (so the feed indexes this stream there)."""
        if not self.live:
            if len(self.pending) >= self.limit:
                self._fall_behind()
            elif not self.lagging:
                self.pending.append(event)
            return False
        return self.apply(event, item)

    def apply(self, event: LoggedEvent, item: Durable | None = None) -> bool:
        if event.position <= self.last:
            return False
        self.last = event.position
        if event.joiners or event.type in LEAVING:
            known = event.conversation_id in self.intervals
            follow(self.intervals, event, self.user_id)
            joined = not known and event.conversation_id in self.intervals
        else:
            joined = False
        if visible(self.intervals, event, self.user_id) and (
                event.type != CALL_SIGNAL or self._addressed(event)):
            self.push(item or event_item(self._log_id, event))
        return joined

    def _addressed(self, event: LoggedEvent) -> bool:
        """Whether a signal (one of this stream's user's) is for this stream's device."""
        return events_pb2.Event.FromString(event.payload).call_signal.to_device_id == self.device

    def member_now(self, conversation_id: str) -> bool:
        return any(end is None for _, end in self.intervals.get(conversation_id, ()))

    def token(self, position: int) -> str:
        return encode_token(self._log_id, max(self.last, position))

    def take(self) -> list[bytes]:
        """Everything waiting, as the stream's messages; raises Lagging if the stream
        fell behind."""
        if self.lagging:
            raise Lagging
        self.counts.delivered += len(self._queue)
        if len(self._queue) == 1:  # the usual case, quickly
            only = self._queue.pop()
            return [only.item if isinstance(only, Durable) else only]
        items = _batched(self._queue)
        self._queue.clear()
        return items

    def beat_if_idle(self, now: float, idle: float) -> None:
        if now - self.active >= idle:
            self.beat = True
            self._wake()

    async def wait(self) -> None:
        """Until something waits to be sent or a heartbeat is due. (A bare future: this
        runs once per delivery; `wait_for` would make a task, a timer a heap entry.)"""
        if self._queue or self.lagging or self.beat:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class Feed:
    """An app's events, as their commits hand them over (or read once from the log),
    offered to this process's streams."""

    def __init__(self, app_id: str, log_id: str, cursor: int, events: EventLog,
                 heartbeat: float, window: float = 0.0,
                 open_payload: Opener = same_payload) -> None:
        self.app_id = app_id
        self._open = open_payload
        self.log_id = log_id
        self.cursor = cursor
        self._events = events
        self._heartbeat = heartbeat
        # How often the feed polls the log and looks for streams due a heartbeat.
        self._tick = min(POLL_SECONDS, heartbeat / 4)
        # Rounds (dispatching what arrived, reading the log) are at least this far apart:
        # under load, the events of the commits in between go to each stream together,
        # in one write (a stream's writes, not its events, are what a delivery costs most).
        self._window = window
        self._catching_up: set[Subscriber] = set()
        self._by_conversation: dict[str, set[Subscriber]] = {}
        self._by_user: dict[str, set[Subscriber]] = {}
        self._wakeup = asyncio.Event()
        self._arrived: list[LoggedEvent] = []  # committed events handed over, not read
        self._read = True  # whether the next round reads the log
        self._urgent = False  # a call's event arrived: no waiting for the window
        self._window_end: asyncio.Future[None] | None = None  # while a round waits for it
        self._ticker: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def empty(self) -> bool:
        return not self._catching_up and not self._by_user

    def add(self, sub: Subscriber) -> None:
        self._catching_up.add(sub)

    def streams(self) -> Iterator[Subscriber]:
        yield from self._catching_up
        for subs in self._by_user.values():
            yield from subs

    def go_live(self, sub: Subscriber) -> None:
        """Apply what arrived during the replay, then deliver live (no await here)."""
        for event in sub.pending:
            sub.apply(event)
        sub.pending = []
        sub.live = True
        self._catching_up.discard(sub)
        self._by_user.setdefault(sub.user_id, set()).add(sub)
        for conversation_id in sub.intervals:
            self._by_conversation.setdefault(conversation_id, set()).add(sub)

    def remove(self, sub: Subscriber) -> None:
        self._catching_up.discard(sub)
        for index, key in ((self._by_user, sub.user_id),
                           *((self._by_conversation, c) for c in sub.intervals)):
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    def wake(self) -> None:
        """The log has new events: read it."""
        self._read = True
        self._wakeup.set()

    def take(self, events: Sequence[LoggedEvent]) -> None:
        """Committed events of the app, in position order (from any process)."""
        self._arrived.extend(events)
        if not self._urgent and any(e.type.startswith(URGENT) for e in events):
            self._urgent = True
            if self._window_end is not None:
                _settle(self._window_end)  # the round waiting for the window goes now
        self._wakeup.set()

    async def _dispatch_arrived(self) -> None:
        """Dispatch the events handed over that continue the cursor; read the log next
        if any is left beyond a gap. (Opened first: dispatching runs without an await.)"""
        arrived, self._arrived = self._arrived, []
        arrived = await opened(arrived, self._open)
        if len(arrived) > 1 and any(a.position > b.position
                                    for a, b in itertools.pairwise(arrived)):
            arrived.sort(key=lambda e: e.position)  # commits of several processes
        for event in arrived:
            if event.position == self.cursor + 1:
                self.dispatch(event)
            elif event.position > self.cursor:  # a gap: the log has the events between
                self._read = True
                return

    def dispatch(self, event: LoggedEvent) -> None:
        item = event_item(self.log_id, event)  # once, for every stream
        if event.private:
            candidates = set(self._by_user.get(event.user_id, ()))
        else:
            candidates = set(self._by_conversation.get(event.conversation_id, ()))
            for user_id in event.joiners:
                candidates.update(self._by_user.get(user_id, ()))
        for sub in (*self._catching_up, *candidates):
            if sub.offer(event, item):
                self._by_conversation.setdefault(event.conversation_id, set()).add(sub)
            if sub.lagging:
                self.remove(sub)
        self.cursor = max(self.cursor, event.position)

    def signal(self, conversation_ids: list[str], item: bytes, sender: str) -> None:
        """Send an ephemeral item once to each live stream of a current member of any
        of the conversations, except the streams of `sender`."""
        reached: set[Subscriber] = set()
        for conversation_id in conversation_ids:
            for sub in self._by_conversation.get(conversation_id, ()):
                if (sub not in reached and sub.user_id != sender
                        and sub.member_now(conversation_id)):
                    reached.add(sub)
                    sub.push(item)

    def _on_tick(self) -> None:
        now = asyncio.get_running_loop().time()
        for subs in self._by_user.values():
            for sub in subs:  # a heartbeat at the latest one interval after the last item
                sub.beat_if_idle(now, self._heartbeat - self._tick)
        self.wake()  # and poll the log: a wake from another process may be lost

    def _schedule_tick(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(self._tick, self._tick_now)

    def _tick_now(self) -> None:
        self._on_tick()
        self._schedule_tick()

    async def run(self) -> None:
        self._schedule_tick()
        try:
            await self._follow()
        finally:
            if self._ticker is not None:
                self._ticker.cancel()

    async def _wait_window(self, seconds: float) -> None:
        """Until the window ends, or a call's event arrives."""
        loop = asyncio.get_running_loop()
        self._window_end = ended = loop.create_future()
        timer = loop.call_later(seconds, _settle, ended)
        try:
            await ended
        finally:
            timer.cancel()
            self._window_end = None

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        last_round = -self._window
        while True:
            await self._wakeup.wait()
            early = last_round + self._window - loop.time()
            if early > 0 and not self._urgent:  # a round at the window's end: what commits
                await self._wait_window(early)  # meanwhile comes along
            self._urgent = False
            self._wakeup.clear()
            last_round = loop.time()
            await self._dispatch_arrived()
            if not self._read:
                continue
            self._read = False
            try:
                while True:
                    batch = await self._events.read(self.app_id, self.cursor, PAGE)
                    for event in await opened(batch, self._open):
                        self.dispatch(event)
                    if len(batch) < PAGE:
                        break
            except Exception:  # a store outage: streams wait, heartbeats go on
                self._read = True
                log.warning("reading the event log of %s failed", self.app_id, exc_info=True)


class StreamUsage(Protocol):
    """Told of every stream opened and closed (usage analytics: services/analytics)."""

    def stream_opened(self, app_id: str, user_id: str) -> None: ...

    def stream_closed(self, app_id: str) -> None: ...


class Hub:
    """This process's feeds, one per app with connected streams."""

    def __init__(self, events: EventLog, heartbeat: float, max_per_user: int,
                 window: float = 0.0, open_payload: Opener = same_payload,
                 usage: StreamUsage | None = None) -> None:
        self._events = events
        self._usage = usage
        self.open_payload = open_payload
        self._heartbeat = heartbeat
        self._window = window
        self._max_per_user = max_per_user
        self._feeds: dict[str, Feed] = {}
        self._opening = asyncio.Lock()
        self._per_user: dict[tuple[str, str], int] = {}
        self.counts = StreamCounts()  # its subscribers count here

    def figures(self) -> StreamFigures:
        """The streams now (a walk over every stream: for metrics, now and then)."""
        count = queued = longest = 0
        for feed in self._feeds.values():
            for sub in feed.streams():
                count += 1
                size = sub.queued
                queued += size
                longest = max(longest, size)
        return StreamFigures(count, queued, longest)

    async def join(self, sub: Subscriber) -> Feed:
        """Register a stream (catching up) with its app's feed; LIMIT_EXCEEDED if its user
        holds as many streams here as allowed."""
        user = (sub.app_id, sub.user_id)
        if self._per_user.get(user, 0) >= self._max_per_user:
            raise limit_exceeded("open streams per user", self._max_per_user)
        self._per_user[user] = self._per_user.get(user, 0) + 1
        try:
            feed = await self._join(sub)
        except BaseException:
            self._count_out(user)
            raise
        if self._usage is not None:
            self._usage.stream_opened(sub.app_id, sub.user_id)
        return feed

    def _count_out(self, user: tuple[str, str]) -> None:
        left = self._per_user.pop(user, 1) - 1
        if left:
            self._per_user[user] = left

    async def _join(self, sub: Subscriber) -> Feed:
        async with self._opening:
            feed = self._feeds.get(sub.app_id)
            if feed is None:
                head = await self._events.head(sub.app_id)
                feed = Feed(sub.app_id, head.log_id, head.position, self._events,
                            self._heartbeat, self._window, self.open_payload)
                feed.task = asyncio.create_task(feed.run(), name=f"feed {sub.app_id}")
                self._feeds[sub.app_id] = feed
            feed.add(sub)
            return feed

    def leave(self, sub: Subscriber) -> None:
        self._count_out((sub.app_id, sub.user_id))
        if self._usage is not None:
            self._usage.stream_closed(sub.app_id)
        feed = self._feeds.get(sub.app_id)
        if feed is None:
            return
        feed.remove(sub)
        if feed.empty:
            del self._feeds[sub.app_id]
            if feed.task is not None:
                feed.task.cancel()

    def wake(self, app_id: str) -> None:
        feed = self._feeds.get(app_id)
        if feed is not None:
            feed.wake()

    def deliver(self, app_id: str, events: Sequence[LoggedEvent]) -> None:
        """Committed events of the app (in position order), for its feed if any."""
        feed = self._feeds.get(app_id)
        if feed is not None:
            feed.take(events)

    def signal(self, app_id: str, conversation_ids: list[str], item: bytes, sender: str
               ) -> None:
        feed = self._feeds.get(app_id)
        if feed is not None:
            feed.signal(conversation_ids, item, sender)

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed.task
        self._feeds.clear()


async def replay(sub: Subscriber, until: int, events: EventLog, open_payload: Opener = same_payload
                 ) -> AsyncIterator[list[bytes]]:
    """The stream's missed events up to `until` (at least the feed's cursor when the
    stream registered, so that what the feed dispatches after it completes the replay;
    what both deliver counts once), in pages: the caller sends each before the next is
    read."""
    sub.intervals = dict(await events.memberships(sub.app_id, sub.user_id, sub.last))
    position = sub.last
    page = min(PAGE, sub.limit)  # a page fits in the stream's queue
    while position < until:
        conversations = list(sub.intervals)
        batch = await events.read(sub.app_id, position, page,
                                  conversations if len(conversations) <= PAGE else None)
        batch = [e for e in batch if e.position <= until]
        if not batch:
            break
        for event in await opened(batch, open_payload):
            sub.apply(event)
        position = batch[-1].position
        yield sub.take()

