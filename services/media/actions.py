"""Uploading, reading and deleting media; attaching them to messages.

Who may do what:
- Uploading: members of the conversation the media is for (and the app's backend).
- The uploader and the app's backend see their media in every state, follow its
  upload, complete and delete it. Other members of its conversation see it once READY.
  To anyone else — another app, a non-member — it is NOT_FOUND.
- A message may carry a READY media of its own conversation, uploaded by its sender
  (the app's backend may attach any media of the app).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.apps.actions import AppPlans
from services.conversations.actions import ConversationsActions
from services.conversations.store import ConversationStore
from services.core.clock import Clock
from services.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    QuotaViolation,
    ResourceExhausted,
    invalid_field,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id
from services.core.principal import Principal, User, require_app
from services.core.settings import MediaLimits, Settings
from services.media import models
from services.media.blobs import BlobNotFound, BlobStore, Part
from services.media.models import Media, Usage
from services.media.store import MediaStore
from services.messages.models import AttachedRendition, Attachment

log = logging.getLogger("caas.media")

MAX_PARTS = 10_000  # S3's limit
PART_URLS_PER_ANSWER = 100  # stated in the contract (Upload.parts)


@dataclass(frozen=True, slots=True)
class UploadSpec:
    """A file as a caller announces it."""

    conversation_id: str
    file_name: str
    size_bytes: int
    declared_content_type: str


@dataclass(frozen=True, slots=True)
class PartTarget:
    number: int
    url: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadView:
    """Where an upload stands: the parts stored, and where to send the next ones."""

    media: Media
    uploaded: tuple[int, ...]
    targets: tuple[PartTarget, ...]
    urls_expire: datetime


def media_not_found(app_id: str, media_id: str) -> Exception:
    return not_found("caas.dev/Media", f"apps/{app_id}/media/{media_id}")


def _uploader(principal: Principal) -> str:
    return principal.user_id if isinstance(principal, User) else ""


def _require_owner(principal: Principal, media: Media) -> None:
    """MEDIA_NOT_OWNED for a user other than the media's uploader."""
    if isinstance(principal, User) and media.uploader_id != principal.user_id:
        raise PermissionDenied("MEDIA_NOT_OWNED", "only the media's uploader may do this",
                               metadata={"media": media.media_id})


def _complete_parts(media: Media, parts: Sequence[Part]) -> tuple[list[Part], list[int]]:
    """(the parts in order, the numbers of those missing or of the wrong size)."""
    by_number = {p.number: p for p in parts}
    good, missing = [], []
    for number in range(1, media.part_count + 1):
        part = by_number.get(number)
        if part is None or part.size != media.part_bytes(number):
            missing.append(number)
        else:
            good.append(part)
    return good, missing


