"""Media items: what was uploaded, where its bytes are, what processing found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# States (the contract's Media.State, lower case), plus `deleting`: the media is gone
# for callers and its bytes are being removed (crash-safe: the collector finishes it).
UPLOADING = "uploading"
PENDING = "pending"
READY = "ready"
FAILED = "failed"
QUARANTINED = "quarantined"
DELETING = "deleting"

# Kinds, from the bytes.
IMAGE, VIDEO, AUDIO, FILE = "image", "video", "audio", "file"


@dataclass(frozen=True, slots=True)
class Rendition:
    """A thumbnail: `size` is small, medium or large; its bytes are at `key`."""

    size: str
    width: int
    height: int
    content_type: str
    key: str


@dataclass(frozen=True, slots=True)
class Processed:
    """What processing found and made of a media's bytes (see processing.py)."""

    content_type: str  # from the bytes
    kind: str  # image, video, audio, file
    width: int = 0
    height: int = 0
    duration_ms: int = 0
    blurhash: str = ""
    sha256: str = ""
    renditions: tuple[Rendition, ...] = ()
    original_key: str = ""  # the bytes served as the original (EXIF-free for pictures)


@dataclass(frozen=True, slots=True)
class Media:
    app_id: str
    media_id: str
    conversation_id: str
    uploader_id: str  # "" when the app's backend uploaded it
    request_id: str  # the creator's idempotency key (unique per app and uploader)
    file_name: str
    size_bytes: int
    declared_content_type: str
    state: str
    upload_id: str  # the blob store's multipart upload
    part_size: int
    upload_expire_time: datetime  # an upload not completed by then is deleted
    create_time: datetime
    update_time: datetime
    processed: Processed | None = None  # set once READY
    failure_reason: str = ""
    attempts: int = 0  # processing attempts so far
    claim_until: datetime | None = None  # a processor holds it until then
    attached: bool = False  # a message carries it: the unattached collector spares it
    delete_after: datetime | None = None  # the collector deletes it from then on

    @property
    def upload_key(self) -> str:
        """Where the uploaded bytes go (the multipart upload's object)."""
        return f"{self.app_id}/{self.media_id}/upload"

    @property
    def sanitized_key(self) -> str:
        """Where the bytes served as the original go when processing cleans them."""
        return f"{self.app_id}/{self.media_id}/original"

    @property
    def key_prefix(self) -> str:
        """Every object of this media starts with this."""
        return f"{self.app_id}/{self.media_id}/"

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size_bytes // self.part_size))

    def part_bytes(self, number: int) -> int:
        """The size of part `number` (from 1): part_size, the last one the rest."""
        if number < self.part_count:
            return self.part_size
        return self.size_bytes - self.part_size * (self.part_count - 1)


@dataclass(frozen=True, slots=True)
class Usage:
    """An app's media storage: bytes stored or reserved by uploads, and items."""

    used_bytes: int = 0
    media_count: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How processing ended: READY with `processed`, or FAILED / QUARANTINED."""

    state: str
    processed: Processed | None = None
    failure_reason: str = ""
