"""Media end to end on the shared server (embedded store, both database engines):
uploading through signed URLs, processing, attaching, downloading, and every way to
get it wrong."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import grpc
import httpx
import pytest
from caas.media.v1 import media_service_pb2 as media_pb
from caas.media.v1 import resources_pb2 as media_res
from caas.messages.v1 import resources_pb2 as msg_res
from PIL import Image

from tests.conftest import AppHandle, create_app, expect_error
from tests.media import samples
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.media import (
    FAILED,
    READY,
    UPLOADING,
    complete,
    create_upload,
    get_media,
    processed,
    put_parts,
    upload,
)
from tests.support.servers import CaasServer
from tests.support.stream import Stream

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT
MIB = 1024 * 1024


def photo(tmp_path: Path, size: tuple[int, int] = (1600, 1200), orientation: int = 6) -> bytes:
    """A JPEG with EXIF (GPS included) and Orientation 6 (shown turned a quarter)."""
    return samples.jpeg(tmp_path / "photo.jpg", size, orientation=orientation).read_bytes()


async def send_with(sender: Person, conversation: str, media: str) -> msg_res.Message:
    response = await sender.send(conversation, "look",
                                 attachments=[msg_res.Attachment(media=media)])
    return response.message


async def test_a_photo_from_upload_to_another_members_thumbnail(
        alice: Person, bob: Person, tmp_path: Path) -> None:
    group = await alice.create(GROUP, ("bob",))
    data = photo(tmp_path)
    stream = Stream(alice)
    created = await create_upload(alice, group.name, len(data), "image/jpeg", "Beach 🌊.jpg")
    assert created.media.state == UPLOADING and created.media.uploader_id == "alice"
    assert created.upload.part_count == 1 and len(created.upload.parts) == 1
    assert created.media.uri == ""  # nothing to download yet
    await put_parts(created.upload, data)
    pending = await complete(alice, created.media.name)
    assert pending.state in (media_res.Media.STATE_PENDING, READY)
    ready = await processed(stream, created.media.name)
    assert ready.state == READY and ready.kind == media_res.Media.KIND_IMAGE
    assert (ready.width, ready.height) == (1200, 1600)  # orientation applied
    assert ready.content_type == "image/jpeg" and ready.blurhash
    assert [t.size for t in ready.thumbnails] == ["small", "medium", "large"]

    bobs = Stream(bob)
    await bobs.next("ready")
    message = await send_with(alice, group.name, created.media.name)
    attached = message.attachments[0]
    while (event := (await bobs.next("event")).event).type != "message.created":
        pass
    live = event.message_created.attachments[0]  # URLs travel with the event
    assert live.media == created.media.name and live.thumbnails[0].uri
    assert attached.media == created.media.name
    assert attached.kind == msg_res.Attachment.KIND_IMAGE
    assert (attached.title, attached.mime_type) == ("Beach 🌊.jpg", "image/jpeg")
    assert (attached.width, attached.height, attached.size_bytes) == (1200, 1600, len(data))

    listed = await bob.messages(group.name)
    seen = listed.messages[0].attachments[0]
    assert seen.blurhash == ready.blurhash and seen.uri and seen.download_uri
    small = seen.thumbnails[0]
    assert small.size == "small" and max(small.width, small.height) <= 160
    async with httpx.AsyncClient(timeout=30) as http:
        thumb = await http.get(small.uri)
        assert thumb.status_code == 200, thumb.text
        assert thumb.headers["content-type"] == "image/webp"
        assert thumb.headers["x-content-type-options"] == "nosniff"
        assert thumb.headers["cache-control"].startswith("public, max-age=")
        assert Image.open(io.BytesIO(thumb.content)).size == (small.width, small.height)
        original = await http.get(seen.uri)
        assert original.status_code == 200
        assert original.headers["content-disposition"].startswith("inline;")
        shown = Image.open(io.BytesIO(original.content))
        assert 0x8825 not in shown.getexif() and 0x010F not in shown.getexif()  # no GPS, make
        download = await http.get(seen.download_uri)
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''Beach%20%F0%9F%8C%8A.jpg" in download.headers[
            "content-disposition"]
        assert download.content == original.content


async def test_files_are_what_their_bytes_say(alice: Person, tmp_path: Path) -> None:
    group = await alice.create(GROUP)
    stream = Stream(alice)
    program = await upload(alice, stream, group.name, samples.elf(), "image/png", "cat.png")
    assert program.state == FAILED and program.failure_reason == "CONTENT_TYPE_NOT_ALLOWED"
    assert program.content_type == "application/x-executable" and not program.uri
    assert not program.thumbnails
    await expect_error(send_with(alice, group.name, program.name), PRECONDITION,
                       "MEDIA_NOT_READY")

    document = await upload(alice, stream, group.name, samples.pdf(), "image/png", "cv.png")
    assert document.state == READY and document.kind == media_res.Media.KIND_FILE
    assert document.content_type == "application/pdf" and not document.thumbnails
    async with httpx.AsyncClient(timeout=30) as http:
        shown = await http.get(document.uri)  # never inline, whatever was declared
        assert shown.headers["content-type"] == "application/pdf"
        assert shown.headers["content-disposition"].startswith("attachment;")

    page = await upload(alice, stream, group.name, samples.html(), "text/plain", "a.txt")
    assert page.content_type == "text/html" and page.state == FAILED


async def test_plan_limits_are_checked_before_any_byte(alice: Person) -> None:
    group = await alice.create(GROUP)
    too_big = await expect_error(
        create_upload(alice, group.name, 100 * MIB + 1, "video/mp4"), INVALID, "MEDIA_TOO_LARGE")
    assert too_big.metadata["max_file_bytes"] == str(100 * MIB)
    assert "media.size_bytes" in too_big.field_violations
    await expect_error(create_upload(alice, group.name, 10, "application/x-msdownload"),
                       INVALID, "CONTENT_TYPE_NOT_ALLOWED")


async def test_a_part_larger_than_signed_is_refused_before_it_is_stored(
        alice: Person) -> None:
    group = await alice.create(GROUP)
    created = await create_upload(alice, group.name, 1000, "text/plain")
    url = created.upload.parts[0].url
    async with httpx.AsyncClient(timeout=30) as http:
        refused = await http.put(url, content=b"x" * 1001)
        assert refused.status_code == 413
        assert refused.json()["details"][0]["reason"] == "REQUEST_TOO_LARGE"
        short = await http.put(url, content=b"x" * 999)
        assert short.status_code == 400
    upload_view = await alice.client.media.GetUpload(
        media_pb.GetUploadRequest(name=f"{created.media.name}/upload"), metadata=alice.auth)
    assert list(upload_view.upload.uploaded_parts) == []
    incomplete = await expect_error(complete(alice, created.media.name), PRECONDITION,
                                    "UPLOAD_INCOMPLETE")
    assert incomplete.metadata["missing_parts"] == "1"


def tampered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


async def test_tampered_urls_and_strangers_get_nothing(
        alice: Person, bob: Person, carol: Person, mallory: Person, tmp_path: Path) -> None:
    group = await alice.create(GROUP, ("bob",))
    stream = Stream(alice)
    ready = await upload(alice, stream, group.name, photo(tmp_path, (300, 200), 1),
                         "image/jpeg", "p.jpg")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(ready.uri)).status_code == 200
        forged = await http.get(tampered(ready.uri, s="A" * 32))
        assert forged.status_code == 403
        assert forged.json()["details"][0]["reason"] == "URL_SIGNATURE_INVALID"
        later = await http.get(tampered(ready.uri, e="99999999999"))
        assert later.status_code == 403
        other = await http.get(ready.uri.replace("/original?", "/small?"))
        assert other.status_code == 403  # another variant needs its own signature
        unsigned = await http.get(ready.uri.split("?")[0])
        assert unsigned.status_code == 403
    # Bob, a member, sees it once READY; Carol (not a member) and Mallory (another app)
    # do not learn it exists.
    assert (await get_media(bob, ready.name)).uri
    await expect_error(get_media(carol, ready.name), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(get_media(mallory, ready.name), DENIED, "APP_MISMATCH")
    await expect_error(bob.client.media.DeleteMedia(
        media_pb.DeleteMediaRequest(name=ready.name), metadata=bob.auth), DENIED,
        "MEDIA_NOT_OWNED")


async def test_only_the_uploaders_ready_media_of_this_conversation_may_be_attached(
        alice: Person, bob: Person, mallory: Person, tmp_path: Path) -> None:
    group = await alice.create(GROUP, ("bob",))
    elsewhere = await alice.create(GROUP, ("bob",))
    stream = Stream(alice)
    ready = await upload(alice, stream, group.name, photo(tmp_path, (300, 200), 1),
                         "image/jpeg", "p.jpg")
    await expect_error(send_with(bob, group.name, ready.name), DENIED, "MEDIA_NOT_OWNED")
    await expect_error(send_with(alice, elsewhere.name, ready.name), PRECONDITION,
                       "MEDIA_CONVERSATION_MISMATCH")
    uploading = await create_upload(alice, group.name, 10, "text/plain")
    await expect_error(send_with(alice, group.name, uploading.media.name), PRECONDITION,
                       "MEDIA_NOT_READY")
    # Another app's media, named in Mallory's own conversation: it is not in her app.
    hers = await mallory.create(GROUP)
    foreign = f"apps/{mallory.app_id}/media/{ready.name.rsplit('/', 1)[1]}"
    await expect_error(send_with(mallory, hers.name, foreign), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(send_with(mallory, hers.name, ready.name), NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    # Nothing was sent by any of these.
    assert (await alice.messages(group.name)).messages == []


async def test_a_multipart_upload_resumes_after_a_lost_connection(alice: Person) -> None:
    group = await alice.create(GROUP)
    data = bytes(range(256)) * (11 * MIB // 256)  # 11 MiB: three parts of 5 MiB
    stream = Stream(alice)
    created = await create_upload(alice, group.name, len(data), "application/octet-stream",
                                  "backup.bin")
    upload_ = created.upload
    assert (upload_.part_size, upload_.part_count) == (5 * MIB, 3)
    assert [p.size_bytes for p in upload_.parts] == [5 * MIB, 5 * MIB, MIB]
    await put_parts(upload_, data, [1])  # then the connection drops
    resumed = (await alice.client.media.GetUpload(
        media_pb.GetUploadRequest(name=upload_.name), metadata=alice.auth)).upload
    assert list(resumed.uploaded_parts) == [1]
    assert [p.part_number for p in resumed.parts] == [2, 3]
    missing = await expect_error(complete(alice, created.media.name), PRECONDITION,
                                 "UPLOAD_INCOMPLETE")
    assert missing.metadata["missing_parts"] == "2,3"
    await put_parts(resumed, data)
    await complete(alice, created.media.name)
    await complete(alice, created.media.name)  # again: harmless
    ready = await processed(stream, created.media.name)
    assert ready.state == READY and ready.size_bytes == len(data)
    async with httpx.AsyncClient(timeout=60) as http:
        whole = await http.get(ready.uri)
        assert whole.content == data
        span = await http.get(ready.uri, headers={"range": "bytes=5242870-5242889"})
        assert span.status_code == 206
        assert span.headers["content-range"] == f"bytes 5242870-5242889/{len(data)}"
        assert span.content == data[5242870:5242890]
        tail = await http.get(ready.uri, headers={"range": "bytes=-10"})
        assert tail.content == data[-10:]
        beyond = await http.get(ready.uri, headers={"range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416


async def test_retrying_create_upload_returns_the_same_media(alice: Person) -> None:
    group = await alice.create(GROUP)
    first = await create_upload(alice, group.name, 10, "text/plain", request_id="up-1")
    again = await create_upload(alice, group.name, 10, "text/plain", request_id="up-1")
    assert again.media.name == first.media.name
    assert again.upload.parts[0].part_number == 1
    other = await expect_error(create_upload(alice, group.name, 11, "text/plain",
                                             request_id="up-1"), INVALID, "REQUEST_INVALID")
    assert "request_id" in other.field_violations
    await put_parts(first.upload, b"0123456789")
    await complete(alice, first.media.name)
    done = await create_upload(alice, group.name, 10, "text/plain", request_id="up-1")
    assert done.media.state != UPLOADING and not done.upload.parts  # nothing left to send
    assert list(done.upload.uploaded_parts) == [1]


async def test_usage_quota_and_deletion(client: Client, server: CaasServer,
                                       tmp_path: Path) -> None:
    tiny = await create_app(client, server.operator_token, plan="tiny")
    alice = await person(client, tiny.app_id, tiny.api_key, "alice")
    group = await alice.create(GROUP)
    usage = (await client.media.GetMediaUsage(media_pb.GetMediaUsageRequest(
        name=f"apps/{tiny.app_id}/mediaUsage"), metadata=tiny.auth)).usage
    assert (usage.used_bytes, usage.quota_bytes, usage.max_file_bytes) == (0, 2000, 1500)
    first = await create_upload(alice, group.name, 1500, "text/plain")
    quota = await expect_error(create_upload(alice, group.name, 600, "text/plain"),
                               grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_QUOTA_EXCEEDED")
    assert quota.metadata == {"quota_bytes": "2000", "used_bytes": "1500"}
    await alice.client.media.DeleteMedia(media_pb.DeleteMediaRequest(name=first.media.name),
                                         metadata=alice.auth)
    await alice.client.media.DeleteMedia(media_pb.DeleteMediaRequest(name=first.media.name),
                                         metadata=alice.auth)  # again: fine
    await expect_error(get_media(alice, first.media.name), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await create_upload(alice, group.name, 600, "text/plain")  # room again
    await expect_error(alice.client.media.GetMediaUsage(media_pb.GetMediaUsageRequest(
        name=f"apps/{tiny.app_id}/mediaUsage"), metadata=alice.auth), DENIED,
        "PRINCIPAL_NOT_ALLOWED")


async def test_a_deleted_media_is_gone_from_its_urls(alice: Person, tmp_path: Path) -> None:
    group = await alice.create(GROUP)
    stream = Stream(alice)
    ready = await upload(alice, stream, group.name, photo(tmp_path, (300, 200), 1),
                         "image/jpeg", "p.jpg")
    await alice.client.media.DeleteMedia(media_pb.DeleteMediaRequest(name=ready.name),
                                         metadata=alice.auth)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(ready.uri)).status_code == 404
        assert (await http.get(ready.thumbnails[0].uri)).status_code == 404


@pytest.mark.parametrize("surface", ["json", "grpc-web"])
async def test_media_over_envoy(surface: str, server: CaasServer, app: AppHandle,
                                alice: Person) -> None:
    group = await alice.create(GROUP)
    headers = {"authorization": f"Bearer {alice.token}"}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        if surface == "json":
            created = await http.post(f"/v1/apps/{app.app_id}/media", headers=headers, json={
                "conversation": group.name, "fileName": "note.txt", "sizeBytes": "5",
                "declaredContentType": "text/plain"}, params={"requestId": "r1"})
            assert created.status_code == 200, created.text
            body = created.json()
            assert body["media"]["state"] == "STATE_UPLOADING"
            put = await http.put(body["upload"]["parts"][0]["url"], content=b"hello")
            assert put.status_code == 200
            done = await http.post(f"/v1/{body['media']['name']}:completeUpload",
                                   headers=headers, json={})
            assert done.status_code == 200 and done.json()["media"]["state"] in (
                "STATE_PENDING", "STATE_READY")
            got = await http.get(f"/v1/{body['media']['name']}", headers=headers)
            assert got.json()["media"]["fileName"] == "note.txt"
        else:
            created = await create_upload(alice, group.name, 5, "text/plain")
            request = media_pb.GetMediaRequest(name=created.media.name).SerializeToString()
            frame = b"\x00" + len(request).to_bytes(4, "big") + request
            answer = await http.post(
                "/caas.media.v1.MediaService/GetMedia", content=frame,
                headers={**headers, "content-type": "application/grpc-web+proto",
                         "x-grpc-web": "1"})
            assert answer.status_code == 200
            size = int.from_bytes(answer.content[1:5], "big")
            got = media_pb.GetMediaResponse.FromString(answer.content[5:5 + size])
            assert got.media.name == created.media.name and got.media.state == UPLOADING
