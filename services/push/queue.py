"""The rules of the push queue both store engines follow."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from services.push.models import CLEAR, PENDING, SENT, Outcome, Push


def collapsed_due(push: Push, newest: Push | None, window: timedelta) -> datetime:
    """When a new push is due: at its own time, or — if its channel's last push of the
    group was sent less than `window` before — when that window ends (a burst makes one
    notification per window, with a count). A clear is never held."""
    if (push.kind == CLEAR or newest is None or newest.state != SENT or newest.kind == CLEAR
            or newest.send_time is None):
        return push.due_time
    return max(push.due_time, newest.send_time + window)


def joins(push: Push, newest: Push | None, held: bool) -> bool:
    """Whether `push` joins its group's newest push rather than being added: that one
    is pending, no sender holds it, and neither is a clear."""
    return (newest is not None and newest.state == PENDING and not held
            and CLEAR not in (push.kind, newest.kind))


def joined(newest: Push, push: Push) -> Push:
    """The pending push with `push`'s event in it: the newest event's content, one
    more in the count."""
    return replace(newest, kind=push.kind, content=push.content, through=push.through,
                   count=newest.count + 1, sequence=push.sequence)


def finished(stored: Push, outcome: Outcome) -> Push:
    """The push as stored after `outcome`: its try added, its new state and due time;
    sent, its send time."""
    attempt = outcome.attempt
    return replace(stored, state=outcome.state,
                   attempts=stored.attempts + ((attempt,) if attempt else ()),
                   due_time=outcome.due_time or stored.due_time,
                   send_time=attempt.time if outcome.state == SENT and attempt else None)
