"""caas.media.v1.MediaService: protobuf ↔ domain, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from caas.media.v1 import media_service_pb2 as pb
from caas.media.v1 import resources_pb2 as res
from caas.messages.v1 import resources_pb2 as msg_res

from services.conversations.servicer import parse_conversation
from services.core.errors import invalid_field
from services.core.names import parse_app
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.media import models
from services.media.actions import MediaActions, UploadSpec, UploadView
from services.media.delivery import Links, MediaUrls
from services.media.models import Media
from services.messages.models import AttachedRendition

STATES = {models.UPLOADING: res.Media.STATE_UPLOADING, models.PENDING: res.Media.STATE_PENDING,
          models.READY: res.Media.STATE_READY, models.FAILED: res.Media.STATE_FAILED,
          models.QUARANTINED: res.Media.STATE_QUARANTINED}
KINDS = {models.IMAGE: res.Media.KIND_IMAGE, models.VIDEO: res.Media.KIND_VIDEO,
         models.AUDIO: res.Media.KIND_AUDIO, models.FILE: res.Media.KIND_FILE}


def media_name(app_id: str, media_id: str) -> str:
    return f"apps/{app_id}/media/{media_id}"


def parse_media(name: str, field: str = "name") -> tuple[str, str]:
    """(app, media) of `apps/{app}/media/{media}` (the contract checked its shape)."""
    app, sep, media_id = name.removeprefix("apps/").partition("/media/")
    if not sep or not app or not media_id or "/" in media_id:
        raise invalid_field(field, "must be apps/{app}/media/{media}")
    return app, media_id


def show_files(proto: res.Media | msg_res.Attachment, links: Links | None,
               renditions: Sequence[models.Rendition | AttachedRendition]) -> None:
    """Fill in where a media's files are: its URLs (when `links`), and its thumbnails
    (with their URLs when `links`). For a Media and an Attachment alike."""
    if links is not None:
        proto.uri, proto.download_uri = links.inline, links.download
        proto.uri_expire_time.FromDatetime(links.expires)
    proto.thumbnails.extend(
        res.Rendition(size=r.size, width=r.width, height=r.height,
                      content_type=r.content_type,
                      uri=links.renditions[r.size] if links is not None else "")
        for r in renditions)


def media_proto(media: Media, urls: MediaUrls) -> res.Media:
    """The media as callers see it; with signed URLs when READY."""
    proto = res.Media(
        name=media_name(media.app_id, media.media_id),
        conversation=f"apps/{media.app_id}/conversations/{media.conversation_id}",
        file_name=media.file_name, size_bytes=media.size_bytes,
        declared_content_type=media.declared_content_type,
        state=STATES.get(media.state, res.Media.STATE_UNSPECIFIED),
        failure_reason=media.failure_reason, uploader_id=media.uploader_id,
        create_time=timestamp(media.create_time), update_time=timestamp(media.update_time))
    p = media.processed
    if p is None:
        return proto
    proto.content_type, proto.kind = p.content_type, KINDS[p.kind]
    proto.width, proto.height, proto.blurhash, proto.sha256 = (p.width, p.height, p.blurhash,
                                                               p.sha256)
    if p.duration_ms:
        proto.duration.FromTimedelta(timedelta(milliseconds=p.duration_ms))
    links = (urls.links(media.app_id, media.media_id, tuple(r.size for r in p.renditions))
             if media.state == models.READY else None)
    show_files(proto, links, p.renditions)
    return proto


def upload_proto(view: UploadView) -> res.Upload:
    media = view.media
    return res.Upload(
        name=f"{media_name(media.app_id, media.media_id)}/upload", part_size=media.part_size,
        part_count=media.part_count, uploaded_parts=view.uploaded,
        parts=[res.UploadPart(part_number=t.number, url=t.url, size_bytes=t.size,
                              expire_time=timestamp(view.urls_expire))
               for t in view.targets],
        expire_time=timestamp(media.upload_expire_time))


class MediaServicer:
    def __init__(self, actions: MediaActions, urls: MediaUrls) -> None:
        self._actions = actions
        self._urls = urls

    async def CreateUpload(self, request: pb.CreateUploadRequest, call: Call
                           ) -> pb.CreateUploadResponse:
        m = request.media
        app_id = parse_app(request.parent, "parent")
        conversation_app, conversation_id = parse_conversation(m.conversation,
                                                               "media.conversation")
        if conversation_app != app_id:
            raise invalid_field("media.conversation", "must be a conversation of the parent app")
        view = await self._actions.do_create_upload(
            call.principal, app_id,
            UploadSpec(conversation_id, m.file_name, m.size_bytes, m.declared_content_type),
            request.request_id)
        return pb.CreateUploadResponse(media=media_proto(view.media, self._urls),
                                       upload=upload_proto(view))

    async def GetUpload(self, request: pb.GetUploadRequest, call: Call) -> pb.GetUploadResponse:
        view = await self._actions.get_upload(
            call.principal, *parse_media(request.name.removesuffix("/upload")))
        return pb.GetUploadResponse(upload=upload_proto(view))

    async def CompleteUpload(self, request: pb.CompleteUploadRequest, call: Call
                             ) -> pb.CompleteUploadResponse:
        media = await self._actions.do_complete(call.principal, *parse_media(request.name))
        return pb.CompleteUploadResponse(media=media_proto(media, self._urls))

    async def GetMedia(self, request: pb.GetMediaRequest, call: Call) -> pb.GetMediaResponse:
        media = await self._actions.get(call.principal, *parse_media(request.name))
        return pb.GetMediaResponse(media=media_proto(media, self._urls))

    async def DeleteMedia(self, request: pb.DeleteMediaRequest, call: Call
                          ) -> pb.DeleteMediaResponse:
        await self._actions.do_delete(call.principal, *parse_media(request.name))
        return pb.DeleteMediaResponse()

    async def GetMediaUsage(self, request: pb.GetMediaUsageRequest, call: Call
                            ) -> pb.GetMediaUsageResponse:
        app_id = parse_app(request.name.removesuffix("/mediaUsage"))
        usage, limits = await self._actions.usage(call.principal, app_id)
        return pb.GetMediaUsageResponse(usage=res.MediaUsage(
            name=request.name, used_bytes=usage.used_bytes, media_count=usage.media_count,
            quota_bytes=limits.quota_bytes, max_file_bytes=limits.max_file_bytes,
            allowed_content_types=limits.content_types))
