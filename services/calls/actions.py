"""Calls: ringing, answering, leaving, the record, WebRTC signaling and ICE servers (see
caas.calls.v1.CallsService for the rules)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from caas.calls.v1 import resources_pb2 as res

from services.calls import models
from services.calls.models import Call, call_name
from services.calls.store import CallInProgress, CallKey, CallStore
from services.calls.turn import IceConfig, IceServer
from services.conversations.access import Access
from services.conversations.actions import ConversationsActions
from services.conversations.models import Kind, Role
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import FailedPrecondition, Unavailable, invalid_field, not_found
from services.core.events import DomainEvent
from services.core.pagination import Page, time_id_page
from services.core.principal import Principal, User
from services.core.protoconv import timestamp
from services.core.settings import Settings
from services.events.log import EventLog
from services.events.types import CALL_SIGNAL, STREAM_ONLY
from services.messages.models import Draft
from services.messages.store import MessageStore
from services.realtime.presence import Presences

log = logging.getLogger("caas.calls")

ATTEMPTS = 16  # tries of a change that keeps losing to concurrent ones
SWEEP_BATCH = 100


def call_not_found(app_id: str, conversation_id: str, call_id: str) -> Exception:
    return not_found("caas.dev/Call", call_name(app_id, conversation_id, call_id))


class CallsActions:
    def __init__(self, store: CallStore, conversations: ConversationsActions,
                 conversation_store: ConversationStore, messages: MessageStore,
                 presence: Presences, events: EventLog, ice: IceConfig, clock: Clock,
                 settings: Settings) -> None:
        self._store = store
        self._events = events
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._messages = messages
        self._presence = presence
        self._ice = ice
        self._clock = clock
        self._ring_timeout = settings.call_ring_timeout
        self._max_participants = settings.call_max_participants
        self._grace = settings.call_reconnect_grace.total_seconds()
        self._signal_retention = settings.call_signal_retention
        self._signals_purged: datetime | None = None
        # Devices in calls seen without a stream by check_devices, and since when.
        self._missing: dict[tuple[str, str, str], datetime] = {}

    def now(self) -> datetime:
        return self._clock.now()

    # Reading.

    async def _access(self, principal: Principal, app_id: str, conversation_id: str) -> Access:
        access = await self._conversations.access(principal, app_id, conversation_id)
        access.require_member()
        return access

    async def _call(self, principal: Principal, app_id: str, conversation_id: str,
                    call_id: str) -> tuple[Access, Call]:
        access = await self._access(principal, app_id, conversation_id)
        call = await self._store.get(app_id, conversation_id, call_id)
        if call is None:
            raise call_not_found(app_id, conversation_id, call_id)
        return access, call

    async def get(self, principal: Principal, app_id: str, conversation_id: str,
                  call_id: str) -> Call:
        return (await self._call(principal, app_id, conversation_id, call_id))[1]

    async def list_calls(self, principal: Principal, app_id: str, conversation_id: str,
                         page_size: int, page_token: str) -> Page[Call]:
        await self._access(principal, app_id, conversation_id)
        return await time_id_page(
            page_size, page_token, ("calls", app_id, conversation_id),
            lambda limit, after: self._store.list_calls(app_id, conversation_id, limit, after),
            lambda call: (to_ms(call.create_time), call.call_id))

    def ice_servers(self, call: Call, user_id: str, device_id: str
                    ) -> tuple[list[IceServer], datetime | None]:
        who = f"{call.app_id}/{call.call_id}/{user_id}/{device_id}"
        return self._ice.servers(who, self._clock.now())

    # Changing.

    async def start(self, principal: User, app_id: str, conversation_id: str, media: str,
                    device_id: str, request_id: str, invitee_ids: Sequence[str]
                    ) -> tuple[Call, bool]:
        access = await self._access(principal, app_id, conversation_id)
        access.require_kind(Kind.DIRECT, Kind.GROUP)
        conversation = access.conversation
        if conversation.frozen and (access.member is None or access.member.role < Role.ADMIN):
            raise FailedPrecondition("CONVERSATION_FROZEN",
                                     "the conversation is frozen: only admins may call")
        me = principal.user_id
        call_id = models.call_id_for(app_id, conversation_id, me, request_id)
        found = await self._store.get(app_id, conversation_id, call_id)
        if found is not None:  # a retry
            return found, False
        for other in await self._store.joined_calls(app_id, me):
            raise models.in_another_call(other, me)
        members = await self._conversation_store.member_ids(app_id, conversation_id)
        invitees = list(invitee_ids) or [m for m in members if m != me]
        for index, user_id in enumerate(invitee_ids):
            if user_id == me or user_id not in members:
                raise invalid_field(f"invitee_ids[{index}]",
                                    "is not another member of the conversation")
        if not invitees:
            raise invalid_field("parent", "has no other member to call")
        now = self._clock.now()
        busy = await self._store.busy(app_id, invitees)
        call = models.start(app_id, conversation_id, call_id, media, me, device_id, invitees,
                            sorted(busy), self._max_participants, now, self._ring_timeout)
        events = [self._event("call.started", call, me, now)]
        if call.ended:
            events.append(self._event("call.ended", call, me, now))
        try:
            stored, created = await self._store.create(call, events)
        except CallInProgress as busy_with:
            current = busy_with.call
            raise FailedPrecondition(
                "CALL_IN_PROGRESS", "a call of this conversation is under way: join it",
                metadata={"call": call_name(app_id, conversation_id, current.call_id)}
            ) from None
        if created and stored.ended:
            await self._record(stored)
        return stored, created

    def _event(self, kind: str, call: Call, actor: str, now: datetime) -> DomainEvent:
        return DomainEvent(kind, call.app_id, now, conversation_id=call.conversation_id,
                           payload=call, user_id=actor)

    async def _change(self, app_id: str, conversation_id: str, call_id: str,
                      change: Callable[[Call, datetime], Call], actor: str) -> Call:
        """Apply `change` to the stored call until it lands on the version it read;
        the call after it."""
        for _ in range(ATTEMPTS):
            call = await self._store.get(app_id, conversation_id, call_id)
            if call is None:
                raise call_not_found(app_id, conversation_id, call_id)
            now = self._clock.now()
            changed = change(call, now)
            if changed is call:
                return call
            kind = "call.ended" if changed.ended else "call.updated"
            if await self._store.update(changed, [self._event(kind, changed, actor, now)]):
                if changed.ended:
                    await self._record(changed)
                return changed
        raise Unavailable("UNAVAILABLE", "the call kept changing under concurrent changes: "
                          "try again")

    async def accept(self, principal: User, app_id: str, conversation_id: str, call_id: str,
                     device_id: str) -> Call:
        await self._call(principal, app_id, conversation_id, call_id)
        me = principal.user_id
        for other in await self._store.joined_calls(app_id, me):
            if other.call_id != call_id:
                raise models.in_another_call(other, me)
        return await self._change(
            app_id, conversation_id, call_id,
            lambda call, now: models.accept(call, me, device_id, now), me)

    async def decline(self, principal: User, app_id: str, conversation_id: str, call_id: str,
                      busy: bool) -> Call:
        await self._call(principal, app_id, conversation_id, call_id)
        me = principal.user_id
        return await self._change(
            app_id, conversation_id, call_id,
            lambda call, now: models.decline(call, me, busy, now), me)

    async def leave(self, principal: User, app_id: str, conversation_id: str,
                    call_id: str) -> Call:
        await self._call(principal, app_id, conversation_id, call_id)
        me = principal.user_id
        return await self._change(
            app_id, conversation_id, call_id,
            lambda call, now: models.leave(call, me, now), me)

    async def end(self, principal: Principal, app_id: str, conversation_id: str,
                  call_id: str) -> Call:
        access, call = await self._call(principal, app_id, conversation_id, call_id)
        actor = access.user_id
        if not access.backend and actor != call.caller_id:
            access.require_role(Role.ADMIN)
        return await self._change(app_id, conversation_id, call_id, models.end, actor)

    async def _record(self, call: Call) -> None:
        """Writes the message recording the ended call (once: its request id is the
        call's), and notes it on the call. A failure leaves the call due: the sweeper
        writes it."""
        draft = Draft(sender_id=call.caller_id, text="", preview=models.record_text(call),
                      call=call)
        try:
            message, _ = await self._messages.append(
                call.app_id, call.conversation_id, draft, f"call-{call.call_id}",
                self._clock.now())
        except LookupError:  # the conversation is gone: nothing to record it in
            sequence = 0
        except Exception:
            log.warning("recording call %s failed; the sweeper retries", call.call_id,
                        exc_info=True)
            return
        else:
            sequence = message.sequence
        await self._store.set_record(call.app_id, call.conversation_id, call.call_id, sequence)

    # Signaling.

    async def signal(self, principal: User, app_id: str, conversation_id: str, call_id: str,
                     device_id: str, to_user_id: str, to_device_id: str,
                     body: res.SessionDescription | res.IceCandidate) -> res.Signal:
        _, call = await self._call(principal, app_id, conversation_id, call_id)
        if call.ended:
            raise models.call_ended()
        me = principal.user_id
        if not call.in_call(me, device_id):
            raise models.not_joined(me, device_id)
        if (to_user_id, to_device_id) == (me, device_id) or not call.in_call(to_user_id,
                                                                             to_device_id):
            raise models.not_joined(to_user_id, to_device_id)
        now = self._clock.now()
        signal = res.Signal(call=call_name(app_id, conversation_id, call_id),
                            from_user_id=me, from_device_id=device_id,
                            to_user_id=to_user_id, to_device_id=to_device_id,
                            create_time=timestamp(now))
        if isinstance(body, res.SessionDescription):
            signal.description.CopyFrom(body)
        else:
            signal.candidate.CopyFrom(body)
        await self._store.signal(DomainEvent(
            CALL_SIGNAL, app_id, now, {"device": to_device_id}, conversation_id, signal,
            to_user_id, private=True))
        return signal

    async def ice_for(self, principal: User, app_id: str, conversation_id: str, call_id: str,
                      device_id: str) -> tuple[list[IceServer], datetime | None]:
        _, call = await self._call(principal, app_id, conversation_id, call_id)
        if call.ended:
            raise models.call_ended()
        me = principal.user_id
        p = call.participant(me)
        if p is None or (p.state != models.RINGING and not call.in_call(me, device_id)):
            raise models.not_joined(me, device_id)
        return self.ice_servers(call, me, device_id)

    # What happens around calls.

    async def sweep(self) -> int:
        """Ring timeouts, and records not written yet; how many calls it looked at."""
        due = await self._store.due(self._clock.now(), SWEEP_BATCH)
        for call in due:
            if call.ended:
                await self._record(call)
            else:
                await self._change(call.app_id, call.conversation_id, call.call_id,
                                   models.expire_ringing, "")
        return len(due)

    async def purge_signals(self) -> int:
        """Drops the signals older than their retention from the event log, at most
        once per half of it; how many went."""
        now = self._clock.now()
        if (self._signals_purged is not None
                and now - self._signals_purged < self._signal_retention / 2):
            return 0
        self._signals_purged = now
        return await self._events.purge_types(STREAM_ONLY, now - self._signal_retention)

    async def check_devices(self) -> int:
        """Every device in a call that has had no stream on any process (presence) since
        this process first saw it so, for the reconnect grace, leaves the call (also one
        that never subscribed; every process looks, so the end of the process a stream
        was on changes nothing). How many left."""
        now = self._clock.now()
        grace = timedelta(seconds=self._grace)
        seen: set[tuple[str, str, str]] = set()
        dropped = 0
        after: CallKey | None = None
        while batch := await self._store.ongoing(SWEEP_BATCH, after):
            after = (batch[-1].app_id, batch[-1].conversation_id, batch[-1].call_id)
            for call in batch:
                for p in call.joined():
                    key = (call.app_id, p.user_id, p.device_id)
                    seen.add(key)
                    if await self._presence.connected(*key):
                        self._missing.pop(key, None)
                    elif now - self._missing.setdefault(key, now) >= grace:
                        dropped += await self._drop(call, p.user_id, p.device_id)
            if len(batch) < SWEEP_BATCH:
                break
        self._missing = {k: v for k, v in self._missing.items() if k in seen}
        return dropped

    async def run(self, ok: Callable[[], None], every: float = 1.0) -> None:
        """Sweep every `every` seconds, and look at the devices in calls every half
        grace, for the life of the process."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while True:
            await self.sweep()
            await self.purge_signals()
            if loop.time() - checked >= self._grace / 2:
                checked = loop.time()
                await self.check_devices()
            ok()
            await asyncio.sleep(every)

    async def on_event(self, event: DomainEvent) -> None:
        """A member removed from a conversation is out of its call; a deleted
        conversation's call ends, and its calls go with its messages."""
        if event.type not in ("member.removed", "conversation.deleted"):
            return
        call = await self._store.current(event.app_id, event.conversation_id)
        if event.type == "conversation.deleted":
            if call is not None:
                await self._change(call.app_id, call.conversation_id, call.call_id,
                                   models.end, "")
            await self._store.delete_conversation_calls(event.app_id, event.conversation_id)
            return
        if call is None:
            return
        members = set(await self._conversation_store.member_ids(event.app_id,
                                                                event.conversation_id))
        await self._change(call.app_id, call.conversation_id, call.call_id,
                           lambda c, now: models.drop_members(c, members, now), "")

    async def _drop(self, call: Call, user_id: str, device_id: str) -> int:
        """The device leaves the call, connection lost (if it is in it still)."""
        if not call.in_call(user_id, device_id):
            return 0
        try:
            after = await self._change(
                call.app_id, call.conversation_id, call.call_id,
                lambda c, now: models.leave(c, user_id, now, models.CONNECTION_LOST, device_id),
                user_id)
        except FailedPrecondition:  # it ended meanwhile
            return 0
        return 0 if after.in_call(user_id, device_id) else 1
