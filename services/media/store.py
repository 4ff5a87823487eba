"""The media store port: media items, their processing jobs and their collection.

Every method is scoped by app id except the processor's `claim` and the collector's
`due`, which work across apps. State changes that callers must hear of (`media.ready`,
`media.failed`) are recorded in the event log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.core.events import DomainEvent
from services.media.models import Media, Outcome, Usage


class MediaStore(Protocol):
    async def migrate(self) -> None: ...

    async def create(self, media: Media, quota_bytes: int) -> Media | None:
        """Insert `media` (UPLOADING), unless the app already has one of the same
        uploader and request id: then that one (tell by its media_id), unchanged. None,
        with nothing written, when the app's usage plus `media.size_bytes` would pass
        `quota_bytes`. Atomic: two creates never both pass the quota."""

    async def get(self, app_id: str, media_id: str) -> Media | None:
        """The media, in any state but gone (DELETING ones included)."""

    async def get_many(self, app_id: str, media_ids: Sequence[str]) -> dict[str, Media]: ...

    async def usage(self, app_id: str) -> Usage:
        """Bytes and count of the app's media not DELETING."""

    async def complete(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        """UPLOADING → PENDING (due for processing at once); the media as it is after
        (unchanged when it was not UPLOADING); None if there is none."""

    async def claim(self, now: datetime, until: datetime) -> Media | None:
        """Take one PENDING media nobody holds (claim_until unset or before `now`),
        oldest first, holding it until `until` and counting one more attempt; None if
        there is none."""

    async def finish(self, app_id: str, media_id: str, attempt: int, outcome: Outcome,
                     now: datetime, delete_after: datetime | None,
                     event: DomainEvent | None) -> Media | None:
        """PENDING → outcome.state (with its processed results or failure reason, and
        `delete_after`, unless an earlier one is set), releasing the claim and recording
        `event` in the same
        transaction, if the media is still PENDING at `attempt` (its processor's
        claim); the media after, or None (nothing written) otherwise."""

    async def mark_attached(self, app_id: str, media_ids: Sequence[str]) -> None:
        """A message carries these (the unattached collector spares them)."""

    async def schedule_deletion(self, app_id: str, media_ids: Sequence[str],
                                at: datetime) -> None:
        """The collector deletes these from `at` on (an earlier time stays)."""

    async def schedule_uploader_deletion(self, app_id: str, uploader_id: str,
                                         at: datetime) -> int:
        """Every media of the uploader is deleted from `at` on; how many."""

    async def mark_deleting(self, app_id: str, media_id: str, now: datetime) -> Media | None:
        """Any state → DELETING: gone for callers at once, and out of the app's usage;
        the media as it was before, None if there is none."""

    async def due(self, now: datetime, unattached_before: datetime, limit: int
                  ) -> list[Media]:
        """Up to `limit` media the collector must delete: DELETING ones; UPLOADING past
        their upload_expire_time; any with delete_after ≤ now (scheduled ones, and
        FAILED or QUARANTINED ones, which `finish` schedules); READY ones not attached
        and last updated before `unattached_before`."""

    async def remove(self, app_id: str, media_id: str) -> None:
        """Forget a media whose objects are deleted (idempotent)."""

    async def signing_secret(self, candidate: bytes) -> bytes:
        """The deployment's URL signing secret: the stored one, or `candidate` stored
        now if there is none yet (every process ends up with the same one)."""
