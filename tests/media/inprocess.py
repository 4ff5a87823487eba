"""A whole runtime in this process on the embedded store, driven by the media tests:
app "alpha" with alice and bob, a clock the test moves, no processor of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from caas.events.v1 import events_pb2

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.principal import Operator, User
from services.media import models
from services.media.actions import UploadSpec
from services.media.local_blobs import LocalBlobStore
from services.media.models import Media
from services.media.processing import process
from services.media.worker import MediaProcessor
from services.runtime import Runtime

ALICE = User("alpha", "alice", "s1")


class Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, by: timedelta) -> None:
        self.moment += by


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def uploaded(runtime: Runtime, conversation_id: str, data: bytes, content_type: str,
                   complete: bool = True) -> Media:
    view = await runtime.media.do_create_upload(
        ALICE, "alpha", UploadSpec(conversation_id, "f", len(data), content_type),
        request_id=f"r{len(data)}-{content_type.replace('/', '')}")
    media = view.media
    assert isinstance(runtime.blobs, LocalBlobStore)
    await runtime.blobs.write_part(media.upload_key, media.upload_id, 1, len(data),
                                   chunks(data))
    if complete:
        media = await runtime.media.do_complete(ALICE, "alpha", media.media_id)
    return media


async def group(runtime: Runtime) -> str:
    conversation, _ = await runtime.conversations.do_create(
        Operator(), "alpha", NewConversation(Kind.GROUP, member_ids=["alice", "bob"],
                                             owner_id="alice"))
    return conversation.conversation_id


def processor(runtime: Runtime, clock: Clock, work: object = process) -> MediaProcessor:
    return MediaProcessor(runtime.stores.media, runtime.blobs, runtime.plans,
                          runtime.media_scanner, clock, runtime.settings, work)  # type: ignore[arg-type]


async def media_events(runtime: Runtime) -> list[events_pb2.Event]:
    logged = await runtime.stores.events.read("alpha", 0, 1000)
    return [events_pb2.Event.FromString(e.payload) for e in logged
            if e.type.startswith("media.")]


async def ready_media(runtime: Runtime, clock: Clock, conversation_id: str, data: bytes
                      ) -> Media:
    media = await uploaded(runtime, conversation_id, data, "text/plain")
    claimed = await runtime.stores.media.claim(clock.now(), clock.now() + timedelta(minutes=1))
    assert claimed is not None and claimed.media_id == media.media_id
    done = await processor(runtime, clock).process(claimed)
    assert done is not None and done.state == models.READY
    return done


async def gone(runtime: Runtime, media: Media) -> bool:
    return (await runtime.stores.media.get("alpha", media.media_id) is None
            and await runtime.blobs.stat(media.upload_key) is None)
