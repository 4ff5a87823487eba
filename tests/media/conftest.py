"""The blob store contract suite runs against both engines: files, and S3 (SeaweedFS)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.media.blobs import BlobStore
from services.media.local_blobs import LocalBlobStore
from services.media.s3_blobs import S3BlobStore
from services.media.urls import UrlSigner
from tests.support.servers import (
    SEAWEEDFS_ACCESS_KEY,
    SEAWEEDFS_REGION,
    SEAWEEDFS_SECRET_KEY,
    ExternalServer,
)


@pytest.fixture
def signer() -> UrlSigner:
    """The local engine's URL signer (the S3 engine presigns with its S3 credentials)."""
    return UrlSigner(b"media-test-secret-" + b"x" * 32, base_url="http://127.0.0.1:9")


@pytest.fixture
async def local_blobs(tmp_path: Path, signer: UrlSigner) -> AsyncIterator[LocalBlobStore]:
    """A started local store in a fresh directory."""
    store = LocalBlobStore(tmp_path / "media", signer)
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def s3_blobs(seaweedfs: ExternalServer) -> AsyncIterator[S3BlobStore]:
    """A started S3 store on a fresh bucket (which start() creates)."""
    store = S3BlobStore(seaweedfs.url, f"t{uuid.uuid4().hex[:16]}", region=SEAWEEDFS_REGION,
                        access_key=SEAWEEDFS_ACCESS_KEY, secret_key=SEAWEEDFS_SECRET_KEY,
                        secure=False)
    await store.start()
    yield store
    await store.close()


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest) -> BlobStore:
    """A fresh, started store of each engine: every test using it runs on both."""
    store: BlobStore = request.getfixturevalue(f"{request.param}_blobs")
    return store
