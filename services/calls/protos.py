"""Calls as protobuf: what the service, the events and call record messages show."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from caas.calls.v1 import resources_pb2 as res
from google.protobuf import duration_pb2

from services.calls import models
from services.calls.models import Call, Participant, call_name
from services.calls.turn import IceServer
from services.core.protoconv import timestamp

_CALL_STATES = {models.RINGING: res.Call.STATE_RINGING, models.ACTIVE: res.Call.STATE_ACTIVE,
                models.ENDED: res.Call.STATE_ENDED}
_OUTCOMES = {models.COMPLETED: res.Call.OUTCOME_COMPLETED, models.MISSED: res.Call.OUTCOME_MISSED,
             models.DECLINED: res.Call.OUTCOME_DECLINED, models.BUSY: res.Call.OUTCOME_BUSY,
             models.CANCELED: res.Call.OUTCOME_CANCELED}
_PARTICIPANT_STATES = {
    models.RINGING: res.Participant.STATE_RINGING, models.JOINED: res.Participant.STATE_JOINED,
    models.LEFT: res.Participant.STATE_LEFT, models.DECLINED: res.Participant.STATE_DECLINED,
    models.BUSY: res.Participant.STATE_BUSY, models.MISSED: res.Participant.STATE_MISSED}
_REASONS = {models.HUNG_UP: res.Participant.LEAVE_REASON_HUNG_UP,
            models.CONNECTION_LOST: res.Participant.LEAVE_REASON_CONNECTION_LOST,
            models.CALL_ENDED: res.Participant.LEAVE_REASON_CALL_ENDED,
            models.REMOVED: res.Participant.LEAVE_REASON_REMOVED}
_MEDIA = {models.AUDIO: res.Call.MEDIA_AUDIO, models.VIDEO: res.Call.MEDIA_VIDEO}
MEDIA_OF = {value: key for key, value in _MEDIA.items()}


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMilliseconds(round(seconds * 1000))
    return out


def participant_proto(p: Participant, now: datetime) -> res.Participant:
    return res.Participant(
        user_id=p.user_id, state=_PARTICIPANT_STATES[p.state],
        device_id=p.device_id, join_time=timestamp(p.join_time),
        leave_time=timestamp(p.leave_time),
        leave_reason=_REASONS.get(p.leave_reason, 0),  # type: ignore[arg-type]
        time_in_call=_duration(p.time_in_call(now).total_seconds()), invited=p.invited)


def call_proto(call: Call, now: datetime) -> res.Call:
    """The call as of `now` (a participant's time in the call counts up to it while
    they are in it)."""
    at = call.end_time or now
    return res.Call(
        name=call_name(call.app_id, call.conversation_id, call.call_id),
        media=_MEDIA[call.media], state=_CALL_STATES[call.state],
        outcome=_OUTCOMES.get(call.outcome, 0),  # type: ignore[arg-type]
        caller_id=call.caller_id,
        participants=[participant_proto(p, at) for p in call.participants],
        topology=res.Call.TOPOLOGY_MESH, max_participants=call.max_participants,
        create_time=timestamp(call.create_time), ring_expire_time=timestamp(call.ring_deadline),
        answer_time=timestamp(call.answer_time), end_time=timestamp(call.end_time),
        duration=_duration(call.duration.total_seconds()),
        record_sequence=call.record_sequence, version=call.version)


def ice_protos(servers: Sequence[IceServer]) -> list[res.IceServer]:
    return [res.IceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in servers]
