"""Who is told of what: the push consumer of the event log.

A relay (services/events/relay.py) hands the notifier every app's events in position
order, at least once. For each event that can notify — a message, a reaction to one's
message, a call ringing — it finds the users to tell and queues a push per push channel
of theirs (services/push/store.py `enqueue`: idempotent by event position and channel,
collapsing a burst per conversation). A member is told only if all of these hold:

- not the sender (nor the one who reacted, nor the caller);
- no stream of theirs in the foreground: a user ONLINE (services/realtime/presence.py)
  sees it live; a client whose app went to the background says so with SetPresence
  AWAY, and is told;
- the conversation not muted (the member's `muted`) and its level (the user's for the
  conversation, else the user's own, else ALL) lets the kind through: ALL everything,
  MENTIONS mentions, replies in threads they follow and calls, NONE nothing;
- not in their quiet hours (but for calls);
- they do not block the sender.

A thread reply tells the thread's followers (who started it, who replied in it, who is
mentioned); the conversation's other members are not told of it. A read
(`read.updated`) cancels the reader's pending pushes of the conversation and, where
one was sent, queues a silent one that clears it on the device (Web Push: the same
tag; APNs and FCM: a background message); a call answered, declined or ended clears
its ring the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from caas.calls.v1 import resources_pb2 as calls_res
from caas.events.v1 import events_pb2
from caas.messages.v1 import resources_pb2 as messages_res

from services.conversations.models import Kind
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.ids import new_id
from services.events.log import LoggedEvent
from services.messages.store import MessageStore
from services.push.models import (
    ALL,
    CALL,
    CLEAR,
    MENTION,
    MENTIONS,
    MESSAGE,
    NONE,
    REACTION,
    THREAD_REPLY,
    NotificationSettings,
    Push,
)
from services.push.quiet import in_quiet_hours
from services.push.store import PushStore
from services.realtime.presence import Presences, Status
from services.users.store import UserStore

log = logging.getLogger("caas.push")

# Events that tell, and events that clear what was told.
TELLING = frozenset({"message.created", "reaction.added", "call.started"})
CLEARING = frozenset({"read.updated", "call.updated", "call.ended"})
EVERY_SEQUENCE = 2**62  # a call's pushes are cleared whatever their sequence
MEMBERS_PAGE = 1000
THREAD_FOLLOWERS_SCANNED = 500  # replies looked at for who replied in a thread


class Told(NamedTuple):
    user_id: str
    kind: str


class Notifier:
    def __init__(self, store: PushStore, conversations: ConversationStore,
                 messages: MessageStore, users: UserStore, presences: Presences,
                 clock: Clock, window: timedelta, wake: Callable[[], None] = lambda: None
                 ) -> None:
        self._store = store
        self._conversations = conversations
        self._messages = messages
        self._users = users
        self._presences = presences
        self._clock = clock
        self._window = window
        self._wake = wake

    async def wants(self, app_id: str) -> bool:
        """Whether the app has any push channel: when not, the relay skips its events
        without reading them (most apps' traffic, before their users enable push)."""
        return await self._store.has_devices(app_id)

    async def send(self, events: Sequence[LoggedEvent]) -> None:
        """Queue the pushes of `events` (one app's, in position order)."""
        queued: list[Push] = []
        for event in events:
            if event.type in CLEARING:
                await self._flush(queued)
                proto = events_pb2.Event.FromString(event.payload)
                for user_id, group, sequence in _cleared(event, proto):
                    await self._clear(event, user_id, group, sequence)
            elif event.type in TELLING and not event.private:
                queued += await self._pushes(event, events_pb2.Event.FromString(event.payload))
        await self._flush(queued)

    async def _flush(self, queued: list[Push]) -> None:
        if queued:
            await self._store.enqueue(queued, self._window)
            queued.clear()
            self._wake()

    async def _pushes(self, event: LoggedEvent, proto: events_pb2.Event) -> list[Push]:
        app_id, conversation_id = event.app_id, event.conversation_id
        conversation = await self._conversations.get_conversation(app_id, conversation_id)
        if conversation is None:
            return []
        content: dict[str, str] = {}
        match event.type:
            case "message.created":
                message = proto.message_created
                if message.HasField("call") or message.shadowed:
                    return []  # a call's record (its ring was the push), or hidden
                actor = message.sender_id
                told = await self._message_audience(app_id, conversation_id, message)
                # No text: the sender reads it when it sends (it stays sealed at rest,
                # and a message deleted meanwhile is not told of).
                content = {"message": message.name, "sequence": str(_sequence(message.name))}
                if message.HasField("mls"):
                    content["encrypted"] = "1"
            case "reaction.added":
                message = proto.reaction_added.message
                actor = event.user_id
                if message.sender_id == actor or message.HasField("mls"):
                    return []
                told = [Told(message.sender_id, REACTION)]
                content = {"message": message.name, "emoji": proto.reaction_added.emoji,
                           "sequence": str(_sequence(message.name))}
            case "call.started":
                call = proto.call_started
                actor = call.caller_id
                told = [Told(p.user_id, CALL) for p in call.participants
                        if p.state == calls_res.Participant.STATE_RINGING]
                content = {"call": call.name, "media": "video" if call.media
                           == calls_res.Call.MEDIA_VIDEO else "voice"}
            case _:
                return []
        # Only users with a channel can be told: the rules' queries are for them alone.
        reachable = [t for t in told if t.user_id != actor]
        devices = await self._store.devices_of(app_id, {t.user_id for t in reachable})
        having = {device.user_id for device in devices}
        told = await self._allowed(app_id, conversation_id, actor,
                                   [t for t in reachable if t.user_id in having],
                                   event.create_time)
        if not told:
            return []
        sender = await self._users.get_user(app_id, actor)
        sender_name = sender.display_name if sender is not None and sender.display_name \
            else actor
        content["sender"] = sender_name
        content["conversation"] = (sender_name if conversation.kind == Kind.DIRECT
                                   else conversation.title or sender_name)
        kinds = {t.user_id: t.kind for t in told}
        now = self._clock.now()
        sequence = int(content.get("sequence", "0"))
        group = conversation_id if event.type != "call.started" else f"call.{conversation_id}"
        return [Push(new_id(), app_id, device.user_id, device.push_device_id, device.provider,
                     kinds[device.user_id], conversation_id, group, event.position,
                     dict(content), event.create_time, now, sequence=sequence)
                for device in devices if device.user_id in kinds]

    async def _message_audience(self, app_id: str, conversation_id: str,
                                message: messages_res.Message) -> list[Told]:
        """Who a message may tell, and of what: mentioned members of a mention; a
        thread's followers of a reply; every other member of a message."""
        members = set(await self._conversations.member_ids(app_id, conversation_id))
        mentioned = set(message.mention_ids) & members
        if message.thread_root_sequence:
            followers = await self._thread_followers(app_id, conversation_id,
                                                     message.thread_root_sequence)
            return [Told(u, MENTION if u in mentioned else THREAD_REPLY)
                    for u in sorted((followers | mentioned) & members)]
        return [Told(u, MENTION if u in mentioned else MESSAGE) for u in sorted(members)]

    async def _thread_followers(self, app_id: str, conversation_id: str, root: int
                                ) -> set[str]:
        followers: set[str] = set()
        started = await self._messages.get(app_id, conversation_id, root)
        if started is not None:
            followers.add(started.sender_id)
        page = await self._messages.list_page(app_id, conversation_id, root, "latest", 0,
                                              THREAD_FOLLOWERS_SCANNED)
        followers.update(m.sender_id for m in page.messages)
        return followers

    async def _allowed(self, app_id: str, conversation_id: str, actor: str,
                       told: list[Told], at: datetime) -> list[Told]:
        """Those of `told` the rules let be told (see the module's docstring)."""
        candidates = {t.user_id: t for t in told if t.user_id != actor}
        if not candidates:
            return []
        muted = await self._muted(app_id, conversation_id, candidates)
        settings = await self._store.get_settings(app_id, candidates)
        kept = [t for t in candidates.values() if t.user_id not in muted and _lets(
            settings.get(t.user_id), conversation_id, t.kind, at)]
        if not kept:
            return []
        blockers = await self._users.blockers_among(app_id, actor, [t.user_id for t in kept])
        kept = [t for t in kept if t.user_id not in blockers]
        presences = await self._presences.get_many(app_id, [t.user_id for t in kept])
        online = {p.user_id for p in presences if p.status == Status.ONLINE}
        return [t for t in kept if t.user_id not in online]

    async def _muted(self, app_id: str, conversation_id: str, users: dict[str, Told]
                     ) -> set[str]:
        if len(users) <= 5:
            members = [await self._conversations.get_member(app_id, conversation_id, u)
                       for u in users]
            return {m.user_id for m in members if m is not None and m.muted}
        muted: set[str] = set()
        after = None
        while True:
            page = await self._conversations.list_members(app_id, conversation_id,
                                                          MEMBERS_PAGE, after)
            muted.update(m.user_id for m in page if m.muted and m.user_id in users)
            if len(page) < MEMBERS_PAGE:
                return muted
            after = (to_ms(page[-1].join_time), page[-1].user_id)

    async def _clear(self, event: LoggedEvent, user_id: str, group: str, sequence: int
                     ) -> None:
        """The user's pending pushes of `group` up to `sequence` go; what was shown of
        them is cleared."""
        now = self._clock.now()
        shown = await self._store.cancel_group(event.app_id, user_id, group, sequence, now)
        if shown:
            await self._store.enqueue([
                Push(new_id(), event.app_id, user_id, device_id, provider, CLEAR,
                     event.conversation_id, group, event.position,
                     {} if sequence == EVERY_SEQUENCE else {"sequence": str(sequence)},
                     event.create_time, now, sequence=sequence)
                for device_id, provider in shown], self._window)
            self._wake()


def _cleared(event: LoggedEvent, proto: events_pb2.Event) -> list[tuple[str, str, int]]:
    """(user, group, up to which sequence) of what an event clears: a read, the
    reader's pushes of the conversation; a call answered, declined or ended, its ring
    on the devices of those it rang."""
    if event.type == "read.updated":
        read = proto.read_updated
        return [(read.user_id, event.conversation_id, read.sequence)]
    call = proto.call_updated if event.type == "call.updated" else proto.call_ended
    ended = event.type == "call.ended"
    return [(p.user_id, f"call.{event.conversation_id}", EVERY_SEQUENCE)
            for p in call.participants if p.user_id != call.caller_id
            and (ended or p.state != calls_res.Participant.STATE_RINGING)]


def _sequence(message_name: str) -> int:
    return int(message_name.rsplit("/", 1)[-1])


def _lets(settings: NotificationSettings | None, conversation_id: str, kind: str,
          at: datetime) -> bool:
    """Whether a user's settings let a push of `kind` through at `at`."""
    if settings is None:
        return True
    level = settings.level_of(conversation_id) or ALL
    if level == NONE:
        return False
    if level == MENTIONS and kind not in (MENTION, THREAD_REPLY, CALL):
        return False
    return kind == CALL or settings.do_not_disturb is None or not in_quiet_hours(
        settings.do_not_disturb, at)
