"""Media test helpers: uploading through the signed part URLs, as clients do, and
waiting for processing through the uploader's own stream (never by polling)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import httpx
from caas.media.v1 import media_service_pb2 as media_pb
from caas.media.v1 import resources_pb2 as media_res

from tests.support.chat import Person
from tests.support.stream import Stream

READY = media_res.Media.STATE_READY
FAILED = media_res.Media.STATE_FAILED
PENDING = media_res.Media.STATE_PENDING
UPLOADING = media_res.Media.STATE_UPLOADING


async def create_upload(person: Person, conversation: str, size: int, content_type: str,
                        file_name: str = "file.bin", request_id: str = ""
                        ) -> media_pb.CreateUploadResponse:
    response: media_pb.CreateUploadResponse = await person.client.media.CreateUpload(
        media_pb.CreateUploadRequest(
            parent=f"apps/{person.app_id}",
            media=media_res.Media(conversation=conversation, file_name=file_name,
                                  size_bytes=size, declared_content_type=content_type),
            request_id=request_id or uuid.uuid4().hex), metadata=person.auth)
    return response


async def put_parts(upload: media_res.Upload, data: bytes,
                    numbers: Iterable[int] | None = None) -> None:
    """PUT the parts `numbers` (default: every part the upload lists) of `data`."""
    wanted = set(numbers) if numbers is not None else None
    async with httpx.AsyncClient(timeout=60) as http:
        for part in upload.parts:
            if wanted is not None and part.part_number not in wanted:
                continue
            start = (part.part_number - 1) * upload.part_size
            response = await http.put(part.url, content=data[start:start + part.size_bytes])
            assert response.status_code == 200, response.text


async def complete(person: Person, media: str) -> media_res.Media:
    response = await person.client.media.CompleteUpload(
        media_pb.CompleteUploadRequest(name=media), metadata=person.auth)
    return response.media


async def get_media(person: Person, media: str) -> media_res.Media:
    response = await person.client.media.GetMedia(media_pb.GetMediaRequest(name=media),
                                                  metadata=person.auth)
    return response.media


async def processed(stream: Stream, media: str) -> media_res.Media:
    """The media's media.ready or media.failed event on its uploader's stream."""
    while True:
        item = await stream.next("event")
        event = item.event
        if event.type in ("media.ready", "media.failed"):
            found = getattr(event, event.type.replace(".", "_"))
            if found.name == media:
                return found


async def upload(person: Person, stream: Stream, conversation: str, data: bytes,
                 content_type: str, file_name: str = "file.bin") -> media_res.Media:
    """Upload `data` whole and wait until it is processed: the media as processed."""
    created = await create_upload(person, conversation, len(data), content_type, file_name)
    await put_parts(created.upload, data)
    await complete(person, created.media.name)
    return await processed(stream, created.media.name)
