"""Streams, typing and presence. See caas.realtime.v1.RealtimeService for the rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

from caas.realtime.v1 import realtime_service_pb2 as pb

from services.conversations.actions import ConversationsActions
from services.conversations.models import Kind
from services.conversations.store import ConversationStore
from services.core.clock import Clock
from services.core.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    invalid_field,
)
from services.core.ids import new_id
from services.core.principal import Principal, User, require_app, require_user_or_app
from services.core.protoconv import timestamp
from services.core.settings import Settings
from services.events.log import EventLog
from services.realtime.fanout import Fanout
from services.realtime.hub import (
    HEARTBEAT,
    PRESENCE,
    READY,
    TYPING,
    Hub,
    Lagging,
    Subscriber,
    decode_token,
    replay,
    response_bytes,
)
from services.realtime.presence import Presence, Presences, Status

# Presence reaches the members of at most this many of a user's direct and group
# conversations (the most recently active); channels never carry presence.
PRESENCE_CONVERSATIONS = 1_000


def presence_proto(app_id: str, presence: Presence) -> pb.Presence:
    return pb.Presence(name=f"apps/{app_id}/users/{presence.user_id}/presence",
                       user_id=presence.user_id,
                       status=int(presence.status),  # type: ignore[arg-type]
                       last_seen_time=timestamp(presence.last_seen))


RESYNC = "resync with the list RPCs, then subscribe without a token"


def token_expired() -> FailedPrecondition:
    return FailedPrecondition(
        "RESUME_TOKEN_EXPIRED", f"the resume token is older than the events kept: {RESYNC}")


def token_foreign() -> InvalidArgument:
    return InvalidArgument(
        "RESUME_TOKEN_FOREIGN", "the resume token belongs to another event log (another "
        f"deployment, or this app's log was reset): {RESYNC}")


def token_ahead(position: int, newest: int) -> OutOfRange:
    return OutOfRange(
        "RESUME_TOKEN_AHEAD", f"the resume token points at event {position}, past the "
        f"newest event ({newest}), so this event log did not issue it: {RESYNC}",
        metadata={"position": str(position), "newest_position": str(newest)})


class RealtimeActions:
    def __init__(self, hub: Hub, fanout: Fanout, events: EventLog,
                 conversations: ConversationsActions, conversation_store: ConversationStore,
                 presence: Presences, clock: Clock, settings: Settings) -> None:
        self._hub = hub
        self._fanout = fanout
        self._events = events
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._presence = presence
        self._clock = clock
        self._queue_limit = settings.stream_queue_limit
        self._typing_ttl = settings.typing_ttl

    async def _start_position(self, app_id: str, token: str) -> tuple[int | None, int]:
        """(the position to resume after, None for "from now"; the log's last position
        now); raises if the token is bad."""
        head = await self._events.head(app_id)
        if not token:
            return None, head.position
        decoded = decode_token(token)
        if decoded is None:
            raise invalid_field("resume_token", "is not a resume token of this server")
        log_id, position = decoded
        if log_id != head.log_id:
            raise token_foreign()
        if position > head.position:
            raise token_ahead(position, head.position)
        if position < head.purged_through:
            raise token_expired()
        return position, head.position

    async def subscribe(self, principal: User, app_id: str, user_id: str, token: str,
                        device_id: str) -> AsyncIterator[bytes]:
        """The stream's items, each a serialized SubscribeResponse."""
        require_user_or_app(principal, app_id, user_id)
        after, head = await self._start_position(app_id, token)
        device = device_id or new_id()
        sub = Subscriber(app_id, user_id, self._queue_limit, self._hub.counts, device)
        feed = await self._hub.join(sub)
        # Everything committed before this call is replayed before `ready`, even what
        # this process's feed has not seen yet (it may be a moment behind the log).
        until = max(feed.cursor, head)
        connected = False
        try:
            sub.start(feed.log_id, until if after is None else after)
            async for page in replay(sub, until, self._events, self._hub.open_payload):
                for item in page:
                    yield item
            feed.go_live(sub)
            for item in sub.take():
                yield item
            yield response_bytes(READY, b"", sub.token(feed.cursor))
            connected = True
            if await self._presence.connect(app_id, user_id, device):
                await self._broadcast_presence(app_id, user_id)
            loop = asyncio.get_running_loop()
            while True:
                items = sub.take()
                if not items:
                    await sub.wait()
                    items = sub.take()
                if not items and sub.beat:
                    beat = pb.Heartbeat(time=timestamp(self._clock.now()))
                    items = [response_bytes(HEARTBEAT, beat.SerializeToString(),
                                            sub.token(feed.cursor))]
                if items:
                    sub.beat, sub.active = False, loop.time()
                for item in items:
                    yield item
        except Lagging:
            raise Aborted("STREAM_LAGGING", "the stream fell too far behind: subscribe again "
                          "with the last resume_token received; nothing is lost") from None
        finally:
            self._hub.leave(sub)
            if connected and await self._presence.disconnect(app_id, user_id, device,
                                                             self._clock.now()):
                await self._broadcast_presence(app_id, user_id)

    async def _broadcast_presence(self, app_id: str, user_id: str) -> None:
        rows = await self._conversation_store.list_user_conversations(
            app_id, user_id, True, PRESENCE_CONVERSATIONS, None)
        conversations = [c.conversation_id for _, c in rows if c.kind is not Kind.CHANNEL]
        proto = presence_proto(app_id, await self._presence.get(app_id, user_id))
        self._fanout.signal(app_id, conversations,
                            response_bytes(PRESENCE, proto.SerializeToString()), user_id)

    async def do_typing(self, principal: User, app_id: str, conversation_id: str,
                        typing: bool, thread_root: int) -> datetime | None:
        access = await self._conversations.access(principal, app_id, conversation_id)
        access.require_member()
        expire = self._clock.now() + self._typing_ttl if typing else None
        proto = pb.Typing(conversation=f"apps/{app_id}/conversations/{conversation_id}",
                          user_id=principal.user_id, typing=typing,
                          expire_time=timestamp(expire), thread_root_sequence=thread_root)
        self._fanout.signal(app_id, [conversation_id],
                            response_bytes(TYPING, proto.SerializeToString()),
                            principal.user_id)
        return expire

    async def presences(self, principal: Principal, app_id: str, user_ids: list[str]
                        ) -> list[Presence]:
        """The presence of each user, in order, as the caller may see it.

        A user sees their own and that of their conversation partners (members of a
        direct or group conversation of theirs: whom their stream tells them about).
        Anyone else is shown as an unknown user is: offline, no last-seen time. The
        app's backend and the operator see every user's."""
        require_app(principal, app_id)
        if not isinstance(principal, User):
            return await self._presence.get_many(app_id, user_ids)
        me = principal.user_id
        seen = await self._conversation_store.conversation_partners(app_id, me, user_ids)
        seen.add(me)
        found = iter(await self._presence.get_many(app_id, [u for u in user_ids if u in seen]))
        return [next(found) if u in seen else Presence(u, Status.OFFLINE, None)
                for u in user_ids]

    async def do_set_presence(self, principal: User, app_id: str, user_id: str,
                              status: Status, device_id: str) -> Presence:
        require_user_or_app(principal, app_id, user_id)
        if await self._presence.set(app_id, user_id, device_id, status):
            await self._broadcast_presence(app_id, user_id)
        return await self._presence.get(app_id, user_id)
