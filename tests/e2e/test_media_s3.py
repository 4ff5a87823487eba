"""Media on S3 end to end: a server whose media live in a real S3-compatible store
(SeaweedFS). Parts go straight to S3 through presigned URLs; CAAS processes from S3 and
serves the bytes back through its own signed URLs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from caas.media.v1 import media_service_pb2 as media_pb
from minio import Minio
from PIL import Image

from tests.conftest import TEST_CONFIG, create_app, unique_id
from tests.e2e.test_media import photo, send_with
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.media import READY, complete, create_upload, processed, put_parts
from tests.support.servers import (
    SEAWEEDFS_ACCESS_KEY,
    SEAWEEDFS_REGION,
    SEAWEEDFS_SECRET_KEY,
    CaasServer,
    ExternalServer,
    start_caas,
)
from tests.support.stream import Stream

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket() -> str:
    return unique_id("media-")


@pytest.fixture(scope="module")
def s3_server(seaweedfs: ExternalServer, bucket: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[CaasServer]:
    env = {"CAAS_MEDIA_STORE": "s3", "CAAS_MEDIA_S3_ENDPOINT": seaweedfs.url,
           "CAAS_MEDIA_S3_BUCKET": bucket, "CAAS_MEDIA_S3_REGION": SEAWEEDFS_REGION,
           "CAAS_MEDIA_S3_ACCESS_KEY": SEAWEEDFS_ACCESS_KEY,
           "CAAS_MEDIA_S3_SECRET_KEY": SEAWEEDFS_SECRET_KEY, "CAAS_MEDIA_S3_SECURE": "false"}
    caas = start_caas(tmp_path_factory.mktemp("caas-s3"), env=env, config=TEST_CONFIG,
                      http=True)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture(scope="module")
async def s3_client(s3_server: CaasServer) -> AsyncIterator[Client]:
    client = Client(s3_server.address)
    yield client
    await client.close()


@pytest.fixture
async def people(s3_client: Client, s3_server: CaasServer) -> tuple[Person, Person]:
    app = await create_app(s3_client, s3_server.operator_token)
    return (await person(s3_client, app.app_id, app.api_key, "alice"),
            await person(s3_client, app.app_id, app.api_key, "bob"))


def objects(seaweedfs: ExternalServer, bucket: str, prefix: str) -> list[str]:
    s3 = Minio(seaweedfs.url, SEAWEEDFS_ACCESS_KEY, SEAWEEDFS_SECRET_KEY, secure=False,
               region=SEAWEEDFS_REGION)
    return sorted(o.object_name or "" for o in s3.list_objects(bucket, prefix, recursive=True))


async def test_a_photo_through_s3(people: tuple[Person, Person], seaweedfs: ExternalServer,
                                  bucket: str, tmp_path: Path) -> None:
    alice, bob = people
    group = await alice.create(GROUP, ("bob",))
    data = photo(tmp_path, (900, 600), orientation=1)
    stream = Stream(alice)
    created = await create_upload(alice, group.name, len(data), "image/jpeg", "s3.jpg")
    part_url = created.upload.parts[0].url
    assert part_url.startswith(f"http://{seaweedfs.url}/{bucket}/")  # straight to S3
    assert "X-Amz-Signature=" in part_url
    await put_parts(created.upload, data)
    await complete(alice, created.media.name)
    ready = await processed(stream, created.media.name)
    assert ready.state == READY and (ready.width, ready.height) == (900, 600)
    media_id = ready.name.rsplit("/", 1)[1]
    prefix = f"{alice.app_id}/{media_id}/"
    assert objects(seaweedfs, bucket, prefix) == [
        f"{prefix}{name}" for name in ("medium", "original", "small")]  # no large, no raw

    await send_with(alice, group.name, ready.name)
    seen = (await bob.messages(group.name)).messages[0].attachments[0]
    async with httpx.AsyncClient(timeout=30) as http:
        thumb = await http.get(seen.thumbnails[0].uri)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(thumb.content)).width == seen.thumbnails[0].width
        head = await http.get(seen.uri, headers={"range": "bytes=0-1"})
        assert head.status_code == 206 and head.content == b"\xff\xd8"  # a JPEG's start

    await alice.client.media.DeleteMedia(media_pb.DeleteMediaRequest(name=ready.name),
                                         metadata=alice.auth)
    assert objects(seaweedfs, bucket, prefix) == []


async def test_a_multipart_upload_to_s3_resumes(people: tuple[Person, Person],
                                                seaweedfs: ExternalServer, bucket: str) -> None:
    alice, _ = people
    group = await alice.create(GROUP)
    data = bytes(range(256)) * (11 * MIB // 256)
    stream = Stream(alice)
    created = await create_upload(alice, group.name, len(data), "application/zip", "a.zip")
    await put_parts(created.upload, data, [2])
    resumed = (await alice.client.media.GetUpload(
        media_pb.GetUploadRequest(name=created.upload.name), metadata=alice.auth)).upload
    assert list(resumed.uploaded_parts) == [2]
    await put_parts(resumed, data)
    await complete(alice, created.media.name)
    done = await processed(stream, created.media.name)
    # Its bytes are not a zip (no signature): stored as what they are.
    assert done.state == READY and done.content_type == "application/octet-stream"
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.get(done.uri)).content == data
