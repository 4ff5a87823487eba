"""Calls and their state machine, as pure functions of a call and a change.

A call starts RINGING with its caller joined and the others rung. The first answer
makes it ACTIVE. It ENDS when its caller hangs up before anyone answered (canceled),
when nobody is left to ring before an answer (declined, busy or missed), when nobody
is left in it, or one participant with nobody still rung, or when ended for everyone.
Every change returns a new call (with `version` + 1) for the store to write if the call
it read is still the stored one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.core.errors import FailedPrecondition, limit_exceeded

# Call states.
RINGING, ACTIVE, ENDED = "ringing", "active", "ended"
# Participant states.
JOINED, LEFT, DECLINED, BUSY, MISSED = "joined", "left", "declined", "busy", "missed"
# Outcomes.
COMPLETED, CANCELED = "completed", "canceled"
# Why a participant left.
HUNG_UP, CONNECTION_LOST, CALL_ENDED, REMOVED = (
    "hung_up", "connection_lost", "call_ended", "removed")
AUDIO, VIDEO = "audio", "video"


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: str
    state: str  # ringing, joined, left, declined, busy, missed
    invited: bool  # rung when the call started
    device_id: str = ""  # in the call on (kept after leaving)
    join_time: datetime | None = None  # first joined
    leave_time: datetime | None = None  # last left
    leave_reason: str = ""
    in_call: timedelta = timedelta(0)  # over the spans before the current one
    since: datetime | None = None  # when the current span in the call began

    def time_in_call(self, now: datetime) -> timedelta:
        return self.in_call + (now - self.since if self.since is not None else timedelta(0))


@dataclass(frozen=True, slots=True)
class Call:
    app_id: str
    conversation_id: str
    call_id: str
    media: str  # audio, video
    caller_id: str
    state: str  # ringing, active, ended
    participants: tuple[Participant, ...]
    max_participants: int
    create_time: datetime
    ring_deadline: datetime
    answer_time: datetime | None = None
    end_time: datetime | None = None
    outcome: str = ""
    version: int = 1
    record_sequence: int = 0  # the message recording it (0: not written yet)

    @property
    def ended(self) -> bool:
        return self.state == ENDED

    @property
    def duration(self) -> timedelta:
        if self.answer_time is None or self.end_time is None:
            return timedelta(0)
        return self.end_time - self.answer_time

    def participant(self, user_id: str) -> Participant | None:
        return next((p for p in self.participants if p.user_id == user_id), None)

    def joined(self) -> list[Participant]:
        return [p for p in self.participants if p.state == JOINED]

    def ringing(self) -> list[Participant]:
        return [p for p in self.participants if p.state == RINGING]

    def in_call(self, user_id: str, device_id: str) -> bool:
        p = self.participant(user_id)
        return p is not None and p.state == JOINED and p.device_id == device_id


def call_name(app_id: str, conversation_id: str, call_id: str) -> str:
    return f"apps/{app_id}/conversations/{conversation_id}/calls/{call_id}"


def call_id_for(app_id: str, conversation_id: str, user_id: str, request_id: str) -> str:
    """The id of the call a start request makes: the same for its retries."""
    digest = hashlib.sha256(f"{app_id}\n{conversation_id}\n{user_id}\n{request_id}".encode())
    return base64.b32encode(digest.digest()[:10]).decode().lower()


def call_ended() -> FailedPrecondition:
    return FailedPrecondition("CALL_ENDED", "the call has ended")


def already_joined(device_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "CALL_ALREADY_JOINED", f"you are in this call on device {device_id}: leave it there first",
        metadata={"device": device_id})


def in_another_call(other: Call, user_id: str) -> FailedPrecondition:
    p = other.participant(user_id)
    device = p.device_id if p is not None else ""
    return FailedPrecondition(
        "CALL_ALREADY_JOINED", f"you are in another call, on device {device}: leave it first",
        metadata={"device": device,
                  "call": call_name(other.app_id, other.conversation_id, other.call_id)})


def not_joined(user_id: str, device_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "CALL_NOT_JOINED", f"device {device_id} of {user_id} is not in the call",
        metadata={"user": user_id, "device": device_id})


def start(app_id: str, conversation_id: str, call_id: str, media: str, caller_id: str,
          device_id: str, invitees: Sequence[str], busy: Sequence[str], max_participants: int,
          now: datetime, ring_timeout: timedelta) -> Call:
    """A new call: the caller joined on `device_id`, each invitee rung (or busy: in
    another call already). Ends at once if nobody can be rung."""
    caller = Participant(caller_id, JOINED, True, device_id, now, since=now)
    rung = tuple(Participant(u, BUSY if u in busy else RINGING, True) for u in invitees)
    call = Call(app_id, conversation_id, call_id, media, caller_id, RINGING, (caller, *rung),
                max_participants, now, now + ring_timeout)
    return settle(call, now)


def _put(call: Call, participant: Participant) -> tuple[Participant, ...]:
    if call.participant(participant.user_id) is None:
        return (*call.participants, participant)
    return tuple(participant if p.user_id == participant.user_id else p
                 for p in call.participants)


def _changed(call: Call, **changes: object) -> Call:
    return replace(call, version=call.version + 1, **changes)  # type: ignore[arg-type]


def accept(call: Call, user_id: str, device_id: str, now: datetime) -> Call:
    """The user answers (or joins late) on `device_id`; the same call if they are in it
    on that device already."""
    if call.ended:
        raise call_ended()
    p = call.participant(user_id)
    if p is not None and p.state == JOINED:
        if p.device_id == device_id:
            return call
        raise already_joined(p.device_id)
    if len(call.joined()) >= call.max_participants:
        raise limit_exceeded("participants in a call", call.max_participants)
    joined = Participant(user_id, JOINED, p.invited if p is not None else False, device_id,
                         p.join_time if p is not None and p.join_time else now, None, "",
                         p.in_call if p is not None else timedelta(0), now)
    answered = call.state == RINGING and user_id != call.caller_id
    return _changed(call, participants=_put(call, joined),
                    state=ACTIVE if answered else call.state,
                    answer_time=now if answered else call.answer_time)


def decline(call: Call, user_id: str, busy: bool, now: datetime) -> Call:
    """The user declines being rung; the same call if they had already."""
    if call.ended:
        raise call_ended()
    p = call.participant(user_id)
    if p is not None and p.state == JOINED:
        raise already_joined(p.device_id)
    if p is None or p.state != RINGING:
        return call
    declined = replace(p, state=BUSY if busy else DECLINED)
    return settle(_changed(call, participants=_put(call, declined)), now)


def _left(p: Participant, now: datetime, reason: str) -> Participant:
    return replace(p, state=LEFT, leave_time=now, leave_reason=reason,
                   in_call=p.time_in_call(now), since=None)


def leave(call: Call, user_id: str, now: datetime, reason: str = HUNG_UP,
          device_id: str | None = None) -> Call:
    """The user leaves (on `device_id` only, if given); the same call if they are not
    in it (on that device)."""
    if call.ended:
        raise call_ended()
    p = call.participant(user_id)
    if p is None or p.state != JOINED or (device_id is not None and p.device_id != device_id):
        return call
    return settle(_changed(call, participants=_put(call, _left(p, now, reason))), now)


def expire_ringing(call: Call, now: datetime) -> Call:
    """Whoever is still rung past the deadline has missed the call."""
    if call.ended or now < call.ring_deadline or not call.ringing():
        return call
    participants = tuple(replace(p, state=MISSED) if p.state == RINGING else p
                         for p in call.participants)
    return settle(_changed(call, participants=participants), now)


def end(call: Call, now: datetime) -> Call:
    """Ends the call for everyone (canceled if nobody had answered); the same call if it
    had ended."""
    if call.ended:
        return call
    return _finish(_changed(call), now, COMPLETED if call.answer_time is not None else CANCELED)


def _unanswered(call: Call) -> str:
    """How a call nobody answered ended, by what the rung answered."""
    caller = call.participant(call.caller_id)
    if caller is None or caller.state != JOINED:
        return CANCELED
    states = {p.state for p in call.participants if p.user_id != call.caller_id}
    if RINGING in states:
        return ""  # not over: someone is still rung
    if DECLINED in states:
        return DECLINED
    if states and states <= {BUSY}:
        return BUSY
    return MISSED


def settle(call: Call, now: datetime) -> Call:
    """The call, ended if nothing keeps it going any more."""
    if call.ended:
        return call
    if call.answer_time is None:
        outcome = _unanswered(call)
        return call if outcome == "" else _finish(call, now, outcome)
    joined, ringing = call.joined(), call.ringing()
    if not joined or (len(joined) == 1 and not ringing):
        return _finish(call, now, COMPLETED)
    return call


def _out(p: Participant, now: datetime, reason: str) -> Participant:
    """The participant out of the call: left if in it, missed if rung."""
    if p.state == JOINED:
        return _left(p, now, reason)
    return replace(p, state=MISSED) if p.state == RINGING else p


def _finish(call: Call, now: datetime, outcome: str) -> Call:
    participants = tuple(_out(p, now, CALL_ENDED) for p in call.participants)
    return replace(call, participants=participants, state=ENDED, end_time=now, outcome=outcome)


def drop_members(call: Call, members: set[str], now: datetime) -> Call:
    """Participants no longer members of the conversation are out of the call."""
    if call.ended:
        return call
    participants = tuple(p if p.user_id in members else _out(p, now, REMOVED)
                         for p in call.participants)
    if participants == call.participants:
        return call
    return settle(_changed(call, participants=participants), now)


def record_text(call: Call) -> str:
    """What the conversation's preview says of the ended call."""
    kind = "video call" if call.media == VIDEO else "voice call"
    match call.outcome:
        case "completed":
            return kind.capitalize()
        case "missed" | "canceled":
            return f"Missed {kind}"
        case "declined":
            return f"Declined {kind}"
        case _:
            return f"{kind.capitalize()}: busy"
