"""The media workers of every server process: processing uploads, collecting garbage.

Processing is a job in the media store: a PENDING media is claimed for a lease
(`media_processing_lease`), processed, and finished in one write that also records
its `media.ready` (or `media.failed`) event. A process that dies mid-way holds its
claim until the lease ends; another process (or the same one restarted) then claims
the media again, counting attempts, and after `media_max_attempts` it is FAILED with
PROCESSING_FAILED. Nothing is served before the finishing write, so a crash never
leaves a message pointing at half-made renditions: a message can only carry READY
media.

The collector deletes, every minute, what the store says is due: uploads never
completed, FAILED and QUARANTINED media after a day, media of deleted messages and
users after the retention, media no message carries after `media_unattached_ttl`, and
deletions cut short. Each deletion marks the media DELETING first, then removes the
bytes, then the record: repeating any step is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from services.apps.actions import AppPlans
from services.core.clock import Clock
from services.core.events import DomainEvent
from services.core.settings import Settings
from services.media import models
from services.media.actions import MediaActions
from services.media.blobs import MAX_HOLDINGS, BlobNotFound, BlobStore, Holding
from services.media.models import Media, Outcome, Processed, Rendition
from services.media.processing import Result
from services.media.scanning import Scanner
from services.media.store import MediaStore

log = logging.getLogger("caas.media")

POLL_SECONDS = 1.0  # how often a processor looks for jobs other processes queued
COLLECT_SECONDS = 60.0
COLLECT_BATCH = 100
FAILED_KEPT = timedelta(days=1)  # FAILED / QUARANTINED media stay visible this long
LEFTOVER_SECONDS = 86_400
SWEEP_SECONDS = 86_400.0  # orphan sweeps: once a day, at a random time of it
ORPHAN_AGE = timedelta(days=1)

Process = Callable[[Path, Path], Result]


class MediaProcessor:
    """Processes PENDING media, `settings.media_processors` at a time."""

    def __init__(self, store: MediaStore, blobs: BlobStore, plans: AppPlans, scanner: Scanner,
                 clock: Clock, settings: Settings, process: Process) -> None:
        self._store = store
        self._blobs = blobs
        self._plans = plans
        self._scanner = scanner
        self._clock = clock
        self._lease = settings.media_processing_lease
        self._max_attempts = settings.media_max_attempts
        self._process = process
        self._workroot = settings.data_dir / "media-work"
        self._pool = ThreadPoolExecutor(max(1, settings.media_processors),
                                        thread_name_prefix="media")
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A media was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, ok: Callable[[], None]) -> None:
        """One processing loop (run several for several at a time)."""
        await asyncio.to_thread(self._clear_leftovers)
        while True:
            now = self._clock.now()
            media = await self._store.claim(now, now + self._lease)
            ok()
            if media is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                continue
            await self.process(media)

    async def process(self, media: Media) -> Media | None:
        """Process a claimed media and finish it; None when it could not be finished
        (an error: it is left claimed, and processed again once the lease ends)."""
        try:
            outcome = await self._outcome(media)
        except Exception:
            log.warning("processing a media failed; it is retried",
                        extra={"app": media.app_id, "media": media.media_id,
                               "attempt": media.attempts}, exc_info=True)
            return None
        now = self._clock.now()
        after = replace(media, state=outcome.state, processed=outcome.processed,
                        failure_reason=outcome.failure_reason, update_time=now,
                        claim_until=None)
        kind = "media.ready" if outcome.state == models.READY else "media.failed"
        event = DomainEvent(kind, media.app_id, now, conversation_id=media.conversation_id,
                            payload=after, user_id=media.uploader_id, private=True)
        delete_after = None if outcome.state == models.READY else now + FAILED_KEPT
        finished = await self._store.finish(media.app_id, media.media_id, media.attempts,
                                            outcome, now, delete_after, event)
        if finished is not None and outcome.state != models.READY:
            # Refused bytes go at once; the record stays a day to say why.
            await self._blobs.delete_prefix(media.key_prefix)
        log.info("media processed", extra={"app": media.app_id, "media": media.media_id,
                                           "state": outcome.state,
                                           "reason": outcome.failure_reason})
        return finished

    async def _outcome(self, media: Media) -> Outcome:
        if media.attempts > self._max_attempts:
            return Outcome(models.FAILED, failure_reason="PROCESSING_FAILED")
        self._workroot.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{media.media_id}-", dir=self._workroot))
        try:
            source = workdir / "source"
            try:
                await self._blobs.get_file(media.upload_key, source)
                if source.stat().st_size != media.size_bytes:
                    return Outcome(models.FAILED, failure_reason="SIZE_MISMATCH")
            except BlobNotFound:
                # An earlier attempt replaced the upload by its sanitized copy, then
                # stopped short of finishing: process that copy.
                try:
                    await self._blobs.get_file(media.sanitized_key, source)
                except BlobNotFound:
                    return Outcome(models.FAILED, failure_reason="PROCESSING_FAILED")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, self._process, source, workdir)
            limits = (await self._plans.plan_of(media.app_id)).media
            if not limits.allows(result.content_type):  # the type found is shown
                return Outcome(models.FAILED, Processed(result.content_type, result.kind),
                               failure_reason="CONTENT_TYPE_NOT_ALLOWED")
            verdict = await self._scanner.scan(source)
            if not verdict.clean:
                return Outcome(models.QUARANTINED,
                               failure_reason=f"MALWARE_FOUND: {verdict.finding}")
            return Outcome(models.READY, await self._store_results(media, result))
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _store_results(self, media: Media, result: Result) -> Processed:
        """Put the renditions and the sanitized original beside the upload."""
        renditions = []
        for r in result.renditions:
            key = f"{media.key_prefix}{r.size}"
            await self._blobs.put_file(key, r.path, r.content_type)
            renditions.append(Rendition(r.size, r.width, r.height, r.content_type, key))
        original = media.upload_key
        if result.sanitized is not None:
            original = media.sanitized_key
            await self._blobs.put_file(original, result.sanitized, result.content_type)
            # The upload as it came (EXIF, GPS, a recording's location) is never served,
            # nor kept: the sanitized copy stands for it from now on.
            await self._blobs.delete_prefix(media.upload_key)
        return Processed(result.content_type, result.kind, result.width, result.height,
                         result.duration_ms, result.blurhash, result.sha256,
                         tuple(renditions), original)

    def _clear_leftovers(self) -> None:
        """Remove work directories a crashed process left (a day old: other processes
        sharing the data directory may be working in theirs)."""
        if not self._workroot.is_dir():
            return
        stale = time.time() - LEFTOVER_SECONDS
        for entry in self._workroot.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < stale:
                    shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class MediaCollector:
    """Deletes what is due (see the module's docstring), and once a day sweeps the blob
    store for orphans: bytes under a media the database does not know (a crash between
    starting an upload and recording it, renditions written after a deletion, a
    database restored from an older backup), once they are a day old."""

    def __init__(self, store: MediaStore, blobs: BlobStore, actions: MediaActions,
                 clock: Clock, settings: Settings) -> None:
        self._store = store
        self._blobs = blobs
        self._actions = actions
        self._clock = clock
        self._unattached_ttl = settings.media_unattached_ttl

    async def run(self, ok: Callable[[], None]) -> None:
        last_sweep = time.monotonic() - SWEEP_SECONDS * random.random()  # noqa: S311
        while True:
            while await self.collect() == COLLECT_BATCH:
                pass
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                await self.sweep()
                last_sweep = time.monotonic()
            ok()
            await asyncio.sleep(COLLECT_SECONDS)

    async def sweep(self) -> int:
        """One pass over every media prefix of the blob store; how many orphans went."""
        after, deleted = "", 0
        while True:
            page = await self._blobs.holdings(after, MAX_HOLDINGS)
            cutoff = self._clock.now() - ORPHAN_AGE
            by_app: dict[str, list[Holding]] = {}
            for holding in page:
                by_app.setdefault(holding.prefix.split("/", 1)[0], []).append(holding)
            for app_id, held in by_app.items():
                known = await self._store.get_many(
                    app_id, [h.prefix.split("/")[1] for h in held])
                for holding in held:
                    if holding.prefix.split("/")[1] not in known and holding.newest < cutoff:
                        await self._blobs.delete_prefix(holding.prefix)
                        deleted += 1
            if len(page) < MAX_HOLDINGS:
                break
            after = page[-1].prefix
        if deleted:
            log.info("orphaned media bytes deleted", extra={"count": deleted})
        return deleted

    async def collect(self) -> int:
        """Delete one batch of what is due; how many."""
        now = self._clock.now()
        due = await self._store.due(now, now - self._unattached_ttl, COLLECT_BATCH)
        for media in due:
            if media.state != models.DELETING:
                await self._store.mark_deleting(media.app_id, media.media_id, now)
            await self._actions.erase(media)
        if due:
            log.info("media deleted", extra={"count": len(due)})
        return len(due)
