"""The durable event types: one per case of `caas.events.v1.Event.payload`, named
`<family>.<change>` (`message.created`, `read.updated`, …)."""

from __future__ import annotations

from caas.events.v1 import events_pb2

# WebRTC signals for one device's stream: never sent to webhooks, Kafka or the log's
# other consumers, and purged from the log soon (CAAS_CALL_SIGNAL_RETENTION).
CALL_SIGNAL = "call.signal"
STREAM_ONLY: frozenset[str] = frozenset({CALL_SIGNAL})

# What webhooks and the event bus carry.
EVENT_TYPES: tuple[str, ...] = tuple(
    name for name in (field.name.replace("_", ".", 1) for field in
                      events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields)
    if name not in STREAM_ONLY)


def family(event_type: str) -> str:
    """`message` for `message.created`: the part before the dot."""
    return event_type.partition(".")[0]


FAMILIES: tuple[str, ...] = tuple(sorted({family(t) for t in EVENT_TYPES}))
