"""Messages, their reactions and revisions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.calls.models import Call
from services.conversations.models import PREVIEW_LENGTH, MlsGroup


@dataclass(frozen=True, slots=True)
class AttachedRendition:
    """A thumbnail of an attached media (its URL is signed when the message is shown)."""

    size: str
    width: int
    height: int
    content_type: str


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # image, video, audio, file, link
    uri: str  # empty for a media (its URLs are signed when the message is shown)
    title: str = ""
    mime_type: str = ""
    size_bytes: int = 0
    width: int = 0
    height: int = 0
    media_id: str = ""  # an uploaded media of the app
    duration_ms: int = 0
    blurhash: str = ""
    renditions: tuple[AttachedRendition, ...] = ()

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Attachment:
        """From `dataclasses.asdict` of one, as stores keep them."""
        fields = dict(stored)
        fields["renditions"] = tuple(AttachedRendition(**r)
                                     for r in fields.get("renditions", ()))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Mention:
    user_id: str
    display_name: str


def mentioned_others(sender_id: str, mentions: Iterable[Mention]) -> list[str]:
    """Whom a message counts as an unread mention for (among the conversation's
    members): each mentioned user once, sorted, never its sender."""
    return sorted({m.user_id for m in mentions} - {sender_id})


@dataclass(frozen=True, slots=True)
class MlsContent:
    """An MLS message of an end-to-end encrypted conversation (services/e2ee)."""

    kind: str  # APPLICATION or COMMIT
    epoch: int  # the epoch it was sent in
    data: bytes  # the MLSMessage
    device_id: str = ""  # the sending device's (checked for a commit)


APPLICATION = "application"
COMMIT = "commit"


@dataclass(frozen=True, slots=True)
class MlsDraft:
    """An MLS message to send, as the delivery service checked it: for a commit, the
    group it makes and the devices ("{user}/{device}") its Welcome adds."""

    content: MlsContent
    group: MlsGroup | None = None  # a commit's next state (its commit_sequence unset)
    welcome: bytes = b""
    welcomed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Welcome:
    """A Welcome that added a device to a conversation's MLS group (kept with its
    commit, for the device to fetch)."""

    app_id: str
    conversation_id: str
    sequence: int  # the commit's
    epoch: int  # the epoch it joins
    data: bytes
    create_time: datetime

    @property
    def position(self) -> str:
        return welcome_position(self.conversation_id, self.sequence)


def welcome_position(conversation_id: str, sequence: int) -> str:
    """A Welcome's id in listings (with its time): sorts as the sequence numbers."""
    return f"{conversation_id}/{sequence:020d}"


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to send, as checked by the actions."""

    sender_id: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    mentions: tuple[Mention, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    thread_root: int = 0
    shadowed: bool = False  # the sender is shadow-banned there
    # Sealed at rest (services/messages/sealing.py): the conversation preview's text
    # (else the text's first PREVIEW_LENGTH characters), and what metadata filters
    # compare (else the metadata).
    preview: str | None = None
    metadata_index: Mapping[str, str] | None = None
    mls: MlsDraft | None = None  # in an end-to-end encrypted conversation
    call: Call | None = None  # a system message recording an ended call (services/calls)

    @property
    def counted(self) -> bool:
        """Whether others' unread counts, the preview and the activity time count it:
        not a shadowed message (its sender's alone), nor a commit (the group's, not a
        word of anyone's)."""
        return not self.shadowed and (self.mls is None or self.mls.content.kind != COMMIT)

    @property
    def preview_text(self) -> str:
        return self.text[:PREVIEW_LENGTH] if self.preview is None else self.preview

    @property
    def indexed_metadata(self) -> Mapping[str, str]:
        return self.metadata if self.metadata_index is None else self.metadata_index


@dataclass(frozen=True, slots=True)
class Message:
    app_id: str
    conversation_id: str
    sequence: int
    sender_id: str
    text: str
    attachments: tuple[Attachment, ...]
    mentions: tuple[Mention, ...]
    metadata: Mapping[str, str]
    thread_root: int
    reply_count: int
    last_reply_time: datetime | None
    reactions: Mapping[str, int]  # emoji → count, in first-reaction order
    create_time: datetime
    edit_time: datetime | None = None
    delete_time: datetime | None = None
    # Sent under a shadow ban: seen by its sender (and the app's backend) alone; no one
    # else's unread counts, mentions, preview or thread counts it.
    shadowed: bool = False
    mls: MlsContent | None = None  # in an end-to-end encrypted conversation
    call: Call | None = None  # a system message recording an ended call (services/calls)

    @property
    def deleted(self) -> bool:
        return self.delete_time is not None


@dataclass(frozen=True, slots=True)
class MessageChanges:
    """Fields an edit changes; None leaves one as it is."""

    text: str | None = None
    attachments: tuple[Attachment, ...] | None = None
    metadata: Mapping[str, str] | None = None
    metadata_index: Mapping[str, str] | None = None  # as Draft's, with metadata

    @property
    def indexed_metadata(self) -> Mapping[str, str] | None:
        return self.metadata if self.metadata_index is None else self.metadata_index


@dataclass(frozen=True, slots=True)
class Revision:
    revision: int
    text: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Reaction:
    user_id: str
    emoji: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Page:
    """Messages in ascending order, and whether more lie on either side."""

    messages: list[Message]
    more_before: bool
    more_after: bool


@dataclass(frozen=True, slots=True)
class ReceiptSummary:
    read: int
    delivered: int
