"""A call as a document of plain values (JSON on SQLite, BSON on MongoDB)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.calls.models import Call, Participant
from services.core.clock import from_ms, ms, to_ms

# A call whose record message is not written yet is due at once.
_NOW = 0


def _ms(value: Any) -> int | None:
    return None if value is None else to_ms(value)


def _time(value: int | None) -> Any:
    return None if value is None else from_ms(value)


def participant_doc(p: Participant) -> dict[str, Any]:
    return {"user": p.user_id, "state": p.state, "invited": p.invited, "device": p.device_id,
            "join": _ms(p.join_time), "leave": _ms(p.leave_time), "reason": p.leave_reason,
            "in_call": ms(p.in_call), "since": _ms(p.since)}


def participant_of(doc: dict[str, Any]) -> Participant:
    return Participant(doc["user"], doc["state"], doc["invited"], doc["device"],
                       _time(doc["join"]), _time(doc["leave"]), doc["reason"],
                       timedelta(milliseconds=doc["in_call"]), _time(doc["since"]))


def call_doc(call: Call) -> dict[str, Any]:
    """The call's fields (the stores add their keys and indexed copies)."""
    return {"app": call.app_id, "conversation": call.conversation_id, "call": call.call_id,
            "media": call.media, "caller": call.caller_id, "state": call.state,
            "participants": [participant_doc(p) for p in call.participants],
            "max": call.max_participants, "create": to_ms(call.create_time),
            "ring_deadline": to_ms(call.ring_deadline), "answer": _ms(call.answer_time),
            "end": _ms(call.end_time), "outcome": call.outcome, "version": call.version,
            "record": call.record_sequence}


def call_of(doc: dict[str, Any]) -> Call:
    return Call(doc["app"], doc["conversation"], doc["call"], doc["media"], doc["caller"],
                doc["state"], tuple(participant_of(p) for p in doc["participants"]),
                doc["max"], from_ms(doc["create"]), from_ms(doc["ring_deadline"]),
                _time(doc["answer"]), _time(doc["end"]), doc["outcome"], doc["version"],
                doc["record"])


def due_time(call: Call) -> int | None:
    """When the sweeper must look at the call (ms), or None: the ring deadline while
    someone is rung, at once once ended until its record is written."""
    if call.ended:
        return _NOW if call.record_sequence == 0 else None
    return to_ms(call.ring_deadline) if call.ringing() else None
