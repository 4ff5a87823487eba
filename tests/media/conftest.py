"""The blob store contract suite runs against both engines: files, and S3 (SeaweedFS);
the lifecycle tests drive a runtime in this process with a clock of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.core.principal import Operator
from services.core.settings import load_settings
from services.media.blobs import BlobStore
from services.media.local_blobs import LocalBlobStore
from services.media.s3_blobs import S3BlobStore
from services.media.urls import UrlSigner
from services.runtime import Runtime, build_runtime
from tests.media.inprocess import Clock
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runtime(tmp_path: Path, clock: Clock) -> AsyncIterator[Runtime]:
    """No processor runs by itself here: the tests drive processing."""
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40, media_processors=0,
        media_max_attempts=2, media_processing_lease=timedelta(minutes=1)), clock=clock)
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()