class MediaActions:
    def __init__(self, store: MediaStore, blobs: BlobStore, conversations: ConversationsActions,
                 conversation_store: ConversationStore, plans: AppPlans, clock: Clock,
                 settings: Settings, bus: EventBus, wake_processor: Callable[[], None]) -> None:
        self._store = store
        self._blobs = blobs
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._plans = plans
        self._clock = clock
        self._settings = settings
        self._wake_processor = wake_processor
        bus.subscribe(self._on_event)

    async def limits(self, app_id: str) -> MediaLimits:
        return (await self._plans.plan_of(app_id)).media

    def _part_size(self, size: int) -> int:
        wanted = max(self._settings.media_part_size, self._blobs.min_part_size)
        return max(wanted, -(-size // MAX_PARTS))

    async def do_create_upload(self, principal: Principal, app_id: str, spec: UploadSpec,
                               request_id: str) -> UploadView:
        """Check the file against the plan, reserve its size, start the upload. See
        the contract of MediaService.CreateUpload."""
        access = await self._conversations.access(principal, app_id, spec.conversation_id)
        access.require_member()
        limits = await self.limits(app_id)
        if spec.size_bytes > limits.max_file_bytes:
            raise InvalidArgument(
                "MEDIA_TOO_LARGE", f"files are at most {limits.max_file_bytes} bytes on this "
                "app's plan", metadata={"max_file_bytes": str(limits.max_file_bytes)},
                field_violations=(FieldViolation("media.size_bytes", "larger than the plan "
                                                 "takes"),))
        if not limits.allows(spec.declared_content_type):
            raise InvalidArgument(
                "CONTENT_TYPE_NOT_ALLOWED", f"this app's plan does not take "
                f"{spec.declared_content_type} files",
                metadata={"allowed_content_types": ",".join(limits.content_types)},
                field_violations=(FieldViolation("media.declared_content_type",
                                                 "not a type the plan takes"),))
        now = self._clock.now()
        media_id = new_id()
        key = f"{app_id}/{media_id}/upload"
        part_size = self._part_size(spec.size_bytes)
        upload_id = await self._blobs.create_upload(key, spec.declared_content_type, part_size)
        media = Media(app_id, media_id, spec.conversation_id, _uploader(principal), request_id,
                      spec.file_name, spec.size_bytes, spec.declared_content_type,
                      models.UPLOADING, upload_id, part_size,
                      now + self._settings.media_upload_ttl, now, now)
        stored = await self._store.create(media, limits.quota_bytes)
        if stored is None or stored.media_id != media_id:
            await self._blobs.abort_upload(key, upload_id)
        if stored is None:
            used = await self._store.usage(app_id)
            raise ResourceExhausted(
                "STORAGE_QUOTA_EXCEEDED", f"the app's media storage would pass its plan's "
                f"{limits.quota_bytes} bytes", metadata={
                    "quota_bytes": str(limits.quota_bytes), "used_bytes": str(used.used_bytes)},
                quota_violations=(QuotaViolation(f"app:{app_id}", "media storage bytes"),))
        if stored.media_id == media_id:
            return await self._view(stored, fresh=True)
        # A retry: the first one's upload, if it is the same file.
        if (stored.conversation_id, stored.file_name, stored.size_bytes,
                stored.declared_content_type) != (spec.conversation_id, spec.file_name,
                                                  spec.size_bytes, spec.declared_content_type):
            raise invalid_field("request_id", "was used for another file: use a new one")
        return await self._view(stored, fresh=False)

    async def _view(self, media: Media, fresh: bool) -> UploadView:
        """Where the upload stands; no part URLs once it is complete."""
        if media.state != models.UPLOADING:
            return UploadView(media, tuple(range(1, media.part_count + 1)), (),
                              self._clock.now())
        uploaded: list[int] = []
        if not fresh:
            try:
                parts = await self._blobs.list_parts(media.upload_key, media.upload_id)
            except BlobNotFound:
                parts = []
            stored = {p.number: p.size for p in parts}
            uploaded = [n for n in range(1, media.part_count + 1)
                        if stored.get(n) == media.part_bytes(n)]
        done = set(uploaded)
        expires = min(media.upload_expire_time,
                      self._clock.now() + self._settings.media_url_ttl)
        targets = tuple(
            PartTarget(n, self._blobs.part_url(media.upload_key, media.upload_id, n,
                                               media.part_bytes(n), expires),
                       media.part_bytes(n))
            for n in range(1, media.part_count + 1) if n not in done)[:PART_URLS_PER_ANSWER]
        return UploadView(media, tuple(uploaded), targets, expires)

    async def _owned(self, principal: Principal, app_id: str, media_id: str) -> Media:
        """The media, for its uploader or the app's backend. Other members who may see
        it get MEDIA_NOT_OWNED; anyone else NOT_FOUND."""
        media = await self._visible(principal, app_id, media_id)
        _require_owner(principal, media)
        return media

    async def _visible(self, principal: Principal, app_id: str, media_id: str) -> Media:
        require_app(principal, app_id)
        media = await self._store.get(app_id, media_id)
        if media is None or media.state == models.DELETING:
            raise media_not_found(app_id, media_id)
        await self._require_sight(principal, media)
        return media

    async def _require_sight(self, principal: Principal, media: Media) -> None:
        """NOT_FOUND unless the caller may see `media`: its uploader and the app's
        backend always; the other members of its conversation once it is READY."""
        if not isinstance(principal, User) or media.uploader_id == principal.user_id:
            return
        if media.state != models.READY or await self._conversation_store.get_member(
                media.app_id, media.conversation_id, principal.user_id) is None:
            raise media_not_found(media.app_id, media.media_id)

    async def get(self, principal: Principal, app_id: str, media_id: str) -> Media:
        return await self._visible(principal, app_id, media_id)

    async def get_upload(self, principal: Principal, app_id: str, media_id: str
                         ) -> UploadView:
        media = await self._owned(principal, app_id, media_id)
        if media.state != models.UPLOADING or media.upload_expire_time <= self._clock.now():
            raise not_found("caas.dev/Upload", f"apps/{app_id}/media/{media_id}/upload")
        return await self._view(media, fresh=False)

    async def do_complete(self, principal: Principal, app_id: str, media_id: str) -> Media:
        """Join the parts and queue the media for processing. See the contract of
        MediaService.CompleteUpload."""
        media = await self._owned(principal, app_id, media_id)
        if media.state != models.UPLOADING:
            return media  # completed before
        if media.upload_expire_time <= self._clock.now():
            raise media_not_found(app_id, media_id)
        try:
            parts = await self._blobs.list_parts(media.upload_key, media.upload_id)
            good, missing = _complete_parts(media, parts)
            if missing:
                shown = ",".join(str(n) for n in missing[:100])
                raise FailedPrecondition(
                    "UPLOAD_INCOMPLETE", f"{len(missing)} of {media.part_count} parts are "
                    "missing or of the wrong size: upload them, then complete again",
                    metadata={"missing_parts": shown})
            await self._blobs.complete_upload(media.upload_key, media.upload_id, good)
        except BlobNotFound:
            # Joined already, by a completion that did not get to record it (or is
            # recording it now).
            if await self._blobs.stat(media.upload_key) != media.size_bytes:
                raise media_not_found(app_id, media_id) from None
        completed = await self._store.complete(app_id, media_id, self._clock.now())
        if completed is None:
            raise media_not_found(app_id, media_id)
        self._wake_processor()
        return completed

    async def do_delete(self, principal: Principal, app_id: str, media_id: str) -> None:
        """Delete the media and its bytes; deleting a deleted one succeeds."""
        require_app(principal, app_id)
        media = await self._store.get(app_id, media_id)
        if media is None or media.state == models.DELETING:
            return
        await self._require_sight(principal, media)
        _require_owner(principal, media)
        await self._store.mark_deleting(app_id, media_id, self._clock.now())
        await self.erase(media)

    async def erase(self, media: Media) -> None:
        """Delete a DELETING media's bytes, then the media itself. Safe to repeat: the
        collector repeats it for a media whose erasing was cut short."""
        await self._blobs.abort_upload(media.upload_key, media.upload_id)
        await self._blobs.delete_prefix(media.key_prefix)
        await self._store.remove(media.app_id, media.media_id)

    async def usage(self, principal: Principal, app_id: str) -> tuple[Usage, MediaLimits]:
        require_app(principal, app_id)
        return await self._store.usage(app_id), await self.limits(app_id)

    async def attach(self, app_id: str, conversation_id: str, sender: str, backend: bool,
                     attachments: Sequence[Attachment]) -> tuple[Attachment, ...]:
        """The attachments of a message to send, media ones filled in from their media:
        each must be READY, of this app and conversation, and the sender's own (unless
        the app's backend sends). Marks them attached."""
        wanted = [a.media_id for a in attachments if a.media_id]
        if not wanted:
            return tuple(attachments)
        found = await self._store.get_many(app_id, wanted)
        filled = []
        for attachment in attachments:
            if not attachment.media_id:
                filled.append(attachment)
                continue
            media = found.get(attachment.media_id)
            if media is None or media.state == models.DELETING:
                raise media_not_found(app_id, attachment.media_id)
            if not backend and media.uploader_id != sender:
                raise PermissionDenied("MEDIA_NOT_OWNED", "a message carries only media its "
                                       "sender uploaded", metadata={"media": media.media_id})
            if media.conversation_id != conversation_id:
                raise FailedPrecondition(
                    "MEDIA_CONVERSATION_MISMATCH", "the media was uploaded for another "
                    "conversation", metadata={"media": media.media_id})
            if media.state != models.READY or media.processed is None:
                raise FailedPrecondition(
                    "MEDIA_NOT_READY", f"the media is {media.state}, not ready",
                    metadata={"media": media.media_id, "state": media.state.upper()})
            filled.append(attachment_of(media, media.processed))
        await self._store.mark_attached(app_id, wanted)
        return tuple(filled)

    async def detach(self, app_id: str, attachments: Sequence[Attachment]) -> None:
        """The message carrying these was deleted: its media go after the retention."""
        media_ids = [a.media_id for a in attachments if a.media_id]
        if media_ids:
            await self._store.schedule_deletion(
                app_id, media_ids, self._clock.now() + await self._retention(app_id))

    async def _retention(self, app_id: str) -> timedelta:
        """How long the media of deleted messages and users stay: the app's, else the
        server's."""
        own = await self._plans.media_retention(app_id)
        return self._settings.media_retention if own is None else own

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type == "user.deleted":
            user_id = event.data["user"]
            count = await self._store.schedule_uploader_deletion(
                event.app_id, user_id, event.time + await self._retention(event.app_id))
            if count:
                log.info("media of a deleted user scheduled for deletion",
                         extra={"app": event.app_id, "media": count})


def attachment_of(media: Media, p: models.Processed) -> Attachment:
    return Attachment(p.kind, "", media.file_name, p.content_type, media.size_bytes, p.width,
                      p.height, media_id=media.media_id, duration_ms=p.duration_ms,
                      blurhash=p.blurhash,
                      renditions=tuple(AttachedRendition(r.size, r.width, r.height,
                                                         r.content_type)
                                       for r in p.renditions))


def ready(media: Media, processed: models.Processed, now: datetime) -> Media:
    """The media as `finish` leaves it READY (the payload of its media.ready event)."""
    return replace(media, state=models.READY, processed=processed, update_time=now,
                   claim_until=None)
