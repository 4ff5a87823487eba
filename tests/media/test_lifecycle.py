"""A media's life in one process, with a clock the test moves: processing that crashes
and resumes, and the collector deleting what is due (and nothing else)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.core.principal import Operator
from services.media import models
from services.media.blobs import BlobNotFound
from services.media.processing import Result
from services.media.worker import FAILED_KEPT, MediaCollector
from services.messages.actions import Outgoing
from services.messages.models import Attachment
from services.runtime import Runtime
from tests.media import samples
from tests.media.inprocess import (
    ALICE,
    Clock,
    gone,
    group,
    media_events,
    processor,
    ready_media,
    uploaded,
)


async def test_a_crash_mid_processing_is_processed_again(
        runtime: Runtime, clock: Clock, tmp_path: Path) -> None:
    conversation_id = await group(runtime)
    data = samples.jpeg(tmp_path / "p.jpg", (640, 480)).read_bytes()
    media = await uploaded(runtime, conversation_id, data, "image/jpeg")
    assert media.state == models.PENDING
    store = runtime.stores.media
    # A process claims it, then dies: it never finishes.
    lost = await store.claim(clock.now(), clock.now() + runtime.settings.media_processing_lease)
    assert lost is not None and lost.attempts == 1
    assert await store.claim(clock.now(), clock.now() + timedelta(minutes=1)) is None
    # It had got as far as replacing the upload by its sanitized copy.
    copy = tmp_path / "sanitized.jpg"
    copy.write_bytes(data)
    await runtime.blobs.put_file(f"{media.key_prefix}original", copy, "image/jpeg")
    await runtime.blobs.delete_prefix(media.upload_key)
    clock.advance(runtime.settings.media_processing_lease + timedelta(seconds=1))
    again = await store.claim(clock.now(), clock.now() + timedelta(minutes=1))
    assert again is not None and again.attempts == 2
    done = await processor(runtime, clock).process(again)
    assert done is not None and done.state == models.READY
    assert done.processed is not None and done.processed.width == 640
    assert done.processed.original_key == f"{media.key_prefix}original"
    # The lost process coming back late writes nothing, and says nothing.
    assert await processor(runtime, clock).process(lost) is None
    events = await media_events(runtime)
    assert [(e.type, e.media_ready.name) for e in events] == [
        ("media.ready", f"apps/alpha/media/{media.media_id}")]
    assert events[0].media_ready.uri  # signed URLs travel with the event


async def test_a_media_that_always_breaks_processing_ends_failed(
        runtime: Runtime, clock: Clock) -> None:
    conversation_id = await group(runtime)
    media = await uploaded(runtime, conversation_id, b"hello", "text/plain")

    def broken(source: Path, workdir: Path) -> Result:
        raise MemoryError("the decoder blew up")

    store = runtime.stores.media
    for _ in range(runtime.settings.media_max_attempts):
        claimed = await store.claim(clock.now(), clock.now() + timedelta(minutes=1))
        assert claimed is not None
        assert await processor(runtime, clock, broken).process(claimed) is None
        clock.advance(timedelta(minutes=2))
    last = await store.claim(clock.now(), clock.now() + timedelta(minutes=1))
    assert last is not None and last.attempts == 3
    failed = await processor(runtime, clock, broken).process(last)
    assert failed is not None
    assert (failed.state, failed.failure_reason) == (models.FAILED, "PROCESSING_FAILED")
    assert [e.type for e in await media_events(runtime)] == ["media.failed"]
    assert await runtime.blobs.stat(media.upload_key) is None  # refused bytes go at once


async def test_the_collector_deletes_what_is_due_and_nothing_else(
        runtime: Runtime, clock: Clock) -> None:
    conversation_id = await group(runtime)
    collector = MediaCollector(runtime.stores.media, runtime.blobs, runtime.media, clock,
                               runtime.settings)
    sent = await ready_media(runtime, clock, conversation_id, b"sent and deleted")
    kept = await ready_media(runtime, clock, conversation_id, b"sent and kept")
    loose = await ready_media(runtime, clock, conversation_id, b"never sent")
    unfinished = await uploaded(runtime, conversation_id, b"never completed", "text/plain",
                                complete=False)
    for media in (sent, kept):
        await runtime.messages.do_send(
            ALICE, "alpha", conversation_id,
            Outgoing("", (Attachment("file", "", media_id=media.media_id),)), media.media_id)
    assert await collector.collect() == 0

    # A deleted message's media goes after the retention (0 here).
    await runtime.messages.do_delete(ALICE, "alpha", conversation_id, 1)
    assert await collector.collect() == 1
    assert await gone(runtime, sent)

    # A day on, the upload never completed has expired; a week on, the media no message
    # carries goes too. The attached one stays.
    clock.advance(runtime.settings.media_upload_ttl + timedelta(seconds=1))
    assert await collector.collect() == 1
    assert await runtime.stores.media.get("alpha", unfinished.media_id) is None
    with pytest.raises(BlobNotFound):
        await runtime.blobs.list_parts(unfinished.upload_key, unfinished.upload_id)
    clock.advance(runtime.settings.media_unattached_ttl)
    assert await collector.collect() == 1
    assert await gone(runtime, loose)
    assert (await runtime.stores.media.get("alpha", kept.media_id)) is not None
    assert await runtime.blobs.stat(kept.upload_key) == len(b"sent and kept")

    # The uploader is erased: everything of theirs goes.
    await runtime.users.do_delete_user(Operator(), "alpha", "alice")
    assert await collector.collect() == 1
    assert await gone(runtime, kept)
    assert (await runtime.media.usage(Operator(), "alpha"))[0].used_bytes == 0


async def test_a_failed_media_says_why_for_a_day(runtime: Runtime, clock: Clock) -> None:
    conversation_id = await group(runtime)
    collector = MediaCollector(runtime.stores.media, runtime.blobs, runtime.media, clock,
                               runtime.settings)
    media = await uploaded(runtime, conversation_id, samples.elf(), "text/plain")
    claimed = await runtime.stores.media.claim(clock.now(), clock.now() + timedelta(minutes=1))
    assert claimed is not None
    failed = await processor(runtime, clock).process(claimed)
    assert failed is not None and failed.failure_reason == "CONTENT_TYPE_NOT_ALLOWED"
    assert await collector.collect() == 0
    assert (await runtime.media.get(ALICE, "alpha", media.media_id)).state == models.FAILED
    clock.advance(FAILED_KEPT)
    assert await collector.collect() == 1
    assert await runtime.stores.media.get("alpha", media.media_id) is None


async def test_the_apps_own_retention_keeps_a_deleted_messages_media(
        runtime: Runtime, clock: Clock) -> None:
    await runtime.apps.do_update_app(Operator(), "alpha", display_name=None, plan=None,
                                     media_retention=timedelta(days=3))
    conversation_id = await group(runtime)
    collector = MediaCollector(runtime.stores.media, runtime.blobs, runtime.media, clock,
                               runtime.settings)
    media = await ready_media(runtime, clock, conversation_id, b"kept a while")
    await runtime.messages.do_send(
        ALICE, "alpha", conversation_id,
        Outgoing("", (Attachment("file", "", media_id=media.media_id),)), "m1")
    await runtime.messages.do_delete(ALICE, "alpha", conversation_id, 1)
    clock.advance(timedelta(days=3) - timedelta(seconds=1))
    assert await collector.collect() == 0
    assert await runtime.blobs.stat(media.upload_key) is not None
    clock.advance(timedelta(seconds=1))
    assert await collector.collect() == 1
    assert await gone(runtime, media)


async def test_the_sweep_deletes_bytes_no_media_owns_once_they_are_old(
        runtime: Runtime, clock: Clock, tmp_path: Path) -> None:
    conversation_id = await group(runtime)
    collector = MediaCollector(runtime.stores.media, runtime.blobs, runtime.media, clock,
                               runtime.settings)
    known = await ready_media(runtime, clock, conversation_id, b"a media")
    stray = tmp_path / "stray"
    stray.write_bytes(b"left behind")
    await runtime.blobs.put_file("alpha/aaaaaaaaaaaaaaaa/small", stray, "image/webp")
    await runtime.blobs.create_upload("alpha/bbbbbbbbbbbbbbbb/upload", "image/jpeg",
                                      runtime.blobs.min_part_size)
    assert await collector.sweep() == 0  # too young: maybe a media being recorded
    clock.advance(timedelta(days=1, seconds=1))
    assert await collector.sweep() == 2
    assert [h.prefix for h in await runtime.blobs.holdings("", 10)] == [known.key_prefix]
    assert await runtime.blobs.stat(known.upload_key) is not None
