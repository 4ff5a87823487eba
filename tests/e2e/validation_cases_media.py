"""One case per contract rule of the media service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.media.v1 import media_service_pb2 as pb
from caas.media.v1 import resources_pb2 as res
from google.protobuf.message import Message

APP = "apps/some-app"
MEDIA = f"{APP}/media/aaaaaaaaaaaaaaaa"


def upload(**fields: object) -> pb.CreateUploadRequest:
    base: dict[str, object] = {"conversation": f"{APP}/conversations/c1", "file_name": "a.jpg",
                               "size_bytes": 10, "declared_content_type": "image/jpeg"}
    base.update(fields)
    return pb.CreateUploadRequest(parent=APP, media=res.Media(**base),  # type: ignore[arg-type]
                                  request_id="r1")


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("CreateUpload parent", "CreateUpload",
     pb.CreateUploadRequest(parent="apps/", media=upload().media, request_id="r1"),
     {"parent": "string.pattern"}),
    ("CreateUpload media required", "CreateUpload",
     pb.CreateUploadRequest(parent=APP, request_id="r1"), {"media": "required"}),
    ("CreateUpload request_id", "CreateUpload",
     pb.CreateUploadRequest(parent=APP, media=upload().media, request_id="no spaces"),
     {"request_id": "string.pattern"}),
    ("CreateUpload conversation", "CreateUpload", upload(conversation="apps/x/c/1"),
     {"media.conversation": "string.pattern"}),
    ("CreateUpload file_name slash", "CreateUpload", upload(file_name="a/b.jpg"),
     {"media.file_name": "string.pattern"}),
    ("CreateUpload file_name control", "CreateUpload", upload(file_name="a\nb.jpg"),
     {"media.file_name": "string.pattern"}),
    ("CreateUpload file_name at most 255", "CreateUpload", upload(file_name="f" * 256),
     {"media.file_name": "string.max_len"}),
    ("CreateUpload size_bytes at most 5 GiB", "CreateUpload", upload(size_bytes=5 * 2**30 + 1),
     {"media.size_bytes": "int64.gte_lte"}),
    ("CreateUpload size_bytes negative", "CreateUpload", upload(size_bytes=-1),
     {"media.size_bytes": "int64.gte_lte"}),
    ("CreateUpload content type shape", "CreateUpload",
     upload(declared_content_type="image"), {"media.declared_content_type": "string.pattern"}),
    ("CreateUpload content type at most 127", "CreateUpload",
     upload(declared_content_type="a" * 64 + "/" + "b" * 63),
     {"media.declared_content_type": "string.max_len"}),
    ("GetUpload name", "GetUpload", pb.GetUploadRequest(name=MEDIA),
     {"name": "string.pattern"}),
    ("CompleteUpload name", "CompleteUpload", pb.CompleteUploadRequest(name=f"{MEDIA}/upload"),
     {"name": "string.pattern"}),
    ("GetMedia name", "GetMedia", pb.GetMediaRequest(name=f"{APP}/media/UPPER"),
     {"name": "string.pattern"}),
    ("DeleteMedia name", "DeleteMedia", pb.DeleteMediaRequest(name="apps/x/media/y"),
     {"name": "string.pattern"}),
    ("GetMediaUsage name", "GetMediaUsage", pb.GetMediaUsageRequest(name=f"{APP}/usage"),
     {"name": "string.pattern"}),
]
