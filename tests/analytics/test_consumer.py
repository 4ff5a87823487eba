"""What the counter takes of the log's events: ids, types, times and a media's size,
never content; events it does not count are left out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from caas.events.v1 import events_pb2
from caas.media.v1 import resources_pb2 as media_res

from services.analytics.consumer import AnalyticsSink, facts_of
from services.analytics.models import Fact, Metric, count_events
from services.events.log import LoggedEvent

T0 = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
SECONDS = int(T0.timestamp())


def event(position: int, kind: str, user_id: str = "ann", payload: bytes = b"sealed?",
          conversation_id: str = "c1") -> LoggedEvent:
    return LoggedEvent("alpha", position, conversation_id, kind, user_id, False, T0, payload)


def test_facts_keep_what_is_counted() -> None:
    media = events_pb2.Event(type="media.ready", media_ready=media_res.Media(size_bytes=4096))
    facts = facts_of([
        event(1, "conversation.created"), event(2, "member.added", "bob"),
        event(3, "message.created", payload=b"\xff not even protobuf"),
        event(4, "delivered.updated", "bob"), event(5, "media.ready",
                                                    payload=media.SerializeToString()),
        event(6, "message.deleted"), event(7, "reaction.added", "bob")])
    assert facts == [Fact(1, "conversation.created", SECONDS, "ann", "c1"),
                     Fact(3, "message.created", SECONDS, "ann", "c1"),
                     Fact(5, "media.ready", SECONDS, "ann", "c1", 4096),
                     Fact(7, "reaction.added", SECONDS, "bob", "c1")]
    changes = count_events("alpha", facts)
    month = SECONDS - SECONDS % 86_400
    assert changes.counts[("alpha", Metric.MEDIA_BYTES, "month", month, "")] == 4096
    assert changes.counts[("alpha", Metric.MEDIA_UPLOADS, "day", month, "")] == 1
    assert changes.counts[("alpha", Metric.MESSAGES, "hour", SECONDS - 1800, "")] == 1
    users = {key[4] for key in changes.distinct if key[1] == "user"}
    assert users == {"ann", "bob"}  # bob reacted; being added or receiving is no act


class Recorded:
    """A store that only records what it is asked to count."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, int, int]] = []

    async def apply_events(self, app_id: str, facts: Sequence[Fact], through: int) -> int:
        self.applied.append((app_id, len(facts), through))
        return len(facts)


async def test_the_sink_counts_live_apps_and_skips_empty_batches() -> None:
    async def live(app_ids: Collection[str]) -> set[str]:
        return set(app_ids) & {"alpha"}

    store = Recorded()
    sink = AnalyticsSink(store, live)  # type: ignore[arg-type]
    await sink.send([event(1, "member.added"), event(2, "delivered.updated")])
    await sink.send([event(3, "message.created"), event(4, "member.added")])
    await sink.send([LoggedEvent("gone", 1, "c1", "message.created", "ann", False, T0, b"")])
    assert store.applied == [("alpha", 1, 4)]  # through the batch's last position
